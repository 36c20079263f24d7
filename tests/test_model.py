"""Tests of nnexp.model: what a config builds, inspected on the real Keras objects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from nnexp.config import load_config
from nnexp.model import (
    RReLU,
    build_model,
    count_parameters,
    describe_layers,
    load_model,
)

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def layer_types(model: keras.Model) -> list[str]:
    return [type(layer).__name__ for layer in model.layers]


def hidden_activation(tiny_config: Any, activation: Any, units: int = 8) -> Any:
    model = build_model(
        tiny_config({"model": {"hidden_layers": [units], "activation": activation}})
    )
    return model.get_layer("activation_1")


# --------------------------------------------------------------------------
# Parameter counts of the reference models


REFERENCE_COUNTS = {
    "bn_after": (271_346, 268_978, 2_368),
    "bn_before": (270_946, 268_578, 2_368),
}


@pytest.mark.parametrize("name", list(REFERENCE_COUNTS))
def test_reference_model_parameter_counts(name: str) -> None:
    total, trainable, non_trainable = REFERENCE_COUNTS[name]
    model = build_model(load_config(CONFIGS / f"{name}.yaml"))

    assert count_parameters(model) == {
        "total_params": total,
        "trainable_params": trainable,
        "non_trainable_params": non_trainable,
    }
    # Keras agrees, and the per-layer rows add up to the same totals.
    assert model.count_params() == total
    rows = describe_layers(model)
    assert sum(row["params"] for row in rows) == total
    assert sum(row["trainable_params"] for row in rows) == trainable
    assert sum(row["non_trainable_params"] for row in rows) == non_trainable


def test_reference_model_layer_table() -> None:
    model = build_model(load_config(CONFIGS / "bn_after.yaml"))
    rows = {row["name"]: row for row in describe_layers(model)}

    assert rows["input_bn"]["params"] == 4 * 784
    assert rows["input_bn"]["trainable_params"] == 2 * 784
    assert rows["dense_1"]["output_shape"] == [None, 300]
    assert rows["dense_1"]["params"] == 784 * 300 + 300
    assert rows["output"]["output_shape"] == [None, 10]
    bn_variables = {
        v["name"].rsplit("/", 1)[-1]: v["trainable"] for v in rows["bn_1"]["variables"]
    }
    assert bn_variables == {
        "gamma": True,
        "beta": True,
        "moving_mean": False,
        "moving_variance": False,
    }


# --------------------------------------------------------------------------
# Batch normalization placement


@pytest.mark.parametrize(
    ("placement", "input_bn", "expected"),
    [
        pytest.param(
            "none",
            False,
            ["Flatten", "Dense", "ELU", "Dense", "ELU", "Dense"],
            id="none",
        ),
        pytest.param(
            "none",
            True,
            ["Flatten", "BatchNormalization", "Dense", "ELU", "Dense", "ELU", "Dense"],
            id="none+input_bn",
        ),
        pytest.param(
            "after",
            False,
            ["Flatten"] + ["Dense", "ELU", "BatchNormalization"] * 2 + ["Dense"],
            id="after",
        ),
        pytest.param(
            "after",
            True,
            ["Flatten", "BatchNormalization"]
            + ["Dense", "ELU", "BatchNormalization"] * 2
            + ["Dense"],
            id="after+input_bn",
        ),
        pytest.param(
            "before",
            False,
            ["Flatten"] + ["Dense", "BatchNormalization", "ELU"] * 2 + ["Dense"],
            id="before",
        ),
        pytest.param(
            "before",
            True,
            ["Flatten", "BatchNormalization"]
            + ["Dense", "BatchNormalization", "ELU"] * 2
            + ["Dense"],
            id="before+input_bn",
        ),
    ],
)
def test_batch_norm_placement(
    tiny_config: Any, placement: str, input_bn: bool, expected: list[str]
) -> None:
    config = tiny_config(
        {
            "model": {
                "hidden_layers": [16, 8],
                "activation": "elu",
                "batch_norm": placement,
                "input_batch_norm": input_bn,
                "batch_norm_momentum": 0.9,
            }
        }
    )
    model = build_model(config)

    assert layer_types(model) == expected
    assert ("input_bn" in [layer.name for layer in model.layers]) is input_bn
    hidden_dense = [model.get_layer("dense_1"), model.get_layer("dense_2")]
    # BN right after Dense makes the Dense bias redundant; elsewhere it stays.
    assert all(d.use_bias is (placement != "before") for d in hidden_dense)
    assert model.get_layer("output").use_bias
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            assert layer.momentum == pytest.approx(0.9)


def test_batch_norm_default_momentum(tiny_config: Any) -> None:
    model = build_model(tiny_config({"model": {"batch_norm": "after"}}))
    assert model.get_layer("bn_1").momentum == pytest.approx(0.99)


def test_hidden_layer_repeat_and_output(tiny_config: Any) -> None:
    model = build_model(
        tiny_config({"model": {"hidden_layers": [{"units": 5, "repeat": 4}, 3]}})
    )
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [d.units for d in dense] == [5, 5, 5, 5, 3, 10]
    assert dense[-1].name == "output"
    assert dense[-1].activation.__name__ == "softmax"
    # Hidden activations are their own layers, never fused into Dense.
    assert all(d.activation.__name__ == "linear" for d in dense[:-1])


# --------------------------------------------------------------------------
# Activations


@pytest.mark.parametrize(
    ("activation", "keras_name"),
    [
        pytest.param("relu", "relu", id="relu"),
        pytest.param("selu", "selu", id="selu"),
        pytest.param("gelu", "gelu", id="gelu"),
        pytest.param("swish", "silu", id="swish"),
        pytest.param("silu", "silu", id="silu-alias"),
        pytest.param("tanh", "tanh", id="tanh"),
        pytest.param("sigmoid", "sigmoid", id="sigmoid"),
        pytest.param("logistic", "sigmoid", id="logistic-alias"),
        pytest.param("softplus", "softplus", id="softplus"),
    ],
)
def test_function_activations_become_activation_layers(
    tiny_config: Any, activation: str, keras_name: str
) -> None:
    layer = hidden_activation(tiny_config, activation)
    assert type(layer) is keras.layers.Activation
    assert layer.get_config()["activation"] == keras_name
    # The layer computes that very function.
    x = np.linspace(-3, 3, 13, dtype=np.float32).reshape(1, -1)
    expected = keras.activations.get(keras_name)(x)
    np.testing.assert_allclose(np.asarray(layer(x)), np.asarray(expected), rtol=1e-6)


@pytest.mark.parametrize(
    ("spec", "slope"),
    [
        pytest.param("leaky_relu", 0.3, id="default"),
        pytest.param({"name": "leaky_relu", "negative_slope": 0.2}, 0.2, id="slope"),
        pytest.param({"name": "leaky_relu", "alpha": 0.05}, 0.05, id="alpha-alias"),
    ],
)
def test_leaky_relu_negative_slope(tiny_config: Any, spec: Any, slope: float) -> None:
    layer = hidden_activation(tiny_config, spec)
    assert type(layer) is keras.layers.LeakyReLU
    assert layer.negative_slope == pytest.approx(slope)
    out = np.asarray(layer(np.array([[-2.0, 3.0]], np.float32)))
    np.testing.assert_allclose(out, [[-2.0 * slope, 3.0]], rtol=1e-6)


@pytest.mark.parametrize("alpha", [1.0, 0.5], ids=["alpha=1", "alpha=0.5"])
def test_elu_alpha(tiny_config: Any, alpha: float) -> None:
    layer = hidden_activation(tiny_config, {"name": "elu", "alpha": alpha})
    assert type(layer) is keras.layers.ELU
    assert layer.alpha == pytest.approx(alpha)
    out = float(np.asarray(layer(np.array([[-50.0]], np.float32)))[0, 0])
    assert out == pytest.approx(-alpha, rel=1e-5)


def test_prelu_alphas_are_trainable_parameters(tiny_config: Any) -> None:
    plain = build_model(tiny_config({"model": {"hidden_layers": [300, 100]}}))
    config = tiny_config(
        {
            "model": {
                "hidden_layers": [300, 100],
                "activation": {"name": "prelu", "initial_slope": 0.25},
            }
        }
    )
    model = build_model(config)

    first = model.get_layer("activation_1")
    assert type(first) is keras.layers.PReLU
    np.testing.assert_allclose(np.asarray(first.alpha), np.full(300, 0.25))
    # One learned slope per unit of each hidden layer, all trainable.
    counts = count_parameters(model)
    assert counts["total_params"] == count_parameters(plain)["total_params"] + 400
    assert counts["trainable_params"] == counts["total_params"]
    rows = {row["name"]: row for row in describe_layers(model)}
    assert rows["activation_1"]["params"] == 300
    assert rows["activation_2"]["trainable_params"] == 100


def test_rrelu_random_slopes_in_training_mean_slope_at_inference(
    tiny_config: Any,
) -> None:
    spec = {"name": "rrelu", "lower": 0.1, "upper": 0.3}
    layer = hidden_activation(tiny_config, spec)
    assert type(layer) is RReLU
    assert (layer.lower, layer.upper) == (pytest.approx(0.1), pytest.approx(0.3))
    negative = -np.ones((256, 16), np.float32)

    slopes = -np.asarray(layer(negative, training=True))
    assert slopes.min() >= 0.1 - 1e-6 and slopes.max() <= 0.3 + 1e-6
    assert len(np.unique(slopes)) > 1000  # one random slope per element
    assert abs(slopes.mean() - 0.2) < 0.01
    again = -np.asarray(layer(negative, training=True))
    assert not np.array_equal(slopes, again)  # redrawn on every call

    inference = -np.asarray(layer(negative, training=False))
    np.testing.assert_allclose(inference, 0.2, rtol=1e-6)
    positive = np.asarray(layer(-negative, training=True))
    np.testing.assert_array_equal(positive, 1.0)  # positives pass unchanged


def test_rrelu_defaults_and_parameter_free(tiny_config: Any) -> None:
    layer = hidden_activation(tiny_config, "rrelu")
    assert layer.lower == pytest.approx(1 / 8)
    assert layer.upper == pytest.approx(1 / 3)
    assert layer.weights == []
    model = build_model(tiny_config({"model": {"activation": "rrelu"}}))
    relu = build_model(tiny_config())
    assert count_parameters(model) == count_parameters(relu)


def test_rrelu_rejects_lower_above_upper() -> None:
    with pytest.raises(ValueError, match="lower <= upper"):
        RReLU(lower=0.5, upper=0.2)


def test_model_with_rrelu_saves_and_loads_in_safe_mode(
    tiny_config: Any, tmp_path: Path
) -> None:
    config = tiny_config(
        {
            "model": {
                "hidden_layers": [16],
                "activation": {"name": "rrelu", "lower": 0.05, "upper": 0.25},
                "batch_norm": "after",
            }
        }
    )
    model = build_model(config)
    path = tmp_path / "model.keras"
    model.save(path)

    loaded = load_model(str(path))
    layer = loaded.get_layer("activation_1")
    assert type(layer) is RReLU
    assert (layer.lower, layer.upper) == (pytest.approx(0.05), pytest.approx(0.25))
    images = np.random.default_rng(0).random((4, 28, 28), dtype=np.float32) - 0.5
    np.testing.assert_array_equal(np.asarray(loaded(images)), np.asarray(model(images)))


# --------------------------------------------------------------------------
# Initializers


@pytest.mark.parametrize(
    ("name", "keras_class"),
    [
        pytest.param(name, cls, id=name)
        for name, cls in [
            ("glorot_uniform", keras.initializers.GlorotUniform),
            ("glorot_normal", keras.initializers.GlorotNormal),
            ("he_uniform", keras.initializers.HeUniform),
            ("he_normal", keras.initializers.HeNormal),
            ("lecun_uniform", keras.initializers.LecunUniform),
            ("lecun_normal", keras.initializers.LecunNormal),
            ("orthogonal", keras.initializers.Orthogonal),
            ("identity", keras.initializers.Identity),
            ("zeros", keras.initializers.Zeros),
            ("ones", keras.initializers.Ones),
            ("constant", keras.initializers.Constant),
            ("random_normal", keras.initializers.RandomNormal),
            ("truncated_normal", keras.initializers.TruncatedNormal),
            ("random_uniform", keras.initializers.RandomUniform),
            ("variance_scaling", keras.initializers.VarianceScaling),
        ]
    ],
)
def test_initializer_names_map_to_keras_classes(
    tiny_config: Any, name: str, keras_class: type
) -> None:
    model = build_model(tiny_config({"model": {"initializer": name}}))
    for layer_name in ("dense_1", "dense_2"):
        initializer = model.get_layer(layer_name).kernel_initializer
        assert type(initializer) is keras_class
    # A fresh object per layer, not one shared instance.
    assert (
        model.get_layer("dense_1").kernel_initializer
        is not model.get_layer("dense_2").kernel_initializer
    )


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param(
            {
                "name": "variance_scaling",
                "scale": 2.0,
                "mode": "fan_avg",
                "distribution": "uniform",
            },
            {"scale": 2.0, "mode": "fan_avg", "distribution": "uniform"},
            id="variance_scaling-fan_avg-uniform",
        ),
        pytest.param(
            {
                "name": "variance_scaling",
                "scale": 0.5,
                "mode": "fan_out",
                "distribution": "untruncated_normal",
            },
            {"scale": 0.5, "mode": "fan_out", "distribution": "untruncated_normal"},
            id="variance_scaling-fan_out-untruncated",
        ),
        pytest.param(
            "variance_scaling",
            {"scale": 1.0, "mode": "fan_in", "distribution": "truncated_normal"},
            id="variance_scaling-defaults",
        ),
        pytest.param(
            {"name": "orthogonal", "gain": 3.0}, {"gain": 3.0}, id="orthogonal-gain"
        ),
        pytest.param(
            {"name": "random_normal", "mean": 0.1, "stddev": 0.2},
            {"mean": 0.1, "stddev": 0.2},
            id="random_normal",
        ),
        pytest.param(
            {"name": "truncated_normal", "stddev": 0.01},
            {"mean": 0.0, "stddev": 0.01},
            id="truncated_normal",
        ),
        pytest.param(
            {"name": "random_uniform", "minval": -0.2, "maxval": 0.1},
            {"minval": -0.2, "maxval": 0.1},
            id="random_uniform",
        ),
        pytest.param({"name": "constant", "value": 0.5}, {"value": 0.5}, id="constant"),
    ],
)
def test_initializer_arguments_reach_keras(
    tiny_config: Any, spec: Any, expected: dict[str, Any]
) -> None:
    model = build_model(tiny_config({"model": {"initializer": spec}}))
    config = model.get_layer("dense_1").kernel_initializer.get_config()
    for key, value in expected.items():
        if isinstance(value, float):
            assert config[key] == pytest.approx(value), key
        else:
            assert config[key] == value, key


def test_initializer_values_land_in_the_weights(tiny_config: Any) -> None:
    constant = build_model(
        tiny_config({"model": {"initializer": {"name": "constant", "value": 0.5}}})
    )
    np.testing.assert_array_equal(np.asarray(constant.get_layer("dense_2").kernel), 0.5)

    # Identity's get_config() omits gain in Keras 3; check the object and kernel.
    identity = build_model(
        tiny_config(
            {
                "model": {
                    "hidden_layers": [8, 8],
                    "initializer": {"name": "identity", "gain": 2.0},
                }
            }
        )
    )
    layer = identity.get_layer("dense_2")
    assert layer.kernel_initializer.gain == pytest.approx(2.0)
    np.testing.assert_array_equal(np.asarray(layer.kernel), 2.0 * np.eye(8))

    orthogonal = build_model(
        tiny_config({"model": {"initializer": {"name": "orthogonal", "gain": 3.0}}})
    )
    kernel = np.asarray(orthogonal.get_layer("dense_1").kernel)  # 784 x 32
    np.testing.assert_allclose(kernel.T @ kernel, 9.0 * np.eye(32), atol=1e-3)

    # He normal: std sqrt(2 / fan_in) (a truncated normal, so slightly less).
    he = build_model(
        tiny_config({"model": {"hidden_layers": [300], "initializer": "he_normal"}})
    )
    std = float(np.asarray(he.get_layer("dense_1").kernel).std())
    assert std == pytest.approx(np.sqrt(2 / 784), rel=0.05)


def test_output_layer_keeps_keras_default_initializer(tiny_config: Any) -> None:
    model = build_model(tiny_config({"model": {"initializer": "zeros"}}))
    output = model.get_layer("output")
    assert type(output.kernel_initializer) is keras.initializers.GlorotUniform
