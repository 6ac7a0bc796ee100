"""The API's request signing (docs/api.md "Signing") for the project's Python tools: the fuzzer's
hooks (infra/fuzz/hooks.py) and the tests over HTTP (infra/tests/). shared/service/src/auth.rs is
the reference; this is the same rule, written once for Python.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from urllib.parse import unquote_to_bytes

SCHEME = "PIPAI1-HMAC-SHA256"
UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")


def rfc3986(raw: bytes) -> str:
    """Unreserved bytes kept, every other byte `%XX` upper case."""
    return "".join(chr(b) if b in UNRESERVED else f"%{b:02X}" for b in raw)


def canonical_query(raw_query: str) -> str:
    """Every parameter percent-decoded (`+` stays a plus), re-encoded the RFC 3986 way, sorted."""
    pairs = []
    for part in raw_query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append((rfc3986(unquote_to_bytes(name)), rfc3986(unquote_to_bytes(value))))
    return "&".join(f"{n}={v}" for n, v in sorted(pairs))


def string_to_sign(timestamp: str, api_key: str, method: str, path: str, query: str, body: bytes) -> str:
    body_hash = hashlib.sha256(body).hexdigest()
    return "\n".join([SCHEME, timestamp, api_key, method.upper(), path, canonical_query(query), body_hash])


class Clock:
    """Epoch milliseconds, strictly increasing across requests (a POST replayed with the same
    signature inside 300 s is refused, and two identical requests in one millisecond would be)."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def next_ms(self) -> int:
        with self._lock:
            self._last = max(int(time.time() * 1000), self._last + 1)
            return self._last


CLOCK = Clock()


def signed_headers(api_key: str, secret: str, timestamp: int, method: str, path: str, query: str,
                   body: bytes) -> dict[str, str]:
    """The three signature headers of a request (`path` from `/v1/`, `query` as sent)."""
    to_sign = string_to_sign(str(timestamp), api_key, method, path, query, body)
    return {
        "X-PipAI-API-Key": api_key,
        "X-PipAI-Timestamp": str(timestamp),
        "X-PipAI-Signature": hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest(),
    }
