"""Writing files so that a reader never sees half of one: write beside, then rename over."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file in ``path``'s folder, then rename it over ``path``.

    The folder is created when missing; on any error the temporary file is removed and ``path``
    keeps its previous content."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """``atomic_write`` of a UTF-8 text."""
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def folder_problem(folder: Path, name: str, named: Path | None = None) -> str | None:
    """Why ``folder`` cannot be made or written by this process, as a line naming the option
    ``name`` (None: it can). ``named`` is the folder the user gave, when ``folder`` lies in it.

    Walks up to the first existing folder: a file on the way, no write permission, or a place
    that refuses new folders (``/proc``, a read-only mount: tried with a probe) is a problem."""
    named = named or folder
    for path in (folder, *folder.parents):
        if not path.exists():
            continue
        if not path.is_dir():
            if path in (named, folder):
                return f"{name}: {path} is a file; give a folder"
            return f"{name}: {named} lies under the file {path}; give a folder"
        if not os.access(path, os.W_OK | os.X_OK):
            return f"{name}: cannot write in {path} (permission denied); choose another folder"
        if path != folder:  # what the run will create: try it
            try:
                os.rmdir(tempfile.mkdtemp(prefix=".iql-sweep-probe-", dir=path))
            except OSError as err:
                return (
                    f"{name}: cannot create folders in {path} ({err.strerror or err}); "
                    "choose another folder"
                )
        return None
    return None
