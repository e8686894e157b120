"""Git for deployments: a bare mirror per repository, commits checked out by sha.

pygit2 (libgit2): no git binary needed on the bench. https remotes use the token from
credentials.toml, ssh remotes the key from station.toml, file paths nothing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

import pygit2
from pygit2.enums import CredentialType

from tofu_tui.station.config import Credentials, GitSettings


class GitError(Exception):
    """Fetching or checking out failed; the message says why, for the operator."""


class _Callbacks(pygit2.RemoteCallbacks):
    def __init__(self, settings: GitSettings, credentials: Credentials | None) -> None:
        super().__init__()
        self.settings = settings
        self.secrets = credentials
        self.tries = 0

    def credentials(self, url: str, username_from_url: str | None, allowed_types: CredentialType) -> Any:
        # libgit2 asks again after a refused credential: stop instead of looping.
        self.tries += 1
        if self.tries > 2:
            raise GitError(f"the credentials for {_redact(url)} were refused")
        if allowed_types & CredentialType.SSH_KEY and self.settings.ssh_key:
            key = Path(self.settings.ssh_key).expanduser()
            pub = Path(str(key) + ".pub")
            passphrase = ""
            if self.secrets is not None and self.secrets.ssh_passphrase is not None:
                passphrase = self.secrets.ssh_passphrase.get_secret_value()
            return pygit2.Keypair(username_from_url or self.settings.ssh_user, str(pub) if pub.exists() else "",
                                  str(key), passphrase)
        if allowed_types & CredentialType.USERPASS_PLAINTEXT and self.secrets is not None \
                and self.secrets.git_token is not None:
            return pygit2.UserPass(self.settings.https_user, self.secrets.git_token.get_secret_value())
        raise GitError(f"{_redact(url)} needs credentials: set git.ssh_key in station.toml or git_token in "
                       "credentials.toml")


def _redact(url: str) -> str:
    """Never show a token embedded in a URL."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def mirror_path(repos: Path, url: str) -> Path:
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    return repos / f"{digest}.git"


def _open_mirror(repos: Path, url: str) -> pygit2.Repository:
    path = mirror_path(repos, url)
    if (path / "HEAD").exists():
        repo = pygit2.Repository(str(path))
    else:
        repos.mkdir(parents=True, exist_ok=True)
        repo = pygit2.init_repository(str(path), bare=True)
    if "origin" in [r.name for r in repo.remotes]:
        if repo.remotes["origin"].url != url:
            repo.remotes.set_url("origin", url)
    else:
        repo.remotes.create("origin", url, "+refs/heads/*:refs/heads/*")
        repo.remotes.add_fetch("origin", "+refs/tags/*:refs/tags/*")
    return repo


def _has_commit(repo: pygit2.Repository, sha: str) -> bool:
    try:
        obj = repo.get(sha)
    except (ValueError, KeyError):
        return False
    return isinstance(obj, pygit2.Commit)


def fetch_commit(repos: Path, url: str, sha: str, settings: GitSettings,
                 credentials: Credentials | None) -> pygit2.Repository:
    """Make `sha` available in the mirror of `url`, fetching only when it is missing.

    Objects fetched once stay in the mirror (it is never garbage-collected), so a commit
    already deployed here survives a force-push or a deleted branch upstream."""
    repo = _open_mirror(repos, url)
    if _has_commit(repo, sha):
        return repo
    if not (url.startswith(("http://", "https://", "ssh://", "git://", "file://")) or "@" in url.split("/")[0]
            or Path(url).expanduser().exists()):
        raise GitError(f"cannot fetch {url}: no such path or URL")
    remote = repo.remotes["origin"]
    try:
        remote.fetch(callbacks=_Callbacks(settings, credentials), prune=pygit2.enums.FetchPrune.NO_PRUNE)
    except (pygit2.GitError, GitError, OSError) as exc:
        raise GitError(f"cannot fetch {_redact(url)}: {exc}") from None
    if not _has_commit(repo, sha):
        try:  # servers that allow it can give an unadvertised commit by its sha
            remote.fetch([sha], callbacks=_Callbacks(settings, credentials))
        except (pygit2.GitError, GitError, OSError):
            pass
    if not _has_commit(repo, sha):
        raise GitError(f"commit {sha[:12]} is not in {_redact(url)} (deleted, or force-pushed away)")
    return repo


def checkout(repo: pygit2.Repository, sha: str, destination: Path) -> None:
    """Write the commit's tree into `destination` (which must not exist yet)."""
    commit = repo.get(sha)
    assert isinstance(commit, pygit2.Commit)
    destination.mkdir(parents=True)
    _write_tree(repo, commit.tree, destination)


def _write_tree(repo: pygit2.Repository, tree: pygit2.Tree, folder: Path) -> None:
    for entry in tree:
        name = entry.name or ""
        if name in ("", ".", "..", ".git") or "/" in name or "\\" in name:
            continue
        target = folder / name
        mode = entry.filemode
        if mode == pygit2.enums.FileMode.TREE:
            target.mkdir()
            sub = repo.get(entry.id)
            assert isinstance(sub, pygit2.Tree)
            _write_tree(repo, sub, target)
        elif mode == pygit2.enums.FileMode.COMMIT:  # a submodule: not fetched
            target.mkdir()
        else:
            blob = repo.get(entry.id)
            assert isinstance(blob, pygit2.Blob)
            if mode == pygit2.enums.FileMode.LINK:
                try:
                    os.symlink(blob.data.decode(), target)
                except OSError:
                    target.write_bytes(blob.data)
            else:
                target.write_bytes(blob.data)
                if mode == pygit2.enums.FileMode.BLOB_EXECUTABLE:
                    target.chmod(0o755)


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
