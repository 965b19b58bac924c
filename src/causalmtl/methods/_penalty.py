"""Penalty-weight annealing shared by IRM and VREx (DomainBed's schedule)."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["annealed_weight", "maybe_reset_optimizer"]


def annealed_weight(step: int, lam: float, anneal_steps: int, warmup: float) -> float:
    """``warmup`` for the first ``anneal_steps`` steps, then ``lam`` (Arjovsky et al. 2019 §5)."""
    return float(lam if step >= anneal_steps else warmup)


def maybe_reset_optimizer(optimizer: Any, step: int, anneal_steps: int, enabled: bool) -> None:
    """Clear Adam's moments when the penalty weight jumps (as DomainBed does)."""
    if enabled and anneal_steps > 0 and step == anneal_steps and optimizer is not None:
        optimizer.state.clear()


def population_variance(x: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """``mean((x - mean(x))^2)`` along ``dim`` (the biased variance of Krueger et al.)."""
    return ((x - x.mean(dim, keepdim=True)) ** 2).mean(dim)
