"""Where the study's data lives, and the check that every file is the one its manifest records.

Two kinds of data, each with a manifest that records the sha256, the size and (for a table) the row count of every
file, checked before the file is used:
- the shared datasets, in the directory named by the setting REPRO_DATA_DIR, never copied into the project. Every
  loader asks `data_file` for a path; the manifest is that directory's MANIFEST.md (it ships beside the data; its
  tables are written by hand, so `shared_records` reads any table with a path and a sha256 column);
- the committed data under data/ (the sudoku sets, the mined chess corpus). Their loaders pass each path through
  `verify_if_committed`; the manifest is data/MANIFEST.json, written only by `make data-manifest`
  (`write_committed_manifest`) after a deliberate regeneration.

A missing setting, manifest or file, a file the manifest does not list, and a file that differs from its record each
stop with one error that names the file, what was expected and found, and how to restore it. There is no allow-list:
every file the study reads is listed. `files_read` tells which files (with their sha256) this process has read.

A file is hashed once per process for each (path, size, mtime, inode): a notebook that loads a set many times pays
once, and a file changed in between is hashed again. No cache file is kept: hashing all the data takes under a
second.
"""

import argparse
import gzip
import hashlib
import json
import lzma
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from repro import ROOT

HINT = ("set REPRO_DATA_DIR to the shared data directory, e.g. `export REPRO_DATA_DIR=../shared/data` "
        "(relative to the repository root, as CI does)")
SHARED_MANIFEST = "MANIFEST.md"
COMMITTED_DIR = ROOT / "data"
COMMITTED_MANIFEST = "MANIFEST.json"
TABLE_SUFFIXES = (".csv", ".tsv")
"""Files whose rows are lines (possibly inside a .gz or .xz): the ones whose row count is checked."""


class DataIntegrityError(ValueError):
    """A data file that differs from its manifest record, has none, or whose manifest is missing or unreadable."""


@dataclass(frozen=True)
class Record:
    """What a manifest records of one file."""

    sha256: str
    size: int | None
    """Bytes on disk, where the manifest gives an exact count."""
    rows: int | None
    """Rows of a table (lines, less the header line where it has one), where the manifest gives them."""
    header: bool
    restore: str
    """How to get the recorded file back."""


@dataclass(frozen=True)
class Measured:
    sha256: str
    size: int
    lines: int | None
    """Lines of a table file after decompression; None for other files and for a table that cannot be decompressed."""


_MEASURED: dict[tuple, Measured] = {}
_READ: dict[str, str] = {}


def files_read() -> dict[str, str]:
    """{file: sha256} of every data file this process has read and verified so far, for a result's provenance.

    A shared file is named by its path under REPRO_DATA_DIR (e.g. 'glue/SST-2/train.tsv'), a committed one by its
    repository path (e.g. 'data/sudoku/sudoku_qqwing_easy_3000.csv.gz'); `recorded_sha256` takes the same names.
    Sets that a test or the paper profile caches outside data/ (they are checked by their own sidecar) and data a
    loader fetched from the Hugging Face hub are not files of the study's data, so they are not listed."""
    return dict(_READ)


def _lines(path: Path, content: bytes) -> int | None:
    name = path.name
    try:
        if name.endswith(".gz"):
            content, name = gzip.decompress(content), name.removesuffix(".gz")
        elif name.endswith(".xz"):
            content, name = lzma.decompress(content), name.removesuffix(".xz")
    except (OSError, EOFError, lzma.LZMAError):
        return None
    if not name.endswith(TABLE_SUFFIXES):
        return None
    # A last line without its newline is still a row (CoLA's dev.tsv ends so, as upstream).
    return content.count(b"\n") + (1 if content and not content.endswith(b"\n") else 0)


def _measure(path: Path) -> Measured:
    status = path.stat()
    key = (str(path.resolve()), status.st_size, status.st_mtime_ns, status.st_ino)
    if key not in _MEASURED:
        content = path.read_bytes()
        _MEASURED[key] = Measured(hashlib.sha256(content).hexdigest(), len(content), _lines(path, content))
    return _MEASURED[key]


def _verified(path: Path, name: str, record: Record, manifest: Path) -> Path:
    """`path`, after checking it against `record` (from `manifest`) and noting it in `files_read`."""
    found = _measure(path)
    rows = None if found.lines is None else found.lines - record.header
    mismatches = []
    if record.size is not None and found.size != record.size:
        mismatches.append(f"{found.size:,} bytes, the manifest records {record.size:,}")
    if record.rows is not None and rows != record.rows:
        held = "rows that cannot be read (it does not decompress)" if rows is None else f"{rows:,} rows"
        mismatches.append(f"{held}, the manifest records {record.rows:,}")
    if found.sha256 != record.sha256 or mismatches:
        raise DataIntegrityError(
            f"data file {name} ({path}) is not the file {manifest} records: expected sha256 {record.sha256}, "
            f"found {found.sha256}" + "".join(f"; it holds {text}" for text in mismatches)
            + f". Restore it: {record.restore}")
    _READ[name] = found.sha256
    return path


