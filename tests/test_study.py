"""The study layer: settings checked on creation, one call to open a notebook's run."""

import sys
from dataclasses import FrozenInstanceError, dataclass
from pathlib import Path

import pytest
import torch

from repro import ROOT
from repro.profiles import PROFILES
from repro.study import Settings, Study, bounded, format_warning


@dataclass(frozen=True)
class Toy(Settings):
    steps: int
    lr: float
    lengths: tuple[int, ...]
    warmup: int = bounded(0, default=0)
    share: float = bounded(0, 1, default=0.5)
    dev_size: int | None = None  # None: the whole dev set
    options: dict | None = None


GOOD = dict(seeds=[0, 1], steps=10, lr=1e-3, lengths=[8, 16])


def every_profile(**values) -> dict:
    return {profile: values for profile in PROFILES}


def test_valid_settings_are_frozen_and_lists_become_tuples():
    settings = Toy.of(**GOOD)
    assert settings.seeds == (0, 1) and settings.lengths == (8, 16) and settings.warmup == 0
    with pytest.raises(FrozenInstanceError):
        settings.steps = 3


@pytest.mark.parametrize("change, error, message", [
    (dict(stepz=3), ValueError, r"unknown setting\(s\) \['stepz'\].*the settings are \['seeds', 'steps'"),
    (dict(steps=0), ValueError, "steps must be positive"),
    (dict(steps=-5), ValueError, "steps must be positive"),
    (dict(steps=2.5), TypeError, "steps must be an integer, got 2.5"),
    (dict(steps=True), TypeError, "steps must be an integer"),
    (dict(lr=0.0), ValueError, "lr must be positive"),
    (dict(lengths=[8, 0]), ValueError, "lengths must be positive"),
    (dict(warmup=-1), ValueError, r"warmup must lie in \[0, inf\], got -1"),
    (dict(share=1.5), ValueError, r"share must lie in \[0, 1\], got 1.5"),
    (dict(steps=None), TypeError, "steps may not be None"),
    (dict(seeds=[]), ValueError, "seeds must be distinct and at least one"),
    (dict(seeds=[1, 1]), ValueError, "seeds must be distinct"),
    (dict(seeds=[-1]), ValueError, r"seeds must lie in \[0, inf\]"),
])
def test_bad_settings_name_the_field_and_its_valid_range(change, error, message):
    with pytest.raises(error, match=message):
        Toy.of(**(GOOD | change))


def test_a_missing_setting_is_named():
    with pytest.raises(ValueError, match=r"missing \['lr'\]"):
        Toy.of(**{k: v for k, v in GOOD.items() if k != "lr"})


def test_none_is_allowed_where_the_type_says_so():
    assert Toy.of(**GOOD, dev_size=None, options=None).dev_size is None


def test_per_profile_names_the_profile_and_needs_every_profile():
    with pytest.raises(ValueError, match="profile 'gpu': .*steps must be positive"):
        Toy.per_profile(**every_profile(**GOOD) | {"gpu": GOOD | dict(steps=0)})
    with pytest.raises(ValueError, match="declare exactly"):
        Toy.per_profile(smoke=GOOD, cpu=GOOD)


def test_a_study_resolves_profile_device_threads_and_settings(tmp_path, monkeypatch):
    torch.set_num_threads(2)
    study = Study("01_parity", "smoke", Toy.per_profile(**every_profile(**GOOD)), tmp_path / "results",
                  tmp_path / "figures", checkpoint_dir=tmp_path / "checkpoints", seeds={"evaluation": 0})
    assert study.profile == "smoke" and study.device.type == "cpu" and torch.get_num_threads() == 1
    assert study.run.provenance["threads"] == 1
    assert study.seeds == (0, 1) and study.run.provenance["seeds"] == {"model_and_data": [0, 1], "evaluation": 0}
    assert study.checkpoint("recall standard, norm on", 3) == tmp_path / "checkpoints" / "01_parity-recall_standard_norm_on-3.pt"
    with study.timed("training"):
        pass
    with study.timed("training"):
        pass
    assert list(study.wall_table().index) == ["training"] and "wall_seconds" in study.run.tables
    shown = []
    monkeypatch.setattr("repro.study.display", lambda markdown: shown.append(markdown.data))
    assert study.write() is None  # a cell ending with it shows no path of this machine
    assert (tmp_path / "results" / "01_parity.json").exists()
    assert shown == [f"Wrote `results/01_parity.json`: {study.run.provenance['wall_seconds']:.0f} s of wall time on "
                     f"{study.run.provenance['device']}."]


def test_a_rank_other_than_0_writes_nothing_and_still_records_its_wall_time(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    study = Study("01_parity", "smoke", Toy.per_profile(**every_profile(**GOOD)), tmp_path / "results", tmp_path)
    monkeypatch.setattr("repro.study.display", lambda markdown: None)
    study.write()  # the notebook's next cells run on every rank and may read the wall time
    assert study.run.provenance["wall_seconds"] >= 0 and not (tmp_path / "results").exists()


def test_a_study_without_a_checkpoint_folder_names_no_checkpoint(tmp_path):
    study = Study("01_parity", "smoke", Toy.per_profile(**every_profile(**GOOD)), tmp_path, tmp_path)
    assert study.checkpoint("model", 0) is None


def test_an_unrunnable_profile_says_why(tmp_path):
    with pytest.raises(NotImplementedError, match="profile 'smoke' of 01_parity is documented, not runnable here: big"):
        Study("01_parity", "smoke", Toy.per_profile(**every_profile(**GOOD)), tmp_path, tmp_path,
              unrunnable={"smoke": "big"})


def test_a_warning_names_its_file_from_the_repository_root_or_the_environment():
    ours = format_warning("slow", RuntimeWarning, str(ROOT / "repro" / "nn.py"), 1)
    theirs = format_warning("old", FutureWarning, str(Path(sys.prefix) / "lib" / "x.py"), 3, "pass")
    assert ours.startswith("repro/nn.py:1: RuntimeWarning: slow") and str(ROOT) not in ours
    assert theirs.startswith("<env>/lib/x.py:3: FutureWarning: old") and sys.prefix not in theirs
