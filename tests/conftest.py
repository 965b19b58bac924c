"""Suite-wide settings.

The suite runs under ``pytest -n 2`` on 2 cores: one torch thread per worker avoids the
oversubscription that makes the tiny test models an order of magnitude slower.
"""

import torch

torch.set_num_threads(1)

# ``--doctest-modules`` (pyproject addopts) would import every module under tests/, and
# importing a helper such as ``distributed/_ddp_sweep.py`` registers a test-only experiment
# as a side effect. Helper modules are imported by the tests that need them, never collected;
# sub-folder conftest.py files still load as plugins but are not imported again for doctests
# (two of them share the basename, which made a partial run such as
# `pytest tests/mtcrl tests/experiments` fail at collection).
collect_ignore_glob = ["_*.py", "*/_*.py", "*/conftest.py"]
