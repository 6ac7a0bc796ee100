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
import os
import sys
import threading
from urllib.parse import urlsplit

import requests
import schemathesis

from infra.fuzz.signing import CLOCK, signed_headers



class PipaiSigner(requests.auth.AuthBase):
    def __init__(self, api_key: str, secret: str) -> None:
        self.api_key = api_key
        self.secret = secret

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        url = urlsplit(r.url)
        path = url.path
        # A stage prefix (`/prod/v1/...`) is not part of the signed path.
        if "/v1/" in path:
            path = path[path.index("/v1/"):]
        body = r.body or b""
        if isinstance(body, str):
            body = body.encode()
        headers = signed_headers(self.api_key, self.secret, CLOCK.next_ms(), r.method or "GET", path, url.query, body)
        # Only the headers the case carries get their real value: a negative case that left one
        # out (the document requires all three) must reach the API without it and get its 401.
        for name, value in headers.items():
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


# A generated notify_url the service could accept is pointed at 127.0.0.1's discard port, so the
# fuzzer never makes the service call out (the service refuses every other loopback form, and
# accepts this one only where the stack allows http://127.0.0.1). Values the document forbids
# (not a string, too long, not starting with http(s)://) are left as generated: they must be 400.
LOCAL_HOOK = "http://127.0.0.1:9/fuzz"


def keep_webhooks_local(body):
    if isinstance(body, dict) and isinstance(body.get("notify_url"), str):
        url = body["notify_url"]
        if len(url) <= 2048 and (url.startswith("https://") or url.startswith("http://")):
            body["notify_url"] = LOCAL_HOOK


@schemathesis.hook
def before_call(context, case, kwargs):
    # The transport passes `auth` on to requests.Session.request; the signer runs last.
    kwargs["auth"] = SIGNER
    keep_webhooks_local(case.body)
    if isinstance(kwargs.get("json"), dict):
        keep_webhooks_local(kwargs["json"])


@schemathesis.hook
def after_call(context, case, response):
    COUNT.record(f"{case.operation.method.upper()} {case.operation.path}", response.status_code)

