"""Regression tests for MT-CRL's default weights (docs/mtcrl.md, "Choosing the λ").

Eq. (2) sums ``ρ²`` over every pair of output dimensions of different modules:
``C(K, 2) · (d/K)²`` terms (7168 for the paper's K = 8, d = 128). Even for *independent*
module outputs each in-batch ``ρ²`` has expectation ``1 / (B − 1)``, so the penalty has a
noise floor of about ``C(K, 2) (d/K)² / (B − 1)`` (≈ 56 at B = 128). The former default
λ_decor = 0.01 put that floor alone above the whole task loss at chance (2 · ln 10 ≈ 4.6 for
two 10-class tasks, ×0.12), and the term dominated training: on the pair-disjoint
Multi-Digits split test accuracy fell from 0.786 (all λ = 0) to 0.70 (λ_decor = 0.01 alone).
"""

from __future__ import annotations

import math

import torch

from causalmtl.experiments import hparams as hp
from causalmtl.methods.mtcrl import MTCRL
from causalmtl.methods.mtcrl.regularizers import decorrelation_penalty


def _floor(k: int, m: int, b: int) -> float:
    """Expected Eq. (2) penalty of independent modules: C(K, 2) m² / (B − 1)."""
    return math.comb(k, 2) * m * m / (b - 1)


def test_decorrelation_penalty_of_independent_modules_matches_noise_floor() -> None:
    gen = torch.Generator().manual_seed(0)
    k, m, b = 8, 16, 128
    vals = torch.stack([
        decorrelation_penalty(torch.randn(b, k, m, generator=gen)) for _ in range(8)
    ])
    expected = _floor(k, m, b)
    assert abs(float(vals.mean()) / expected - 1.0) < 0.05


def test_default_decorrelation_weight_does_not_dominate_task_loss() -> None:
    # paper architecture (K = 8, d = 128), quickstart batch size 128, two 10-class tasks
    floor = _floor(8, 16, 128)
    chance_loss = 2 * math.log(10)
    for where, lam in (("MTCRL.HPARAMS", MTCRL.HPARAMS["lambda_decor"][0]),
                       ("hparams registry", hp.defaults("mtcrl")["lambda_decor"])):
        assert lam * floor < 0.01 * chance_loss, (
            f"{where}: λ_decor = {lam} makes the decorrelation noise floor {lam * floor:.3f}, "
            f"not small beside the chance task loss {chance_loss:.2f}"
        )
