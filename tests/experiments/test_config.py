from dataclasses import dataclass, field

import pytest

from causalmtl.experiments import ConfigMismatchError, run_experiment
from causalmtl.experiments.config import (
    ConfigError,
    build_config,
    config_hash,
    diff,
    from_yaml,
    parse_seeds,
    to_yaml,
    valid_keys,
)


@dataclass
class Model:
    width: int = 32
    dropout: float = 0.0


@dataclass
class Cfg:
    methods: list[str] = field(default_factory=lambda: ["stl", "mtl"])
    lr: float = 1e-3
    model: Model = field(default_factory=Model)


def test_dotted_overrides_are_typed():
    cfg = build_config(Cfg, ["model.width=64", "lr=0.5", "methods=[mmoe]"])
    assert cfg.model.width == 64 and isinstance(cfg.model.width, int)
    assert cfg.lr == 0.5 and cfg.methods == ["mmoe"]
    assert build_config(Cfg).model.width == 32  # defaults untouched


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError) as err:
        build_config(Cfg, ["model.widht=3"])
    msg = str(err.value)
    assert "model.widht" in msg
    for key in valid_keys(Cfg):
        assert key in msg
    assert valid_keys(Cfg) == ["methods", "lr", "model.width", "model.dropout"]


@pytest.mark.parametrize("override", ["model.width=abc", "model.width=1.5", "lr=fast"])
def test_wrong_type_names_key(override):
    with pytest.raises(ConfigError, match=override.split("=")[0].replace(".", r"\.")):
        build_config(Cfg, [override])


def test_malformed_override():
    with pytest.raises(ConfigError, match="key=value"):
        build_config(Cfg, ["width"])


def test_yaml_round_trip_and_hash():
    cfg = build_config(Cfg, ["model.dropout=0.25"])
    again = from_yaml(Cfg, to_yaml(cfg))
    assert again == cfg
    assert config_hash(again) == config_hash(cfg)
    assert config_hash(build_config(Cfg)) != config_hash(cfg)


def test_diff_lists_changed_keys():
    lines = diff({"a": 1, "b": {"c": 2}}, {"a": 1, "b": {"c": 3}, "d": 4})
    assert lines == ["b.c: 2 -> 3", "d: (absent) -> 4"]


def test_parse_seeds():
    assert parse_seeds(3) == [0, 1, 2]
    assert parse_seeds("2") == [0, 1]
    assert parse_seeds("0,5,7") == [0, 5, 7]
    for bad in (0, "x", [1, 1], -2):
        with pytest.raises(ConfigError):
            parse_seeds(bad)


def test_output_dir_with_other_config_is_refused_unless_forced(tmp_path):
    run_experiment("toy-sweep", ["inner.scale=2"], out=tmp_path)
    with pytest.raises(ConfigMismatchError) as err:
        run_experiment("toy-sweep", ["inner.scale=3"], out=tmp_path)
    assert "inner.scale: 2.0 -> 3.0" in str(err.value)
    assert "--force" in str(err.value)
    s = run_experiment("toy-sweep", ["inner.scale=3"], out=tmp_path, force=True)
    assert s.complete and s.counts == {"done": 2}


def test_unknown_experiment_and_preset(tmp_path):
    with pytest.raises(ValueError, match="valid experiments are: .*toy-sweep"):
        run_experiment("no-such-thing", out=tmp_path)
    with pytest.raises(ValueError, match="valid presets are: tiny"):
        run_experiment("toy-sweep", preset="huge", out=tmp_path)
