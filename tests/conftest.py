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
