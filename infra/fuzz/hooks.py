"""Schemathesis hooks for the PipAI API: sign every request as shared/API.md says.

Loaded by `infra/openapi.sh fuzz` through SCHEMATHESIS_HOOKS=infra.fuzz.hooks (run from the repo
root). The key comes from PIPAI_API_KEY / PIPAI_API_SECRET (infra/local.sh's demo-key.env).

The signature is computed by a `requests` auth object, which `requests` calls after it has
prepared the request: it sees the exact path, query and body bytes that go on the wire, so what
is signed is what is sent, whatever Schemathesis generated (negative data included).
"""

from __future__ import annotations

import atexit
import collections
import hashlib
import hmac
import os
import sys
import threading
import time
from urllib.parse import unquote_to_bytes, urlsplit

import requests
import schemathesis

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


class PipaiSigner(requests.auth.AuthBase):
    def __init__(self, api_key: str, secret: str) -> None:
        self.api_key = api_key
        self.secret = secret.encode()

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        url = urlsplit(r.url)
        path = url.path
        # A stage prefix (`/prod/v1/...`) is not part of the signed path.
        if "/v1/" in path:
            path = path[path.index("/v1/"):]
        body = r.body or b""
        if isinstance(body, str):
            body = body.encode()
        timestamp = str(CLOCK.next_ms())
        sts = string_to_sign(timestamp, self.api_key, r.method or "GET", path, url.query, body)
        signature = hmac.new(self.secret, sts.encode(), hashlib.sha256).hexdigest()
        # Only the headers the case carries get their real value: a negative case that left one
        # out (the document requires all three) must reach the API without it and get its 401.
        for name, value in (
            ("X-PipAI-API-Key", self.api_key),
            ("X-PipAI-Timestamp", timestamp),
            ("X-PipAI-Signature", signature),
        ):
            if name in r.headers:
                r.headers[name] = value
        return r


class RequestCount:
    """Requests sent and statuses received per operation, printed when the run ends."""

    def __init__(self) -> None:
        self.by_operation: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self._lock = threading.Lock()

    def record(self, operation: str, status: int) -> None:
        with self._lock:
            self.by_operation[operation][status] += 1

    def report(self) -> None:
        total = sum(sum(c.values()) for c in self.by_operation.values())
        print(f"\nfuzz: {len(self.by_operation)} operations, {total} requests", file=sys.stderr)
        for operation, statuses in sorted(self.by_operation.items()):
            shown = ", ".join(f"{code}: {n}" for code, n in sorted(statuses.items()))
            print(f"  {operation:<45} {sum(statuses.values()):>5}  ({shown})", file=sys.stderr)


COUNT = RequestCount()
atexit.register(COUNT.report)

SIGNER = PipaiSigner(os.environ.get("PIPAI_API_KEY", ""), os.environ.get("PIPAI_API_SECRET", ""))


@schemathesis.hook
def before_call(context, case, kwargs):
    # The transport passes `auth` on to requests.Session.request; the signer runs last.
    kwargs["auth"] = SIGNER


@schemathesis.hook
def after_call(context, case, response):
    COUNT.record(f"{case.operation.method.upper()} {case.operation.path}", response.status_code)

