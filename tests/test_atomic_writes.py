"""A write cut off midway leaves the previous file whole: results, figures and data go through `write_atomically`.

Faults injected, and what each now gets:
- the disk fills up midway through a result JSON or a figure (a file size limit, so the write fails after a part of
  it is on disk): OSError, the previous file byte for byte as it was, no partial file left;
- the rename fails: the error, the previous file as it was, no partial file left.
"""

import resource
from contextlib import contextmanager

import matplotlib
import pandas as pd
import pytest
import torch

import repro.data.files as files
from repro.data.files import write_atomically
from repro.results import Run

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the backend


@contextmanager
def disk_full_after(limit: int):
    """Writes past `limit` bytes of a file fail with EFBIG, as on a full disk (Python ignores SIGXFSZ, so the write
    raises OSError instead of killing the process)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


@pytest.fixture
def run(tmp_path) -> Run:
    return Run("01_parity", "smoke", torch.device("cpu"), {"train": 0}, tmp_path / "results", tmp_path / "figures")


def test_a_result_cut_off_midway_leaves_the_previous_one_whole(run, tmp_path):
    path = run.write()
    previous = path.read_bytes()
    run.add_table("accuracy", pd.DataFrame({"step": range(2000), "accuracy": [0.5] * 2000}))
    with pytest.raises(OSError), disk_full_after(len(previous) + 4096):
        run.write()
    assert path.read_bytes() == previous
    assert [p.name for p in (tmp_path / "results").iterdir()] == [path.name]


def test_a_figure_cut_off_midway_leaves_the_previous_one_whole(run, tmp_path):
    figure, axes = plt.subplots()
    axes.plot([0, 1], [0, 1])
    path = run.save_figure(figure, "curve")
    previous = path.read_bytes()
    axes.plot(range(500), torch.rand(500).tolist())  # a busier figure: a larger file
    axes.set_title("second run")
    with pytest.raises(OSError), disk_full_after(len(previous) // 2):
        run.save_figure(figure, "curve")
    plt.close(figure)
    assert path.read_bytes() == previous
    assert [p.name for p in (tmp_path / "figures").iterdir()] == [path.name]


def test_a_failed_rename_leaves_the_previous_file_and_no_partial_one(tmp_path, monkeypatch):
    path = tmp_path / "shard_00000.csv.xz"
    write_atomically(path, b"previous")
    assert path.read_bytes() == b"previous"

    def replace(source, target):
        raise OSError("rename failed")

    monkeypatch.setattr(files.os, "replace", replace)
    with pytest.raises(OSError, match="rename failed"):
        write_atomically(path, b"new content")
    assert path.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
