"""Tests of nnexp.config: the schema, safe YAML loading, --set overrides, hashing.

Every error test compares the WHOLE message, so a message that leaks a literal
``{placeholder}``, glues two fragments together or loses the dotted key fails.
Nothing here trains a model or imports TensorFlow.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from nnexp.cli import cli
from nnexp.config import (
    MAX_CONFIG_BYTES,
    Config,
    build_config,
    config_from_yaml_text,
    default_name_for,
    load_config,
    parse_override,
    parse_yaml,
)
from nnexp.errors import ConfigError, NnexpError

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((REPO / "configs").glob("*.yaml"))

ACTIVATIONS = (
    "relu, leaky_relu, prelu, rrelu, elu, selu, gelu, swish, tanh, sigmoid, softplus"
)
INITIALIZERS = (
    "glorot_uniform, glorot_normal, he_uniform, he_normal, lecun_uniform, "
    "lecun_normal, orthogonal, identity, zeros, ones, constant, random_normal, "
    "truncated_normal, random_uniform, variance_scaling"
)
OPTIMIZERS = "sgd, adam, adamw, nadam, rmsprop"
# The "allowed: ..." lists name every key of a section in schema order.
TOP_KEYS = ", ".join(Config.model_fields)
DATA_KEYS = "dataset, validation_size, scaling, train_size"
MODEL_KEYS = (
    "hidden_layers, activation, initializer, batch_norm, input_batch_norm, "
    "batch_norm_momentum"
)
TRAINING_KEYS = "optimizer, clipping, loss, epochs, batch_size"
COMPARE_KEYS = "activations, seeds, vary, pairing"
NAME_RULES = (
    "is not a valid run name; use letters, digits, '.', '_' and '-' (no '/' or "
    "'..'), starting with a letter or digit, at most 100 characters"
)


def config_error(data: Any, overrides: tuple[str, ...] | list[str] = ()) -> str:
    """The message of the ConfigError that ``build_config`` must raise."""
    with pytest.raises(ConfigError) as info:
        build_config(data, overrides=overrides)
    return str(info.value)


def file_error(path: Path, overrides: tuple[str, ...] | list[str] = ()) -> str:
    """The message of the ConfigError that ``load_config`` must raise."""
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    return str(info.value)


def write(tmp_path: Path, text: str | bytes, name: str = "exp.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------
# 1. Config errors: every kind, whole messages
# --------------------------------------------------------------------------

UNKNOWN_KEYS = [
    pytest.param(
        {"trainig": {}},
        "unknown key 'trainig' (did you mean 'training'?); allowed at the top "
        f"level: {TOP_KEYS}",
        id="top-level-typo",
    ),
    pytest.param(
        {"epochs": 3},
        f"unknown key 'epochs'; allowed at the top level: {TOP_KEYS}",
        id="top-level-no-close-match",
    ),
    pytest.param(
        {"training": {"epoch": 3}},
        "unknown key 'training.epoch' (did you mean 'training.epochs'?); allowed "
        f"in 'training': {TRAINING_KEYS}",
        id="nested-training-epoch",
    ),
    pytest.param(
        {"model": {"activaton": "elu"}},
        "unknown key 'model.activaton' (did you mean 'model.activation'?); allowed "
        f"in 'model': {MODEL_KEYS}",
        id="nested-model-activaton",
    ),
    pytest.param(
        {"data": {"validation": 100}},
        "unknown key 'data.validation' (did you mean 'data.validation_size'?); "
        f"allowed in 'data': {DATA_KEYS}",
        id="nested-data-validation",
    ),
    pytest.param(
        {"compare": {"seed": 3}},
        "unknown key 'compare.seed' (did you mean 'compare.seeds'?); allowed in "
        f"'compare': {COMPARE_KEYS}",
        id="nested-compare-seed",
    ),
    pytest.param(
        {"training": {"clipping": {"values": 1.0}}},
        "unknown key 'training.clipping.values' (did you mean "
        "'training.clipping.value'?); allowed in 'training.clipping': value, "
        "norm, global_norm",
        id="two-levels-deep-clipping-values",
    ),
    pytest.param(
        {"model": {"hidden_layers": [{"units": 100, "repeats": 3}]}},
        "model.hidden_layers[0].repeats: unknown key (did you mean 'repeat'?); "
        "allowed: units, repeat",
        id="hidden-layer-item-repeats",
    ),
    pytest.param(
        {1: 2},
        "1: keys must be strings, got 1",
        id="top-level-int-key",
    ),
    pytest.param(
        {"model": {None: 2}},
        "model.None: keys must be strings, got None",
        id="nested-null-key",
    ),
    pytest.param(
        {"compare": {"vary": {1: [1]}}},
        "compare.vary.1: keys must be strings, got 1",
        id="compare-vary-int-key",
    ),
]

WRONG_TYPES = [
    pytest.param(
        {"training": {"epochs": "10"}},
        "training.epochs: expected a whole number, got '10'",
        id="string-epochs",
    ),
    pytest.param(
        {"training": {"epochs": 3.0}},
        "training.epochs: expected a whole number, got 3.0",
        id="float-epochs",
    ),
    pytest.param(
        {"training": {"epochs": True}},
        "training.epochs: expected a whole number, got True",
        id="bool-epochs",
    ),
    pytest.param(
        {"model": {"hidden_layers": [100.5]}},
        "model.hidden_layers[0]: expected a whole number, got 100.5",
        id="float-units",
    ),
    pytest.param(
        {"model": {"hidden_layers": [300, 100.0]}},
        "model.hidden_layers[1]: expected a whole number, got 100.0",
        id="integral-float-units",
    ),
    pytest.param(
        {"model": {"hidden_layers": [True]}},
        "model.hidden_layers[0]: expected a whole number, got True",
        id="bool-units",
    ),
    pytest.param(
        {"model": {"hidden_layers": "300, 100"}},
        "model.hidden_layers: expected a list of layer sizes, got '300, 100'",
        id="hidden-layers-string",
    ),
    pytest.param(
        {"model": {"hidden_layers": {"units": 100}}},
        "model.hidden_layers: expected a list of layer sizes, got {'units': 100}",
        id="hidden-layers-mapping",
    ),
    pytest.param(
        {"training": {"optimizer": {"name": "sgd", "learning_rate": True}}},
        "training.optimizer.learning_rate: expected a number, got True",
        id="bool-learning-rate",
    ),
    pytest.param(
        {"training": {"optimizer": {"name": "sgd", "learning_rate": "0.1"}}},
        "training.optimizer.learning_rate: expected a number, got '0.1'",
        id="string-learning-rate",
    ),
    pytest.param(
        {"training": {"optimizer": {"name": "adam", "amsgrad": 1}}},
        "training.optimizer.amsgrad: expected true or false, got 1",
        id="int-for-bool-argument",
    ),
    pytest.param(
        {"training": [1, 2]},
        "training: must be a mapping of keys to values, got [1, 2]",
        id="list-for-training-section",
    ),
    pytest.param(
        {"data": []},
        "data: must be a mapping of keys to values, got []",
        id="empty-list-for-data-section",
    ),
    pytest.param(
        {"model": "big"},
        "model: must be a mapping of keys to values, got 'big'",
        id="string-for-model-section",
    ),
    pytest.param(
        {"training": {"clipping": 5}},
        "training.clipping: must be a mapping of keys to values, got 5",
        id="number-for-clipping",
    ),
    pytest.param(
        {"training": {"clipping": ["value", 1.0]}},
        "training.clipping: must be a mapping of keys to values, got ['value', 1.0]",
        id="list-for-clipping",
    ),
    pytest.param(
        {"model": {"activation": ["elu"]}},
        "model.activation: expected an activation name or a mapping with 'name', "
        "got ['elu']",
        id="list-for-activation",
    ),
    pytest.param(
        {"model": {"initializer": 3}},
        "model.initializer: expected an initializer name or a mapping with "
        "'name', got 3",
        id="number-for-initializer",
    ),
    pytest.param(
        {"training": {"optimizer": ["sgd"]}},
        "training.optimizer: expected an optimizer name or a mapping with 'name', "
        "got ['sgd']",
        id="list-for-optimizer",
    ),
    pytest.param(
        {"model": {"activation": {"negative_slope": 0.1}}},
        "model.activation: a mapping needs a 'name' key",
        id="component-mapping-without-name",
    ),
    pytest.param(
        {"model": {"activation": {"name": 3}}},
        "model.activation.name: expected a string, got 3",
        id="component-name-not-a-string",
    ),
    pytest.param(
        {"name": 5},
        "name: expected a string, got 5",
        id="number-for-name",
    ),
    pytest.param(
        {"seed": 1.5},
        "seed: expected a whole number, got 1.5",
        id="float-seed",
    ),
    pytest.param(
        {"model": {"input_batch_norm": "yes"}},
        "model.input_batch_norm: expected true or false, got 'yes'",
        id="string-for-bool",
    ),
    pytest.param(
        {"compare": {"vary": {"model.batch_norm": "after"}}},
        "compare.vary.model.batch_norm: expected a list, got 'after'",
        id="compare-vary-not-a-list",
    ),
    pytest.param(
        {"compare": {"activations": "relu"}},
        "compare.activations: expected a non-empty list, got 'relu'",
        id="compare-activations-string",
    ),
]

NOT_FINITE = [
    pytest.param(
        {"training": {"optimizer": {"name": "sgd", "learning_rate": float("nan")}}},
        "training.optimizer.learning_rate: expected a finite number, got nan",
        id="nan-learning-rate",
    ),
    pytest.param(
        {"training": {"optimizer": {"name": "sgd", "learning_rate": float("inf")}}},
        "training.optimizer.learning_rate: expected a finite number, got inf",
        id="inf-learning-rate",
    ),
    pytest.param(
        {"training": {"optimizer": {"name": "sgd", "learning_rate": 10**400}}},
        "training.optimizer.learning_rate: expected a finite number, got "
        + repr(10**400)[:57]
        + "...",
        id="huge-int-learning-rate",
    ),
    pytest.param(
        {"model": {"batch_norm_momentum": float("nan")}},
        "model.batch_norm_momentum: expected a finite number, got nan",
        id="nan-bn-momentum",
    ),
    pytest.param(
        {"training": {"clipping": {"value": float("inf")}}},
        "training.clipping.value: expected a finite number, got inf",
        id="inf-clipping",
    ),
    pytest.param(
        {"training": {"clipping": {"norm": float("nan")}}},
        "training.clipping.norm: expected a finite number, got nan",
        id="nan-clipping",
    ),
]

OUT_OF_RANGE = [
    pytest.param(
        {"training": {"epochs": 0}},
        "training.epochs: must be at least 1, got 0",
        id="zero-epochs",
    ),
    pytest.param(
        {"training": {"epochs": -3}},
        "training.epochs: must be at least 1, got -3",
        id="negative-epochs",
    ),
    pytest.param(
        {"training": {"epochs": 100_001}},
        "training.epochs: must be at most 100000, got 100001",
        id="too-many-epochs",
    ),
    pytest.param(
        {"model": {"hidden_layers": [300, 0]}},
        "model.hidden_layers[1]: must be at least 1, got 0",
        id="zero-units",
    ),
    pytest.param(
        {"model": {"hidden_layers": [-5]}},
        "model.hidden_layers[0]: must be at least 1, got -5",
        id="negative-units",
    ),
    pytest.param(
        {"model": {"hidden_layers": [100_001]}},
        "model.hidden_layers[0]: must be at most 100000, got 100001",
        id="too-many-units",
    ),
    pytest.param(
        {"model": {"hidden_layers": [10**100]}},
        "model.hidden_layers[0]: must be at most 100000, got "
        + repr(10**100)[:57]
        + "...",
        id="huge-units-shortened",
    ),
    pytest.param(
        {"training": {"batch_size": 0}},
        "training.batch_size: must be at least 1, got 0",
        id="zero-batch-size",
    ),
    pytest.param(
        {"training": {"batch_size": -32}},
        "training.batch_size: must be at least 1, got -32",
        id="negative-batch-size",
    ),
    pytest.param(
        {"training": {"batch_size": 60_001}},
        "training.batch_size: must be at most 60000, got 60001",
        id="batch-size-over-dataset",
    ),
    pytest.param(
        {"data": {"validation_size": 60_000}},
        "data.validation_size: must be at most 59999, got 60000",
        id="validation-size-60000",
    ),
    pytest.param(
        {"data": {"validation_size": 70_000}},
        "data.validation_size: must be at most 59999, got 70000",
        id="validation-size-70000",
    ),
    pytest.param(
        {"data": {"validation_size": 0}},
        "data.validation_size: must be at least 1, got 0",
        id="validation-size-0",
    ),
    pytest.param(
        {"data": {"train_size": 0}},
        "data.train_size: must be at least 1, got 0",
        id="train-size-0",
    ),
    pytest.param(
        {"data": {"train_size": 55_001}},
        "data.train_size: 55001 is more than the 55,000 training images left "
        "after a validation set of 5,000",
        id="train-size-over-what-is-left",
    ),
    pytest.param(
        {"data": {"validation_size": 50_000, "train_size": 10_001}},
        "data.train_size: 10001 is more than the 10,000 training images left "
        "after a validation set of 50,000",
        id="train-size-over-what-is-left-big-validation",
    ),
    pytest.param(
        {"seed": -1},
        "seed: must be at least 0, got -1",
        id="negative-seed",
    ),
    pytest.param(
        {"seed": 2**31},
        "seed: must be at most 2147483647, got 2147483648",
        id="seed-over-int32",
    ),
    pytest.param(
        {"model": {"batch_norm_momentum": 1.0}},
        "model.batch_norm_momentum: must be less than 1, got 1.0",
        id="bn-momentum-1",
    ),
    pytest.param(
        {"model": {"batch_norm_momentum": 0.0}},
        "model.batch_norm_momentum: must be greater than 0, got 0.0",
        id="bn-momentum-0",
    ),
    pytest.param(
        {"training": {"optimizer": {"name": "sgd", "learning_rate": 0}}},
        "training.optimizer.learning_rate: must be greater than 0, got 0",
        id="zero-learning-rate",
    ),
    pytest.param(
        {"training": {"optimizer": {"name": "adam", "learning_rate": -0.01}}},
        "training.optimizer.learning_rate: must be greater than 0, got -0.01",
        id="negative-learning-rate",
    ),
    pytest.param(
        {"training": {"optimizer": {"name": "sgd", "momentum": 1.5}}},
        "training.optimizer.momentum: must be at most 1, got 1.5",
        id="momentum-over-1",
    ),
    pytest.param(
        {"model": {"activation": {"name": "leaky_relu", "negative_slope": -0.1}}},
        "model.activation.negative_slope: must be at least 0, got -0.1",
        id="negative-leaky-slope",
    ),
    pytest.param(
        {"compare": {"seeds": 0}},
        "compare.seeds: must be at least 1, got 0",
        id="compare-zero-seeds",
    ),
    pytest.param(
        {"compare": {"activations": []}},
        "compare.activations: expected a non-empty list, got []",
        id="compare-no-activations",
    ),
]

BAD_CHOICES = [
    pytest.param(
        {"model": {"activation": "reluu"}},
        "model.activation: unknown activation 'reluu' (did you mean 'relu'?); "
        f"allowed: {ACTIVATIONS}",
        id="activation-typo",
    ),
    pytest.param(
        {"model": {"activation": "maxout"}},
        f"model.activation: unknown activation 'maxout'; allowed: {ACTIVATIONS}",
        id="activation-no-close-match",
    ),
    pytest.param(
        {"model": {"activation": {"name": "Leaky-ReLU", "negative_slope": 0.1}}},
        "model.activation: unknown activation 'Leaky-ReLU' (did you mean "
        f"'leaky_relu'?); allowed: {ACTIVATIONS}",
        id="activation-mapping-typo",
    ),
    pytest.param(
        {"model": {"initializer": "he_normall"}},
        "model.initializer: unknown initializer 'he_normall' (did you mean "
        f"'he_normal'?); allowed: {INITIALIZERS}",
        id="initializer-typo",
    ),
    pytest.param(
        {"training": {"optimizer": "adamm"}},
        "training.optimizer: unknown optimizer 'adamm' (did you mean 'adam'?); "
        f"allowed: {OPTIMIZERS}",
        id="optimizer-typo",
    ),
    pytest.param(
        {"training": {"optimizer": {"name": "momentum", "learning_rate": 0.1}}},
        f"training.optimizer: unknown optimizer 'momentum'; allowed: {OPTIMIZERS}",
        id="optimizer-unknown-in-mapping",
    ),
    pytest.param(
        {"compare": {"activations": ["relu", "seluu"]}},
        "compare.activations[1]: unknown activation 'seluu' (did you mean "
        f"'selu'?); allowed: {ACTIVATIONS}",
        id="compare-activation-typo",
    ),
    pytest.param(
        {"model": {"batch_norm": "middle"}},
        "model.batch_norm: must be 'none', 'before' or 'after', got 'middle'",
        id="batch-norm-choice",
    ),
    pytest.param(
        {"model": {"batch_norm": True}},
        "model.batch_norm: true does not say where; use 'before' or 'after' "
        "(the activation), or 'none'",
        id="batch-norm-true-says-not-where",
    ),
    pytest.param(
        {"data": {"scaling": "minmax"}},
        "data.scaling: must be 'unit' or 'standardize', got 'minmax'",
        id="scaling-choice",
    ),
    pytest.param(
        {"data": {"dataset": "mnist"}},
        "data.dataset: must be 'fashion_mnist', got 'mnist'",
        id="dataset-choice",
    ),
    pytest.param(
        {"training": {"loss": "mse"}},
        "training.loss: must be 'sparse_categorical_crossentropy', got 'mse'",
        id="loss-choice",
    ),
    pytest.param(
        {"compare": {"pairing": "best"}},
        "compare.pairing: must be 'none' or 'recommended', got 'best'",
        id="pairing-choice",
    ),
]

COMPONENT_ARGUMENTS = [
    pytest.param(
        {"model": {"activation": {"name": "elu", "negative_slope": 0.1}}},
        "model.activation.negative_slope: not an argument of elu; elu takes: alpha",
        id="negative-slope-on-elu",
    ),
    pytest.param(
        {"model": {"activation": {"name": "relu", "alpha": 0.1}}},
        "model.activation.alpha: not an argument of relu; relu takes: no arguments",
        id="argument-on-relu",
    ),
    pytest.param(
        {"model": {"activation": {"name": "elu", "alpah": 0.5}}},
        "model.activation.alpah: not an argument of elu (did you mean 'alpha'?); "
        "elu takes: alpha",
        id="argument-typo-on-elu",
    ),
    pytest.param(
        {"training": {"optimizer": {"name": "sgd", "beta_1": 0.9}}},
        "training.optimizer.beta_1: not an argument of sgd; sgd takes: "
        "learning_rate, momentum, nesterov",
        id="adam-argument-on-sgd",
    ),
    pytest.param(
        {"training": {"optimizer": {"name": "adam", "lr": 0.1}}},
        "training.optimizer.lr: not an argument of adam; adam takes: "
        "learning_rate, beta_1, beta_2, epsilon, amsgrad",
        id="keras1-lr-on-adam",
    ),
    pytest.param(
        {
            "model": {
                "activation": {
                    "name": "leaky_relu",
                    "alpha": 0.1,
                    "negative_slope": 0.2,
                }
            }
        },
        "model.activation: both 'alpha' and 'negative_slope' given; they are the "
        "same argument, use only 'negative_slope'",
        id="alpha-and-negative-slope",
    ),
    pytest.param(
        {
            "model": {
                "activation": {
                    "name": "leaky_relu",
                    "negative_slope": 0.2,
                    "alpha": 0.1,
                }
            }
        },
        "model.activation: both 'alpha' and 'negative_slope' given; they are the "
        "same argument, use only 'negative_slope'",
        id="negative-slope-and-alpha",
    ),
    pytest.param(
        {"model": {"activation": {"name": "leaky_relu", "alpha": -1}}},
        "model.activation.alpha: must be at least 0, got -1",
        id="old-alpha-checked-under-its-own-name",
    ),
    pytest.param(
        {"model": {"initializer": {"name": "variance_scaling", "mode": "fan_inn"}}},
        "model.initializer.mode: 'fan_inn' is not allowed (did you mean "
        "'fan_in'?); allowed: fan_in, fan_out, fan_avg",
        id="variance-scaling-mode-typo",
    ),
    pytest.param(
        {"model": {"initializer": {"name": "variance_scaling", "mode": "average"}}},
        "model.initializer.mode: 'average' is not allowed; allowed: fan_in, "
        "fan_out, fan_avg",
        id="variance-scaling-mode-unknown",
    ),
    pytest.param(
        {"model": {"initializer": {"name": "variance_scaling", "mode": 2}}},
        "model.initializer.mode: 2 is not allowed; allowed: fan_in, fan_out, fan_avg",
        id="variance-scaling-mode-number",
    ),
    pytest.param(
        {
            "model": {
                "initializer": {"name": "variance_scaling", "distribution": "unifrom"}
            }
        },
        "model.initializer.distribution: 'unifrom' is not allowed (did you mean "
        "'uniform'?); allowed: truncated_normal, untruncated_normal, uniform",
        id="variance-scaling-distribution-typo",
    ),
    pytest.param(
        {"model": {"initializer": {"name": "variance_scaling", "scale": 0}}},
        "model.initializer.scale: must be greater than 0, got 0",
        id="variance-scaling-zero-scale",
    ),
    pytest.param(
        {
            "model": {
                "initializer": {"name": "random_uniform", "minval": 1, "maxval": 0}
            }
        },
        "model.initializer: random_uniform needs minval < maxval, got minval 1 "
        "and maxval 0",
        id="random-uniform-empty-range",
    ),
    pytest.param(
        {"model": {"activation": {"name": "rrelu", "lower": 0.5, "upper": 0.2}}},
        "model.activation: rrelu needs lower <= upper, got lower 0.5 and upper 0.2",
        id="rrelu-lower-over-upper",
    ),
    pytest.param(
        {"model": {"activation": {"name": "rrelu", "lower": 0.5}}},
        "model.activation: rrelu needs lower <= upper, got lower 0.5 and upper "
        "0.333333",
        id="rrelu-lower-over-default-upper",
    ),
    pytest.param(
        {"model": {"activation": {"name": "rrelu", "upper": 1.5}}},
        "model.activation.upper: must be at most 1, got 1.5",
        id="rrelu-upper-over-1",
    ),
]

CLIPPING = [
    pytest.param(
        {"training": {"clipping": {"value": 1.0, "norm": 1.0}}},
        "training.clipping: choose one kind of clipping, got value and norm; they "
        "would fight over the same gradient",
        id="value-and-norm",
    ),
    pytest.param(
        {"training": {"clipping": {"value": 1.0, "norm": 2.0, "global_norm": 3.0}}},
        "training.clipping: choose one kind of clipping, got value and norm and "
        "global_norm; they would fight over the same gradient",
        id="all-three-kinds",
    ),
    pytest.param(
        {"training": {"clipping": {"value": 0}}},
        "training.clipping.value: must be greater than 0, got 0",
        id="zero-threshold",
    ),
    pytest.param(
        {"training": {"clipping": {"global_norm": -1.0}}},
        "training.clipping.global_norm: must be greater than 0, got -1.0",
        id="negative-threshold",
    ),
    pytest.param(
        {"training": {"clipping": {}}},
        "training.clipping: give one of value, norm or global_norm (or null for "
        "no clipping)",
        id="empty-mapping",
    ),
    pytest.param(
        {"training": {"clipping": {"value": None}}},
        "training.clipping: give one of value, norm or global_norm (or null for "
        "no clipping)",
        id="only-null-threshold",
    ),
    pytest.param(
        {"training": {"clipping": {"norm": True}}},
        "training.clipping.norm: expected a number, got True",
        id="bool-threshold",
    ),
]

RUN_NAMES = [
    pytest.param("a/b", id="slash"),
    pytest.param("..", id="dot-dot"),
    pytest.param("a..b", id="dot-dot-inside"),
    pytest.param(".hidden", id="leading-dot"),
    pytest.param("-flag", id="leading-dash"),
    pytest.param("", id="empty"),
    pytest.param("with space", id="space"),
    pytest.param("trailing-newline\n", id="trailing-newline"),
    pytest.param("é", id="non-ascii"),
    pytest.param("a" * 101, id="101-characters"),
]

HIDDEN_LAYER_ERRORS = [
    pytest.param(
        [{"units": 100, "repeat": 0}],
        "model.hidden_layers[0].repeat: must be at least 1, got 0",
        id="repeat-zero",
    ),
    pytest.param(
        [10, {"units": 100, "repeat": -2}],
        "model.hidden_layers[1].repeat: must be at least 1, got -2",
        id="repeat-negative",
    ),
    pytest.param(
        [{"units": 100, "repeat": "3"}],
        "model.hidden_layers[0].repeat: expected a whole number, got '3'",
        id="repeat-string",
    ),
    pytest.param(
        [{"units": 100, "repeat": 2.5}],
        "model.hidden_layers[0].repeat: expected a whole number, got 2.5",
        id="repeat-float",
    ),
    pytest.param(
        [{"units": 0, "repeat": 3}],
        "model.hidden_layers[0].units: must be at least 1, got 0",
        id="repeated-units-zero",
    ),
    pytest.param(
        [{"repeat": 3}],
        "model.hidden_layers[0]: a mapping needs 'units'",
        id="repeat-without-units",
    ),
    pytest.param(
        [{"units": 100, "repeat": 1001}],
        "model.hidden_layers: more than 1000 layers (at model.hidden_layers[0]); "
        "at most 1000 are allowed",
        id="repeat-over-1000-layers",
    ),
    pytest.param(
        [{"units": 10, "repeat": 600}, {"units": 10, "repeat": 600}],
        "model.hidden_layers: more than 1000 layers (at model.hidden_layers[1]); "
        "at most 1000 are allowed",
        id="repeats-adding-up-over-1000",
    ),
    pytest.param(
        [{"units": 10, "repeat": 100_000}] * 5000,
        "model.hidden_layers: more than 1000 layers (at model.hidden_layers[0]); "
        "at most 1000 are allowed",
        id="huge-repeats-refused-before-expanding",
    ),
]


@pytest.mark.parametrize(("data", "message"), UNKNOWN_KEYS)
def test_unknown_key(data: dict, message: str) -> None:
    assert config_error(data) == message


@pytest.mark.parametrize(("data", "message"), WRONG_TYPES)
def test_wrong_type(data: dict, message: str) -> None:
    assert config_error(data) == message


@pytest.mark.parametrize(("data", "message"), NOT_FINITE)
def test_not_a_finite_number(data: dict, message: str) -> None:
    assert config_error(data) == message


@pytest.mark.parametrize(("data", "message"), OUT_OF_RANGE)
def test_out_of_range(data: dict, message: str) -> None:
    assert config_error(data) == message


@pytest.mark.parametrize(("data", "message"), BAD_CHOICES)
def test_bad_choice(data: dict, message: str) -> None:
    assert config_error(data) == message


@pytest.mark.parametrize(("data", "message"), COMPONENT_ARGUMENTS)
def test_component_argument(data: dict, message: str) -> None:
    assert config_error(data) == message


@pytest.mark.parametrize(("data", "message"), CLIPPING)
def test_clipping(data: dict, message: str) -> None:
    assert config_error(data) == message


@pytest.mark.parametrize("name", RUN_NAMES)
def test_bad_run_name(name: str) -> None:
    shown = repr(name) if len(repr(name)) <= 60 else repr(name)[:57] + "..."
    assert config_error({"name": name}) == f"name: {shown} {NAME_RULES}"


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("a", id="one-letter"),
        pytest.param("7", id="one-digit"),
        pytest.param("bn-after_elu.v2", id="all-allowed-characters"),
        pytest.param("a" * 100, id="100-characters"),
    ],
)
def test_good_run_name(name: str) -> None:
    assert build_config({"name": name}).name == name


@pytest.mark.parametrize(("layers", "message"), HIDDEN_LAYER_ERRORS)
def test_bad_hidden_layers(layers: list, message: str) -> None:
    started = time.perf_counter()
    assert config_error({"model": {"hidden_layers": layers}}) == message
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize(
    ("layers", "expected"),
    [
        pytest.param([{"units": 100, "repeat": 3}], (100, 100, 100), id="repeat-3"),
        pytest.param(
            [300, {"units": 100, "repeat": 2}, 10], (300, 100, 100, 10), id="mixed"
        ),
        pytest.param([{"units": 64}], (64,), id="repeat-defaults-to-1"),
        pytest.param([], (), id="no-hidden-layers"),
        pytest.param([{"units": 1, "repeat": 1000}], (1,) * 1000, id="exactly-1000"),
    ],
)
def test_hidden_layers_expansion(layers: list, expected: tuple[int, ...]) -> None:
    model = build_config({"model": {"hidden_layers": layers}}).model
    assert model.hidden_layers == expected
    assert model.hidden_units == expected


def test_several_problems_are_reported_together_one_per_line() -> None:
    data = {"seed": -1, "training": {"epochs": 0, "batch_size": 0}}
    assert config_error(data) == (
        "seed: must be at least 0, got -1\n"
        "training.epochs: must be at least 1, got 0\n"
        "training.batch_size: must be at least 1, got 0"
    )


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        pytest.param("elu", {"name": "elu", "alpha": 1.0}, id="bare-name"),
        pytest.param(" ELU ", {"name": "elu", "alpha": 1.0}, id="case-and-spaces"),
        pytest.param("silu", {"name": "swish"}, id="alias-silu"),
        pytest.param("logistic", {"name": "sigmoid"}, id="alias-logistic"),
        pytest.param(
            {"name": "leaky_relu", "alpha": 0.1},
            {"name": "leaky_relu", "negative_slope": 0.1},
            id="old-alpha-of-leaky-relu",
        ),
        pytest.param(
            {"name": "leaky_relu"},
            {"name": "leaky_relu", "negative_slope": 0.3},
            id="leaky-relu-default-slope",
        ),
        pytest.param(
            {"name": "rrelu", "lower": 0.2, "upper": 0.2},
            {"name": "rrelu", "lower": 0.2, "upper": 0.2},
            id="rrelu-lower-equals-upper",
        ),
        pytest.param(
            {"name": "elu", "alpha": 2},
            {"name": "elu", "alpha": 2.0},
            id="int-argument-stored-as-float",
        ),
    ],
)
def test_activation_is_resolved(given: Any, expected: dict) -> None:
    activation = build_config({"model": {"activation": given}}).model.activation
    assert activation == expected
    assert all(type(v) is float for k, v in activation.items() if k != "name")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        pytest.param(
            "variance_scaling",
            {
                "name": "variance_scaling",
                "scale": 1.0,
                "mode": "fan_in",
                "distribution": "truncated_normal",
            },
            id="variance-scaling-defaults",
        ),
        pytest.param(
            {"name": "variance_scaling", "scale": 2, "mode": "fan_avg"},
            {
                "name": "variance_scaling",
                "scale": 2.0,
                "mode": "fan_avg",
                "distribution": "truncated_normal",
            },
            id="variance-scaling-partial",
        ),
        pytest.param("he_normal", {"name": "he_normal"}, id="no-arguments"),
    ],
)
def test_initializer_is_resolved(given: Any, expected: dict) -> None:
    assert build_config({"model": {"initializer": given}}).model.initializer == expected


def test_optimizer_defaults_are_filled_in() -> None:
    config = build_config({"training": {"optimizer": {"name": "adam"}}})
    assert config.training.optimizer == {
        "name": "adam",
        "learning_rate": 0.001,
        "beta_1": 0.9,
        "beta_2": 0.999,
        "epsilon": 1e-7,
        "amsgrad": False,
    }


@pytest.mark.parametrize(
    ("clipping", "kind", "threshold"),
    [
        pytest.param({"value": 0.5}, "value", 0.5, id="value"),
        pytest.param({"norm": 1}, "norm", 1.0, id="norm-int"),
        pytest.param({"global_norm": 5.0}, "global_norm", 5.0, id="global-norm"),
        pytest.param({"value": None, "norm": 2.0}, "norm", 2.0, id="other-kind-null"),
    ],
)
def test_clipping_kind_and_threshold(
    clipping: dict, kind: str, threshold: float
) -> None:
    config = build_config({"training": {"clipping": clipping}})
    assert config.training.clipping is not None
    assert config.training.clipping.kind == kind
    assert config.training.clipping.threshold == threshold
    assert config.to_dict()["training"]["clipping"] == {kind: threshold}


def test_clipping_null_means_none() -> None:
    assert build_config({"training": {"clipping": None}}).training.clipping is None


def test_config_is_immutable() -> None:
    config = build_config({})
    with pytest.raises(ValueError):
        config.seed = 1  # type: ignore[misc]


def test_build_config_does_not_change_its_input() -> None:
    data = {"model": {"activation": "elu"}, "training": {"epochs": 2}}
    build_config(data, overrides=["model.activation.alpha=0.5", "seed=3"])
    assert data == {"model": {"activation": "elu"}, "training": {"epochs": 2}}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(
            [1, 2],
            "expected a mapping of keys to values at the top level, got a list",
            id="list",
        ),
        pytest.param(
            "epochs: 3",
            "expected a mapping of keys to values at the top level, got a string "
            "('epochs: 3')",
            id="string",
        ),
        pytest.param(
            None,
            "expected a mapping of keys to values at the top level, got a value (None)",
            id="none",
        ),
    ],
)
def test_build_config_needs_a_mapping(data: Any, message: str) -> None:
    assert config_error(data) == message


PLAIN = "expected text, a number, true/false, null, a list or a mapping"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "compare: {vary: {x: [!!binary /w==]}}",
            f"compare.vary.x[0]: {PLAIN}, got b'\\xff'",
            id="binary",
        ),
        pytest.param(
            "compare: {vary: {x: [!!set {a}]}}",
            f"compare.vary.x[0]: {PLAIN}, got {{'a'}}",
            id="set",
        ),
        pytest.param(
            "compare: {vary: {x: [[2024-01-01]]}}",
            f"compare.vary.x[0][0]: {PLAIN}, got datetime.date(2024, 1, 1)",
            id="date-in-a-list",
        ),
        pytest.param(
            "compare: {vary: {x: [1, .nan]}}",
            "compare.vary.x[1]: expected a finite number, got nan",
            id="nan",
        ),
        pytest.param(
            "compare: {vary: {x: [{a: [1, {b: -.inf}]}]}}",
            "compare.vary.x[0].a[1].b: expected a finite number, got -inf",
            id="inf-deep-inside",
        ),
        pytest.param(
            "compare: {vary: {model.activation: [{1: elu}]}}",
            "compare.vary.model.activation[0]: keys must be strings, got 1",
            id="int-key",
        ),
    ],
)
def test_compare_vary_values_must_survive_config_yaml(text: str, message: str) -> None:
    assert config_error(parse_yaml(text, "test")) == message


def test_compare_vary_plain_values_round_trip() -> None:
    config = build_config(
        parse_yaml(
            "compare:\n  vary:\n"
            "    model.activation: [selu, {name: elu, alpha: 2}]\n"
            "    training.optimizer.learning_rate: [0.1, 1, null, true, 'yes', 1e3]\n",
            "test",
        )
    )
    assert config_from_yaml_text(config.to_yaml()) == config


def test_config_errors_are_nnexp_errors_with_exit_code_2() -> None:
    with pytest.raises(NnexpError) as info:
        build_config({"training": {"epochs": 0}})
    assert isinstance(info.value, ConfigError)
    assert info.value.exit_code == 2


# --------------------------------------------------------------------------
# 2. Files
# --------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    assert file_error(path) == f"config file not found: {path}"


def test_folder(tmp_path: Path) -> None:
    assert file_error(tmp_path) == f"{tmp_path} is a folder, not a config file"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("   \n\n\t\n", id="whitespace-only"),
        pytest.param("# only a comment\n# and another\n", id="comments-only"),
        pytest.param("---\n...\n", id="empty-document"),
        pytest.param("null\n", id="explicit-null"),
    ],
)
def test_empty_file(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    assert file_error(path) == f"{path}: the file is empty; a config is a YAML mapping"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param(
            "training: [1, 2\n",
            "line 2, column 1: expected ',' or ']', but got '<stream end>'",
            id="unclosed-bracket",
        ),
        pytest.param(
            "model: activation: elu\n",
            "line 1, column 18: mapping values are not allowed here",
            id="two-colons",
        ),
        pytest.param(
            "training:\n\tepochs: 3\n",
            "line 2, column 1: found character '\\t' that cannot start any token",
            id="tab-indent",
        ),
        pytest.param(
            "seed: 1\n---\nseed: 2\n",
            "line 2, column 1: expected a single document in the stream, but found "
            "another document",
            id="two-documents",
        ),
        pytest.param(
            'name: "a\\qb"\n',
            "line 1, column 10: found unknown escape character 'q'",
            id="bad-escape",
        ),
        pytest.param(
            "seed: 1\x00\n",
            "unacceptable character #x0000: special characters are not allowed",
            id="nul-character",
        ),
        pytest.param(
            "name: 2024-13-01\n",
            "line 1, column 7: cannot read '2024-13-01' as !!timestamp (month must "
            "be in 1..12)",
            id="impossible-date",
        ),
        pytest.param(
            "seed: !!int twelve\n",
            "line 1, column 7: cannot read 'twelve' as !!int (invalid literal for "
            "int() with base 10: 'twelve')",
            id="bad-int-tag",
        ),
        pytest.param(
            "seed: !!int\n",
            "line 1, column 7: cannot read '' as !!int",
            id="empty-int-tag",
        ),
        pytest.param(
            "model: {input_batch_norm: !!bool maybe}\n",
            "line 1, column 27: cannot read 'maybe' as !!bool",
            id="bad-bool-tag",
        ),
        pytest.param(
            "seed: !!timestamp\n",
            "line 1, column 7: cannot read '' as !!timestamp",
            id="empty-timestamp-tag",
        ),
        pytest.param(
            "seed: !!int [1]\n",
            "line 1, column 7: expected a scalar node, but found sequence",
            id="int-tag-on-a-list",
        ),
        pytest.param(
            "seed: !custom 1\n",
            "line 1, column 7: the tag !custom is not allowed; a config holds plain "
            "YAML data",
            id="custom-tag",
        ),
        pytest.param(
            "<<: 1\n",
            "line 1, column 5: expected a mapping or list of mappings for merging, "
            "but found scalar",
            id="bad-merge-key",
        ),
        pytest.param(
            "model: {? [1, 2]: 3}\n",
            "line 1, column 11: found unhashable key",
            id="list-as-key",
        ),
    ],
)
def test_not_yaml(tmp_path: Path, text: str, problem: str) -> None:
    path = write(tmp_path, text)
    assert file_error(path) == f"{path}: not valid YAML: {problem}"


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        pytest.param("- seed: 1\n- seed: 2\n", "a list", id="list"),
        pytest.param("[]\n", "a list", id="empty-list"),
        pytest.param("42\n", "a number (42)", id="int"),
        pytest.param("1.5\n", "a number (1.5)", id="float"),
        pytest.param("hello\n", "a string ('hello')", id="string"),
        pytest.param("true\n", "true/false (True)", id="bool"),
        pytest.param("2024-01-01\n", "a date (datetime.date(2024, 1, 1))", id="date"),
        pytest.param("!!binary aGk=\n", "binary data (b'hi')", id="binary"),
        pytest.param("!!set {a}\n", "a set ({'a'})", id="set"),
    ],
)
def test_not_a_mapping(tmp_path: Path, text: str, kind: str) -> None:
    path = write(tmp_path, text)
    assert file_error(path) == (
        f"{path}: expected a mapping of keys to values at the top level, got {kind}"
    )


@pytest.mark.parametrize(
    ("template", "where", "tag"),
    [
        pytest.param(
            '!!python/object/apply:os.system ["touch {marker}"]\n',
            "line 1, column 1",
            "!!python/object/apply:os.system",
            id="top-level-os-system",
        ),
        pytest.param(
            'training:\n  epochs: !!python/object/apply:os.system ["touch {marker}"]\n',
            "line 2, column 11",
            "!!python/object/apply:os.system",
            id="nested-os-system",
        ),
        pytest.param(
            "seed: !!python/object/new:subprocess.Popen [[touch, '{marker}']]\n",
            "line 1, column 7",
            "!!python/object/new:subprocess.Popen",
            id="subprocess-popen",
        ),
        pytest.param(
            "name: !!python/name:os.system ''\n# {marker}\n",
            "line 1, column 7",
            "!!python/name:os.system",
            id="python-name",
        ),
    ],
)
def test_python_tags_are_refused_and_never_run(
    tmp_path: Path, template: str, where: str, tag: str
) -> None:
    marker = tmp_path / "pwned"
    path = write(tmp_path, template.replace("{marker}", str(marker)))
    assert file_error(path) == (
        f"{path}: not valid YAML: {where}: the tag {tag} is not allowed; a config "
        "holds plain YAML data"
    )
    assert not marker.exists()


def test_os_system_tag_in_the_classic_form_does_not_touch_tmp(tmp_path: Path) -> None:
    marker = Path("/tmp/pwned")
    existed = marker.exists()
    path = write(tmp_path, '!!python/object/apply:os.system ["touch /tmp/pwned"]\n')
    with pytest.raises(ConfigError):
        load_config(path)
    if not existed:
        assert not marker.exists()


BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def test_billion_laughs_is_refused_quickly(tmp_path: Path) -> None:
    path = write(tmp_path, BILLION_LAUGHS)
    started = time.perf_counter()
    message = file_error(path)
    elapsed = time.perf_counter() - started
    assert message == (
        f"{path}: the YAML expands to more than 20,000 values (nested aliases?); "
        "a config is a small mapping"
    )
    assert elapsed < 2.0


def test_small_aliases_are_fine(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "model:\n  hidden_layers: &width [64, 64]\n"
        "compare:\n  vary: {model.hidden_layers: [*width, [32]]}\n",
    )
    config = load_config(path)
    assert config.model.hidden_layers == (64, 64)
    assert config.compare is not None
    assert config.compare.vary == {"model.hidden_layers": [[64, 64], [32]]}


@pytest.mark.parametrize(
    ("text", "line"),
    [
        pytest.param(
            "compare:\n  vary:\n    x: &a [*a]\n", 3, id="list-holding-itself"
        ),
        pytest.param("model: &m {activation: *m}\n", 1, id="mapping-holding-itself"),
    ],
)
def test_recursive_alias_is_refused(tmp_path: Path, text: str, line: int) -> None:
    path = write(tmp_path, text)
    assert file_error(path) == (
        f"{path}: line {line}: an alias refers to the value that contains it; a "
        "config cannot be recursive"
    )


@pytest.mark.parametrize(
    ("text", "line", "key"),
    [
        pytest.param("seed: 1\nseed: 2\n", 2, "seed", id="top-level"),
        pytest.param(
            "training:\n  epochs: 3\n  batch_size: 8\n  epochs: 4\n",
            4,
            "epochs",
            id="nested",
        ),
        pytest.param(
            "model:\n  activation: {name: elu, alpha: 1, alpha: 2}\n",
            2,
            "alpha",
            id="flow-mapping",
        ),
    ],
)
def test_duplicate_keys(tmp_path: Path, text: str, line: int, key: str) -> None:
    path = write(tmp_path, text)
    assert file_error(path) == (
        f"{path}: line {line}: key '{key}' appears twice in the same mapping"
    )


def test_int_and_string_keys_are_not_duplicates(tmp_path: Path) -> None:
    path = write(tmp_path, "seed: 1\n1: one\n'1': one\n")
    assert file_error(path) == (
        "1: keys must be strings, got 1\n"
        "unknown key '1'; allowed at the top level: name, seed, data, model, "
        "training, diagnostics, compare"
    )


def test_unknown_keys_and_bad_values_are_reported_together() -> None:
    data = {
        "model": {"activaton": "elu", "batch_norm": "sideways"},
        "training": {"epochs": "ten", "clipping": {"valeu": 1.0}},
    }
    # The clipping section left empty by its misspelled key is not reported
    # again as "give one of value, norm or global_norm".
    assert config_error(data) == (
        "unknown key 'model.activaton' (did you mean 'model.activation'?); "
        "allowed in 'model': hidden_layers, activation, initializer, batch_norm, "
        "input_batch_norm, batch_norm_momentum\n"
        "unknown key 'training.clipping.valeu' (did you mean "
        "'training.clipping.value'?); allowed in 'training.clipping': value, "
        "norm, global_norm\n"
        "model.batch_norm: must be 'none', 'before' or 'after', got 'sideways'\n"
        "training.epochs: expected a whole number, got 'ten'"
    )


def test_at_most_ten_problems_are_listed() -> None:
    data = {f"key{i}": i for i in range(25)}
    lines = config_error(data).splitlines()
    assert len(lines) == 11
    assert lines[-1] == "... and 15 more"


def test_file_over_one_megabyte(tmp_path: Path) -> None:
    path = write(tmp_path, "seed: 1\n# " + "x" * MAX_CONFIG_BYTES + "\n")
    assert file_error(path) == (
        f"{path}: larger than 1,000,000 bytes, too large for a config file"
    )


def test_file_of_exactly_one_megabyte_is_read(tmp_path: Path) -> None:
    head = "seed: 1\n# "
    path = write(tmp_path, head + "x" * (MAX_CONFIG_BYTES - len(head) - 1) + "\n")
    assert path.stat().st_size == MAX_CONFIG_BYTES
    assert load_config(path).seed == 1


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_endless_device_is_refused() -> None:
    assert file_error(Path("/dev/zero")) == (
        "/dev/zero: larger than 1,000,000 bytes, too large for a config file"
    )


@pytest.mark.parametrize(
    ("raw", "position", "byte"),
    [
        pytest.param(b"name: caf\xe9\n", 9, "0xe9", id="latin-1"),
        pytest.param(b"\xff\xfes\x00e\x00", 0, "0xff", id="utf-16"),
    ],
)
def test_not_utf8(tmp_path: Path, raw: bytes, position: int, byte: str) -> None:
    path = write(tmp_path, raw)
    assert file_error(path) == f"{path}: not UTF-8 text (byte {position} is {byte})"


def test_utf8_with_bom_is_read(tmp_path: Path) -> None:
    path = write(tmp_path, "\ufeffseed: 3\n")
    assert load_config(path).seed == 3


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(
            "".join("  " * i + f"k{i}:\n" for i in range(60)) + "  " * 60 + "1\n",
            id="block-mappings-60-deep",
        ),
        pytest.param("a: " + "[" * 10_000 + "]" * 10_000 + "\n", id="flow-10000-deep"),
        pytest.param("a: " + "{b: " * 5_000 + "1" + "}" * 5_000, id="flow-maps"),
        pytest.param(
            "x0: &x0 [1]\n"
            + "".join(f"x{i}: &x{i} [*x{i - 1}]\n" for i in range(1, 60)),
            id="aliases-chained-60-deep",
        ),
    ],
)
def test_deeply_nested_yaml(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    assert file_error(path) == (
        f"{path}: the YAML is nested more than 50 levels deep; a config is a small "
        "mapping"
    )


def test_moderately_nested_yaml_reaches_validation(tmp_path: Path) -> None:
    path = write(tmp_path, "compare:\n  vary:\n    x: [[[[[[[[1]]]]]]]]\n")
    assert load_config(path).compare is not None


# --------------------------------------------------------------------------
# 3. --set overrides
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "key", "value"),
    [
        pytest.param("training.epochs=3", "training.epochs", 3, id="int"),
        pytest.param("training.epochs=0x10", "training.epochs", 16, id="hex-int"),
        pytest.param(
            "model.batch_norm_momentum=0.9",
            "model.batch_norm_momentum",
            0.9,
            id="float",
        ),
        pytest.param("data.train_size=null", "data.train_size", None, id="null"),
        pytest.param("data.train_size=", "data.train_size", None, id="empty-is-null"),
        pytest.param(
            "model.input_batch_norm=true", "model.input_batch_norm", True, id="bool"
        ),
        pytest.param(
            "model.hidden_layers=[10, 20]", "model.hidden_layers", [10, 20], id="list"
        ),
        pytest.param(
            "training.clipping={norm: 1.0}",
            "training.clipping",
            {"norm": 1.0},
            id="mapping",
        ),
        pytest.param("name=my-run", "name", "my-run", id="string"),
        pytest.param("name='123'", "name", "123", id="quoted-string"),
        pytest.param("  seed = 7 ", "seed", 7, id="spaces-around"),
        pytest.param("name=a=b", "name", "a=b", id="equals-in-value"),
    ],
)
def test_parse_override(override: str, key: str, value: Any) -> None:
    assert parse_override(override) == (key, value)


@pytest.mark.parametrize(
    ("overrides", "check"),
    [
        pytest.param(
            ["training.epochs=3"], lambda c: c.training.epochs == 3, id="dotted-int"
        ),
        pytest.param(
            ["model.hidden_layers=[{units: 50, repeat: 2}, 10]"],
            lambda c: c.model.hidden_layers == (50, 50, 10),
            id="list-with-repeat",
        ),
        pytest.param(
            ["data.train_size=1000", "data.train_size=null"],
            lambda c: c.data.train_size is None,
            id="later-wins-null",
        ),
        pytest.param(
            ["model.activation=leaky_relu", "model.activation.negative_slope=0.1"],
            lambda c: (
                c.model.activation == {"name": "leaky_relu", "negative_slope": 0.1}
            ),
            id="argument-after-bare-name",
        ),
        pytest.param(
            ["model.activation=leaky_relu", "model.activation.alpha=0.1"],
            lambda c: (
                c.model.activation == {"name": "leaky_relu", "negative_slope": 0.1}
            ),
            id="old-alpha-after-bare-name",
        ),
        pytest.param(
            ["model.activation={name: elu, alpha: 0.5}"],
            lambda c: c.model.activation == {"name": "elu", "alpha": 0.5},
            id="component-as-mapping",
        ),
        pytest.param(
            ["training.optimizer=adam", "training.optimizer.learning_rate=0.5"],
            lambda c: (
                c.training.optimizer["learning_rate"] == 0.5
                and c.training.optimizer["name"] == "adam"
            ),
            id="optimizer-name-then-argument",
        ),
        pytest.param(
            ["training.clipping.value=0.5"],
            lambda c: (
                c.training.clipping is not None
                and (c.training.clipping.kind, c.training.clipping.threshold)
                == ("value", 0.5)
            ),
            id="clipping-from-null",
        ),
        pytest.param(
            ["training.clipping=null"],
            lambda c: c.training.clipping is None,
            id="clipping-off",
        ),
        pytest.param(
            ["compare.seeds=5"],
            lambda c: c.compare is not None and c.compare.seeds == 5,
            id="section-created",
        ),
        pytest.param(
            ["compare.vary={model.batch_norm: [none, after]}"],
            lambda c: (
                c.compare is not None
                and c.compare.vary == {"model.batch_norm": ["none", "after"]}
            ),
            id="vary-mapping-with-dotted-keys",
        ),
        pytest.param(
            ["training.optimizer.learning_rate=0.1"],
            lambda c: (
                c.training.optimizer["name"] == "sgd"
                and c.training.optimizer["learning_rate"] == 0.1
            ),
            id="argument-of-a-default-component",
        ),
    ],
)
def test_overrides_apply(overrides: list[str], check: Any) -> None:
    assert check(build_config({}, overrides=overrides))


def test_override_argument_of_component_given_as_bare_name(tmp_path: Path) -> None:
    path = write(tmp_path, "model:\n  activation: leaky_relu\n")
    config = load_config(path, ["model.activation.negative_slope=0.1"])
    assert config.model.activation == {"name": "leaky_relu", "negative_slope": 0.1}


def test_override_argument_of_component_given_as_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "model:\n  activation: {name: elu, alpha: 0.2}\n")
    config = load_config(path, ["model.activation.alpha=0.7"])
    assert config.model.activation == {"name": "elu", "alpha": 0.7}


def test_override_replacing_component_name_keeps_given_arguments(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "model:\n  activation: {name: elu, alpha: 0.2}\n")
    assert file_error(path, ["model.activation.name=relu"]) == (
        "model.activation.alpha: not an argument of relu; relu takes: no arguments"
    )


def test_override_clipping_in_a_file_without_it(tmp_path: Path) -> None:
    path = write(tmp_path, "training:\n  clipping: null\n  epochs: 2\n")
    config = load_config(path, ["training.clipping.value=0.5"])
    assert config.training.clipping is not None
    assert config.training.clipping.kind == "value"
    assert config.training.clipping.threshold == 0.5
    assert config.training.epochs == 2


def test_override_can_switch_clipping_kind_only_by_replacing(tmp_path: Path) -> None:
    path = write(tmp_path, "training:\n  clipping: {value: 1.0}\n")
    assert file_error(path, ["training.clipping.norm=2.0"]) == (
        "training.clipping: choose one kind of clipping, got value and norm; they "
        "would fight over the same gradient"
    )
    config = load_config(path, ["training.clipping={norm: 2.0}"])
    assert config.training.clipping is not None
    assert config.training.clipping.kind == "norm"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        pytest.param(
            ["training.epoch=3"],
            "--set training.epoch: unknown key 'training.epoch' (did you mean "
            f"'training.epochs'?); allowed in 'training': {TRAINING_KEYS}",
            id="unknown-nested-key",
        ),
        pytest.param(
            ["traning.epochs=3"],
            "--set traning.epochs: unknown key 'traning' (did you mean 'training'?); "
            f"allowed at the top level: {TOP_KEYS}",
            id="unknown-section",
        ),
        pytest.param(
            ["epochs=3"],
            f"--set epochs: unknown key 'epochs'; allowed at the top level: {TOP_KEYS}",
            id="unknown-top-level-key",
        ),
        pytest.param(
            ["training.clipping.values=1"],
            "--set training.clipping.values: unknown key 'training.clipping.values' "
            "(did you mean 'training.clipping.value'?); allowed in "
            "'training.clipping': value, norm, global_norm",
            id="unknown-key-two-levels-deep",
        ),
        pytest.param(
            ["training.epochs"],
            "--set 'training.epochs': expected KEY=VALUE, e.g. training.epochs=3",
            id="no-equals",
        ),
        pytest.param(
            ["=3"],
            "--set '=3': '' is not a dotted key such as training.epochs",
            id="empty-key",
        ),
        pytest.param(
            ["training..epochs=3"],
            "--set 'training..epochs=3': 'training..epochs' is not a dotted key such "
            "as training.epochs",
            id="double-dot",
        ),
        pytest.param(
            ["training.ep-ochs=3"],
            "--set 'training.ep-ochs=3': 'training.ep-ochs' is not a dotted key such "
            "as training.epochs",
            id="dash-in-key",
        ),
        pytest.param(
            ["model.hidden_layers[0]=10"],
            "--set 'model.hidden_layers[0]=10': 'model.hidden_layers[0]' is not a "
            "dotted key such as training.epochs",
            id="index-in-key",
        ),
        pytest.param(
            [".seed=1"],
            "--set '.seed=1': '.seed' is not a dotted key such as training.epochs",
            id="leading-dot",
        ),
        pytest.param(
            ["seed.value=1"],
            "--set seed.value: 'seed' takes a single value, not keys below it; use "
            "--set seed=VALUE",
            id="descend-into-scalar-field",
        ),
        pytest.param(
            ["model.hidden_layers.units=10"],
            "--set model.hidden_layers.units: 'model.hidden_layers' takes a single "
            "value, not keys below it; use --set model.hidden_layers=VALUE",
            id="descend-into-list-field",
        ),
        pytest.param(
            ["training.clipping.value.max=1"],
            "--set training.clipping.value.max: 'training.clipping.value' takes a "
            "single value, not keys below it; use --set training.clipping.value=VALUE",
            id="descend-into-clipping-threshold",
        ),
        pytest.param(
            ["model.activation=elu", "model.activation.alpha.x=1"],
            "--set model.activation.alpha.x: 'model.activation.alpha' takes a single "
            "value, not keys below it; use --set model.activation.alpha=VALUE",
            id="descend-into-component-argument",
        ),
        pytest.param(
            ["training.clipping=5", "training.clipping.value=1"],
            "--set training.clipping.value: 'training.clipping' holds 5, not a mapping",
            id="descend-into-section-holding-a-number",
        ),
        pytest.param(
            ["model.activation=[elu]", "model.activation.alpha=1"],
            "--set model.activation.alpha: 'model.activation' holds ['elu'], not a "
            "mapping",
            id="descend-into-component-holding-a-list",
        ),
        pytest.param(
            ["model.activation=elu", "model.activation.negative_slope=0.1"],
            "model.activation.negative_slope: not an argument of elu; elu takes: alpha",
            id="argument-of-another-component",
        ),
        pytest.param(
            ["training.epochs=[3"],
            "--set training.epochs: not valid YAML: line 1, column 3: expected ',' or "
            "']', but got '<stream end>'",
            id="value-not-yaml",
        ),
        pytest.param(
            ["training.epochs=!!python/object/apply:os.system [ls]"],
            "--set training.epochs: not valid YAML: line 1, column 1: the tag "
            "!!python/object/apply:os.system is not allowed; a config holds plain "
            "YAML data",
            id="value-with-python-tag",
        ),
        pytest.param(
            ["training.epochs=three"],
            "training.epochs: expected a whole number, got 'three'",
            id="value-of-wrong-type",
        ),
        pytest.param(
            ["training.epochs="],
            "training.epochs: expected a whole number, got None",
            id="empty-value-for-required-number",
        ),
    ],
)
def test_bad_overrides(overrides: list[str], message: str) -> None:
    assert config_error({}, overrides) == message


def test_override_against_a_file_without_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, "seed: 5\n")
    assert file_error(path, ["seed.x=1"]) == (
        "--set seed.x: 'seed' takes a single value, not keys below it; use "
        "--set seed=VALUE"
    )


# --------------------------------------------------------------------------
# 4. Defaults, round trip, hashing, names
# --------------------------------------------------------------------------

DEFAULTS = {
    "name": "experiment",
    "seed": 42,
    "data": {
        "dataset": "fashion_mnist",
        "validation_size": 5000,
        "scaling": "unit",
        "train_size": None,
    },
    "model": {
        "hidden_layers": [300, 100],
        "activation": {"name": "relu"},
        "initializer": {"name": "glorot_uniform"},
        "batch_norm": "none",
        "input_batch_norm": False,
        "batch_norm_momentum": 0.99,
    },
    "training": {
        "optimizer": {
            "name": "sgd",
            "learning_rate": 0.01,
            "momentum": 0.0,
            "nesterov": False,
        },
        "clipping": None,
        "loss": "sparse_categorical_crossentropy",
        "epochs": 10,
        "batch_size": 32,
    },
    "diagnostics": False,
}


def test_defaults_are_filled_in() -> None:
    assert build_config({}).to_dict() == DEFAULTS


def test_partial_sections_keep_the_other_defaults() -> None:
    data = build_config({"training": {"epochs": 2}, "data": {"scaling": "standardize"}})
    expected = {
        **DEFAULTS,
        "data": {**DEFAULTS["data"], "scaling": "standardize"},
        "training": {**DEFAULTS["training"], "epochs": 2},
    }
    assert data.to_dict() == expected


RICH_CONFIGS = [
    pytest.param({}, id="all-defaults"),
    pytest.param(
        {
            "name": "rich",
            "seed": 0,
            "data": {
                "validation_size": 1000,
                "train_size": 2000,
                "scaling": "standardize",
            },
            "model": {
                "hidden_layers": [{"units": 50, "repeat": 3}, 7],
                "activation": {"name": "leaky_relu", "alpha": 0.25},
                "initializer": {
                    "name": "variance_scaling",
                    "scale": 2,
                    "mode": "fan_avg",
                },
                "batch_norm": "before",
                "input_batch_norm": True,
                "batch_norm_momentum": 0.9,
            },
            "training": {
                "optimizer": {"name": "adamw", "learning_rate": 3e-4},
                "clipping": {"global_norm": 1},
                "epochs": 1,
                "batch_size": 128,
            },
        },
        id="every-section",
    ),
    pytest.param(
        {"model": {"activation": {"name": "rrelu", "lower": 0.1}}}, id="rrelu-thirds"
    ),
    pytest.param(
        {
            "compare": {
                "activations": ["selu", {"name": "elu", "alpha": 0.5}],
                "seeds": 2,
                "vary": {"model.batch_norm": ["none", "after"]},
                "pairing": "recommended",
            }
        },
        id="with-compare",
    ),
    *[pytest.param(path, id=f"example-{path.stem}") for path in EXAMPLES],
]


def _config_from(source: Any) -> Config:
    return load_config(source) if isinstance(source, Path) else build_config(source)


@pytest.mark.parametrize("source", RICH_CONFIGS)
def test_resolved_yaml_round_trips(source: Any) -> None:
    config = _config_from(source)
    again = config_from_yaml_text(config.to_yaml())
    assert again == config
    assert again.hash == config.hash
    assert again.to_yaml() == config.to_yaml()


def test_to_yaml_is_plain_yaml() -> None:
    config = build_config({"training": {"clipping": {"norm": 2}}})
    assert parse_yaml(config.to_yaml(), "resolved") == config.to_dict()
    assert config.to_dict()["training"]["clipping"] == {"norm": 2.0}


def test_hash_is_sha256_hex_and_short_hash_its_prefix() -> None:
    config = build_config({})
    assert len(config.hash) == 64
    assert int(config.hash, 16) >= 0
    assert config.short_hash == config.hash[:8]


def test_hash_ignores_name_and_compare() -> None:
    plain = build_config({"name": "one"})
    renamed = build_config(
        {"name": "two", "compare": {"seeds": 9, "activations": ["selu"]}}
    )
    assert plain.hash == renamed.hash


@pytest.mark.parametrize(
    "override",
    [
        pytest.param("seed=43", id="seed"),
        pytest.param("data.validation_size=4999", id="validation-size"),
        pytest.param("data.scaling=standardize", id="scaling"),
        pytest.param("data.train_size=1000", id="train-size"),
        pytest.param("model.hidden_layers=[300, 101]", id="hidden-layers"),
        pytest.param("model.activation=elu", id="activation"),
        pytest.param("model.initializer=he_normal", id="initializer"),
        pytest.param("model.batch_norm=after", id="batch-norm"),
        pytest.param("model.input_batch_norm=true", id="input-batch-norm"),
        pytest.param("model.batch_norm_momentum=0.9", id="bn-momentum"),
        pytest.param("training.optimizer=adam", id="optimizer"),
        pytest.param("training.optimizer.learning_rate=0.02", id="learning-rate"),
        pytest.param("training.optimizer.nesterov=true", id="nesterov"),
        pytest.param("training.clipping.value=1", id="clipping"),
        pytest.param("training.epochs=11", id="epochs"),
        pytest.param("training.batch_size=64", id="batch-size"),
    ],
)
def test_hash_changes_with_every_training_relevant_key(override: str) -> None:
    base = {"training": {"optimizer": "sgd"}}
    assert build_config(base, overrides=[override]).hash != build_config(base).hash


def test_hash_changes_with_component_arguments() -> None:
    one = build_config({"model": {"activation": {"name": "elu", "alpha": 1.0}}})
    two = build_config({"model": {"activation": {"name": "elu", "alpha": 0.5}}})
    assert one.hash != two.hash


def test_hash_changes_with_clipping_kind() -> None:
    value = build_config({"training": {"clipping": {"value": 1.0}}})
    norm = build_config({"training": {"clipping": {"norm": 1.0}}})
    assert value.hash != norm.hash


@pytest.mark.parametrize(
    ("one", "two"),
    [
        pytest.param(
            {"model": {"activation": "elu"}},
            {"model": {"activation": {"name": "elu", "alpha": 1.0}}},
            id="bare-name-vs-defaults-spelled-out",
        ),
        pytest.param(
            {"model": {"activation": {"name": "leaky_relu", "alpha": 0.2}}},
            {"model": {"activation": {"name": "leaky_relu", "negative_slope": 0.2}}},
            id="old-alpha-vs-negative-slope",
        ),
        pytest.param(
            {"model": {"hidden_layers": [{"units": 100, "repeat": 3}]}},
            {"model": {"hidden_layers": [100, 100, 100]}},
            id="repeat-vs-written-out",
        ),
        pytest.param(
            {"training": {"optimizer": {"name": "sgd", "learning_rate": 1}}},
            {"training": {"optimizer": {"name": "sgd", "learning_rate": 1.0}}},
            id="int-vs-float-argument",
        ),
        pytest.param(
            {"training": {"clipping": {"value": 1}}},
            {"training": {"clipping": {"value": 1.0, "norm": None}}},
            id="int-vs-float-clipping",
        ),
        pytest.param({}, {"training": {"optimizer": "SGD"}}, id="default-optimizer"),
        pytest.param({}, {"model": {"activation": "relu"}}, id="default-activation"),
    ],
)
def test_hash_is_the_same_for_equivalent_spellings(one: dict, two: dict) -> None:
    assert build_config(one).hash == build_config(two).hash


def test_default_name_is_the_file_stem(tmp_path: Path) -> None:
    path = write(tmp_path, "seed: 1\n", name="my_experiment.yaml")
    assert load_config(path).name == "my_experiment"


def test_name_in_the_file_wins_over_the_stem(tmp_path: Path) -> None:
    path = write(tmp_path, "name: given\n", name="stem.yaml")
    assert load_config(path).name == "given"


def test_name_override_wins_over_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "name: given\n", name="stem.yaml")
    assert load_config(path, ["name=override"]).name == "override"


@pytest.mark.parametrize(
    ("filename", "name"),
    [
        pytest.param("plain.yaml", "plain", id="plain"),
        pytest.param("with space.yaml", "with-space", id="space"),
        pytest.param("my config..v2.yaml", "my-config.v2", id="dot-dot"),
        pytest.param(".hidden.yaml", "hidden", id="leading-dot"),
        pytest.param("_private.yml", "private", id="leading-underscore"),
        pytest.param("é.yaml", "experiment", id="nothing-usable"),
        pytest.param("x" * 150 + ".yaml", "x" * 100, id="long"),
        pytest.param("config", "config", id="no-suffix"),
    ],
)
def test_default_name_is_a_valid_run_name(
    tmp_path: Path, filename: str, name: str
) -> None:
    assert default_name_for(Path(filename)) == name
    path = write(tmp_path, "seed: 1\n", name=filename)
    assert load_config(path).name == name


# --------------------------------------------------------------------------
# 5. The example configs
# --------------------------------------------------------------------------


def test_there_are_example_configs() -> None:
    assert len(EXAMPLES) >= 5


@pytest.mark.parametrize("path", [pytest.param(p, id=p.stem) for p in EXAMPLES])
def test_example_config_is_valid(path: Path) -> None:
    config = load_config(path)
    assert isinstance(config, Config)
    assert config.name
    # Every example sets what it demonstrates: no typos fell back to defaults.
    assert config.to_dict()["model"]["activation"]["name"] in (
        "relu leaky_relu prelu rrelu elu selu gelu swish tanh sigmoid softplus".split()
    )


def test_example_configs_have_distinct_names() -> None:
    configs = [load_config(p) for p in EXAMPLES]
    assert len({c.name for c in configs}) == len(configs)


# --------------------------------------------------------------------------
# 6. The command line
# --------------------------------------------------------------------------


def run_cli(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), prog_name="nnexp")


def test_check_valid_config() -> None:
    path = REPO / "configs" / "elu.yaml"
    result = run_cli("check", str(path))
    config = load_config(path)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"{path}: valid")
    assert result.output == (
        f"{path}: valid (config hash {config.short_hash})\n{config.to_yaml()}"
    )


def test_check_with_overrides() -> None:
    path = REPO / "configs" / "elu.yaml"
    result = run_cli(
        "check",
        str(path),
        "--set",
        "training.epochs=3",
        "--set",
        "model.activation.alpha=0.5",
    )
    assert result.exit_code == 0, result.output
    config = load_config(path, ["training.epochs=3", "model.activation.alpha=0.5"])
    assert result.output == (
        f"{path}: valid (config hash {config.short_hash})\n{config.to_yaml()}"
    )


def test_check_epochs_shortcut() -> None:
    path = REPO / "configs" / "elu.yaml"
    result = run_cli("check", str(path), "--epochs", "4")
    assert result.exit_code == 0, result.output
    assert load_config(path, ["training.epochs=4"]).to_yaml() in result.output


@pytest.mark.parametrize(
    ("text", "overrides", "message"),
    [
        pytest.param(
            "training:\n  epochs: 0\n",
            (),
            "training.epochs: must be at least 1, got 0",
            id="out-of-range",
        ),
        pytest.param(
            "trainig: {}\n",
            (),
            "unknown key 'trainig' (did you mean 'training'?); allowed at the top "
            f"level: {TOP_KEYS}",
            id="unknown-key",
        ),
        pytest.param(
            "model:\n  activation: reluu\n",
            (),
            "model.activation: unknown activation 'reluu' (did you mean 'relu'?); "
            f"allowed: {ACTIVATIONS}",
            id="unknown-activation",
        ),
        pytest.param(
            '!!python/object/apply:os.system ["true"]\n',
            (),
            "{path}: not valid YAML: line 1, column 1: the tag "
            "!!python/object/apply:os.system is not allowed; a config holds plain "
            "YAML data",
            id="python-tag",
        ),
        pytest.param(
            "seed: 1\n",
            ("--set", "training.epoch=3"),
            "--set training.epoch: unknown key 'training.epoch' (did you mean "
            f"'training.epochs'?); allowed in 'training': {TRAINING_KEYS}",
            id="bad-override",
        ),
        pytest.param(
            "",
            (),
            "{path}: the file is empty; a config is a YAML mapping",
            id="empty-file",
        ),
    ],
)
def test_check_invalid_config(
    tmp_path: Path, text: str, overrides: tuple[str, ...], message: str
) -> None:
    path = write(tmp_path, text)
    result = run_cli("check", str(path), *overrides)
    assert result.exit_code == 2
    assert result.output == "error: " + message.replace("{path}", str(path)) + "\n"
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_check_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.yaml"
    result = run_cli("check", str(path))
    assert result.exit_code == 2
    assert result.output == f"error: config file not found: {path}\n"


def test_check_billion_laughs_is_one_error_line(tmp_path: Path) -> None:
    path = write(tmp_path, BILLION_LAUGHS)
    result = run_cli("check", str(path))
    assert result.exit_code == 2
    assert result.output == (
        f"error: {path}: the YAML expands to more than 20,000 values (nested "
        "aliases?); a config is a small mapping\n"
    )


def _subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_importing_the_cli_does_not_import_tensorflow() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import nnexp.cli, sys; print('tensorflow' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=_subprocess_env(),
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "False\n"


def test_check_does_not_import_tensorflow() -> None:
    code = (
        "import sys\n"
        "from nnexp.cli import cli\n"
        "cli(['check', 'configs/quickstart.yaml'], standalone_mode=False)\n"
        "print('tensorflow' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env=_subprocess_env(),
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("False\n")
    assert "tensorflow" not in result.stderr.lower()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "training:\n  batch_size: 0\n",
            "training.batch_size: must be at least 1, got 0",
            id="bad-value",
        ),
        pytest.param(
            "a: [1, 2\n",
            "{path}: not valid YAML: line 2, column 1: expected ',' or ']', but got "
            "'<stream end>'",
            id="bad-yaml",
        ),
    ],
)
def test_check_in_a_subprocess_exits_2_without_traceback(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, text)
    result = subprocess.run(
        [sys.executable, "-m", "nnexp", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=_subprocess_env(),
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == "error: " + message.replace("{path}", str(path)) + "\n"
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("model:\n  batch_norm: false\n", id="false"),
        pytest.param("model:\n  batch_norm: off\n", id="yaml-1.1-off"),
        pytest.param("model:\n  batch_norm: null\n", id="null"),
    ],
)
def test_batch_norm_spelled_false_or_null_means_none(tmp_path: Path, text: str) -> None:
    assert load_config(write(tmp_path, text)).model.batch_norm == "none"


def test_sections_with_every_key_commented_out_take_the_defaults(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "data:\n  # train_size: 1000\nmodel:\ntraining:\n")
    config = load_config(path)
    assert config.data == build_config({}).data
    assert config.model == build_config({}).model
    assert config.training == build_config({}).training


def test_clipping_false_means_no_clipping() -> None:
    assert build_config({"training": {"clipping": False}}).training.clipping is None


@pytest.mark.parametrize(
    ("text", "value"),
    [
        pytest.param("1e-3", 0.001, id="no-dot"),
        pytest.param("2E+2", 200.0, id="capital-e"),
        pytest.param("1.5e-4", 0.00015, id="dot-and-exponent"),
        pytest.param(".5e-1", 0.05, id="leading-dot"),
    ],
)
def test_exponent_floats_without_a_dot_are_numbers(
    tmp_path: Path, text: str, value: float
) -> None:
    # YAML 1.1 (PyYAML) would read 1e-3 as a string.
    config = load_config(
        write(
            tmp_path, f"training:\n  optimizer: {{name: adam, learning_rate: {text}}}\n"
        )
    )
    assert config.training.optimizer["learning_rate"] == value
    assert (
        build_config(
            {}, overrides=["seed=1", f"training.optimizer.learning_rate={text}"]
        ).training.optimizer["learning_rate"]
        == value
    )


def test_a_network_too_large_for_the_memory_is_refused() -> None:
    assert config_error({"model": {"hidden_layers": [100_000, 100_000]}}) == (
        "model.hidden_layers: these layers would need 10,079,600,010 Dense "
        "weights and biases; at most 100,000,000 are allowed (a 100,000 x "
        "100,000 kernel alone is 40 GB)"
    )
