"""Errors the project raises for bad input; each message names the field and the fix."""

from __future__ import annotations

import re
from typing import Any, Literal


class IQLSweepError(Exception):
    """Base class of the project's user-facing errors."""


class ConfigError(IQLSweepError, ValueError):
    """An invalid hyper-parameter, preset or command-line value."""


class DatasetNotFoundError(IQLSweepError, FileNotFoundError):
    """A dataset id that is not in the local Minari root."""


class DatasetError(IQLSweepError, ValueError):
    """A dataset that exists but cannot be trained on (NaNs, actions out of bounds, empty...)."""


class TrainingDivergedError(IQLSweepError, FloatingPointError):
    """Losses became NaN/inf during training; the last good checkpoint is kept."""


Style = Literal["yaml", "option", "field"]


def describe_errors(err: Any, style: Style = "field", prefix: str = "") -> list[str]:
    """One line per problem of a pydantic ``ValidationError``, naming where and what is allowed.

    - ``yaml``: the path in a spec file, ``search.grid.beta[0]: …``;
    - ``option``: the command-line flag, ``--batch-size: … (got 0)``;
    - ``field``: the dotted field after ``prefix``, ``iql.beta: … (got -1)``.
    """
    lines = []
    for e in err.errors():
        detail = error_detail(e, flag=style == "option")
        if style == "yaml":
            lines.append(f"{prefix}{_yaml_path(e['loc'])}: {detail}")
            continue
        if not e["loc"]:  # a relation between fields: the message names them
            lines.append(f"{prefix}{detail}")
            continue
        if style == "option":
            where = "--" + str(e["loc"][0]).replace("_", "-")
        else:
            where = prefix + ".".join(str(p) for p in e["loc"])
        got = "" if e["type"] == "missing" else f" (got {e.get('input')!r})"
        lines.append(f"{where}: {detail}{got}")
    return lines


def error_detail(e: dict[str, Any], flag: bool = False) -> str:
    """What is wrong with one of pydantic's error entries, in the project's words where
    pydantic's would puzzle a user (``flag``: bounds said as a command-line user reads them)."""
    kind, ctx = e["type"], e.get("ctx") or {}
    if kind == "extra_forbidden":
        return "unknown key (remove it or check its spelling)"
    if kind == "missing":
        return "required key is missing"
    if flag and kind == "greater_than_equal" and ctx.get("ge") == 1:
        return "must be a positive integer"
    if flag and kind == "greater_than_equal":
        bound = ctx["ge"]
        return f"must be at least {bound:g}" if isinstance(bound, int | float) else kind
    return e["msg"].removeprefix("Value error, ")


def _yaml_path(loc: tuple[Any, ...]) -> str:
    """``search.grid.beta[0]``; a key that is not a plain name is quoted, ``search['a: b']``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z0-9_-]+", str(part)):
            out += ("." if out else "") + str(part)
        else:
            out += f"[{str(part)!r}]"
    return out or "(top level)"
