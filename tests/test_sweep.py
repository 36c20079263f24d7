"""Tests of nnexp.sweep: grids, --vary parsing, sweep folders, planning, claims.

Nothing here trains: grids are expanded and validated, and run folders are
made by hand (a result.json, sometimes a checkpoint.npz) to drive the planner.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from nnexp.config import Config, build_config, load_config
from nnexp.errors import ConfigError
from nnexp.sweep import (
    CLASSIC_ACTIVATIONS,
    Axis,
    Grid,
    _axis_labels,
    claim,
    expand_grid,
    find_or_create_sweep_dir,
    is_claimed,
    load_sweep_base,
    parse_activations,
    parse_vary,
    plan_line,
    plan_runs,
    release,
    value_label,
    wait_for_other_commands,
)

BASE: dict[str, Any] = {
    "name": "grid",
    "seed": 7,
    "data": {"train_size": 1000, "validation_size": 500},
    "model": {"hidden_layers": [32], "activation": "relu"},
    "training": {"optimizer": {"name": "adam"}, "epochs": 1},
}


def expand(changes: dict[str, Any] | None = None, **kwargs: Any) -> Grid:
    """Expand BASE (top-level keys replaced by ``changes``) like the CLI does."""
    data = copy.deepcopy(BASE)
    data.update(copy.deepcopy(changes or {}))
    return expand_grid(data, build_config(data), **kwargs)


def axes_of(grid: Grid) -> list[tuple[str, tuple]]:
    return [(axis.key, axis.values) for axis in grid.axes]


# --------------------------------------------------------------------------
# Grid expansion
# --------------------------------------------------------------------------


def test_grid_is_the_cartesian_product_activation_axis_first() -> None:
    grid = expand(
        activations=("relu", "tanh"),
        vary=[parse_vary("model.batch_norm=none,after")],
        seeds=2,
    )
    assert axes_of(grid) == [
        ("model.activation", ("relu", "tanh")),
        ("model.batch_norm", ("none", "after")),
    ]
    assert grid.seeds == [7, 8]
    assert [p.label for p in grid.points] == [
        "relu-none",
        "relu-after",
        "tanh-none",
        "tanh-after",
    ]
    assert [p.values for p in grid.points] == [
        {"model.activation": "relu", "model.batch_norm": "none"},
        {"model.activation": "relu", "model.batch_norm": "after"},
        {"model.activation": "tanh", "model.batch_norm": "none"},
        {"model.activation": "tanh", "model.batch_norm": "after"},
    ]
    # Seeds vary fastest; every run is named <label>-s<seed>.
    assert [(c.name, c.seed) for _, c in grid.runs] == [
        ("relu-none-s7", 7),
        ("relu-none-s8", 8),
        ("relu-after-s7", 7),
        ("relu-after-s8", 8),
        ("tanh-none-s7", 7),
        ("tanh-none-s8", 8),
        ("tanh-after-s7", 7),
        ("tanh-after-s8", 8),
    ]
    for point, config in grid.runs:
        assert config.model.activation["name"] == point.values["model.activation"]
        assert config.model.batch_norm == point.values["model.batch_norm"]
        assert config.compare is None
    assert len({config.hash for _, config in grid.runs}) == 8


def test_three_axes_expand_in_the_order_given() -> None:
    vary = [
        parse_vary("training.batch_size=16,32"),
        parse_vary("model.batch_norm=none,before,after"),
    ]
    grid = expand(activations=("elu", "selu"), vary=vary, seeds=1)
    assert [a.key for a in grid.axes] == [
        "model.activation",
        "training.batch_size",
        "model.batch_norm",
    ]
    expected = [
        f"{a}-{b}-{c}"
        for a, b, c in itertools.product(
            ("elu", "selu"), (16, 32), ("none", "before", "after")
        )
    ]
    assert [p.label for p in grid.points] == expected
    assert [c.name for _, c in grid.runs] == [f"{label}-s7" for label in expected]
    assert [c.training.batch_size for _, c in grid.runs] == [16, 16, 16, 32, 32, 32] * 2


def test_defaults_without_compare_section_or_options() -> None:
    grid = expand()
    assert axes_of(grid) == [("model.activation", CLASSIC_ACTIVATIONS)]
    assert grid.seeds == [7, 8, 9]
    assert grid.pairing == "none"
    assert len(grid.runs) == 6 * 3
    assert {c.model.initializer["name"] for _, c in grid.runs} == {"glorot_uniform"}


def test_activation_mappings_are_grid_values() -> None:
    leaky = {"name": "leaky_relu", "negative_slope": 0.2}
    grid = expand(activations=(leaky, "relu"), seeds=1)
    assert [p.label for p in grid.points] == ["leaky_relu_negative_slope0.2", "relu"]
    assert grid.points[0].configs[0].model.activation == leaky
    assert grid.points[0].configs[0].name == "leaky_relu_negative_slope0.2-s7"


COMPARE_SECTION = {
    "activations": ["tanh", "sigmoid"],
    "seeds": 3,
    "pairing": "recommended",
    "vary": {"model.batch_norm": ["none", "after"]},
}


@pytest.mark.parametrize(
    ("options", "activations", "seeds", "initializer", "other_axes"),
    [
        pytest.param(
            {},
            ("tanh", "sigmoid"),
            [7, 8, 9],
            "glorot_uniform",
            [("model.batch_norm", ("none", "after"))],
            id="config-only",
        ),
        pytest.param(
            {"activations": ("relu",)},
            ("relu",),
            [7, 8, 9],
            "he_normal",
            [("model.batch_norm", ("none", "after"))],
            id="cli-activations-win",
        ),
        pytest.param(
            {"seeds": 1},
            ("tanh", "sigmoid"),
            [7],
            "glorot_uniform",
            [("model.batch_norm", ("none", "after"))],
            id="cli-seeds-win",
        ),
        pytest.param(
            {"pairing": "none"},
            ("tanh", "sigmoid"),
            [7, 8, 9],
            "he_uniform",
            [("model.batch_norm", ("none", "after"))],
            id="cli-pairing-none-wins",
        ),
        pytest.param(
            {"vary": [parse_vary("model.batch_norm=before")]},
            ("tanh", "sigmoid"),
            [7, 8, 9],
            "glorot_uniform",
            [("model.batch_norm", ("before",))],
            id="cli-vary-replaces-config-axis",
        ),
        pytest.param(
            {"vary": [parse_vary("model.batch_norm=none,after")]},
            ("tanh", "sigmoid"),
            [7, 8, 9],
            "glorot_uniform",
            [("model.batch_norm", ("none", "after"))],
            id="cli-vary-repeats-config-axis",
        ),
        pytest.param(
            {"vary": [parse_vary("training.batch_size=16,64")]},
            ("tanh", "sigmoid"),
            [7, 8, 9],
            "glorot_uniform",
            [
                ("model.batch_norm", ("none", "after")),
                ("training.batch_size", (16, 64)),
            ],
            id="cli-vary-adds-axis-after-config-axes",
        ),
    ],
)
def test_command_line_wins_over_compare_section(
    options: dict[str, Any],
    activations: tuple,
    seeds: list[int],
    initializer: str,
    other_axes: list,
) -> None:
    model = {**BASE["model"], "initializer": "he_uniform"}
    grid = expand({"model": model, "compare": COMPARE_SECTION}, **options)
    assert axes_of(grid) == [("model.activation", activations), *other_axes]
    assert grid.seeds == seeds
    assert {c.model.initializer["name"] for _, c in grid.runs} == {initializer}


def test_activations_option_wins_over_activation_in_compare_vary() -> None:
    compare = {"vary": {"model.activation": ["elu", "selu"]}}
    assert axes_of(expand({"compare": compare}, seeds=1)) == [
        ("model.activation", ("elu", "selu"))
    ]
    grid = expand({"compare": compare}, activations=("relu",), seeds=1)
    assert axes_of(grid) == [("model.activation", ("relu",))]


def test_vary_on_activation_key_replaces_the_activation_axis() -> None:
    grid = expand(vary=[parse_vary("model.activation=elu,selu")], seeds=1)
    assert axes_of(grid) == [("model.activation", ("elu", "selu"))]


def test_vary_on_activation_key_with_activations_too_is_refused() -> None:
    # Which of the two lists would win is not obvious; say so.
    with pytest.raises(ConfigError) as info:
        expand(
            activations=("relu", "tanh"),
            vary=[parse_vary("model.activation=elu,selu")],
            seeds=1,
        )
    assert str(info.value) == (
        "--vary model.activation: --activations already gives the activations; "
        "use one of the two"
    )


# --------------------------------------------------------------------------
# --vary and --activations parsing
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "axis"),
    [
        pytest.param(
            "model.batch_norm=before,after",
            Axis("model.batch_norm", ("before", "after")),
            id="comma-list",
        ),
        pytest.param(
            " model.batch_norm = before , after ",
            Axis("model.batch_norm", ("before", "after")),
            id="spaces",
        ),
        pytest.param(
            "model.batch_norm=after", Axis("model.batch_norm", ("after",)), id="one"
        ),
        pytest.param(
            "training.batch_size=16,32",
            Axis("training.batch_size", (16, 32)),
            id="integers",
        ),
        pytest.param(
            "training.optimizer.learning_rate=0.01,1e-3",
            Axis("training.optimizer.learning_rate", (0.01, 0.001)),
            id="floats-yaml-typed",
        ),
        pytest.param(
            "model.input_batch_norm=true,false",
            Axis("model.input_batch_norm", (True, False)),
            id="booleans",
        ),
        pytest.param(
            "model.batch_norm=[none, after]",
            Axis("model.batch_norm", ("none", "after")),
            id="yaml-list",
        ),
        pytest.param(
            "training.clipping=[null, {norm: 1.0}]",
            Axis("training.clipping", (None, {"norm": 1.0})),
            id="yaml-list-null-and-mapping",
        ),
        pytest.param(
            "model.activation=[{name: leaky_relu, negative_slope: 0.2}, elu]",
            Axis(
                "model.activation",
                ({"name": "leaky_relu", "negative_slope": 0.2}, "elu"),
            ),
            id="yaml-list-component-mapping",
        ),
        pytest.param(
            "model.hidden_layers=[[32], [64, 32]]",
            Axis("model.hidden_layers", ([32], [64, 32])),
            id="yaml-list-of-lists",
        ),
    ],
)
def test_parse_vary(option: str, axis: Axis) -> None:
    assert parse_vary(option) == axis


def test_parse_vary_short_name() -> None:
    assert parse_vary("training.clipping.value=1").short_name == "value"


@pytest.mark.parametrize(
    ("option", "message"),
    [
        pytest.param("model.batch_norm", "expected KEY=V1,V2", id="no-equals"),
        pytest.param("=a,b", "the key is empty", id="empty-key"),
        pytest.param(
            "model.batch_norm=", "at least one non-empty value", id="no-values"
        ),
        pytest.param(
            "model.batch_norm=a,,b", "at least one non-empty", id="empty-item"
        ),
        pytest.param(
            "model.batch_norm=a,", "at least one non-empty", id="trailing-comma"
        ),
        pytest.param("model.batch_norm=[]", "at least one non-empty", id="empty-list"),
        pytest.param("model.batch_norm=[a", "not valid YAML", id="broken-yaml"),
    ],
)
def test_parse_vary_errors(option: str, message: str) -> None:
    with pytest.raises(ConfigError, match="^--vary") as caught:
        parse_vary(option)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("text", "names"),
    [
        pytest.param("relu,tanh", ("relu", "tanh"), id="plain"),
        pytest.param(" selu , elu ,", ("selu", "elu"), id="spaces-trailing-comma"),
        pytest.param("logistic", ("logistic",), id="alias"),
    ],
)
def test_parse_activations(text: str, names: tuple[str, ...]) -> None:
    assert parse_activations(text) == names


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("", "give at least one activation", id="empty"),
        pytest.param(" , ", "give at least one activation", id="only-commas"),
        pytest.param("relu,relux", "unknown activation 'relux'", id="typo"),
    ],
)
def test_parse_activations_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match="^--activations") as caught:
        parse_activations(text)
    assert message in str(caught.value)


def test_vary_nested_key_below_a_null_section() -> None:
    grid = expand(
        {"training": {**BASE["training"], "clipping": None}},
        activations=("relu",),
        vary=[parse_vary("training.clipping.value=0.5,1.0")],
        seeds=1,
    )
    assert [p.label for p in grid.points] == ["relu-0.5", "relu-1.0"]
    clipping = [config.training.clipping for _, config in grid.runs]
    assert [(c.kind, c.threshold) for c in clipping] == [("value", 0.5), ("value", 1.0)]


def test_vary_component_argument_after_the_activation_axis() -> None:
    grid = expand(
        activations=("leaky_relu",),
        vary=[parse_vary("model.activation.negative_slope=0.1,0.2")],
        seeds=1,
    )
    assert [c.model.activation for _, c in grid.runs] == [
        {"name": "leaky_relu", "negative_slope": 0.1},
        {"name": "leaky_relu", "negative_slope": 0.2},
    ]
    assert [c.name for _, c in grid.runs] == [
        "leaky_relu-0.1-s7",
        "leaky_relu-0.2-s7",
    ]


def test_vary_negative_and_positive_values_get_distinct_labels() -> None:
    grid = expand(
        activations=("prelu",),
        vary=[parse_vary("model.activation.initial_slope=-0.25,0.25")],
        seeds=1,
    )
    assert len({p.label for p in grid.points}) == 2
    assert [c.model.activation["initial_slope"] for _, c in grid.runs] == [-0.25, 0.25]


def test_overrides_are_carried_into_every_grid_point(tmp_path: Path) -> None:
    data = copy.deepcopy(BASE)
    del data["name"]
    path = tmp_path / "my sweep.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    raw, base = load_sweep_base(
        path,
        [
            "training.batch_size=64",
            "model.hidden_layers=[16, 8]",
            "model.activation=elu",
        ],
    )
    assert base.name == "my-sweep"
    grid = expand_grid(
        raw,
        base,
        activations=("relu", "tanh"),
        vary=[parse_vary("model.batch_norm=none,after")],
        seeds=2,
    )
    assert len(grid.runs) == 8
    for point, config in grid.runs:
        assert config.training.batch_size == 64
        assert config.model.hidden_layers == (16, 8)
        assert config.training.optimizer["name"] == "adam"
        # The grid value wins over an override of the same key.
        assert config.model.activation["name"] == point.values["model.activation"]
        assert config.name.startswith(point.label + "-s")


# --------------------------------------------------------------------------
# Pairing
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("activation", "initializer", "scaling"),
    [
        pytest.param("tanh", "glorot_uniform", "unit", id="tanh"),
        pytest.param("sigmoid", "glorot_uniform", "unit", id="sigmoid"),
        pytest.param("logistic", "glorot_uniform", "unit", id="logistic-alias"),
        pytest.param("relu", "he_normal", "unit", id="relu"),
        pytest.param("leaky_relu", "he_normal", "unit", id="leaky_relu"),
        pytest.param(
            {"name": "leaky_relu", "negative_slope": 0.2},
            "he_normal",
            "unit",
            id="leaky_relu-mapping",
        ),
        pytest.param("prelu", "he_normal", "unit", id="prelu"),
        pytest.param("elu", "he_normal", "unit", id="elu"),
        pytest.param("selu", "lecun_normal", "standardize", id="selu"),
    ],
)
def test_recommended_pairing(activation: Any, initializer: str, scaling: str) -> None:
    grid = expand(activations=(activation,), seeds=1, pairing="recommended")
    (config,) = grid.points[0].configs
    assert config.model.initializer["name"] == initializer
    assert config.data.scaling == scaling


def test_pairing_none_keeps_the_config_initializer() -> None:
    model = {**BASE["model"], "initializer": "orthogonal"}
    grid = expand({"model": model}, activations=("selu", "tanh"), seeds=1)
    assert [c.model.initializer["name"] for _, c in grid.runs] == ["orthogonal"] * 2
    assert [c.data.scaling for _, c in grid.runs] == ["unit", "unit"]


@pytest.mark.parametrize(
    "option",
    [
        pytest.param("model.initializer=he_normal,glorot_uniform", id="initializer"),
        pytest.param("data.scaling=unit,standardize", id="scaling"),
    ],
)
def test_recommended_pairing_refuses_to_vary_what_it_chooses(option: str) -> None:
    with pytest.raises(ConfigError, match="--pairing recommended"):
        expand(activations=("selu",), vary=[parse_vary(option)], pairing="recommended")


# --------------------------------------------------------------------------
# Invalid grids
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "point", "problem"),
    [
        pytest.param(
            {
                "activations": ("leaky_relu", "relu"),
                "vary": [parse_vary("model.activation.negative_slope=0.1")],
            },
            "grid point model.activation='relu', model.activation.negative_slope=0.1",
            "not an argument of relu",
            id="component-argument-on-wrong-activation",
        ),
        pytest.param(
            {
                "activations": ("relu",),
                "vary": [parse_vary("training.batch_size=32,0")],
            },
            "grid point model.activation='relu', training.batch_size=0",
            "training.batch_size: must be at least 1",
            id="out-of-range-value",
        ),
        pytest.param(
            {
                "activations": ("relu",),
                "vary": [parse_vary("model.batch_norm=after,sideways")],
            },
            "grid point model.activation='relu', model.batch_norm='sideways'",
            "model.batch_norm",
            id="bad-choice",
        ),
        pytest.param(
            {"activations": ("tanh",), "vary": [parse_vary("training.clipping={}")]},
            "grid point model.activation='tanh', training.clipping={}",
            "give one of value, norm or global_norm",
            id="empty-clipping",
        ),
    ],
)
def test_invalid_grid_point_is_named(
    options: dict[str, Any], point: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        expand(seeds=2, **options)
    message = str(caught.value)
    assert message.startswith(point + ":"), message
    assert problem in message


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param(
            {"vary": [parse_vary("model.nope=1,2")]},
            "--vary model.nope: unknown key 'model.nope'",
            id="unknown-key",
        ),
        pytest.param(
            {"vary": [parse_vary("model.batch_norm.x=1")]},
            "--vary model.batch_norm.x: 'model.batch_norm' takes a single value",
            id="keys-below-a-value",
        ),
        pytest.param(
            {"vary": [parse_vary("seed=1,2")]}, "use --seeds for seeds", id="seed"
        ),
        pytest.param(
            {"vary": [parse_vary("name=a,b")]}, "names are set per run", id="name"
        ),
        pytest.param(
            {
                "vary": [
                    parse_vary("training.epochs=1,2"),
                    parse_vary("training.epochs=3"),
                ]
            },
            "the key is varied twice",
            id="twice",
        ),
        pytest.param(
            {"activations": ("sigmoid", {"name": "sigmoid"})},
            "grid points model.activation='sigmoid' and "
            "model.activation={'name': 'sigmoid'} are the same run (aliases or "
            "repeated values); list each setting once",
            id="duplicate-labels",
        ),
    ],
)
def test_invalid_axes(options: dict[str, Any], message: str) -> None:
    options.setdefault("activations", ("relu",))
    with pytest.raises(ConfigError) as caught:
        expand(seeds=1, **options)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("value", "label"),
    [
        pytest.param("relu", "relu", id="name"),
        pytest.param(
            {"name": "leaky_relu", "negative_slope": 0.2},
            "leaky_relu_negative_slope0.2",
            id="named-mapping-keeps-keys",
        ),
        pytest.param({"value": 1.0}, "value1.0", id="mapping-keeps-keys"),
        pytest.param({"norm": 1.0}, "norm1.0", id="other-key-other-label"),
        pytest.param(
            [{"units": 10, "repeat": 3}], "units10_repeat3", id="nested-mapping"
        ),
        pytest.param("a..b", "a.b", id="no-double-dots"),
        pytest.param(None, "none", id="none"),
        pytest.param(0.5, "0.5", id="float"),
        pytest.param(-0.5, "-0.5", id="negative"),
        pytest.param(True, "True", id="bool"),
        pytest.param("a b/c", "a_b_c", id="unsafe-characters"),
        pytest.param("../x", "x", id="no-leading-dots"),
        pytest.param("", "value", id="empty"),
        pytest.param([16, 8], "16_8", id="list"),
        pytest.param(
            [10] * 40, "10_10_10_10_10_10_10_10_10_10_b687ba26", id="long-list"
        ),
        pytest.param("x" * 50, "x" * 31 + "_ea408524", id="long-text"),
    ],
)
def test_value_label(value: Any, label: str) -> None:
    assert value_label(value) == label


def test_long_labels_stay_distinct_valid_and_readable() -> None:
    wide, deep = [10] * 40, [10] * 39 + [11]
    grid = expand(
        activations=("relu",),
        vary=[parse_vary(f"model.hidden_layers=[{wide}, {deep}]")],
    )
    assert [p.label for p in grid.points] == [
        "relu-10_10_10_10_10_10_10_10_10_10_b687ba26",
        "relu-10_10_10_10_10_10_10_10_10_10_5d63f931",
    ]
    assert [c.model.hidden_layers for c in grid.points[1].configs] == [tuple(deep)] * 3


def test_clipping_mappings_get_their_own_labels() -> None:
    grid = expand(
        activations=("relu",),
        vary=[parse_vary("training.clipping=[null, {value: 1.0}, {norm: 1.0}]")],
        seeds=1,
    )
    assert [c.name for _, c in grid.runs] == [
        "relu-none-s7",
        "relu-value1.0-s7",
        "relu-norm1.0-s7",
    ]


def test_values_that_read_alike_get_a_hash_each() -> None:
    axis = Axis("data.scaling", ("a b", "a_b", "c"))
    assert _axis_labels(axis) == ["a_b_5e229e24", "a_b_3ebec71b", "c"]


def test_many_axes_are_cut_to_a_valid_run_name() -> None:
    vary = [
        parse_vary(f"{key}=[{value}]")
        for key, value in (
            ("model.hidden_layers", [64] * 12),
            ("training.clipping", "{global_norm: 1.0}"),
            ("training.optimizer", "{name: sgd, learning_rate: 0.01, momentum: 0.9}"),
            ("model.initializer", "{name: variance_scaling, scale: 2.0}"),
        )
    ]
    ((point, config),) = expand(activations=("leaky_relu",), vary=vary, seeds=1).runs
    assert config.name == (
        "leaky_relu-64_64_64_64_64_64_64_64_64_64_64_64-global_norm1.0-"
        "sgd_learning_rate0.01_8fa8bb76-s7"
    )
    assert config.training.optimizer["momentum"] == 0.9
    assert len(config.name) <= 100 and point.label in config.name


# --------------------------------------------------------------------------
# Grid hash and sweep folders
# --------------------------------------------------------------------------


def test_grid_hash_is_stable_and_depends_on_the_runs() -> None:
    def make(**kwargs: Any) -> Grid:
        options = {"activations": ("relu", "tanh"), "seeds": 2, **kwargs}
        return expand(**options)

    first = make()
    assert first.hash == make().hash
    assert len(first.hash) == 12 and int(first.hash, 16) >= 0
    assert first.describe()["grid_hash"] == first.hash
    different = {
        "seeds": make(seeds=3).hash,
        "activations": make(activations=("relu", "elu")).hash,
        "vary": make(vary=[parse_vary("model.batch_norm=after")]).hash,
        "pairing": make(pairing="recommended").hash,
        "epochs": expand(
            {"training": {**BASE["training"], "epochs": 2}},
            activations=("relu", "tanh"),
            seeds=2,
        ).hash,
        "first seed": expand({"seed": 8}, activations=("relu", "tanh"), seeds=2).hash,
    }
    for what, other in different.items():
        assert other != first.hash, what


def test_sweep_yaml_describes_the_grid(tmp_path: Path) -> None:
    grid = expand(activations=("relu", "tanh"), seeds=2)
    sweep_dir, existed = find_or_create_sweep_dir(tmp_path, grid)
    assert not existed
    assert sweep_dir.parent == tmp_path / "grid-compare"
    described = yaml.safe_load((sweep_dir / "sweep.yaml").read_text())
    assert described["name"] == "grid"
    assert described["grid_hash"] == grid.hash
    assert described["axes"] == [
        {"key": "model.activation", "values": ["relu", "tanh"]}
    ]
    assert described["seeds"] == [7, 8]
    assert described["pairing"] == "none"
    assert [(r["point"], r["seed"], r["run_name"]) for r in described["runs"]] == [
        ("relu", 7, "relu-s7"),
        ("relu", 8, "relu-s8"),
        ("tanh", 7, "tanh-s7"),
        ("tanh", 8, "tanh-s8"),
    ]
    assert [r["config_hash"] for r in described["runs"]] == [
        c.hash for _, c in grid.runs
    ]


def test_sweep_folder_is_reused_unless_new(tmp_path: Path) -> None:
    grid = expand(activations=("relu", "tanh"), seeds=2)
    first, existed = find_or_create_sweep_dir(tmp_path, grid)
    assert not existed
    again, existed = find_or_create_sweep_dir(
        tmp_path, expand(activations=("relu", "tanh"), seeds=2)
    )
    assert (again, existed) == (first, True)

    fresh, existed = find_or_create_sweep_dir(tmp_path, grid, new=True)
    assert not existed and fresh != first and fresh.parent == first.parent
    # The newest matching folder is the one continued from now on.
    assert find_or_create_sweep_dir(tmp_path, grid) == (fresh, True)

    other, existed = find_or_create_sweep_dir(
        tmp_path, expand(activations=("relu", "tanh"), seeds=3)
    )
    assert not existed and other not in (first, fresh)
    folders = sorted(p for p in first.parent.iterdir() if p.is_dir())
    assert len(folders) == 3


def test_unreadable_sweep_yaml_is_not_matched(tmp_path: Path) -> None:
    grid = expand(activations=("relu",), seeds=1)
    sweep_dir, _ = find_or_create_sweep_dir(tmp_path, grid)
    (sweep_dir / "sweep.yaml").write_text("{not: [yaml", encoding="utf-8")
    other, existed = find_or_create_sweep_dir(tmp_path, grid)
    assert not existed and other != sweep_dir


# --------------------------------------------------------------------------
# Planning: what to skip, train or resume
# --------------------------------------------------------------------------


def fake_run(
    sweep_dir: Path,
    config: Config,
    status: str,
    *,
    checkpoint: bool = False,
    stamp: str = "20240101-000000",
    config_hash: str | None = None,
) -> Path:
    """A hand-made run folder: result.json (and checkpoint.npz if asked)."""
    run_dir = sweep_dir / config.name / f"{stamp}-{config.short_hash}"
    run_dir.mkdir(parents=True)
    result = {
        "status": status,
        "name": config.name,
        "config_hash": config_hash or config.hash,
        "seed": config.seed,
    }
    (run_dir / "result.json").write_text(json.dumps(result), encoding="utf-8")
    if checkpoint:
        np.savez(run_dir / "checkpoint.npz", __epoch__=np.array(1))
    return run_dir


@pytest.fixture
def one_run(tmp_path: Path) -> tuple[Path, Grid, Config]:
    grid = expand(activations=("relu",), seeds=1)
    sweep_dir, _ = find_or_create_sweep_dir(tmp_path, grid)
    return sweep_dir, grid, grid.runs[0][1]


@pytest.mark.parametrize(
    ("folders", "action", "chosen", "status"),
    [
        pytest.param([], "train", None, None, id="nothing-yet"),
        pytest.param([("completed", False)], "skip", 0, "completed", id="completed"),
        pytest.param(
            [("completed", True)], "skip", 0, "completed", id="completed-ckpt"
        ),
        pytest.param([("diverged", False)], "skip", 0, "diverged", id="diverged"),
        pytest.param([("failed", False)], "train", None, None, id="failed-no-ckpt"),
        # A failed run trains again from scratch (its folder stays as a record):
        # resuming the state it failed with would fail the same way again.
        pytest.param([("failed", True)], "train", None, None, id="failed-ckpt"),
        pytest.param(
            [("interrupted", True)], "resume", 0, "interrupted", id="interrupted-ckpt"
        ),
        pytest.param(
            [("interrupted", False)], "train", None, None, id="interrupted-no-ckpt"
        ),
        pytest.param(
            [("running", True)], "resume", 0, "running", id="crashed-running-ckpt"
        ),
        pytest.param(
            [("failed", True), ("completed", False)],
            "skip",
            1,
            "completed",
            id="retried-then-completed",
        ),
        pytest.param(
            [("interrupted", True), ("interrupted", True)],
            "resume",
            1,
            "interrupted",
            id="newest-resumable",
        ),
        pytest.param(
            [("interrupted", True), ("failed", False)],
            "resume",
            0,
            "interrupted",
            id="only-folder-with-ckpt",
        ),
        pytest.param(
            [("interrupted", True), ("failed", True)],
            "resume",
            0,
            "interrupted",
            id="failed-retry-after-interrupted-one",
        ),
    ],
)
def test_plan_runs_decisions(
    one_run: tuple[Path, Grid, Config],
    folders: list[tuple[str, bool]],
    action: str,
    chosen: int | None,
    status: str | None,
) -> None:
    sweep_dir, grid, config = one_run
    made = [
        fake_run(
            sweep_dir,
            config,
            folder_status,
            checkpoint=ckpt,
            stamp=f"2024010{i}-000000",
        )
        for i, (folder_status, ckpt) in enumerate(folders, start=1)
    ]
    (planned,) = plan_runs(sweep_dir, grid)
    assert planned.config.hash == config.hash
    assert planned.action == action
    assert planned.run_dir == (made[chosen] if chosen is not None else None)
    assert planned.status == status


@pytest.mark.parametrize(
    "write",
    [
        pytest.param(
            lambda d, c: (d / "result.json").write_text("{broken"), id="broken-json"
        ),
        pytest.param(
            lambda d, c: (d / "result.json").write_text("[]"), id="not-a-mapping"
        ),
        pytest.param(
            lambda d, c: (d / "result.json").write_text(
                json.dumps({"status": "completed", "config_hash": "0" * 64})
            ),
            id="other-config",
        ),
    ],
)
def test_plan_ignores_folders_that_are_not_this_run(
    one_run: tuple[Path, Grid, Config], write: Any
) -> None:
    sweep_dir, grid, config = one_run
    run_dir = fake_run(sweep_dir, config, "completed")
    write(run_dir, config)
    (planned,) = plan_runs(sweep_dir, grid)
    assert planned.action == "train"


def test_plan_skips_a_run_claimed_by_a_live_process(
    one_run: tuple[Path, Grid, Config],
) -> None:
    sweep_dir, grid, config = one_run
    fake_run(sweep_dir, config, "running", checkpoint=True)
    assert claim(sweep_dir, config.hash)
    try:
        (planned,) = plan_runs(sweep_dir, grid)
        assert (planned.action, planned.status) == ("skip", "running elsewhere")
    finally:
        release(sweep_dir, config.hash)
    assert plan_runs(sweep_dir, grid)[0].action == "resume"


def test_plan_covers_every_run_in_grid_order(tmp_path: Path) -> None:
    grid = expand(activations=("relu", "tanh"), seeds=2)
    sweep_dir, _ = find_or_create_sweep_dir(tmp_path, grid)
    configs = [config for _, config in grid.runs]
    done = fake_run(sweep_dir, configs[0], "completed")
    resumable = fake_run(sweep_dir, configs[3], "interrupted", checkpoint=True)
    fake_run(sweep_dir, configs[2], "failed")
    planned = plan_runs(sweep_dir, grid)
    assert [p.config.name for p in planned] == [
        "relu-s7",
        "relu-s8",
        "tanh-s7",
        "tanh-s8",
    ]
    assert [p.action for p in planned] == ["skip", "train", "train", "resume"]
    assert [p.run_dir for p in planned] == [done, None, None, resumable]
    assert [p.point.label for p in planned] == ["relu", "relu", "tanh", "tanh"]


# --------------------------------------------------------------------------
# Claims
# --------------------------------------------------------------------------

HASH = "ab" * 32


def claim_file(sweep_dir: Path) -> Path:
    return sweep_dir / ".claims" / f"{HASH[:16]}.lock"


@pytest.fixture
def other_process() -> Iterator[subprocess.Popen]:
    """A live process that is not this one (terminated afterwards)."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield process
    finally:
        process.kill()
        process.wait()


