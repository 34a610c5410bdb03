import os

import pytest
import torch

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


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: the intra-op thread pool costs more than the work (~40x on a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
