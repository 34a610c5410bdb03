import pytest
import torch

from repro.profiles import ACCELERATOR_PROFILES, PROFILES, resolve, settings, threads_for


def test_auto_resolves_to_a_concrete_profile():
    assert resolve("auto") in ("cpu", "gpu")
    assert resolve("smoke") == "smoke"


def test_unknown_profile_names_the_valid_ones():
    with pytest.raises(ValueError, match="'smoke', 'cpu', 'gpu', 'paper'"):
        resolve("fast")


def test_every_profile_must_be_declared():
    with pytest.raises(ValueError, match="lack profile"):
        settings({"smoke": {}, "cpu": {}}, "smoke")
    assert settings({p: {"name": p} for p in PROFILES}, "smoke") == {"name": "smoke"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without CUDA")
@pytest.mark.parametrize("profile", ACCELERATOR_PROFILES)
def test_an_accelerator_profile_without_cuda_stops_with_the_reason(profile):
    with pytest.raises(RuntimeError, match=f"profile '{profile}' is sized for a CUDA device and none is available"):
        resolve(profile)


def test_the_cpu_profiles_fix_one_thread():
    assert threads_for("smoke") == threads_for("cpu") == 1
    assert all(threads_for(profile) >= 1 for profile in ACCELERATOR_PROFILES)
