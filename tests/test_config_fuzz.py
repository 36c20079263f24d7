"""Property tests: whatever a config holds, nnexp.config answers with a Config
or a ConfigError, never another exception.

The generators are biased toward the schema's real keys and values (section
names, component names and arguments, choices, boundary numbers) so most
examples get past the key check and reach the deep validation, and toward
YAML's awkward corners (tags, anchors, odd scalars) for the text tests. A
config that does validate must be sound and survive the round trip through
its resolved YAML with the same hash.
"""

from __future__ import annotations

import math
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nnexp.config import (
    ACTIVATIONS,
    INITIALIZERS,
    OPTIMIZERS,
    ClippingConfig,
    CompareConfig,
    Config,
    DataConfig,
    ModelConfig,
    TrainingConfig,
    build_config,
    config_from_yaml_text,
    parse_yaml,
)
from nnexp.errors import ConfigError

SETTINGS = settings(
    max_examples=300,
    deadline=None,
    database=None,  # nothing written into the checkout
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

SECTIONS = {
    "data": DataConfig,
    "model": ModelConfig,
    "training": TrainingConfig,
    "training.clipping": ClippingConfig,
    "compare": CompareConfig,
}
FAMILIES = (ACTIVATIONS, INITIALIZERS, OPTIMIZERS)
ARGUMENT_NAMES = sorted(
    {arg for family in FAMILIES for spec in family.args.values() for arg in spec}
    | {"alpha", "name", "units", "repeat"}
)
ALL_KEYS = sorted(
    set(Config.model_fields)
    | {key for section in SECTIONS.values() for key in section.model_fields}
    | set(ARGUMENT_NAMES)
)
ACTIVATION_NAMES = ACTIVATIONS.names + list(ACTIVATIONS.aliases)
COMPONENT_NAMES = ACTIVATION_NAMES + INITIALIZERS.names + OPTIMIZERS.names
CHOICES = (
    "fan_in fan_out fan_avg uniform truncated_normal untruncated_normal none before "
    "after unit standardize fashion_mnist sparse_categorical_crossentropy "
    "recommended a/b .. .x ok-name"
).split()


def weighted(*options: tuple[st.SearchStrategy, int]) -> st.SearchStrategy:
    """``one_of`` where each strategy is picked about ``weight`` times as often.

    (``one_of`` itself would merge repeated strategies, so the choice is drawn
    first and the strategy second.)
    """
    choices = [
        index for index, (_, weight) in enumerate(options) for _ in range(weight)
    ]
    return st.sampled_from(choices).flatmap(lambda index: options[index][0])


keys = weighted(
    (st.sampled_from(ALL_KEYS), 3),
    (st.sampled_from(ALL_KEYS).map(lambda k: k + "s"), 1),  # near misses
    (st.text(max_size=8), 1),
)
numbers = weighted(
    (st.integers(min_value=-3, max_value=3), 2),
    (st.sampled_from([1, 10, 100, 1000, 1001, 59_999, 60_000, 100_001, 2**31]), 2),
    (st.sampled_from([0.0, 0.001, 0.5, 0.99, 1.0, 1.5, -0.1, 1e-300, 1e300]), 2),
    (st.floats(), 1),  # includes nan, inf and -0.0
    (st.integers(), 1),
    (st.integers(min_value=10**20, max_value=10**400), 1),
)
scalars = st.one_of(
    numbers,
    st.booleans(),
    st.none(),
    st.text(max_size=12),
    st.sampled_from(COMPONENT_NAMES),
    st.sampled_from(CHOICES),
)
any_data = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=4)
    ),
    max_leaves=8,
)


def component(names: list[str]) -> st.SearchStrategy:
    """A named component: a bare name, ``{name: ..., args}``, or anything."""
    arguments = st.dictionaries(
        weighted((st.sampled_from(ARGUMENT_NAMES), 4), (keys, 1)),
        weighted((numbers, 4), (scalars, 1), (any_data, 1)),
        max_size=2,
    )
    with_arguments = st.builds(
        lambda name, args: {"name": name, **args}, st.sampled_from(names), arguments
    )
    return weighted(
        (st.sampled_from(names), 2), (with_arguments, 3), (scalars, 1), (any_data, 1)
    )


