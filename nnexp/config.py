"""The experiment config: schema, safe YAML loading, overrides and hashing.

A config is a small YAML file. :func:`load_config` reads it with a safe loader,
applies ``--set`` overrides, checks every key and value, fills in the defaults
and returns an immutable :class:`Config`. Nothing here imports TensorFlow, so
config errors are reported instantly.

Activations, initializers and optimizers are "named components": either a bare
name (``elu``) or a mapping with a ``name`` and that component's own arguments
(``{name: leaky_relu, negative_slope: 0.2}``). After validation they are always
stored as a mapping with every argument filled in, which is what the resolved
``config.yaml`` of a run shows.
"""

from __future__ import annotations

import copy
import datetime
import difflib
import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from nnexp.errors import ConfigError

MAX_CONFIG_BYTES = 1_000_000
"""Configs are hand-written YAML; anything larger is refused before parsing."""

MAX_YAML_NODES = 20_000
"""Upper bound on the YAML tree size once aliases are expanded (alias bombs)."""

MAX_YAML_DEPTH = 50
"""Upper bound on the YAML nesting, aliases expanded; a config is about 7 deep."""

MAX_HIDDEN_LAYERS = 1000

MAX_DENSE_PARAMETERS = 100_000_000
"""Weights and biases of the Dense layers a config may ask for: 0.4 GB of
float32, several times that with gradients and optimizer state. Far above any
network these experiments need, far below what would exhaust the memory."""

_INPUT_UNITS, _OUTPUT_UNITS = 28 * 28, 10

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
"""A valid run name, matched with ``fullmatch`` (``$`` would allow a final newline)."""

# --------------------------------------------------------------------------
# Named components: activations, initializers, optimizers
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Arg:
    """One argument of a named component, with its default and allowed values.

    Attributes:
        default: the value used when the config leaves the argument out.
        kind: ``float``, ``int``, ``bool`` or ``choice``.
        choices: the allowed strings when ``kind`` is ``choice``.
        minimum: the smallest allowed number, or None.
        exclusive_minimum: whether ``minimum`` itself is excluded.
        maximum: the largest allowed number, or None.
    """

    default: Any
    kind: str = "float"
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    exclusive_minimum: bool = False
    maximum: float | None = None


@dataclass(frozen=True)
class Component:
    """A family of named components (e.g. activations) and their arguments."""

    what: str
    args: dict[str, dict[str, Arg]]
    aliases: dict[str, str] = field(default_factory=dict)
    arg_aliases: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return list(self.args)


_POSITIVE = {"minimum": 0.0, "exclusive_minimum": True}
_NON_NEGATIVE = {"minimum": 0.0}

ACTIVATIONS = Component(
    what="activation",
    args={
        "relu": {},
        "leaky_relu": {"negative_slope": Arg(0.3, **_NON_NEGATIVE)},
        "prelu": {"initial_slope": Arg(0.0)},
        "rrelu": {
            "lower": Arg(1 / 8, **_NON_NEGATIVE, maximum=1.0),
            "upper": Arg(1 / 3, **_NON_NEGATIVE, maximum=1.0),
        },
        "elu": {"alpha": Arg(1.0, **_NON_NEGATIVE)},
        "selu": {},
        "gelu": {},
        "swish": {},
        "tanh": {},
        "sigmoid": {},
        "softplus": {},
    },
    aliases={"silu": "swish", "logistic": "sigmoid"},
    # Keras 2 called the leaky ReLU slope ``alpha``; accept it under its old name.
    arg_aliases={"leaky_relu": {"alpha": "negative_slope"}},
)

_VARIANCE_SCALING_ARGS = {
    "scale": Arg(1.0, **_POSITIVE),
    "mode": Arg("fan_in", kind="choice", choices=("fan_in", "fan_out", "fan_avg")),
    "distribution": Arg(
        "truncated_normal",
        kind="choice",
        choices=("truncated_normal", "untruncated_normal", "uniform"),
    ),
}

INITIALIZERS = Component(
    what="initializer",
    args={
        "glorot_uniform": {},
        "glorot_normal": {},
        "he_uniform": {},
        "he_normal": {},
        "lecun_uniform": {},
        "lecun_normal": {},
        "orthogonal": {"gain": Arg(1.0, **_POSITIVE)},
        "identity": {"gain": Arg(1.0, **_POSITIVE)},
        "zeros": {},
        "ones": {},
        "constant": {"value": Arg(0.0)},
        "random_normal": {"mean": Arg(0.0), "stddev": Arg(0.05, **_POSITIVE)},
        "truncated_normal": {"mean": Arg(0.0), "stddev": Arg(0.05, **_POSITIVE)},
        "random_uniform": {"minval": Arg(-0.05), "maxval": Arg(0.05)},
        "variance_scaling": _VARIANCE_SCALING_ARGS,
    },
)

