import os
import sys
from pathlib import Path


def _share_cores_between_workers() -> None:
    """Under pytest-xdist every worker's torch (and every CLI child it starts) would take all the machine's cores: two
    workers on two cores then run four training threads that preempt each other, and one test took 29 times as long
    in the suite as alone. Each worker gets its share, set before torch is imported so that torch's default, the
    session count below and every child process (which inherits the variable) agree. A count the user set wins."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
    if workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        os.environ["OMP_NUM_THREADS"] = str(max(1, cores // workers))


_share_cores_between_workers()

import pytest  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))  # makes `tiny_models:...` importable as a teacher factory


SESSION_THREADS = torch.get_num_threads()  # torch's default, read before any test changes it: what a child gets


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Tests never read or write the user's real teacher-logit cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("EDGEDISTILL_CACHE", str(tmp_path_factory.mktemp("logit-cache")))
    torch.set_num_threads(SESSION_THREADS)
    yield
    mp.undo()


@pytest.fixture(autouse=True)
def _torch_threads_restored():
    """A CLI run in this process with --threads / train.threads sets torch's thread count for the whole process; the
    next test (or a module fixture that builds once) would then train with other float reductions than a child
    process does, and byte-for-byte comparisons between the two fail. After each test the session's count is back,
    whatever the test or its module's fixtures set (a module fixture runs before this one, so "the count the test
    started with" would keep a fixture's --threads 1 for every later module: it did, and an in-process build then
    differed from its child-process twin)."""
    yield
    torch.set_num_threads(SESSION_THREADS)