def section(optional: dict[str, st.SearchStrategy]) -> st.SearchStrategy:
    """The section's real keys, now and then a stray key, now and then junk."""
    real = st.fixed_dictionaries({}, optional=optional)
    with_stray = st.builds(
        lambda a, b: {**a, **b}, real, st.dictionaries(keys, scalars, max_size=1)
    )
    return weighted((real, 6), (with_stray, 1), (any_data, 1))


def sometimes_wrong(good: st.SearchStrategy) -> st.SearchStrategy:
    return weighted((good, 4), (scalars, 1), (any_data, 1))


hidden_layer = weighted(
    (st.integers(min_value=1, max_value=500), 3),
    (numbers, 1),
    (
        st.fixed_dictionaries(
            {"units": sometimes_wrong(st.integers(1, 100))},
            optional={"repeat": sometimes_wrong(st.integers(-1, 400)), "x": scalars},
        ),
        2,
    ),
    (any_data, 1),
)
clipping = weighted(
    (st.none(), 2),
    (
        st.fixed_dictionaries(
            {}, optional=dict.fromkeys(ClippingConfig.model_fields, numbers)
        ),
        4,
    ),
    (any_data, 1),
)
run_names = weighted(
    (st.builds(str.__add__, st.sampled_from("aZ09"), st.text("a0._-", max_size=8)), 4),
    (st.text(max_size=12), 1),
    (scalars, 1),
)

schema_shaped = section(
    {
        "name": run_names,
        "seed": sometimes_wrong(st.integers(0, 2**31 - 1)),
        "data": section(
            {
                "dataset": sometimes_wrong(st.just("fashion_mnist")),
                "validation_size": sometimes_wrong(st.integers(-1, 60_001)),
                "scaling": sometimes_wrong(st.sampled_from(["unit", "standardize"])),
                "train_size": sometimes_wrong(st.none() | st.integers(-1, 60_001)),
            }
        ),
        "model": section(
            {
                "hidden_layers": sometimes_wrong(st.lists(hidden_layer, max_size=4)),
                "activation": component(ACTIVATION_NAMES),
                "initializer": component(INITIALIZERS.names),
                "batch_norm": sometimes_wrong(
                    st.sampled_from(["none", "before", "after"])
                ),
                "input_batch_norm": sometimes_wrong(st.booleans()),
                "batch_norm_momentum": sometimes_wrong(st.floats()),
            }
        ),
        "training": section(
            {
                "optimizer": component(OPTIMIZERS.names),
                "clipping": clipping,
                "loss": sometimes_wrong(st.just("sparse_categorical_crossentropy")),
                "epochs": sometimes_wrong(st.integers(-1, 100_001)),
                "batch_size": sometimes_wrong(st.integers(-1, 60_001)),
            }
        ),
        "diagnostics": sometimes_wrong(st.booleans()),
        "compare": weighted(
            (st.none(), 1),
            (
                section(
                    {
                        "activations": sometimes_wrong(
                            st.lists(component(ACTIVATION_NAMES), max_size=2)
                        ),
                        "seeds": sometimes_wrong(st.integers(0, 1001)),
                        "vary": sometimes_wrong(
                            st.dictionaries(
                                keys, st.lists(any_data, max_size=3), max_size=2
                            )
                        ),
                        "pairing": sometimes_wrong(
                            st.sampled_from(["none", "recommended"])
                        ),
                    }
                ),
                3,
            ),
        ),
    }
)

top_level = weighted(
    (schema_shaped, 6), (st.dictionaries(keys, any_data, max_size=6), 1), (any_data, 1)
)


def _check_result(result: Config) -> None:
    """A Config that validated must be sound and round-trip through its YAML."""
    assert isinstance(result, Config)
    for value in (
        result.model.batch_norm_momentum,
        *result.model.activation.values(),
        *result.model.initializer.values(),
        *result.training.optimizer.values(),
    ):
        if isinstance(value, float):
            assert math.isfinite(value)
    again = config_from_yaml_text(result.to_yaml())
    assert again == result
    assert again.hash == result.hash