_ADAM_ARGS = {
    "learning_rate": Arg(0.001, **_POSITIVE),
    "beta_1": Arg(0.9, **_NON_NEGATIVE, maximum=1.0),
    "beta_2": Arg(0.999, **_NON_NEGATIVE, maximum=1.0),
    "epsilon": Arg(1e-7, **_POSITIVE),
}

OPTIMIZERS = Component(
    what="optimizer",
    args={
        "sgd": {
            "learning_rate": Arg(0.01, **_POSITIVE),
            "momentum": Arg(0.0, **_NON_NEGATIVE, maximum=1.0),
            "nesterov": Arg(False, kind="bool"),
        },
        "adam": {**_ADAM_ARGS, "amsgrad": Arg(False, kind="bool")},
        "adamw": {**_ADAM_ARGS, "weight_decay": Arg(0.004, **_NON_NEGATIVE)},
        "nadam": dict(_ADAM_ARGS),
        "rmsprop": {
            "learning_rate": Arg(0.001, **_POSITIVE),
            "rho": Arg(0.9, **_NON_NEGATIVE, maximum=1.0),
            "momentum": Arg(0.0, **_NON_NEGATIVE, maximum=1.0),
            "epsilon": Arg(1e-7, **_POSITIVE),
            "centered": Arg(False, kind="bool"),
        },
    },
)


def _describe(value: Any) -> str:
    """Render a user-given value for an error message, shortened if long."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return text


def _suggest(word: str, options: list[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest option, or ``""``."""
    close = difflib.get_close_matches(str(word), options, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _check_arg(path: str, value: Any, arg: Arg) -> Any:
    """Check one component argument and return it in its canonical type."""
    if arg.kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"{path}: expected true or false, got {_describe(value)}")
        return value
    if arg.kind == "choice":
        if value not in arg.choices:
            allowed = ", ".join(arg.choices)
            hint = _suggest(value, list(arg.choices)) if isinstance(value, str) else ""
            raise ValueError(
                f"{path}: {_describe(value)} is not allowed{hint}; allowed: {allowed}"
            )
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{path}: expected a number, got {_describe(value)}")
    try:
        number = float(value)
    except OverflowError:  # an integer with hundreds of digits
        number = math.inf
    if not math.isfinite(number):
        raise ValueError(f"{path}: expected a finite number, got {_describe(value)}")
    shown = _describe(value)
    if arg.minimum is not None:
        if arg.exclusive_minimum and number <= arg.minimum:
            raise ValueError(
                f"{path}: must be greater than {arg.minimum:g}, got {shown}"
            )
        if not arg.exclusive_minimum and number < arg.minimum:
            raise ValueError(f"{path}: must be at least {arg.minimum:g}, got {shown}")
    if arg.maximum is not None and number > arg.maximum:
        raise ValueError(f"{path}: must be at most {arg.maximum:g}, got {shown}")
    return number


def resolve_component(component: Component, value: Any, path: str) -> dict[str, Any]:
    """Turn a bare name or a ``{name: ..., arg: ...}`` mapping into a full mapping.

    Args:
        component: the family (activations, initializers or optimizers).
        value: what the config gave.
        path: the dotted key, for error messages.

    Returns:
        ``{"name": canonical_name, **every_argument}`` with defaults filled in.

    Raises:
        ValueError: with a message naming ``path``, the value and what is allowed.
    """
    if isinstance(value, str):
        name, given = value, {}
    elif isinstance(value, dict):
        if "name" not in value:
            raise ValueError(f"{path}: a mapping needs a 'name' key")
        given = {k: v for k, v in value.items() if k != "name"}
        name = value["name"]
    else:
        raise ValueError(
            f"{path}: expected an {component.what} name or a mapping with 'name', "
            f"got {_describe(value)}"
        )

    if not isinstance(name, str):
        raise ValueError(f"{path}.name: expected a string, got {_describe(name)}")
    key = name.strip().lower()
    key = component.aliases.get(key, key)
    if key not in component.args:
        hint = _suggest(key, component.names + list(component.aliases))
        allowed = ", ".join(component.names)
        raise ValueError(
            f"{path}: unknown {component.what} {_describe(name)}{hint}; "
            f"allowed: {allowed}"
        )

    spec = component.args[key]
    renames = component.arg_aliases.get(key, {})
    resolved: dict[str, Any] = {"name": key}
    given_as: dict[str, Any] = {}  # canonical argument -> the name the config used
    for arg_name, arg_value in given.items():
        canonical = renames.get(arg_name, arg_name)
        if canonical not in spec:
            takes = ", ".join(spec) if spec else "no arguments"
            hint = _suggest(str(arg_name), list(spec))
            raise ValueError(
                f"{path}.{arg_name}: not an argument of {key}{hint}; "
                f"{key} takes: {takes}"
            )
        if canonical in given_as:
            # Name the old spelling first, whichever order the config used.
            first, second = sorted(
                (str(given_as[canonical]), str(arg_name)),
                key=lambda name: (name == canonical, name),
            )
            raise ValueError(
                f"{path}: both '{first}' and '{second}' given; they are the same "
                f"argument, use only '{canonical}'"
            )
        given_as[canonical] = arg_name
        resolved[canonical] = _check_arg(
            f"{path}.{arg_name}", arg_value, spec[canonical]
        )
    for arg_name, arg in spec.items():
        resolved.setdefault(arg_name, arg.default)
    return resolved


