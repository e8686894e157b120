"""Secrets the server hands out (API keys, setup tokens): random, shown once, stored
only as a hash. They carry 256 bits of entropy, so a plain SHA-256 is enough."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid

USER_PREFIX = "tofu_u_"
STATION_PREFIX = "tofu_s_"
SETUP_TOKEN_LENGTH = 64


def new_id() -> str:
    return str(uuid.uuid4())


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def new_api_key(kind: str) -> str:
    prefix = USER_PREFIX if kind == "user" else STATION_PREFIX
    return prefix + secrets.token_urlsafe(32)


def display_prefix(key: str) -> str:
    return key[: len(USER_PREFIX) + 6] + "…"


def new_setup_token() -> str:
    return secrets.token_hex(SETUP_TOKEN_LENGTH // 2)


def sign(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def signature_ok(secret: str, message: str, signature: str) -> bool:
    # compare_digest refuses non-ASCII str: compare bytes, so a mangled URL is just wrong.
    return hmac.compare_digest(sign(secret, message).encode(), signature.encode("utf-8", "replace"))
