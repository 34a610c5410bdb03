"""What every notebook sets up before its first experiment, opened with one call.

    study = Study("02_prefix_sums", PROFILE, SETTINGS, RESULTS_DIR, FIGURES_DIR, CHECKPOINT_DIR)
    S = study.settings

`Study` resolves the profile, the device and the thread count, picks the profile's settings, names the checkpoint of
every training run, times the notebook's sections, and collects the claims, tables and figures into the result file
(`repro.results.Run`). A notebook's settings are one frozen `Settings` dataclass with an instance per profile, checked
when they are created: a misspelled key, a missing one, a wrong type or a non-positive size fails in the first cell,
not forty minutes into a run.
"""

import linecache
import re
import sys
import time
import types
import typing
import warnings
from contextlib import contextmanager
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

import pandas as pd
import torch
from IPython.display import Markdown, display

from repro import ROOT
from repro.profiles import PROFILES, device_for, resolve, tf32_for, threads_for
from repro.results import Run
from repro.verdicts import summary


def bounded(low: float | None = None, high: float | None = None, default=MISSING):
    """A settings field with its own valid range [low, high] (None: unbounded on that side), e.g. `bounded(0)` for a
    count that may be zero or `bounded(0, 1)` for a share. Without it a number must be positive."""
    return field(default=default, metadata={"range": (low, high)})


def _allows_none(hint) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in typing.get_args(hint)


def _base_type(hint):
    """`int` for `int`, `int | None` and `tuple[int, ...]`; `None` for the types not checked here (dicts, strings)."""
    if _allows_none(hint):
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    if typing.get_origin(hint) is tuple:
        return _base_type(typing.get_args(hint)[0])
    return hint if hint in (int, float, bool) else None


def _check_number(name: str, value, kind, valid: tuple | None) -> None:
    """`valid` is (low, high), either side None for unbounded; None itself means positive."""
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise TypeError(f"setting {name} must be an integer, got {value!r}")
    if kind is float and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise TypeError(f"setting {name} must be a number, got {value!r}")
    if valid is None:
        if not value > 0:
            raise ValueError(f"setting {name} must be positive (> 0), got {value!r}")
        return
    low, high = valid
    if (low is not None and value < low) or (high is not None and value > high):
        shown = f"[{'-inf' if low is None else low}, {'inf' if high is None else high}]"
        raise ValueError(f"setting {name} must lie in {shown}, got {value!r}")


@dataclass(frozen=True)
class Settings:
    """Base of every notebook's settings. Subclass it as a frozen dataclass and declare one instance per profile with
    `per_profile`. Every number (and every number in a tuple) must be positive unless its field says otherwise with
    `bounded`; a field may hold None only if its type says `| None` (None then means "all" or "off", as its comment
    says). Lists are stored as tuples, so settings cannot change after they are checked."""

    seeds: tuple[int, ...]

    def __post_init__(self):
        hints = typing.get_type_hints(type(self))
        for spec in fields(self):
            name, value, hint = spec.name, getattr(self, spec.name), hints[spec.name]
            if isinstance(value, list):
                value = tuple(value)
                object.__setattr__(self, name, value)
            if value is None:
                if not _allows_none(hint):
                    raise TypeError(f"setting {name} may not be None")
                continue
            kind = _base_type(hint)
            if kind is None or kind is bool:
                continue
            valid = spec.metadata.get("range")
            for item in value if isinstance(value, tuple) else (value,):
                _check_number(name, item, kind, (0, None) if name == "seeds" else valid)
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"setting seeds must be distinct and at least one, got {self.seeds!r}")

    @classmethod
    def of(cls, **values) -> "Settings":
        """An instance from keyword values; an unknown or missing key is an error that names the valid keys."""
        known = [spec.name for spec in fields(cls)]
        required = [spec.name for spec in fields(cls) if spec.default is MISSING and spec.default_factory is MISSING]
        unknown, missing = sorted(set(values) - set(known)), [name for name in required if name not in values]
        if unknown or missing:
            raise ValueError(f"{cls.__name__}: " + "; ".join(
                text for text in (unknown and f"unknown setting(s) {unknown}", missing and f"missing {missing}") if text)
                + f"; the settings are {known}")
        return cls(**values)

    @classmethod
    def per_profile(cls, **profiles: dict) -> dict[str, "Settings"]:
        """One checked instance per profile, from a dict of values per profile; every profile must be declared."""
        if sorted(profiles) != sorted(PROFILES):
            raise ValueError(f"{cls.__name__}: settings declared for {sorted(profiles)}; declare exactly {list(PROFILES)}")
        made = {}
        for profile, values in profiles.items():
            try:
                made[profile] = cls.of(**values)
            except (TypeError, ValueError) as error:
                raise type(error)(f"profile {profile!r}: {error}") from None
        return made


_format_warning = warnings.formatwarning