# --------------------------------------------------------------------------
# The schema
# --------------------------------------------------------------------------


class _Section(BaseModel):
    """Base of every config section: strict types, no unknown keys, immutable."""

    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, allow_inf_nan=False
    )


class DataConfig(_Section):
    """Which data, how it is split and scaled."""

    dataset: Literal["fashion_mnist"] = Field(
        "fashion_mnist", description="The dataset; only fashion_mnist for now."
    )
    validation_size: int = Field(
        5000,
        ge=1,
        le=59_999,
        description="The first N of the 60,000 training images become the "
        "validation set.",
    )
    scaling: Literal["unit", "standardize"] = Field(
        "unit",
        description="unit: pixels / 255; standardize: per-pixel mean 0 and std 1 "
        "over the training images (what SELU's self-normalisation needs).",
    )
    train_size: int | None = Field(
        None,
        ge=1,
        description="Cap on the training images for quick runs; null = all the "
        "images after the validation set.",
    )

    @model_validator(mode="after")
    def _fits_in_dataset(self) -> DataConfig:
        available = 60_000 - self.validation_size
        if self.train_size is not None and self.train_size > available:
            raise ValueError(
                f"data.train_size: {self.train_size} is more than the "
                f"{available:,} training images left after a validation set of "
                f"{self.validation_size:,}"
            )
        return self


class ModelConfig(_Section):
    """The feed-forward network: depth, width, activation, init and batch norm."""

    hidden_layers: tuple[int, ...] = Field(
        (300, 100),
        description="Units of each hidden Dense layer; an item may be "
        "{units: N, repeat: K} for K identical layers.",
    )
    activation: dict[str, Any] = Field(
        default_factory=lambda: {"name": "relu"},
        description="Hidden-layer activation: a name or {name: ..., args}.",
    )
    initializer: dict[str, Any] = Field(
        default_factory=lambda: {"name": "glorot_uniform"},
        description="Kernel initializer of the hidden layers: a name or "
        "{name: ..., args}.",
    )
    batch_norm: Literal["none", "before", "after"] = Field(
        "none",
        description="BatchNormalization relative to each hidden activation; "
        "'before' drops the Dense bias (BN's beta replaces it).",
    )
    input_batch_norm: bool = Field(
        False, description="A BatchNormalization right after Flatten."
    )
    batch_norm_momentum: float = Field(
        0.99,
        gt=0.0,
        lt=1.0,
        description="Momentum of the BN moving mean and variance.",
    )

    @field_validator("hidden_layers", mode="before")
    @classmethod
    def _expand_hidden_layers(cls, value: Any) -> tuple[int, ...]:
        if not isinstance(value, list | tuple):
            raise ValueError(
                f"model.hidden_layers: expected a list of layer sizes, "
                f"got {_describe(value)}"
            )
        units: list[int] = []
        for index, item in enumerate(value):
            path = f"model.hidden_layers[{index}]"
            if isinstance(item, dict):
                unknown = set(item) - {"units", "repeat"}
                if unknown:
                    key = sorted(unknown, key=str)[0]
                    hint = _suggest(str(key), ["units", "repeat"])
                    raise ValueError(
                        f"{path}.{key}: unknown key{hint}; allowed: units, repeat"
                    )
                if "units" not in item:
                    raise ValueError(f"{path}: a mapping needs 'units'")
                size = _check_count(f"{path}.units", item["units"])
                repeat = _check_count(f"{path}.repeat", item.get("repeat", 1))
            else:
                size, repeat = _check_count(path, item), 1
            # Count before expanding: a few large repeats must not fill the memory.
            if len(units) + repeat > MAX_HIDDEN_LAYERS:
                raise ValueError(
                    f"model.hidden_layers: more than {MAX_HIDDEN_LAYERS} layers "
                    f"(at {path}); at most {MAX_HIDDEN_LAYERS} are allowed"
                )
            units.extend([size] * repeat)
        widths = [_INPUT_UNITS, *units, _OUTPUT_UNITS]
        parameters = sum((a + 1) * b for a, b in itertools.pairwise(widths))
        if parameters > MAX_DENSE_PARAMETERS:
            raise ValueError(
                f"model.hidden_layers: these layers would need {parameters:,} "
                f"Dense weights and biases; at most {MAX_DENSE_PARAMETERS:,} are "
                "allowed (a 100,000 x 100,000 kernel alone is 40 GB)"
            )
        return tuple(units)

    @field_validator("batch_norm", mode="before")
    @classmethod
    def _no_batch_norm_spelled_false(cls, value: Any) -> Any:
        # ``batch_norm: false`` / ``off`` / ``no`` (YAML booleans) or null
        # plainly mean no batch norm; true says nothing about where.
        if value is False or value is None:
            return "none"
        if value is True:
            raise ValueError(
                "model.batch_norm: true does not say where; use 'before' or "
                "'after' (the activation), or 'none'"
            )
        return value

    @field_validator("activation", mode="before")
    @classmethod
    def _resolve_activation(cls, value: Any) -> dict[str, Any]:
        resolved = resolve_component(ACTIVATIONS, value, "model.activation")
        if resolved["name"] == "rrelu" and resolved["lower"] > resolved["upper"]:
            raise ValueError(
                f"model.activation: rrelu needs lower <= upper, got lower "
                f"{resolved['lower']:g} and upper {resolved['upper']:g}"
            )
        return resolved

    @field_validator("initializer", mode="before")
    @classmethod
    def _resolve_initializer(cls, value: Any) -> dict[str, Any]:
        resolved = resolve_component(INITIALIZERS, value, "model.initializer")
        if (
            resolved["name"] == "random_uniform"
            and resolved["minval"] >= resolved["maxval"]
        ):
            raise ValueError(
                "model.initializer: random_uniform needs minval < maxval, got "
                f"minval {resolved['minval']:g} and maxval {resolved['maxval']:g}"
            )
        return resolved

    @property
    def hidden_units(self) -> tuple[int, ...]:
        """The width of every hidden layer, repeats expanded."""
        return self.hidden_layers


