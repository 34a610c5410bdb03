"""Every data file is checked against its manifest before use, and nothing regenerates a committed file on its own.

Faults injected, and what each now gets:
- a shared file with one byte changed (same size): DataIntegrityError with the file, both sha256 and how to restore it;
- a shared table cut on a line boundary (it still parses): the same, plus the bytes and rows found and recorded;
- a compressed table cut midway: the same, its rows reported as unreadable;
- a file changed after it was checked once in the process: checked again (the cache is keyed by size and mtime);
- a file the manifest does not list, a missing manifest: DataIntegrityError, and no fallback to the hub;
- a committed sudoku set with one byte changed, deleted, or of a size that is not committed: an error, nothing written
  and qqwing never run;
- a shard dropped from the committed chess corpus's settings.json (consistent with itself): DataIntegrityError.
"""

import gzip
import hashlib
import json
import lzma
import os
import shutil
import types
from pathlib import Path

import pytest

import repro.data.files as files
from repro import ROOT
from repro.data import chess_corpus, glue, sudoku
from repro.data.files import (DataIntegrityError, data_file, describe_committed, files_read, local_or_hub,
                              recorded_sha256, shared_records, verify_if_committed)

SST2_DEV = "sentence\tlabel\na fine film\t1\na dull film\t0\na good film\t1\n"
COLA_DEV = "gj04\t1\t\tThe book fell.\ngj04\t0\t*\tBook the fell."  # no header, no final newline, as upstream
PUZZLES = lzma.compress(b"PuzzleId,FEN,Moves,Rating,Themes\n00001,f,m,900,t\n00002,f,m,1200,t\n")

# The two file tables of the shared MANIFEST.md name their columns differently; a licence table lies between them.
MANIFEST = """# shared/data — manifest

## Files

| path | bytes | sha256 | rows / examples verified | source (repo@commit : path in repo) |
| --- | ---: | --- | --- | --- |
| glue/SST-2/dev.tsv | {sst2_size} | {sst2_sha} | 3 + header (1: 2 / 0: 1) | owner/glue@0123 : glue_data/SST-2/dev.tsv |
| glue/CoLA/dev.tsv | {cola_size} | {cola_sha} | 2, no header; last line has no trailing newline | owner/glue@0123 : CoLA |

## Licenses

| dataset | license / terms |
| --- | --- |
| SST-2 | research use |

## Added from package-registry archives

| file | size | sha256 | verified | source | license / terms |
| --- | ---: | --- | --- | --- | --- |
| lichess/puzzles.csv.xz | 0.25 MB | {puzzles_sha} | 2 puzzles + header; columns PuzzleId,FEN | a wheel | CC0 |
"""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def shared(tmp_path, monkeypatch) -> Path:
    """A REPRO_DATA_DIR with three files and a manifest shaped like the shared data's."""
    contents = {"glue/SST-2/dev.tsv": SST2_DEV.encode(), "glue/CoLA/dev.tsv": COLA_DEV.encode(),
                "lichess/puzzles.csv.xz": PUZZLES}
    for relative, data in contents.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(data)
    (tmp_path / "MANIFEST.md").write_text(MANIFEST.format(
        sst2_size=len(SST2_DEV), sst2_sha=sha256(SST2_DEV.encode()), cola_size=len(COLA_DEV),
        cola_sha=sha256(COLA_DEV.encode()), puzzles_sha=sha256(PUZZLES)))
    monkeypatch.setenv("REPRO_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(files, "_READ", {})
    return tmp_path


def test_both_file_tables_of_the_manifest_are_read(shared):
    records = shared_records(shared / "MANIFEST.md")
    assert set(records) == {"glue/SST-2/dev.tsv", "glue/CoLA/dev.tsv", "lichess/puzzles.csv.xz"}
    sst2, cola, puzzles = (records[name] for name in ("glue/SST-2/dev.tsv", "glue/CoLA/dev.tsv",
                                                      "lichess/puzzles.csv.xz"))
    assert (sst2.size, sst2.rows, sst2.header) == (len(SST2_DEV), 3, True)
    assert (cola.size, cola.rows, cola.header) == (len(COLA_DEV), 2, False)
    assert (puzzles.size, puzzles.rows, puzzles.header) == (None, 2, True)  # '0.25 MB' is not an exact size
    assert "owner/glue@0123 : glue_data/SST-2/dev.tsv" in sst2.restore


def test_a_malformed_manifest_row_names_its_line(shared):
    manifest = shared / "MANIFEST.md"
    manifest.write_text(manifest.read_text().replace(sha256(SST2_DEV.encode()), "0123abc"))
    with pytest.raises(DataIntegrityError, match=r"MANIFEST.md line 7: the sha256 of glue/SST-2/dev.tsv is '0123abc'"):
        data_file("glue/SST-2/dev.tsv")


def test_untouched_files_pass_and_are_recorded_as_read(shared):
    for relative in ("glue/SST-2/dev.tsv", "glue/CoLA/dev.tsv", "lichess/puzzles.csv.xz"):
        assert data_file(relative) == shared / relative
    assert files_read() == {"glue/SST-2/dev.tsv": sha256(SST2_DEV.encode()),
                            "glue/CoLA/dev.tsv": sha256(COLA_DEV.encode()), "lichess/puzzles.csv.xz": sha256(PUZZLES)}
    assert recorded_sha256("glue/CoLA/dev.tsv") == sha256(COLA_DEV.encode())


def test_a_corrupted_copy_names_the_file_both_hashes_and_how_to_restore_it(shared):
    corrupted = SST2_DEV.replace("fine", "fina").encode()
    (shared / "glue/SST-2/dev.tsv").write_bytes(corrupted)
    with pytest.raises(DataIntegrityError) as error:
        data_file("glue/SST-2/dev.tsv")
    message = str(error.value)
    assert f"expected sha256 {sha256(SST2_DEV.encode())}, found {sha256(corrupted)}" in message
    assert "data file glue/SST-2/dev.tsv" in message and "; it holds" not in message  # the same size and rows
    assert "Restore it: copy glue/SST-2/dev.tsv again from the shared data" in message
    assert "owner/glue@0123" in message
    assert files_read() == {}


def test_a_table_cut_on_a_line_boundary_is_caught_with_its_rows(shared):
    cut = SST2_DEV.rsplit("a good film", 1)[0].encode()
    (shared / "glue/SST-2/dev.tsv").write_bytes(cut)
    with pytest.raises(DataIntegrityError, match=rf"found {sha256(cut)}; it holds {len(cut)} bytes, the manifest "
                                                 rf"records {len(SST2_DEV)}; it holds 2 rows, the manifest records 3"):
        data_file("glue/SST-2/dev.tsv")


def test_a_compressed_table_cut_midway_is_caught(shared):
    (shared / "lichess/puzzles.csv.xz").write_bytes(PUZZLES[:-20])
    with pytest.raises(DataIntegrityError, match="rows that cannot be read .*, the manifest records 2"):
        data_file("lichess/puzzles.csv.xz")


def test_a_file_is_hashed_once_until_it_changes(shared, monkeypatch):
    hashed = []

    def counting(data):
        hashed.append(len(data))
        return hashlib.sha256(data)

    monkeypatch.setattr(files, "hashlib", types.SimpleNamespace(sha256=counting))
    path = data_file("glue/CoLA/dev.tsv")
    data_file("glue/CoLA/dev.tsv")
    assert len(hashed) == 1
    # The same size, and a different mtime as any rewrite has: checked again, and caught.
    path.write_bytes(COLA_DEV.replace("fell", "fall").encode())
    status = path.stat()
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns + 1_000_000_000))
    with pytest.raises(DataIntegrityError, match="glue/CoLA/dev.tsv"):
        data_file("glue/CoLA/dev.tsv")
    assert len(hashed) == 2


