"""The sweep spec's reference page, generated from the pydantic models it documents.

``python -m iql_sweep.spec_reference > docs/spec.md`` writes it; a test regenerates it and
compares, so the page cannot drift from what ``iql-sweep validate`` accepts."""

from __future__ import annotations

import types
import typing
from typing import Any

from annotated_types import Ge, Gt, Le, Lt, MaxLen, MinLen
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from iql_sweep.iql.config import PRESETS, IQLConfig
from iql_sweep.spec import (
    Distribution,
    OptunaSearch,
    Resources,
    Scheduler,
    Search,
    SweepSpec,
    WandbSettings,
)
from iql_sweep.trial_config import RunSettings

#: The sections of the page: (YAML path, model, what it is).
SECTIONS: tuple[tuple[str, type[BaseModel]], ...] = (
    ("(top level)", SweepSpec),
    ("search", Search),
    ("search.optuna", OptunaSearch),
    ("search.optuna.params.<name>", Distribution),
    ("search.scheduler", Scheduler),
    ("training", RunSettings),
    ("resources", Resources),
    ("wandb", WandbSettings),
    ("iql", IQLConfig),
)

HEAD = """# Sweep spec reference

Generated from the pydantic models by `python -m iql_sweep.spec_reference > docs/spec.md`
(a test checks that this page matches them). `iql-sweep validate SPEC` checks a file against
exactly these rules, and more that relate fields (for example `training.eval_every` ≤
`training.steps`, a grid value written twice, a batch larger than a dataset), and prints every
problem with its YAML path. Unknown keys are errors. `true`/`false` are refused where a number
belongs.

A minimal spec:

```yaml
name: tau_sweep
datasets: [iql-sweep/pointmaze/umaze-v0]
search:
  grid: {expectile: [0.5, 0.7, 0.9], beta: [3.0], seed: [0, 1, 2]}
training: {steps: 100000, eval_every: 5000}
```
"""

PRESET_NOTE = (
    "The defaults below are the official IQL's; each preset overrides some of them "
    "(`preset:`, else the one the dataset's domain names): "
)


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:  # StrictInt, StrictBool
        return _type_name(args[0])
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (list, tuple):
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        return f"mapping to {_type_name(args[1])}"
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    return getattr(annotation, "__name__", str(annotation))


def _bounds(field: FieldInfo) -> str:
    words = {
        Ge: ("≥", "ge"),
        Gt: (">", "gt"),
        Le: ("≤", "le"),
        Lt: ("<", "lt"),
        MinLen: ("length ≥", "min_length"),
        MaxLen: ("length ≤", "max_length"),
    }
    out = []
    for item in field.metadata:
        for kind, (word, attribute) in words.items():
            if isinstance(item, kind):
                value = getattr(item, attribute)
                out.append(f"{word} {value:g}" if isinstance(value, float) else f"{word} {value}")
    return ", ".join(out)


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        value = field.default_factory()
        return "`[]`" if value == [] else "`{}`" if value == {} else "defaults below"
    value = field.default
    if value is PydanticUndefined:
        return "required"
    if value is None:
        return "`null`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, tuple):
        return f"`{list(value)}`"
    return f"`{value}`"


def _table(model: type[BaseModel]) -> list[str]:
    lines = ["| key | type | default | allowed | meaning |", "|---|---|---|---|---|"]
    for name, field in model.model_fields.items():
        lines.append(
            f"| `{name}` | {_type_name(field.annotation)} | {_default(field)} | "
            f"{_bounds(field)} | {field.description or ''} |"
        )
    return lines


def render() -> str:
    """The whole page, as Markdown."""
    parts = [HEAD]
    for path, model in SECTIONS:
        parts.append(f"## `{path}`\n")
        doc = (model.__doc__ or "").strip().splitlines()
        if doc and model is not BaseModel:
            parts.append(" ".join(line.strip() for line in doc) + "\n")
        if model is IQLConfig:
            presets = "; ".join(
                f"`{name}`: " + (", ".join(f"{k} {v}" for k, v in values.items()) or "none")
                for name, values in PRESETS.items()
            )
            parts.append(PRESET_NOTE + presets + ".\n")
        parts.append("\n".join(_table(model)) + "\n")
    return "\n".join(parts)


def undocumented() -> list[str]:
    """Fields without a description (the page would leave their meaning blank)."""
    return [
        f"{path}.{name}"
        for path, model in SECTIONS
        for name, field in model.model_fields.items()
        if not field.description
    ]


if __name__ == "__main__":
    print(render(), end="")