def _check_count(path: str, value: Any) -> int:
    """Check a positive whole number (layer units, repeat counts)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{path}: expected a whole number, got {_describe(value)}")
    if value < 1:
        raise ValueError(f"{path}: must be at least 1, got {_describe(value)}")
    if value > 100_000:
        raise ValueError(f"{path}: must be at most 100000, got {_describe(value)}")
    return value


class ClippingConfig(_Section):
    """Gradient clipping: exactly one of value, norm or global_norm."""

    value: float | None = Field(
        None, gt=0, description="Clip each gradient element to [-value, value]."
    )
    norm: float | None = Field(
        None, gt=0, description="Rescale each gradient tensor to L2 norm <= norm."
    )
    global_norm: float | None = Field(
        None,
        gt=0,
        description="Rescale all gradients together to global L2 norm <= global_norm.",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> ClippingConfig:
        given = [k for k in ("value", "norm", "global_norm") if getattr(self, k)]
        if len(given) > 1:
            raise ValueError(
                f"training.clipping: choose one kind of clipping, got "
                f"{' and '.join(given)}; they would fight over the same gradient"
            )
        if not given:
            raise ValueError(
                "training.clipping: give one of value, norm or global_norm "
                "(or null for no clipping)"
            )
        return self

    @property
    def kind(self) -> str:
        """``value``, ``norm`` or ``global_norm``."""
        return next(k for k in ("value", "norm", "global_norm") if getattr(self, k))

    @property
    def threshold(self) -> float:
        return float(getattr(self, self.kind))


class TrainingConfig(_Section):
    """Optimizer, clipping, loss and the length of training."""

    optimizer: dict[str, Any] = Field(
        default_factory=lambda: resolve_component(OPTIMIZERS, "sgd", ""),
        description="sgd | adam | adamw | nadam | rmsprop, a name or "
        "{name: ..., learning_rate: ...}.",
    )
    clipping: ClippingConfig | None = Field(
        None,
        description="null, {value: x}, {norm: x} or {global_norm: x}.",
    )
    loss: Literal["sparse_categorical_crossentropy"] = Field(
        "sparse_categorical_crossentropy",
        description="The loss; integer labels with a softmax output.",
    )
    epochs: int = Field(10, ge=1, le=100_000, description="Passes over the data.")
    batch_size: int = Field(32, ge=1, le=60_000, description="Images per step.")

    @field_validator("clipping", mode="before")
    @classmethod
    def _no_clipping_spelled_false(cls, value: Any) -> Any:
        return None if value is False else value

    @field_validator("optimizer", mode="before")
    @classmethod
    def _resolve_optimizer(cls, value: Any) -> dict[str, Any]:
        return resolve_component(OPTIMIZERS, value, "training.optimizer")


class CompareConfig(_Section):
    """Defaults for ``nnexp compare``; ignored by ``nnexp train``."""

    activations: tuple[Any, ...] | None = Field(
        None, description="Activations to compare; null = the classic six."
    )
    seeds: int = Field(3, ge=1, le=1000, description="Seeds per grid point.")
    vary: dict[str, list[Any]] = Field(
        default_factory=dict,
        description="More grid axes: dotted key -> list of values.",
    )
    pairing: Literal["none", "recommended"] = Field(
        "none",
        description="recommended: give each activation the initializer that suits it.",
    )

    @field_validator("activations", mode="before")
    @classmethod
    def _check_activations(cls, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, list) or not value:
            raise ValueError(
                f"compare.activations: expected a non-empty list, got "
                f"{_describe(value)}"
            )
        for index, item in enumerate(value):
            resolve_component(ACTIVATIONS, item, f"compare.activations[{index}]")
        return tuple(value)

    @field_validator("vary")
    @classmethod
    def _check_vary_values(cls, value: dict[str, list[Any]]) -> dict[str, list[Any]]:
        # The values are only checked against the schema when a sweep applies
        # them, but they must survive the round trip through config.yaml.
        for key, values in value.items():
            for index, item in enumerate(values):
                _check_plain_data(f"compare.vary.{key}[{index}]", item)
        return value


def _check_plain_data(path: str, value: Any, depth: int = 0) -> None:
    """Check that ``value`` is plain YAML data that config.yaml can hold as is.

    Allowed: text, whole and finite numbers, true/false, null, and lists and
    mappings (with text keys) of those. Not allowed: dates, binary data, sets,
    NaN and infinity, which would be changed or lost when the resolved config
    is written out.
    """
    if depth > MAX_YAML_DEPTH:
        raise ValueError(f"{path}: nested more than {MAX_YAML_DEPTH} levels deep")
    if value is None or isinstance(value, bool | int | str):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{path}: expected a finite number, got {value!r}")
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            _check_plain_data(f"{path}[{index}]", item, depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{path}: keys must be strings, got {_describe(key)}")
            _check_plain_data(f"{path}.{key}", item, depth + 1)
        return
    raise ValueError(
        f"{path}: expected text, a number, true/false, null, a list or a mapping, "
        f"got {_describe(value)}"
    )


class Config(_Section):
    """A whole experiment: what to train, on which data, and how."""

    name: str = Field(
        "experiment",
        description="Run name, used in the run folder; letters, digits, . _ -. "
        "Defaults to the config file's stem.",
    )
    seed: int = Field(
        42, ge=0, le=2**31 - 1, description="Seeds Python, NumPy and TensorFlow."
    )
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    diagnostics: bool = Field(
        False,
        description="Record per-layer statistics, gradient norms and clipping "
        "every epoch (diagnostics.csv, diagnostics.png).",
    )
    compare: CompareConfig | None = Field(
        None, description="Defaults for nnexp compare; see its section."
    )

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not NAME_PATTERN.fullmatch(value) or ".." in value or len(value) > 100:
            raise ValueError(
                f"name: {_describe(value)} is not a valid run name; use letters, "
                "digits, '.', '_' and '-' (no '/' or '..'), starting with a "
                "letter or digit, at most 100 characters"
            )
        return value

    def to_dict(self) -> dict[str, Any]:
        """The fully resolved config as plain data (what ``config.yaml`` holds)."""
        data = self.model_dump(mode="json")
        data["model"]["hidden_layers"] = list(self.model.hidden_layers)
        if data.get("compare") is None:
            data.pop("compare", None)
        if data["training"]["clipping"] is not None:
            data["training"]["clipping"] = {
                self.training.clipping.kind: self.training.clipping.threshold
            }
        return data

    def to_yaml(self) -> str:
        """The fully resolved config as YAML text."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)

    @property
    def hash(self) -> str:
        """SHA-256 of everything that changes the numbers a run produces.

        The run ``name`` and the ``compare`` section are left out: renaming an
        experiment or planning a sweep does not change what training computes.
        """
        data = self.to_dict()
        data.pop("name", None)
        data.pop("compare", None)
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def short_hash(self) -> str:
        """The first 8 hex digits of :attr:`hash`, used in folder names."""
        return self.hash[:8]


# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------


def _section_fields(model: type[BaseModel]) -> dict[str, type[BaseModel] | None]:
    """Map each field of a section to its nested section class (or None)."""
    nested: dict[str, type[BaseModel] | None] = {}
    for name, info in model.model_fields.items():
        annotation = info.annotation
        candidates = getattr(annotation, "__args__", (annotation,))
        section = next(
            (c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)),
            None,
        )
        nested[name] = section
    return nested


def _pop_unknown_keys(
    data: dict, model: type[BaseModel], prefix: str, sections: set[str]
) -> list[str]:
    """Remove unknown keys anywhere in the sections; say what each was.

    The keys are taken out, not just reported, so that the rest of the config
    can still be validated and every problem reported in one go. The dotted
    path of each section that lost a key is added to ``sections``.
    """
    fields = _section_fields(model)
    problems = []
    for key in list(data):
        value = data[key]
        path = f"{prefix}{key}"
        if not isinstance(key, str):
            problems.append(f"{path}: keys must be strings, got {_describe(key)}")
            sections.add(prefix[:-1])
            del data[key]
            continue
        if key not in fields:
            hint = _suggest(key, list(fields)).replace("'", f"'{prefix}", 1)
            where = f"in '{prefix[:-1]}'" if prefix else "at the top level"
            allowed = ", ".join(fields)
            problems.append(f"unknown key '{path}'{hint}; allowed {where}: {allowed}")
            sections.add(prefix[:-1])
            del data[key]
            continue
        section = fields[key]
        if section is not None and isinstance(value, dict):
            problems += _pop_unknown_keys(value, section, f"{path}.", sections)
    return problems


