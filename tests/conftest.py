import hashlib
import os

import pytest
import torch

import repro.data.files as data_files

# No test waits on a hub that cannot be reached: the loaders' hub fallback fails at once.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

HAVE_DATA = bool(os.environ.get("REPRO_DATA_DIR"))
NO_DATA = ("reads the shared datasets: set REPRO_DATA_DIR to them, e.g. `REPRO_DATA_DIR=../shared/data make test` "
           "(relative to the repository root, as .ci/run does)")


def pytest_configure(config):
    config.addinivalue_line("markers", f"needs_data: {NO_DATA}")


def pytest_collection_modifyitems(config, items):
    if HAVE_DATA:
        return
    for item in items:
        if "needs_data" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=NO_DATA))


@pytest.fixture(autouse=True)
def own_files_read(monkeypatch):
    """Each test starts with an empty `files_read`: a stand-in data file one test reads (several point
    REPRO_DATA_DIR at tmp_path) must not turn up in the provenance a later test in the same worker writes."""
    monkeypatch.setattr(data_files, "_READ", {})


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: the intra-op thread pool costs more than the work (~40x on a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def shared_data(tmp_path, monkeypatch):
    """A stand-in REPRO_DATA_DIR in tmp_path. Call it with {path under it: text or bytes}: it writes the files and a
    MANIFEST.md listing every file written so far, as the shared data's manifest does, so a loader's own checks of a
    file's content can be tested behind the integrity check."""
    monkeypatch.setenv("REPRO_DATA_DIR", str(tmp_path))
    listed = {}

    def write(files: dict) -> None:
        for relative, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / relative).write_bytes(data)
            listed[relative] = f"| {relative} | {len(data)} | {hashlib.sha256(data).hexdigest()} | a test's file |"
        (tmp_path / "MANIFEST.md").write_text("| path | bytes | sha256 | source |\n| --- | ---: | --- | --- |\n"
                                              + "\n".join(listed.values()) + "\n")

    return write
