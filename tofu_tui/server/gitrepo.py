"""Resolve a branch, tag or sha of a procedure's repository to a commit (pygit2).

The server keeps one bare mirror per repository URL under `<data>/repos/`, fetched
before each resolution; the URL is anything git can fetch, a local path included."""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlparse

import pygit2

from tofu_tui.server.errors import APIError

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()
_HEX = re.compile(r"^[0-9a-fA-F]{4,64}$")


@dataclass(frozen=True)
class ResolvedCommit:
    sha: str
    message: str
    author: str
    committed_at: datetime
    branch: str | None


@dataclass(frozen=True)
class RepoName:
    owner: str
    name: str
    provider: str


def describe(url: str) -> RepoName:
    """Owner, name and provider for display. The official client only knows the
    github/gitlab/bitbucket providers, so any other host (or a local path) is shown as
    'github'-style owner/name."""
    if "://" in url:
        parsed = urlparse(url)
        host, path = parsed.hostname or "", parsed.path
    elif re.match(r"^[\w.-]+@[\w.-]+:", url):  # scp-like ssh: git@host:owner/name.git
        host, path = url.split("@", 1)[1].split(":", 1)
    else:
        host, path = "", url
    parts = [p for p in re.split(r"[\\/]+", path) if p]
    name = parts[-1] if parts else url
    name = name[:-4] if name.endswith(".git") else name
    owner = parts[-2] if len(parts) > 1 else ""
    provider = "gitlab" if "gitlab" in host else "bitbucket" if "bitbucket" in host else "github"
    return RepoName(owner=owner, name=name or "repository", provider=provider)


def _lock_for(path: Path) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(str(path), threading.Lock())


def _mirror(repos_dir: Path, url: str) -> pygit2.Repository:
    path = repos_dir / (hashlib.sha256(url.encode()).hexdigest()[:24] + ".git")
    if path.exists():
        repo = pygit2.Repository(str(path))
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        repo = pygit2.init_repository(str(path), bare=True)
    if "origin" in [r.name for r in repo.remotes]:
        repo.remotes.set_url("origin", url)
    else:
        repo.remotes.create("origin", url)
    try:
        repo.remotes["origin"].fetch(
            ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"], prune=pygit2.enums.FetchPrune.PRUNE
        )
    except (pygit2.GitError, KeyError, ValueError) as exc:
        raise APIError(
            422,
            "repository_unreachable",
            f"Cannot fetch the repository {url!r}: {exc}. Check its URL and the server's access to it.",
        ) from exc
    return repo


def _commit_info(obj: pygit2.Object | pygit2.Commit, branch: str | None) -> ResolvedCommit:
    commit = obj.peel(pygit2.Commit)
    offset = timezone(timedelta(minutes=commit.commit_time_offset))
    return ResolvedCommit(
        sha=str(commit.id),
        message=commit.message.strip(),
        author=commit.author.name,
        committed_at=datetime.fromtimestamp(commit.commit_time, offset).astimezone(UTC),
        branch=branch,
    )


def resolve(repos_dir: Path, url: str, *, ref: str | None, sha: str | None, default_branch: str) -> ResolvedCommit:
    """The commit that `sha`, else `ref` (branch or tag), else the default branch names."""
    mirror_path = repos_dir / (hashlib.sha256(url.encode()).hexdigest()[:24] + ".git")
    with _lock_for(mirror_path):
        repo = _mirror(repos_dir, url)
        try:
            if sha:
                return _commit_info(repo.revparse_single(sha), None)
            wanted = ref or default_branch
            for prefix, is_branch in (("refs/heads/", True), ("refs/tags/", False)):
                name = prefix + wanted
                if name in repo.references:
                    target = repo.references[name].peel(pygit2.Commit)
                    return _commit_info(target, wanted if is_branch else None)
            if _HEX.match(wanted):
                return _commit_info(repo.revparse_single(wanted), None)
        except (KeyError, ValueError, pygit2.GitError, pygit2.InvalidSpecError) as exc:
            raise APIError(
                422, "ref_not_found", f"{sha or ref!r} is not a commit of {url!r}: {exc}."
            ) from exc
        raise APIError(
            422,
            "ref_not_found",
            f"No branch, tag or commit {wanted!r} in {url!r}: push it, or name another ref.",
        )