def _error_path(location: tuple) -> str:
    parts: list[str] = []
    for item in location:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts)


_PYDANTIC_WORDING = (
    ("Input should be a valid integer", "expected a whole number"),
    ("Input should be a valid number", "expected a number"),
    ("Input should be a valid boolean", "expected true or false"),
    ("Input should be a valid string", "expected a string"),
    ("Input should be a valid list", "expected a list"),
    ("Input should be a valid tuple", "expected a list"),
    ("Input should be a valid dictionary", "expected a mapping"),
    ("Input should be a finite number", "expected a finite number"),
    ("greater than or equal to", "at least"),
    ("less than or equal to", "at most"),
    ("Input should be", "must be"),
)


def _format_validation_error(
    error: ValidationError, skip: frozenset[str] = frozenset()
) -> list[str]:
    """Turn pydantic's report into one line per problem, naming each key.

    Problems of a section in ``skip`` (one that held an unknown key, taken
    out) are left out: they are most likely that key's consequence, such as
    a clipping section left empty by a misspelled ``value``.
    """
    lines = []
    for detail in error.errors(include_url=False):
        if _error_path(tuple(detail["loc"])) in skip:
            continue
        message = detail["msg"]
        if message.startswith("Value error, "):
            # Our validators already name the key and the value.
            lines.append(message.removeprefix("Value error, "))
            continue
        location = tuple(detail["loc"])
        if location[-1:] == ("[key]",):
            # pydantic reports a bad mapping key as (..., key, "[key]").
            parent = _error_path(location[:-2])
            path = f"{parent}.{location[-2]}" if parent else str(location[-2])
            lines.append(
                f"{path}: keys must be strings, got {_describe(detail['input'])}"
            )
            continue
        path = _error_path(location) or "config"
        for pydantic_words, ours in _PYDANTIC_WORDING:
            message = message.replace(pydantic_words, ours)
        if detail["type"] == "model_type":
            message = "must be a mapping of keys to values"
        lines.append(f"{path}: {message}, got {_describe(detail['input'])}")
    return lines


MAX_PROBLEMS_SHOWN = 10


