"""Reading W&B's offline ``run-<id>.wandb`` files in tests (no API key, no network).

The file is W&B's header followed by records in LevelDB's log format: 32 KiB blocks, each
record fragment with a 7-byte header (crc32c: 4, length: 2 little-endian, type: 1; types
1 full, 2 first, 3 middle, 4 last); each assembled record is a ``wandb_internal_pb2.Record``.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path

BLOCK = 32 * 1024
HEADER = 7


def records(path: Path) -> Iterator[object]:
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", "not a W&B run file"
    pos, pending = HEADER, b""
    while pos + HEADER <= len(data):
        left_in_block = BLOCK - pos % BLOCK
        if left_in_block < HEADER:  # block trailer padding
            pos += left_in_block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        body = data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind == 0:
            continue
        if kind in (2, 3):
            pending += body
            continue
        if kind == 4:
            body, pending = pending + body, b""
        record = wandb_internal_pb2.Record()
        record.ParseFromString(body)
        yield record


def run_contents(path: Path) -> tuple[dict, list[dict]]:
    """(config, history rows) of one offline run file."""
    config: dict = {}
    history: list[dict] = []
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            for item in record.run.config.update:
                config[item.key] = json.loads(item.value_json)
        elif kind == "config":
            for item in record.config.update:
                config[item.key] = json.loads(item.value_json)
        elif kind == "history":
            history.append(
                {
                    (i.key or "/".join(i.nested_key)): json.loads(i.value_json)
                    for i in record.history.item
                }
            )
    return config, history