def test_an_unlisted_file_or_a_missing_manifest_is_an_error_not_a_fallback(shared):
    (shared / "glue/RTE").mkdir()
    (shared / "glue/RTE/dev.tsv").write_text("index\tsentence1\tsentence2\tlabel\n")
    with pytest.raises(DataIntegrityError, match=r"glue/RTE/dev.tsv is not listed in .*MANIFEST.md"):
        data_file("glue/RTE/dev.tsv")
    (shared / "MANIFEST.md").unlink()

    def hub():
        raise AssertionError("a file that fails its check must not be replaced by a download")

    with pytest.raises(DataIntegrityError, match=r"cannot read the shared data's manifest .*copy MANIFEST.md again"):
        local_or_hub("glue/SST-2/dev.tsv", hub, "GLUE SST-2 dev")


@pytest.mark.needs_data
def test_every_file_of_the_real_manifest_verifies():
    root = ROOT / os.environ["REPRO_DATA_DIR"]
    records = shared_records(root / "MANIFEST.md")
    assert {"glue/SST-2/train.tsv", "squad/v1.1/dev-v1.1.json", "cifar10/cifar10_test.npz",
            "chess/checkmate_in_one.json.xz"} <= set(records)
    assert records["glue/SST-2/train.tsv"].rows == 67349 and records["glue/CoLA/dev.tsv"].rows == 1043
    for relative in records:
        assert data_file(relative) == root / relative


@pytest.mark.needs_data
def test_sst2_cut_on_a_line_boundary_no_longer_loads(tmp_path, monkeypatch):
    root = ROOT / os.environ["REPRO_DATA_DIR"]
    (tmp_path / "glue/SST-2").mkdir(parents=True)
    shutil.copy(root / "MANIFEST.md", tmp_path / "MANIFEST.md")
    lines = (root / "glue/SST-2/dev.tsv").read_bytes().splitlines(keepends=True)
    (tmp_path / "glue/SST-2/dev.tsv").write_bytes(b"".join(lines[:-100]))
    monkeypatch.setenv("REPRO_DATA_DIR", str(tmp_path))
    with pytest.raises(DataIntegrityError, match="glue/SST-2/dev.tsv .* holds 772 rows, the manifest records 872"):
        glue.load("SST-2", "dev")