def _build(data: Any, overrides: list[str] | None = None) -> None:
    try:
        result = build_config(data, overrides=overrides or [])
    except ConfigError as exc:
        message = str(exc)
        assert message.strip(), "a ConfigError must say what is wrong"
        assert "Traceback" not in message
        return
    _check_result(result)


@SETTINGS
@given(top_level)
def test_build_config_answers_with_config_or_config_error(data: Any) -> None:
    _build(data)


# --------------------------------------------------------------------------
# YAML text
# --------------------------------------------------------------------------

YAML_PIECES = [
    *"\n|  |: |- |[|]|{|}|,|&a |*a|? |<<: |---\n|...\n|'|\"|#|\\".split("|"),
    *"\t \x00 \ufeff é \x85".split(" "),
    *"!!python/object/apply:os.system !!binary !!set !!float !!int !!bool".split(),
    *"!!timestamp !!str !!seq !!map !!omap !!pairs !!merge !custom".split(),
    *".nan .inf null ~ yes 0x1F 1e3 0o17 2024-13-01 12:30:00 +1_000".split(),
    "model:\n",
    "  activation: ",
    "training:\n",
    "  epochs: ",
    "  clipping: ",
    "hidden_layers: ",
    "{units: 100, repeat: 3}",
    "leaky_relu",
    "alpha",
]


def _dump(data: Any, flow: bool) -> str:
    return yaml.safe_dump(data, default_flow_style=flow, allow_unicode=True)


yaml_text = st.one_of(
    st.text(max_size=80),
    st.lists(
        weighted((st.sampled_from(YAML_PIECES), 3), (st.text(max_size=4), 1)),
        max_size=25,
    ).map("".join),
    st.builds(_dump, schema_shaped, st.booleans()),
    st.builds(
        lambda doc, cut, junk: doc[:cut] + junk + doc[cut:],
        st.builds(_dump, schema_shaped, st.just(False)),
        st.integers(min_value=0, max_value=200),
        st.sampled_from(YAML_PIECES),
    ),
)


@SETTINGS
@given(yaml_text)
def test_yaml_text_answers_with_config_or_config_error(text: str) -> None:
    try:
        data = parse_yaml(text, "fuzz.yaml")
    except ConfigError as exc:
        assert str(exc).startswith("fuzz.yaml: ")
        return
    _build(data)


# --------------------------------------------------------------------------
# --set overrides
# --------------------------------------------------------------------------

DOTTED_KEYS = [
    *Config.model_fields,
    *(
        f"{name}.{key}"
        for name, model in SECTIONS.items()
        for key in model.model_fields
    ),
    *(
        f"model.activation.{arg}"
        for arg in ("name", "alpha", "negative_slope", "lower")
    ),
    *(f"model.initializer.{arg}" for arg in ("name", "mode", "scale", "gain")),
    *(f"training.optimizer.{arg}" for arg in ("name", "learning_rate", "momentum")),
    *"seed.x model.hidden_layers.units training.epoch model.activation.alpha.x".split(),
    *"training.clipping.value.x compare.vary.x a..b .x x. é".split(),
    "",
]
OVERRIDE_VALUES = [
    *"3 0 -1 0.5 1e-3 null ~ true .nan .inf elu leaky_relu adam sgd fan_avg".split(),
    *"[1,2] {norm:1} {name:elu,alpha:2} [{units:10,repeat:2}] [ &a [*a] 'x'".split(),
    "!!python/name:os.system ''",
    "",
]

override_values = weighted(
    (st.sampled_from(OVERRIDE_VALUES), 3),
    (st.text(max_size=10), 1),
    (scalars.map(lambda v: yaml.safe_dump(v, default_flow_style=True).strip()), 1),
)
overrides = st.lists(
    weighted(
        (st.builds("{}={}".format, st.sampled_from(DOTTED_KEYS), override_values), 4),
        (st.text(max_size=20), 1),
    ),
    max_size=4,
)


@SETTINGS
@given(schema_shaped, overrides)
def test_overrides_answer_with_config_or_config_error(
    data: Any, sets: list[str]
) -> None:
    _build(data, sets)