def start_time(pid: int) -> int:
    """Field 22 of /proc/<pid>/stat: when the process started."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rpartition(")")[2].split()[19])


def write_claim(sweep_dir: Path, **owner: Any) -> None:
    claim_file(sweep_dir).parent.mkdir(exist_ok=True)
    claim_file(sweep_dir).write_text(json.dumps({"host": os.uname().nodename, **owner}))


def finished_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_claim_is_exclusive_until_released(tmp_path: Path) -> None:
    assert not is_claimed(tmp_path, HASH)
    assert claim(tmp_path, HASH)
    assert is_claimed(tmp_path, HASH)
    owner = json.loads(claim_file(tmp_path).read_text())
    assert owner == {
        "pid": os.getpid(),
        "host": os.uname().nodename,
        "start_time": start_time(os.getpid()),
        "boot_id": Path("/proc/sys/kernel/random/boot_id").read_text().strip(),
    }
    assert not claim(tmp_path, HASH)
    assert claim(tmp_path, "cd" * 32), "another run is claimed independently"
    release(tmp_path, HASH)
    assert not is_claimed(tmp_path, HASH)
    assert not claim_file(tmp_path).exists()
    assert is_claimed(tmp_path, "cd" * 32)
    assert claim(tmp_path, HASH)
    release(tmp_path, HASH)
    release(tmp_path, HASH)  # releasing twice is harmless


def test_stale_claim_of_a_dead_process_is_replaced(tmp_path: Path) -> None:
    dead = finished_pid()
    claim_file(tmp_path).parent.mkdir()
    claim_file(tmp_path).write_text(
        json.dumps({"pid": dead, "host": os.uname().nodename})
    )
    assert not is_claimed(tmp_path, HASH)
    assert claim(tmp_path, HASH)
    assert json.loads(claim_file(tmp_path).read_text())["pid"] == os.getpid()
    release(tmp_path, HASH)


def test_claim_of_a_live_process_is_respected_then_stale(
    tmp_path: Path, other_process: subprocess.Popen
) -> None:
    assert claim(tmp_path, HASH, pid=other_process.pid)
    assert is_claimed(tmp_path, HASH)
    assert not claim(tmp_path, HASH)
    # Releasing a run this process does not hold leaves the owner's claim.
    release(tmp_path, HASH)
    assert is_claimed(tmp_path, HASH)
    other_process.kill()
    other_process.wait()
    assert not is_claimed(tmp_path, HASH)
    assert claim(tmp_path, HASH)
    release(tmp_path, HASH)
    assert not claim_file(tmp_path).exists()


def test_owner_releases_its_own_claim_by_pid(
    tmp_path: Path, other_process: subprocess.Popen
) -> None:
    assert claim(tmp_path, HASH, pid=other_process.pid)
    release(tmp_path, HASH, pid=other_process.pid)
    assert not is_claimed(tmp_path, HASH)


@pytest.mark.parametrize(
    "content",
    [
        pytest.param("", id="empty"),
        pytest.param("{broken", id="broken-json"),
        pytest.param("[1, 2]", id="not-a-mapping"),
        pytest.param(json.dumps({"host": os.uname().nodename}), id="no-pid"),
        pytest.param(
            json.dumps({"pid": -1, "host": os.uname().nodename}), id="negative-pid"
        ),
        pytest.param(
            json.dumps({"pid": "x", "host": os.uname().nodename}), id="text-pid"
        ),
    ],
)
def test_malformed_claim_counts_as_free(tmp_path: Path, content: str) -> None:
    claim_file(tmp_path).parent.mkdir()
    claim_file(tmp_path).write_text(content)
    assert not is_claimed(tmp_path, HASH)
    assert claim(tmp_path, HASH)
    assert json.loads(claim_file(tmp_path).read_text())["pid"] == os.getpid()


def test_claim_of_a_reused_pid_is_stale(
    tmp_path: Path, other_process: subprocess.Popen
) -> None:
    """After a reboot (or a wrap-around) a claim's pid can belong to another
    live process: its start time differs, so the claim is stale."""
    boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    live = {"pid": other_process.pid, "boot_id": boot_id}
    write_claim(tmp_path, **live, start_time=start_time(other_process.pid) + 1)
    assert not is_claimed(tmp_path, HASH)
    assert claim(tmp_path, HASH)
    assert json.loads(claim_file(tmp_path).read_text())["pid"] == os.getpid()
    release(tmp_path, HASH)

    write_claim(tmp_path, **live, start_time=start_time(other_process.pid))
    assert is_claimed(tmp_path, HASH)
    write_claim(tmp_path, **{**live, "boot_id": "another boot"}, start_time=0)
    assert not is_claimed(tmp_path, HASH)


@pytest.mark.parametrize("pid", [1, os.getpid()], ids=["init", "this-process"])
def test_claim_without_a_start_time_is_stale(tmp_path: Path, pid: int) -> None:
    """What the audit found: {"pid": 1, "host": <this host>} blocked a rerun."""
    write_claim(tmp_path, pid=pid)
    assert not is_claimed(tmp_path, HASH)
    assert claim(tmp_path, HASH)
    release(tmp_path, HASH)


def test_claim_of_a_zombie_is_stale(tmp_path: Path) -> None:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        # Exited but not yet reaped: os.kill(pid, 0) still succeeds.
        deadline = time.monotonic() + 30
        while Path(f"/proc/{process.pid}/stat").read_text().split()[2] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert claim(tmp_path, HASH, pid=process.pid)
        assert not is_claimed(tmp_path, HASH)
    finally:
        process.wait()


# --------------------------------------------------------------------------
# What compare prints about the plan
# --------------------------------------------------------------------------


def test_plan_line_counts_runs_of_another_command_separately(
    tmp_path: Path, other_process: subprocess.Popen
) -> None:
    grid = expand(activations=("relu", "tanh"), seeds=2)
    sweep_dir, _ = find_or_create_sweep_dir(tmp_path, grid)
    configs = [config for _, config in grid.runs]
    fake_run(sweep_dir, configs[0], "completed")
    fake_run(sweep_dir, configs[1], "interrupted", checkpoint=True)
    assert claim(sweep_dir, configs[3].hash, pid=other_process.pid)
    planned = plan_runs(sweep_dir, grid)
    assert [(p.action, p.status) for p in planned] == [
        ("skip", "completed"),
        ("resume", "interrupted"),
        ("train", None),
        ("skip", "running elsewhere"),
    ]
    assert plan_line(grid, planned) == (
        "grid: activation (2) x 2 seed(s) = 4 runs; 1 already done, 2 to run "
        "(1 resumed), 1 being trained by another nnexp compare"
    )
    other_process.kill()
    other_process.wait()
    assert plan_line(grid, plan_runs(sweep_dir, grid)) == (
        "grid: activation (2) x 2 seed(s) = 4 runs; 1 already done, 3 to run "
        "(1 resumed)"
    )


def test_waiting_for_another_command_says_for_what(tmp_path: Path) -> None:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1)"])
    try:
        assert claim(tmp_path, HASH, pid=process.pid)
        lines: list[str] = []
        started = time.monotonic()
        wait_for_other_commands(
            tmp_path, [("relu-s7", HASH), ("tanh-s7", "cd" * 32)], lines.append, 0.05
        )
        assert time.monotonic() - started >= 0.5
        assert lines == [
            f"relu-s7: being trained by another nnexp compare (pid {process.pid}); "
            "waiting for it"
        ]
    finally:
        process.kill()
        process.wait()


# --------------------------------------------------------------------------
# The base config of a sweep is named as train names it
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stem", "name"),
    [
        pytest.param("my..cfg", "my.cfg", id="double-dot"),
        pytest.param("x" * 110, "x" * 100, id="long-stem"),
        pytest.param("my sweep", "my-sweep", id="space"),
        pytest.param("..", "experiment", id="nothing-left"),
    ],
)
def test_sweep_base_is_named_like_train_names_it(
    tmp_path: Path, stem: str, name: str
) -> None:
    data = copy.deepcopy(BASE)
    del data["name"]
    path = tmp_path / f"{stem}.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    raw, base = load_sweep_base(path)
    assert base.name == load_config(path).name == name
    assert raw["name"] == name