# --- the committed data ------------------------------------------------------------------------------------------

def test_the_committed_manifest_matches_the_tree_and_the_loaders_own_records():
    manifest = json.loads((ROOT / "data" / "MANIFEST.json").read_text())["files"]
    assert manifest == describe_committed()
    corpus = json.loads((ROOT / "data/chess_mined/settings.json").read_text())
    for record in [*corpus["shards"].values(), corpus["calibration"]]:
        entry = manifest[f"data/chess_mined/{record['file']}"]
        assert (entry["sha256"], entry["rows"]) == (record["sha256"], record["rows"])
    for sidecar in (ROOT / "data/sudoku").glob("*.json"):
        recorded = json.loads(sidecar.read_text())
        entry = manifest[f"data/sudoku/{sidecar.stem}.csv.gz"]
        assert (entry["sha256"], entry["rows"]) == (recorded["sha256"], recorded["settings"]["count"])


@pytest.fixture
def committed(tmp_path, monkeypatch) -> Path:
    """A copy of the committed data/ (sudoku sets, chess corpus, manifest) standing in for it."""
    copy = tmp_path / "data"
    shutil.copytree(ROOT / "data", copy)
    monkeypatch.setattr(files, "COMMITTED_DIR", copy)
    monkeypatch.setattr(files, "_READ", {})
    return copy


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


@pytest.fixture
def no_qqwing(monkeypatch):
    def generate(difficulty, count):
        raise AssertionError(f"qqwing was run to regenerate {difficulty} {count}")

    monkeypatch.setattr(sudoku, "generate", generate)


def test_an_untouched_committed_set_loads_and_is_recorded(committed, no_qqwing):
    puzzles = sudoku.load_or_generate(committed / "sudoku", "expert", 500)
    assert len(puzzles) == 500
    name = "data/sudoku/sudoku_qqwing_expert_500.csv.gz"
    assert files_read()[name] == recorded_sha256(name) == sha256((committed / name.removeprefix("data/")).read_bytes())


def test_a_corrupted_committed_sudoku_set_raises_and_nothing_is_written(committed, no_qqwing):
    path = committed / "sudoku" / "sudoku_qqwing_easy_3000.csv.gz"
    original = path.read_bytes()
    # One bit of the compressed stream flipped: the same size, and gzip may or may not notice.
    path.write_bytes(original[:1000] + bytes([original[1000] ^ 1]) + original[1001:])
    before = folder_bytes(committed / "sudoku")
    with pytest.raises(DataIntegrityError) as error:
        sudoku.load_or_generate(committed / "sudoku", "easy", 3000)
    message = str(error.value)
    assert "data/sudoku/sudoku_qqwing_easy_3000.csv.gz" in message
    assert f"expected sha256 {sha256(original)}, found {sha256(path.read_bytes())}" in message
    assert "git checkout -- data/sudoku/sudoku_qqwing_easy_3000.csv.gz" in message and "make sudoku-sets" in message
    assert folder_bytes(committed / "sudoku") == before


def test_a_missing_or_unlisted_committed_set_is_never_generated(committed, no_qqwing):
    (committed / "sudoku" / "sudoku_qqwing_simple_3000.csv.gz").unlink()
    before = folder_bytes(committed / "sudoku")
    with pytest.raises(FileNotFoundError, match="sudoku_qqwing_simple_3000.csv.gz is listed in .* but missing"):
        sudoku.load_or_generate(committed / "sudoku", "simple", 3000)
    with pytest.raises(DataIntegrityError, match="sudoku_qqwing_easy_7.csv.gz lies in the committed data folder but "
                                                 "is not listed"):
        sudoku.load_or_generate(committed / "sudoku", "easy", 7)
    assert folder_bytes(committed / "sudoku") == before


def test_a_shard_dropped_from_the_committed_corpus_record_is_caught(committed):
    settings = committed / "chess_mined" / "settings.json"
    corpus = json.loads(settings.read_text())
    del corpus["shards"]["00048"]
    settings.write_text(json.dumps(corpus, indent=1) + "\n")
    with pytest.raises(DataIntegrityError, match="data file data/chess_mined/settings.json .* expected sha256"):
        chess_corpus.load_mined(committed / "chess_mined")


def test_a_path_outside_the_committed_folder_is_left_to_its_own_record(tmp_path):
    cache = tmp_path / "sudoku_qqwing_easy_5.csv.gz"
    cache.write_bytes(gzip.compress(b"puzzle,solution,difficulty\n"))
    assert verify_if_committed(cache) == cache
