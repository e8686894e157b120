"""Which credential libgit2 gets for each kind of remote, and no endless retries."""

from __future__ import annotations

from pathlib import Path

import pygit2
import pytest
from pydantic import SecretStr
from pygit2.enums import CredentialType

from tofu_tui.station.config import Credentials, GitSettings
from tofu_tui.station.gitfetch import GitError, _Callbacks, _redact


def test_https_token_ssh_key_and_refusal(tmp_path: Path) -> None:
    creds = Credentials(api_key=SecretStr("station-key"), git_token=SecretStr("ghp_secret"))
    https = _Callbacks(GitSettings(), creds).credentials("https://git.example/r.git", None,
                                                        CredentialType.USERPASS_PLAINTEXT)
    assert isinstance(https, pygit2.UserPass) and https.credential_tuple == ("x-access-token", "ghp_secret")

    key = tmp_path / "id_ed25519"
    key.write_text("private")
    ssh = _Callbacks(GitSettings(ssh_key=str(key)), creds).credentials("ssh://git@host/r.git", "git",
                                                                       CredentialType.SSH_KEY)
    assert isinstance(ssh, pygit2.Keypair) and ssh.credential_tuple[2] == str(key)

    with pytest.raises(GitError, match="needs credentials"):
        _Callbacks(GitSettings(), None).credentials("https://git.example/r.git", None,
                                                    CredentialType.USERPASS_PLAINTEXT)
    refused = _Callbacks(GitSettings(), creds)
    for _ in range(2):
        refused.credentials("https://git.example/r.git", None, CredentialType.USERPASS_PLAINTEXT)
    with pytest.raises(GitError, match="refused"):
        refused.credentials("https://git.example/r.git", None, CredentialType.USERPASS_PLAINTEXT)


def test_tokens_in_urls_are_never_shown() -> None:
    assert _redact("https://user:tok@git.example/r.git") == "https://***@git.example/r.git"
    assert _redact("/srv/git/repo") == "/srv/git/repo"