def _join_problems(problems: list[str]) -> str:
    """One line per problem, duplicates dropped, at most ten shown."""
    unique = list(dict.fromkeys(problems))
    shown = unique[:MAX_PROBLEMS_SHOWN]
    if len(unique) > len(shown):
        shown.append(f"... and {len(unique) - len(shown)} more")
    return "\n".join(shown)


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing documents nested too deeply to compose.

    PyYAML composes nodes recursively, so thousands of ``[`` would otherwise
    exhaust Python's recursion limit; the nesting is counted as it is read.
    """

    def __init__(self, stream: str, source: str) -> None:
        super().__init__(stream)
        self._source = source
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise ConfigError(_too_deep(self._source))
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        # PyYAML's scalar constructors crash on values such as 2024-13-01 or a
        # bare ``!!int``; report those like any other YAML error, with the line.
        try:
            return super().construct_object(node, deep)
        except _CONSTRUCTOR_CRASHES as exc:
            value = node.value if isinstance(node, yaml.ScalarNode) else "value"
            problem = f"cannot read {value!r} as {_short_tag(node.tag)}"
            if isinstance(exc, ValueError | ArithmeticError):  # the others say little
                problem += f" ({exc})"
            raise yaml.constructor.ConstructorError(
                None, None, problem, node.start_mark
            ) from None


# YAML 1.1, which PyYAML follows, reads 1e-3 as a string: its floats need a
# dot (1.0e-3). Every other tool (YAML 1.2, JSON, Python) reads it as a number,
# and learning rates are written that way, so accept exponents without a dot.
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+.0123456789"),
)


def _short_tag(tag: str) -> str:
    return str(tag).replace("tag:yaml.org,2002:", "!!")


_CONSTRUCTOR_CRASHES = (
    ArithmeticError,
    AttributeError,
    LookupError,
    TypeError,
    ValueError,
)


def _too_deep(source: str) -> str:
    return (
        f"{source}: the YAML is nested more than {MAX_YAML_DEPTH} levels deep; "
        "a config is a small mapping"
    )


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [child for pair in node.value for child in pair]
    return []


def _check_tree(root: yaml.Node, source: str) -> None:
    """Check the composed YAML before building any Python values from it.

    Refuses alias bombs (the tree, aliases expanded, has more than
    :data:`MAX_YAML_NODES` values), aliases nested deeper than
    :data:`MAX_YAML_DEPTH`, recursive aliases (``&a [*a]``) and keys that
    appear twice in one mapping. The walk is iterative and visits each node
    once, so neither a bomb nor deep nesting can slow it down or overflow.
    """
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    open_nodes: set[int] = set()  # entered, children not yet finished
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            children = _children(node)
            size[key] = 1 + sum(size[id(child)] for child in children)
            depth[key] = 1 + max((depth[id(child)] for child in children), default=0)
            open_nodes.discard(key)
            if size[key] > MAX_YAML_NODES:
                raise ConfigError(
                    f"{source}: the YAML expands to more than {MAX_YAML_NODES:,} "
                    "values (nested aliases?); a config is a small mapping"
                )
            if depth[key] > MAX_YAML_DEPTH:
                raise ConfigError(_too_deep(source))
            continue
        if key in size:
            continue
        if key in open_nodes:
            line = node.start_mark.line + 1
            raise ConfigError(
                f"{source}: line {line}: an alias refers to the value that contains "
                "it; a config cannot be recursive"
            )
        open_nodes.add(key)
        if isinstance(node, yaml.MappingNode):
            _check_duplicate_keys(node, source)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node))


def _check_duplicate_keys(node: yaml.MappingNode, source: str) -> None:
    keys: set[tuple[str, str]] = set()
    for key_node, _ in node.value:
        if isinstance(key_node, yaml.ScalarNode):
            # The tag tells the int 1 from the string '1'.
            if (key_node.tag, key_node.value) in keys:
                line = key_node.start_mark.line + 1
                raise ConfigError(
                    f"{source}: line {line}: key '{key_node.value}' appears "
                    "twice in the same mapping"
                )
            keys.add((key_node.tag, key_node.value))


def parse_yaml(text: str, source: str) -> Any:
    """Parse YAML text with the safe loader, refusing tags, bombs and duplicates.

    Args:
        text: the YAML document.
        source: how to name it in error messages (a path, or ``--set KEY``).

    Returns:
        The parsed value; None for an empty document.

    Raises:
        ConfigError: for YAML that is malformed, uses Python tags, has
            duplicate keys, is recursive, nested too deeply or expands to an
            unreasonable size.
    """
    try:
        # The loader checks every character as it is created (ReaderError).
        loader = _StrictLoader(text, source)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            _check_tree(node, source)
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {_yaml_problem(exc)}") from None
    except _CONSTRUCTOR_CRASHES as exc:
        # Should _StrictLoader.construct_object miss one.
        raise ConfigError(
            f"{source}: not valid YAML: a value cannot be read ({exc})"
        ) from None
    except RecursionError:
        raise ConfigError(_too_deep(source)) from None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """One line out of PyYAML's multi-line report."""
    if isinstance(exc, yaml.MarkedYAMLError):
        problem = exc.problem or exc.context or "syntax error"
        unknown_tag = re.fullmatch(
            r"could not determine a constructor for the tag '(.*)'", problem
        )
        if unknown_tag:
            problem = (
                f"the tag {_short_tag(unknown_tag.group(1))} is not allowed; a "
                "config holds plain YAML data"
            )
        elif problem.startswith("but ") and exc.context:
            # e.g. "expected a single document in the stream, but found another"
            problem = f"{exc.context}, {problem}"
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        return f"{where}{problem}"
    return str(exc).splitlines()[0]


def read_config_file(path: Path) -> dict[str, Any]:
    """Read a config file into a plain mapping, checking size, encoding and YAML."""
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    if path.is_dir():
        raise ConfigError(f"{path} is a folder, not a config file")
    try:
        # Read at most one byte past the limit: a FIFO or /dev/zero has no size.
        with path.open("rb") as file:
            raw = file.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{path}: larger than {MAX_CONFIG_BYTES:,} bytes, too large for a "
            "config file"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {exc.start} is 0x{raw[exc.start]:02x})"
        ) from None
    # A blank file may hold tabs, which YAML would reject as a syntax error.
    data = parse_yaml(text, str(path)) if text.strip() else None
    if data is None:
        raise ConfigError(f"{path}: the file is empty; a config is a YAML mapping")
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping of keys to values at the top level, "
            f"got {_yaml_kind(data)}"
        )
    return data


