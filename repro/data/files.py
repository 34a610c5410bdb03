"""Where the real datasets live: the directory named by the setting REPRO_DATA_DIR.

The files are never copied into the project; every loader asks `data_file` for its path and a
missing setting or file stops with one error that says what is expected where.
"""

import os
from pathlib import Path

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
