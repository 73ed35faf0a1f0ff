"""Reading a sweep spec file safely: a size limit, UTF-8 only, bounded nesting and alias
expansion (checked on the parser's event stream, before anything is built), and duplicate keys
as errors naming the key and both lines. Every refusal is one line that says what to change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from iql_sweep.errors import ConfigError

#: A spec is a few hundred bytes; anything near this is not one.
MAX_BYTES = 1 << 20
#: Deeper than any spec needs (a spec nests four levels).
MAX_DEPTH = 32
#: Nodes after expanding every alias (a spec has well under a thousand).
MAX_NODES = 50_000


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing duplicate keys."""

    def construct_mapping(self, node, deep=False):  # type: ignore[override]
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: construct_mapping reports it below
                continue
            if first is not None:
                raise ConfigError(
                    f"SPEC: key {key!r} appears twice (lines {first} and {line}); YAML keeps "
                    "only the last, so remove one"
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def check_structure(text: str, where: str = "SPEC") -> None:
    """Refuse nesting deeper than :data:`MAX_DEPTH` and aliases expanding beyond
    :data:`MAX_NODES` nodes, walking the parser's events (no recursion, nothing built)."""
    depth = 0
    sizes: list[int] = [0]  # nodes counted in each open collection (and the document)
    anchors: list[str | None] = [None]
    anchored: dict[str, int] = {}
    total = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in anchors:
                raise ConfigError(
                    f"{where}: the alias *{event.anchor} at line {event.start_mark.line + 1} "
                    "refers to a value that contains it; a spec cannot be recursive"
                )
            size = anchored.get(event.anchor, 1)
            sizes[-1] += size
            total += size
        elif isinstance(event, yaml.ScalarEvent):
            sizes[-1] += 1
            total += 1
            if event.anchor:
                anchored[event.anchor] = 1
        elif isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise ConfigError(
                    f"{where}: nested deeper than {MAX_DEPTH} levels (line "
                    f"{event.start_mark.line + 1}); a sweep spec nests a few levels"
                )
            sizes.append(1)
            anchors.append(event.anchor)
            total += 1
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
            size, anchor = sizes.pop(), anchors.pop()
            sizes[-1] += size
            if anchor:
                anchored[anchor] = size
        if total > MAX_NODES:
            raise ConfigError(
                f"{where}: its YAML aliases expand to more than {MAX_NODES:,} values (at line "
                f"{event.start_mark.line + 1}); write the values out instead of nesting aliases"
            )


def load_yaml(path: Path) -> Any:
    """The YAML document in ``path``, or one clear ConfigError."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ConfigError(
                f"SPEC: {path} is {size / 2**20:.1f} MiB; a sweep spec is a small YAML file "
                f"(at most {MAX_BYTES // 2**20} MiB)"
            )
        raw = path.read_bytes()
    except IsADirectoryError:
        raise ConfigError(f"SPEC: {path} is a folder; give the spec's YAML file") from None
    except OSError as err:
        raise ConfigError(f"SPEC: cannot read {path} ({err.strerror or err})") from None
    if b"\x00" in raw:
        raise ConfigError(f"SPEC: {path} is a binary file, not a YAML spec")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"SPEC: {path} is not UTF-8 text (byte 0x{raw[err.start]:02x} at offset "
            f"{err.start}); save the spec as UTF-8"
        ) from None
    try:
        check_structure(text)
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"SPEC: {path} is not valid YAML{where}: {problem}") from None
    except RecursionError:
        raise ConfigError(f"SPEC: {path} nests too deeply to read") from None
