"""Suite-wide settings.

The suite runs under ``pytest -n 2`` on 2 cores: one torch thread per worker avoids the
oversubscription that makes the tiny test models an order of magnitude slower.
"""

import torch

torch.set_num_threads(1)
