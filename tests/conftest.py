import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: the intra-op thread pool costs more than the work (~40x on a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
