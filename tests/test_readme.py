"""The README documents every config key, default and example config."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from nnexp.config import ACTIVATIONS, INITIALIZERS, OPTIMIZERS, Config

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _schema_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, info in model.model_fields.items():
        keys.append(prefix + name)
        annotation = info.annotation
        for candidate in getattr(annotation, "__args__", (annotation,)):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                if candidate.__name__ != "ClippingConfig":
                    keys += _schema_keys(candidate, f"{prefix}{name}.")
    return keys


@pytest.mark.parametrize("key", _schema_keys(Config))
def test_every_config_key_is_documented(key: str) -> None:
    assert f"`{key}`" in README or key in ("data", "model", "training", "compare")


@pytest.mark.parametrize(
    "name",
    ACTIVATIONS.names + INITIALIZERS.names + OPTIMIZERS.names,
)
def test_every_component_is_documented(name: str) -> None:
    assert f"`{name}`" in README


@pytest.mark.parametrize(
    "path", sorted(p.name for p in (ROOT / "configs").glob("*.yaml"))
)
def test_every_example_config_is_listed(path: str) -> None:
    assert f"configs/{path}" in README


def test_ci_runs_exactly_the_readme_test_command() -> None:
    command = (
        "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && "
        ".venv/bin/python -m pytest"
    )
    assert command in README
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert command in ci_lines
