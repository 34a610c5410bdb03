"""Where the real datasets live: the directory named by the setting REPRO_DATA_DIR.

The files are never copied into the project; every loader asks `data_file` for its path and a
missing setting or file stops with one error that says what is expected where.
"""

import os
from pathlib import Path
from typing import Callable

from repro import ROOT

HINT = ("set REPRO_DATA_DIR to the shared data directory, e.g. `export REPRO_DATA_DIR=../shared/data` "
        "(relative to the repository root, as CI does)")


def data_file(relative: str) -> Path:
    """The file `relative` under REPRO_DATA_DIR, or one FileNotFoundError naming the expected path.

    A relative REPRO_DATA_DIR is taken from the repository root, not the working directory, so
    tests (run from the root) and notebooks (run from notebooks/) read the same files."""
    setting = os.environ.get("REPRO_DATA_DIR")
    if not setting:
        raise FileNotFoundError(f"REPRO_DATA_DIR is not set, and {relative} is expected under it; {HINT}")
    path = ROOT / setting / relative
    if not path.is_file():
        raise FileNotFoundError(f"expected {relative} at {path} (REPRO_DATA_DIR={setting!r}), "
                                f"but there is no such file; {HINT}")
    return path


def local_or_hub(relative: str, from_hub: Callable[[], object], what: str):
    """`relative` under REPRO_DATA_DIR where it is there; else `from_hub()` (a `datasets` download).

    Where neither works, one error says both what was expected locally and why the hub failed,
    never a silent substitute. Returns the local path, or what `from_hub` returned.
    """
    try:
        return data_file(relative)
    except FileNotFoundError as missing:
        try:
            return from_hub()
        except Exception as hub_error:  # noqa: BLE001 - any hub failure ends in the one clear error below
            raise FileNotFoundError(f"{what}: {missing}; the fallback download from the Hugging Face hub failed "
                                    f"too ({type(hub_error).__name__}: {hub_error})") from hub_error


def write_atomically(path: Path, data: bytes) -> None:
    """Write through a temporary name, so an interrupted run never leaves a partial file under `path`."""
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    partial.replace(path)
