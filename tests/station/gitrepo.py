"""Real Git repositories for tests, made with pygit2."""

from __future__ import annotations

from pathlib import Path

import pygit2

PROCEDURE_YAML = """name: {name}
version: "1.0"
main:
  - name: check
    python: phases:check
"""

PHASES_PY = """import time


def check(log):
    log.info("version {marker}")
    time.sleep({delay})
"""


class Repo:
    def __init__(self, path: Path, subdir: str = "") -> None:
        self.path = path
        self.subdir = subdir
        self.repo = pygit2.init_repository(str(path), bare=False, initial_head="main")
        self.sig = pygit2.Signature("Test", "test@example.com")

    @property
    def url(self) -> str:
        return str(self.path)

    def commit(self, files: dict[str, str], message: str = "change") -> str:
        for name, text in files.items():
            target = self.path / self.subdir / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        index = self.repo.index
        index.add_all()
        index.write()
        tree = index.write_tree()
        parents = [] if self.repo.head_is_unborn else [self.repo.head.target]
        oid = self.repo.create_commit("refs/heads/main", self.sig, self.sig, message, tree, parents)
        return str(oid)

    def procedure(self, marker: str, name: str = "Board test", extra: dict[str, str] | None = None,
                  delay: float = 0.0) -> str:
        files = {"procedure.yaml": PROCEDURE_YAML.format(name=name),
                 "phases.py": PHASES_PY.format(marker=marker, delay=delay), **(extra or {})}
        return self.commit(files, f"procedure {marker}")

    def force_reset(self, sha: str) -> None:
        """A force-push: the branch moves back, dropping the commits after `sha`."""
        self.repo.references["refs/heads/main"].set_target(sha)


def link(procedure_id: str, name: str, deployment_id: str | None, sha: str | None, url: str,
         path: str = "") -> dict[str, object]:
    """One `procedures[]` entry of `GET /v2/stations/current`."""
    deployment = None
    if deployment_id is not None:
        deployment = {"id": deployment_id, "deployed_at": "2026-01-01T00:00:00Z",
                      "commit": {"sha": sha, "message": "m", "branch": "main"},
                      "repository": {"url": url, "owner": None, "name": None, "provider": "git"}, "path": path}
    return {"id": procedure_id, "identifier": name.lower().replace(" ", "-"), "name": name, "runs_count": 0,
            "deployment": deployment}
