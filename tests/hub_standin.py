"""A stand-in Hugging Face Hub on 127.0.0.1 serving dataset repositories from a folder laid out
as Minari's remote is (``<root>/<org>/<repo>/...``, e.g. ``farama-minari/D4RL/namespace_metadata
.json`` and ``farama-minari/D4RL/pointmaze/umaze-v2/data/{metadata.json,main_data.hdf5}``).

It answers the few endpoints ``huggingface_hub`` uses to list, inspect and download dataset
repositories (``HF_ENDPOINT=http://127.0.0.1:PORT``), so the platform's real download path runs
without the internet. Every request is recorded.
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

SHA = "0" * 39 + "1"


class HubStandIn:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> HubStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _files(self, repo: str) -> list[Path]:
        base = self.root / repo
        return sorted(p for p in base.rglob("*") if p.is_file())

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def _json(self, payload, status: int = 200) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _missing(self, code: str) -> None:
                body = json.dumps({"error": code}).encode()
                self.send_response(404)
                self.send_header("X-Error-Code", code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_HEAD(self) -> None:
                self.do_GET()

            def do_GET(self) -> None:  # noqa: C901 - one small router
                url = urlparse(self.path)
                path = unquote(url.path)
                hub.requests.append(f"{self.command} {path}")
                query = parse_qs(url.query)
                parts = path.strip("/").split("/")
                if parts[:2] == ["api", "datasets"] and len(parts) == 2:
                    org = query.get("author", [""])[0]
                    search = query.get("search", [""])[0]
                    repos = [
                        {"id": f"{org}/{p.name}"}
                        for p in sorted((hub.root / org).glob("*"))
                        if p.is_dir() and search in p.name
                    ]
                    return self._json(repos)
                if parts[:2] == ["api", "datasets"] and len(parts) >= 4:
                    repo = "/".join(parts[2:4])
                    if not (hub.root / repo).is_dir():
                        return self._missing("RepoNotFound")
                    rest = parts[4:]
                    if not rest or rest[0] == "revision":
                        siblings = [
                            {"rfilename": p.relative_to(hub.root / repo).as_posix()}
                            for p in hub._files(repo)
                        ]
                        return self._json({"id": repo, "sha": SHA, "siblings": siblings})
                    if rest[0] == "tree":
                        prefix = "/".join(rest[2:])
                        entries = []
                        for p in hub._files(repo):
                            name = p.relative_to(hub.root / repo).as_posix()
                            if prefix and not name.startswith(prefix + "/"):
                                continue
                            data = p.read_bytes()
                            entries.append(
                                {
                                    "type": "file",
                                    "path": name,
                                    "size": len(data),
                                    "oid": hashlib.sha1(data).hexdigest(),
                                }
                            )
                        return self._json(entries)
                    return self._missing("EntryNotFound")
                if parts[:1] == ["datasets"] and len(parts) >= 6 and parts[3] == "resolve":
                    repo = "/".join(parts[1:3])
                    target = hub.root / repo / "/".join(parts[5:])
                    if not target.is_file():
                        return self._missing("EntryNotFound")
                    data = target.read_bytes()
                    self.send_response(200)
                    self.send_header("X-Repo-Commit", SHA)
                    self.send_header("ETag", f'"{hashlib.sha1(data).hexdigest()}"')
                    self.send_header("Content-Length", str(len(data)))
                    self.send_header("Content-Type", "application/octet-stream")
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                    return None
                return self._missing("EntryNotFound")

        return Handler
