"""One torch CPU thread for the MT-CRL tests.

The tests run many small steps; on a small, shared machine torch's intra-op threads spin
against other processes and a 2-thread step can take several times longer than a 1-thread
one (measured: the seeded Multi-SEM test 77 s vs 21 s under load). Restored afterwards.
"""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
