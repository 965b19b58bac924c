"""One source of truth per method fact: the search space is derived from the HPARAMS declarations."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pytest
import torch

from causalmtl import methods
from causalmtl._hparams import HParam, choice, log_uniform
from causalmtl.experiments import common, method_table
from causalmtl.experiments import hparams as hp
from causalmtl.methods.base import Method
from causalmtl.nn.cross_stitch import CrossStitchNetwork
from causalmtl.train.trainer import Trainer


def _documented_draw(d: method_table.MethodDef, rng: np.random.Generator) -> dict[str, Any]:
    """The documented construction, written out: trainer, then architecture, then method class,
    each in declaration order, searched hyperparameters only."""
    out: dict[str, Any] = {}
    sources: list[dict[str, HParam]] = [Trainer.HPARAMS]
    if d.arch == "cross_stitch":
        sources.append(CrossStitchNetwork.HPARAMS)
    sources.append(methods.METHODS[d.method].HPARAMS)
    for src in sources:
        for k, p in src.items():
            if p.sample is not None:
                out[k] = p.sample(rng)
    return out


@pytest.mark.parametrize("name", list(method_table.METHODS))
def test_sample_is_the_documented_construction(name: str) -> None:
    d = method_table.METHODS[name]
    for trial in (1, 2, 5):
        want = _documented_draw(d, np.random.default_rng(hp.trial_seed(d.family, "digits", trial)))
        got = hp.sample(d.family, "digits", trial)
        assert list(got) == list(want)  # same keys in the same (draw) order
        assert got == want
    defaults = hp.sample(d.family, "digits", 0)
    assert list(defaults) == list(want)
    assert all(defaults[k] == p.default for src in (Trainer.HPARAMS, methods.METHODS[d.method].HPARAMS)
               for k, p in src.items() if k in defaults)


def test_every_declaration_is_an_hparam_and_mtcrl_is_listed() -> None:
    from causalmtl.methods.mtcrl import MTCRL

    assert methods.METHODS["mtcrl"] is MTCRL
    for cls in methods.METHODS.values():
        assert all(isinstance(p, HParam) for p in cls.HPARAMS.values()), cls
        assert cls.default_hparams() == {k: p.default for k, p in cls.HPARAMS.items()}
    for d in method_table.METHODS.values():
        assert d.method in methods.METHODS


def test_signature_defaults_agree_with_declarations() -> None:
    sig = inspect.signature(Trainer.__init__).parameters
    for k, p in Trainer.HPARAMS.items():
        assert sig[k].default == p.default, k
    sig = inspect.signature(CrossStitchNetwork.__init__).parameters
    for k, p in CrossStitchNetwork.HPARAMS.items():
        assert sig[k].default == p.default, k
    assert hp.trainer_keys() == frozenset(Trainer.HPARAMS) == hp.TRAINER_KEYS
    assert hp.model_keys() == frozenset(CrossStitchNetwork.HPARAMS) == hp.MODEL_KEYS


def test_registry_is_a_derived_read_only_view() -> None:
    assert set(hp.REGISTRY) == {d.family for d in method_table.METHODS.values()}
    with pytest.raises(TypeError):
        hp.REGISTRY["irm"]["lambda"] = HParam(2.0)  # type: ignore[index]  # read-only on purpose
    with pytest.raises(ValueError, match="not searched"):
        HParam(1.0).draw(np.random.default_rng(0))


class _Toy(Method):
    """A throwaway method: one searched and one fixed hyperparameter."""

    HPARAMS: ClassVar[dict[str, HParam]] = {
        "alpha": HParam(0.5, log_uniform(1e-2, 1.0), "toy weight"),
        "mode": HParam("a", None, "not searched"),
        "k": HParam(3, choice([1, 3, 9]), "toy count"),
    }

    def objective(self, batches: Sequence[Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError


def test_adding_a_method_is_one_class_and_two_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(methods.METHODS, "toy", _Toy)
    monkeypatch.setitem(method_table.METHODS, "toy", method_table.MethodDef("mmoe", "toy", family="toy", label="Toy"))
    assert list(hp.space("toy")) == ["lr", "weight_decay", "alpha", "k"]
    assert hp.defaults("toy") == {"lr": 1e-3, "weight_decay": 0.0, "alpha": 0.5, "k": 3}
    rng = np.random.default_rng(hp.trial_seed("toy", "ds", 4))
    want = {"lr": Trainer.HPARAMS["lr"].draw(rng), "weight_decay": Trainer.HPARAMS["weight_decay"].draw(rng),
            "alpha": _Toy.HPARAMS["alpha"].draw(rng), "k": _Toy.HPARAMS["k"].draw(rng)}
    got = hp.sample("toy", "ds", 4)
    assert got == want and 1e-2 <= got["alpha"] <= 1.0 and got["k"] in (1, 3, 9)
    assert "toy" in hp.REGISTRY and common.METHODS["toy"].label == "Toy"
    assert common.method_class("toy") is _Toy
    assert common.method_overrides(["toy"], {"mode": "b", "lr": 0.1}) == {"toy": {"mode": "b", "lr": 0.1}}
    with pytest.raises(ValueError, match="unknown method family"):
        method_table.search_space("nonsense")
