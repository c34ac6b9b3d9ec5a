import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # makes `tiny_models:...` importable as a teacher factory


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Tests never read or write the user's real teacher-logit cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("EDGEDISTILL_CACHE", str(tmp_path_factory.mktemp("logit-cache")))
    torch.set_num_threads(2)
    yield
    mp.undo()


@pytest.fixture(autouse=True)
def _torch_threads_restored():
    """A CLI run in this process with --threads / train.threads sets torch's thread count for the whole process; the
    next test (or a module fixture that builds once) would then train with other float reductions than a child
    process does, and byte-for-byte comparisons between the two fail. Each test gets the count it started with."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)