def format_warning(message, category, filename: str, lineno: int, line: str | None = None) -> str:
    """Python's warning text, with the file named from the repository root (or from the Python environment, as
    '<env>/...'), so that a warning the study raises names no folder of this machine on a report page."""
    if line is None:
        line = linecache.getline(filename, lineno)
    path = Path(filename)
    for base, shown in ((Path(sys.prefix), "<env>/"), (ROOT, "")):  # the environment may lie inside the root
        if path.is_relative_to(base):
            filename = shown + str(path.relative_to(base))
            break
    return _format_warning(message, category, filename, lineno, line)


class Study:
    """One notebook's run: its profile, device, settings, checkpoints, section timings and result file.

    `results_dir` and `figures_dir` come from the notebook's parameters (the runner passes `results/` and `figures/`
    for a reference run), and so does `checkpoint_dir`: empty means no checkpoints."""

    def __init__(self, stem: str, profile: str, settings: dict[str, Settings], results_dir: str | Path,
                 figures_dir: str | Path, checkpoint_dir: str | Path = "", seeds: dict | None = None,
                 unrunnable: dict[str, str] | None = None):
        self.profile = resolve(profile)
        if self.profile in (unrunnable or {}):
            raise NotImplementedError(f"profile {self.profile!r} of {stem} is documented, not runnable here: "
                                      f"{unrunnable[self.profile]}")
        if sorted(settings) != sorted(PROFILES):
            raise ValueError(f"{stem}: settings declared for {sorted(settings)}; declare exactly {list(PROFILES)}")
        self.settings = settings[self.profile]
        # Two warnings of the installed libraries, not of the study, that would print their file paths on every report
        # page: tqdm.auto (imported by transformers) finds no widget library and falls back to the text bars we want,
        # and torch.func.jvp's first call imports decompositions that call the deprecated torch.jit.script.
        warnings.filterwarnings("ignore", message="IProgress not found")
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated")
        warnings.formatwarning = format_warning
        self.device = device_for(self.profile)
        torch.set_num_threads(threads_for(self.profile))
        if tf32_for(self.profile):  # CUDA's matmuls alone (set_float32_matmul_precision would change oneDNN's too)
            torch.backends.cuda.matmul.allow_tf32 = True
        self.stem = stem
        self.checkpoint_dir = ROOT / checkpoint_dir if checkpoint_dir else None  # like the results, from the root
        # Seeds a setting adds for some claims only (e.g. 07's `tape_seeds`) are recorded beside the main ones.
        more = {name: list(value) for name, value in vars(self.settings).items() if name.endswith("_seeds")}
        self.run = Run(stem, self.profile, self.device, results_dir=results_dir, figures_dir=figures_dir,
                       seeds={"model_and_data": list(self.settings.seeds), **more, **(seeds or {})})
        self.sections: dict[str, float] = {}

    @property
    def seeds(self) -> tuple[int, ...]:
        return self.settings.seeds

    def describe(self) -> Markdown:
        """The line a notebook shows under its set-up cell: profile, device and settings."""
        return Markdown(f"Profile **{self.profile}** on {self.run.provenance['device']}; settings: `{self.settings}`")

    def checkpoint(self, *key) -> Path | None:
        """The checkpoint file of one training run, named by `key` (model, task, seed...); None without a folder."""
        if self.checkpoint_dir is None:
            return None
        name = re.sub(r"[^A-Za-z0-9_.=+-]+", "_", "-".join(map(str, (self.stem, *key))))
        return self.checkpoint_dir / f"{name}.pt"

    @contextmanager
    def timed(self, section: str):
        """Add the wall time of the block to `section` (sections repeat: a loop adds up)."""
        started = time.time()
        try:
            yield
        finally:
            self.sections[section] = self.sections.get(section, 0.0) + time.time() - started

    def wall_table(self, name: str = "wall_seconds") -> pd.DataFrame:
        """The sections' wall seconds as a table of the result file."""
        return self.table(name, pd.DataFrame({"seconds": self.sections}).rename_axis("section").round(1))

    def table(self, name: str, frame: pd.DataFrame) -> pd.DataFrame:
        """Record `frame` in the result file under `name` and return it, so a cell can end with it."""
        self.run.add_table(name, frame)
        return frame

    def figure(self, figure, what: str) -> None:
        """Save `figure` as figures/<notebook>_<what>.png. Nothing is returned, so a cell that ends here shows the
        figure, not the path of this machine it was written to."""
        self.run.save_figure(figure, what)

    def claim(self, claim_id: str, **decision) -> dict:
        """Decide and record one claim (`repro.results.Run.add_claim`) and show its summary."""
        entry = self.run.add_claim(claim_id, **decision)
        display(Markdown(summary(entry)))
        return entry

    def write(self) -> None:
        """Write the result file and say so: its name, the wall time and the device, never the path of this machine
        (a cell that ends here shows nothing else)."""
        path = self.run.write()
        display(Markdown(f"Wrote `results/{path.name}`: {self.run.provenance['wall_seconds']:.0f} s of wall time on "
                         f"{self.run.provenance['device']}."))