def _yaml_kind(value: Any) -> str:
    """How to name a parsed YAML value that is not a mapping: ``a number (3)``."""
    if isinstance(value, list):
        return "a list"
    kinds = (
        (bool, "true/false"),
        (int | float, "a number"),
        (str, "a string"),
        (datetime.datetime | datetime.date, "a date"),
        (bytes, "binary data"),
        (set, "a set"),
    )
    kind = next((k for t, k in kinds if isinstance(value, t)), "a value")
    return f"{kind} ({_describe(value)})"


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``KEY=VALUE`` into a dotted key and a YAML-typed value.

    >>> parse_override("training.epochs=3")
    ('training.epochs', 3)
    """
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. training.epochs=3")
    key, _, raw_value = text.partition("=")
    key = key.strip()
    if not key or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_]\w*)*", key):
        raise ConfigError(
            f"--set {text!r}: {key!r} is not a dotted key such as training.epochs"
        )
    value = parse_yaml(raw_value, f"--set {key}") if raw_value.strip() else None
    return key, value


_COMPONENT_DEFAULTS = {
    "model.activation": "relu",
    "model.initializer": "glorot_uniform",
    "training.optimizer": "sgd",
}

_COMPONENT_KEYS = {"model.activation", "model.initializer", "training.optimizer"}


def apply_override(data: dict[str, Any], key: str, value: Any) -> None:
    """Set a dotted ``key`` in the raw config mapping, checking that it exists.

    A named component given by its bare name (``activation: elu``) is turned into
    a mapping first, so ``--set model.activation.alpha=0.5`` works either way.
    The component's arguments themselves are checked later, with the config.
    """
    parts = key.split(".")
    section: type[BaseModel] | None = Config
    node = data
    for depth, part in enumerate(parts):
        path = ".".join(parts[: depth + 1])
        last = depth == len(parts) - 1
        if section is not None:
            fields = _section_fields(section)
            if part not in fields:
                prefix = ".".join(parts[:depth])
                hint = _suggest(part, list(fields))
                if prefix:
                    hint = hint.replace("'", f"'{prefix}.", 1)
                where = f"in '{prefix}'" if prefix else "at the top level"
                raise ConfigError(
                    f"--set {key}: unknown key '{path}'{hint}; allowed {where}: "
                    f"{', '.join(fields)}"
                )
            next_section = fields[part]
            holds_keys = next_section is not None or path in _COMPONENT_KEYS
        else:
            # Inside a named component: ``part`` is one of its arguments.
            next_section, holds_keys = None, False
        if last:
            node[part] = value
            return
        if not holds_keys:
            raise ConfigError(
                f"--set {key}: '{path}' takes a single value, not keys below it; "
                f"use --set {path}=VALUE"
            )
        child = node.get(part)
        if path in _COMPONENT_KEYS and isinstance(child, str):
            child = {"name": child}
        if child is None:
            # An argument of a component the file leaves at its default
            # (--set training.optimizer.learning_rate=0.1): start from that default.
            child = (
                {"name": _COMPONENT_DEFAULTS[path]} if path in _COMPONENT_KEYS else {}
            )
        if not isinstance(child, dict):
            raise ConfigError(
                f"--set {key}: '{path}' holds {_describe(child)}, not a mapping"
            )
        node[part] = child
        node = child
        section = next_section


def build_config(
    data: dict[str, Any],
    *,
    default_name: str = "experiment",
    overrides: tuple[str, ...] | list[str] = (),
) -> Config:
    """Validate a raw mapping (plus ``KEY=VALUE`` overrides) into a :class:`Config`.

    Raises:
        ConfigError: naming every invalid key, its value and what is allowed.
    """
    if not isinstance(data, dict):
        raise ConfigError(
            "expected a mapping of keys to values at the top level, "
            f"got {_yaml_kind(data)}"
        )
    data = copy.deepcopy(data)
    for override in overrides:
        key, value = parse_override(override)
        apply_override(data, key, value)
    data.setdefault("name", default_name)
    for section in ("data", "model", "training"):
        # A section whose keys are all commented out reads as null: defaults.
        if section in data and data[section] is None:
            data[section] = {}
    emptied: set[str] = set()
    problems = _pop_unknown_keys(data, Config, "", emptied)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems += _format_validation_error(exc, frozenset(emptied))
    if problems:
        raise ConfigError(_join_problems(problems))
    return config


def default_name_for(path: Path) -> str:
    """The run name used when a config file has none: its stem, made valid.

    >>> default_name_for(Path("configs/my config..v2.yaml"))
    'my-config.v2'
    """
    stem = re.sub(r"[^A-Za-z0-9._-]", "-", path.stem)
    stem = re.sub(r"\.{2,}", ".", stem).lstrip(".-_")[:100]
    return stem or "experiment"


def load_config(
    path: str | Path, overrides: tuple[str, ...] | list[str] = ()
) -> Config:
    """Read, override and validate a config file.

    Args:
        path: the YAML file. Its stem is the default run name.
        overrides: ``KEY=VALUE`` strings, applied in order (like ``--set``).

    Returns:
        The validated, fully resolved config.

    Raises:
        ConfigError: for any problem, with a message naming the file or key.

    >>> load_config("configs/bn_after.yaml", ["training.epochs=1"]).training.epochs
    1
    """
    path = Path(path)
    data = read_config_file(path)
    return build_config(data, default_name=default_name_for(path), overrides=overrides)


def config_from_yaml_text(text: str, source: str = "config") -> Config:
    """Validate a config given as YAML text (used when reading run folders back)."""
    data = parse_yaml(text, source)
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    return build_config(data)
