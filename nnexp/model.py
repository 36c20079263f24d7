"""Building the Keras model a config describes.

The network is always::

    Input(28, 28) -> Flatten -> [BatchNormalization]            (input_batch_norm)
      -> per hidden layer, by batch_norm:
           none:   Dense -> activation
           after:  Dense -> activation -> BatchNormalization
           before: Dense(use_bias=False) -> BatchNormalization -> activation
      -> Dense(10, softmax)

The activation is always its own layer (not ``Dense(activation=...)``). The
computation is the same, and it keeps every hidden layer's pre-activations
addressable for diagnostics and puts parametric activations (PReLU, RReLU)
into the summary with their parameters.

Importing this module imports Keras; the CLI imports it only when a model is
really needed.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers

from nnexp.config import Config, ModelConfig

NUM_CLASSES = 10
IMAGE_SHAPE = (28, 28)

# Activations that are parameter-free functions map to Keras' own names.
_KERAS_ACTIVATION_NAMES = {
    "relu": "relu",
    "selu": "selu",
    "gelu": "gelu",
    "swish": "silu",
    "tanh": "tanh",
    "sigmoid": "sigmoid",
    "softplus": "softplus",
}


@keras.saving.register_keras_serializable(package="nnexp")
class RReLU(layers.Layer):
    """Randomized leaky ReLU (Xu et al., 2015, "Empirical Evaluation of Rectified
    Activations in Convolutional Network").

    While training, every negative input is multiplied by its own slope drawn
    uniformly from ``[lower, upper]``; at inference the slope is fixed to the
    mean ``(lower + upper) / 2``. Keras has no such layer.

    Args:
        lower: smallest random slope. Defaults to 1/8.
        upper: largest random slope. Defaults to 1/3.
        seed: seed of the layer's random generator; None draws one from Keras'
            global seed, which ``keras.utils.set_random_seed`` fixes.

    >>> RReLU(lower=0.1, upper=0.3)(keras.ops.array([-1.0, 2.0]))  # inference
    """

    def __init__(
        self,
        lower: float = 1 / 8,
        upper: float = 1 / 3,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not 0.0 <= lower <= upper:
            raise ValueError(
                f"RReLU needs 0 <= lower <= upper, got lower={lower}, upper={upper}"
            )
        self.lower = float(lower)
        self.upper = float(upper)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        if training:
            slopes = keras.random.uniform(
                keras.ops.shape(inputs),
                minval=self.lower,
                maxval=self.upper,
                dtype=inputs.dtype,
                seed=self.seed_generator,
            )
        else:
            slopes = (self.lower + self.upper) / 2.0
        return keras.ops.where(inputs >= 0, inputs, inputs * slopes)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"lower": self.lower, "upper": self.upper, "seed": self.seed})
        return config


CUSTOM_OBJECTS = {"nnexp>RReLU": RReLU}


def make_activation_layer(activation: dict[str, Any], name: str) -> layers.Layer:
    """Create the layer for a resolved activation spec (``{"name": ..., ...}``)."""
    kind = activation["name"]
    if kind == "leaky_relu":
        return layers.LeakyReLU(negative_slope=activation["negative_slope"], name=name)
    if kind == "prelu":
        initial = keras.initializers.Constant(activation["initial_slope"])
        return layers.PReLU(alpha_initializer=initial, name=name)
    if kind == "rrelu":
        return RReLU(lower=activation["lower"], upper=activation["upper"], name=name)
    if kind == "elu":
        return layers.ELU(alpha=activation["alpha"], name=name)
    if kind in _KERAS_ACTIVATION_NAMES:
        return layers.Activation(_KERAS_ACTIVATION_NAMES[kind], name=name)
    raise ValueError(f"no layer for activation {kind!r}")


def make_initializer(initializer: dict[str, Any]) -> keras.initializers.Initializer:
    """Create a fresh Keras initializer from a resolved spec.

    A new object per layer: Keras warns when one seeded initializer instance is
    reused, and unseeded instances draw from the global seed either way.
    """
    arguments = {k: v for k, v in initializer.items() if k != "name"}
    return keras.initializers.get(
        {"class_name": initializer["name"], "config": arguments}
    )


def build_model(config: Config | ModelConfig) -> keras.Sequential:
    """Build (but do not compile) the network a config describes.

    Args:
        config: the whole config or just its ``model`` section.

    Returns:
        A built ``keras.Sequential`` named after the config, with readable layer
        names: ``input_bn``, ``dense_1``, ``bn_1``, ``activation_1``, ...,
        ``output``.

    Example:
        >>> from nnexp.config import build_config
        >>> build_model(build_config({"model": {"batch_norm": "after",
        ...     "input_batch_norm": True}})).count_params()
        271346
    """
    model_config = config.model if isinstance(config, Config) else config
    name = config.name if isinstance(config, Config) else "nnexp_model"
    momentum = model_config.batch_norm_momentum
    placement = model_config.batch_norm

    stack: list[layers.Layer] = [
        keras.Input(shape=IMAGE_SHAPE, name="image"),
        layers.Flatten(name="flatten"),
    ]
    if model_config.input_batch_norm:
        stack.append(layers.BatchNormalization(momentum=momentum, name="input_bn"))

    for index, units in enumerate(model_config.hidden_units, start=1):
        dense = layers.Dense(
            units,
            kernel_initializer=make_initializer(model_config.initializer),
            # BN right after the Dense layer subtracts the mean and adds its own
            # beta, so a bias there would be a wasted, redundant parameter.
            use_bias=placement != "before",
            name=f"dense_{index}",
        )
        activation = make_activation_layer(
            model_config.activation, name=f"activation_{index}"
        )
        batch_norm = layers.BatchNormalization(momentum=momentum, name=f"bn_{index}")
        if placement == "before":
            stack += [dense, batch_norm, activation]
        elif placement == "after":
            stack += [dense, activation, batch_norm]
        else:
            stack += [dense, activation]

    stack.append(layers.Dense(NUM_CLASSES, activation="softmax", name="output"))
    return keras.Sequential(stack, name=name.replace(".", "_").replace("-", "_"))


def load_model(path: str) -> keras.Model:
    """Load a saved ``model.keras`` in Keras' safe mode (no code runs on load)."""
    return keras.saving.load_model(
        path, custom_objects=CUSTOM_OBJECTS, safe_mode=True, compile=False
    )


def count_parameters(model: keras.Model) -> dict[str, int]:
    """Total, trainable and non-trainable parameter counts of a built model."""
    trainable = sum(int(keras.ops.size(v)) for v in model.trainable_weights)
    non_trainable = sum(int(keras.ops.size(v)) for v in model.non_trainable_weights)
    return {
        "total_params": trainable + non_trainable,
        "trainable_params": trainable,
        "non_trainable_params": non_trainable,
    }


def describe_layers(model: keras.Model) -> list[dict[str, Any]]:
    """One row per layer: name, type, output shape, parameters, trainable."""
    rows = []
    for layer in model.layers:
        trainable = sum(int(keras.ops.size(v)) for v in layer.trainable_weights)
        total = sum(int(keras.ops.size(v)) for v in layer.weights)
        shape = tuple(layer.output.shape) if hasattr(layer, "output") else None
        rows.append(
            {
                "name": layer.name,
                "type": type(layer).__name__,
                "output_shape": [None if d is None else int(d) for d in shape]
                if shape
                else None,
                "params": total,
                "trainable_params": trainable,
                "non_trainable_params": total - trainable,
                "variables": [
                    {
                        "name": variable.path,
                        "shape": [int(d) for d in variable.shape],
                        "trainable": bool(variable.trainable),
                    }
                    for variable in layer.weights
                ],
            }
        )
    return rows