# --- the shared data ---------------------------------------------------------------------------------------------

def _cells(line: str) -> list[str]:
    return [cell.strip().strip("`").strip() for cell in line.strip().strip("|").split("|")]


def _column(header: list[str], *starts: str) -> int | None:
    """The first column whose name starts with one of `starts` (the manifest's tables name them differently)."""
    return next((index for index, name in enumerate(header) if name.startswith(starts)), None)


ROWS = re.compile(r"^(\d[\d,]*)(?: [a-z]+)?(?P<header> \+ header|, no header)")
"""A row count as the manifest writes one: '67,349 + header (...)', '8,551, no header', '1,000 puzzles + header'."""


def shared_records(manifest: Path) -> dict[str, Record]:
    """{path under REPRO_DATA_DIR: record} from the markdown tables of the shared data's MANIFEST.md.

    A file table is any table with a 'path' or 'file' column and a 'sha256' column (others, like the licences, are
    skipped). A 'bytes' or 'size' cell counts only where it is a whole number (an approximate '28.2 MB' is not a
    size); a 'rows ...' or 'verified' cell gives a row count where it has one of the forms of `ROWS`."""
    try:
        lines = manifest.read_text().splitlines()
    except OSError as error:
        raise DataIntegrityError(f"cannot read the shared data's manifest {manifest} ({error}); it ships beside the "
                                 f"data, so copy {SHARED_MANIFEST} again from the shared data") from None
    records: dict[str, Record] = {}
    header: list[str] | None = None
    for number, line in enumerate(lines, start=1):
        if not line.lstrip().startswith("|"):
            header = None
            continue
        cells = _cells(line)
        if header is None:
            header = [cell.lower() for cell in cells]
            continue
        path_at, sha_at = _column(header, "path", "file"), _column(header, "sha256")
        if path_at is None or sha_at is None or set("".join(cells)) <= set("-: "):
            continue
        if len(cells) != len(header):
            raise DataIntegrityError(f"{manifest} line {number}: {len(cells)} cells in a table of {len(header)} "
                                     f"columns ({', '.join(header)})")
        relative, sha256 = cells[path_at], cells[sha_at].lower()
        if not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise DataIntegrityError(f"{manifest} line {number}: the sha256 of {relative} is {cells[sha_at]!r}, "
                                     f"not 64 hexadecimal digits")
        if relative in records:
            raise DataIntegrityError(f"{manifest} line {number}: {relative} is listed twice")
        size_at, rows_at, source_at = _column(header, "bytes", "size"), _column(header, "rows", "verified"), \
            _column(header, "source")
        size = cells[size_at] if size_at is not None else ""
        rows = ROWS.match(cells[rows_at]) if rows_at is not None else None
        table = Path(relative.removesuffix(".gz").removesuffix(".xz")).suffix in TABLE_SUFFIXES
        source = f" (its source: {cells[source_at]})" if source_at is not None else ""
        records[relative] = Record(
            sha256, int(size) if size.isdigit() else None,
            int(rows.group(1).replace(",", "")) if rows and table else None,
            bool(rows) and rows.group("header") == " + header",
            f"copy {relative} again from the shared data, whose {SHARED_MANIFEST} lists this sha256{source}")
    if not records:
        raise DataIntegrityError(f"{manifest} lists no files: expected a markdown table with a 'path' (or 'file') "
                                 f"and a 'sha256' column; copy {SHARED_MANIFEST} again from the shared data")
    return records


def _shared_root(needed: str) -> tuple[Path, str]:
    """The shared data directory and the setting that names it; FileNotFoundError (about `needed`) without one."""
    setting = os.environ.get("REPRO_DATA_DIR")
    if not setting:
        raise FileNotFoundError(f"REPRO_DATA_DIR is not set, and {needed} is expected under it; {HINT}")
    return ROOT / setting, setting


def data_file(relative: str) -> Path:
    """The file `relative` under REPRO_DATA_DIR, checked against the directory's MANIFEST.md.

    A missing setting or file is one FileNotFoundError naming the expected path (so `local_or_hub` can fall back); an
    unlisted file or one that differs from its record is a DataIntegrityError (never a fallback). A relative
    REPRO_DATA_DIR is taken from the repository root, not the working directory, so tests (run from the root) and
    notebooks (run from notebooks/) read the same files."""
    root, setting = _shared_root(relative)
    path = root / relative
    if not path.is_file():
        raise FileNotFoundError(f"expected {relative} at {path} (REPRO_DATA_DIR={setting!r}), "
                                f"but there is no such file; {HINT}")
    manifest = root / SHARED_MANIFEST
    record = shared_records(manifest).get(relative)
    if record is None:
        raise DataIntegrityError(f"data file {relative} is not listed in {manifest}, so it cannot be verified; "
                                 f"every shared data file needs a row there with its sha256 and its source")
    return _verified(path, relative, record, manifest)


