import pytest

from repro.profiles import PROFILES, resolve, settings


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