def local_or_hub(relative: str, from_hub: Callable[[], object], what: str):
    """`relative` under REPRO_DATA_DIR where it is there (and verified); else `from_hub()` (a `datasets` download).

    Where neither works, one error says both what was expected locally and why the hub failed,
    never a silent substitute; a local file that fails its check is an error, not a reason to download.
    Returns the local path, or what `from_hub` returned.
    """
    try:
        return data_file(relative)
    except FileNotFoundError as missing:
        try:
            return from_hub()
        except Exception as hub_error:  # noqa: BLE001 - any hub failure ends in the one clear error below
            raise FileNotFoundError(f"{what}: {missing}; the fallback download from the Hugging Face hub failed "
                                    f"too ({type(hub_error).__name__}: {hub_error})") from hub_error


# --- the committed data ------------------------------------------------------------------------------------------

def _committed_name(path: Path) -> str:
    return (Path(COMMITTED_DIR.name) / path.resolve().relative_to(COMMITTED_DIR.resolve())).as_posix()


def describe_committed() -> dict[str, dict]:
    """{repository path: {"bytes", "sha256"[, "rows"]}} of every file under data/ as it is now: the content of
    data/MANIFEST.json. Skipped: the manifest itself, hidden files (an interrupted write's partial file) and the
    folders' markdown notes. "rows" is a table's data lines, less its header line."""
    described = {}
    for path in sorted(COMMITTED_DIR.rglob("*")):
        if not path.is_file() or path.name == COMMITTED_MANIFEST or path.name.startswith(".") or path.suffix == ".md":
            continue
        found = _measure(path)
        entry = {"bytes": found.size, "sha256": found.sha256}
        if found.lines is not None:
            entry["rows"] = found.lines - 1
        described[_committed_name(path)] = entry
    return described


def write_committed_manifest() -> Path:
    """Write data/MANIFEST.json from the files under data/ (`make data-manifest`): the last step of a deliberate
    regeneration (`make sudoku-sets`, `make mine-chess`), never of a load."""
    manifest = COMMITTED_DIR / COMMITTED_MANIFEST
    document = {"about": "sha256, bytes and rows (a table's lines less its header) of every committed data file; "
                         "every loader checks a file against it before use. Written by `make data-manifest`.",
                "files": describe_committed()}
    write_atomically(manifest, (json.dumps(document, indent=1) + "\n").encode())
    return manifest


def _committed_records() -> tuple[dict[str, Record], Path]:
    manifest = COMMITTED_DIR / COMMITTED_MANIFEST
    restore = ("`git checkout -- {name}` brings back the committed file; to replace the data on purpose, "
               "regenerate it (`make sudoku-sets`, `make mine-chess`), then run `make data-manifest`")
    try:
        files = json.loads(manifest.read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DataIntegrityError(f"cannot read the committed data's manifest {manifest} ({type(error).__name__}: "
                                 f"{error}); restore it with `git checkout -- data/{COMMITTED_MANIFEST}`") from None
    return {name: Record(entry["sha256"], entry["bytes"], entry.get("rows"), True, restore.format(name=name))
            for name, entry in files.items()}, manifest


def verify_if_committed(path: Path) -> Path:
    """`path`, checked against data/MANIFEST.json where it lies under data/; a path elsewhere (a test's cache, a
    corpus mined into another folder) is returned as it is, for its loader's own record to check.

    Under data/, a listed file that is missing is a FileNotFoundError, and an unlisted or changed one a
    DataIntegrityError, each saying how to restore it."""
    path = Path(path)
    if not path.resolve().is_relative_to(COMMITTED_DIR.resolve()):
        return path
    name = _committed_name(path)
    records, manifest = _committed_records()
    if name not in records:
        raise DataIntegrityError(f"{name} lies in the committed data folder but is not listed in {manifest}; every "
                                 f"file there is committed and listed (a generated cache belongs under build/; "
                                 f"after a deliberate regeneration, run `make data-manifest`)")
    if not path.is_file():
        raise FileNotFoundError(f"{name} is listed in {manifest} but missing; {records[name].restore}")
    return _verified(path, name, records[name], manifest)


def recorded_sha256(name: str) -> str:
    """The sha256 the manifests record today for a file as `files_read` names it; KeyError for a file they do not
    list (for the report: a result whose data changed since is stale)."""
    if name.startswith(f"{COMMITTED_DIR.name}/"):
        return _committed_records()[0][name].sha256
    root, _ = _shared_root(name)
    return shared_records(root / SHARED_MANIFEST)[name].sha256


# --- writing -----------------------------------------------------------------------------------------------------

def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, then rename it over `path`: a kill or a failure midway leaves
    the previous file whole (and at worst a hidden `.<name>.<random>.partial` beside it), never half a file.

    The temporary name is unique, so two processes writing the same file cannot mix their bytes, and it ends in
    '.partial', so no reader's glob for the real suffix picks it up."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial")
    try:
        with open(partial, "xb") as handle:
            handle.write(data)
            handle.flush()
            # Without the sync a power cut after the rename could leave an empty file under the new name.
            os.fsync(handle.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


if __name__ == "__main__":
    argparse.ArgumentParser(description="Write data/MANIFEST.json from the committed data files under data/ "
                                        "(after a deliberate regeneration).").parse_args()
    print(f"wrote {write_committed_manifest().relative_to(ROOT)}")
