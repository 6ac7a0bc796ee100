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
import json
import os
import re
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


class StrategyFixture:
    """A stored strategy of the fuzzing key, made on first use (and again after a fuzzed DELETE
    removed it), so GET/PATCH/DELETE /v1/strategies/{id} reach a real strategy, not only 404s."""

    VALID_ID = re.compile(r"^st_[0-9a-f]{8}$")
    BODY = {"name": "fuzz fixture", "description": "made by infra/fuzz/hooks.py",
            "config": {"template_id": "tpl_ma_cross", "params": {"fast": 5, "slow": 20},
                       "symbols": ["BTCUSDT"], "timeframe": "1h", "capital": "10000.00"}}

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.id: str | None = None
        self._lock = threading.Lock()

    def current(self) -> str | None:
        with self._lock:
            if self.id is None and self.base_url:
                body = json.dumps(self.BODY).encode()
                path = urlsplit(self.base_url).path.rstrip("/") + "/v1/strategies"
                signed = path[path.index("/v1/"):]
                headers = signed_headers(SIGNER.api_key, SIGNER.secret, CLOCK.next_ms(), "POST", signed, "", body)
                headers["content-type"] = "application/json"
                r = requests.post(self.base_url + "/v1/strategies", data=body, headers=headers, timeout=30)
                if r.status_code == 201:
                    self.id = r.json()["id"]
                else:
                    print(f"fuzz: could not create the strategy fixture: {r.status_code} {r.text}", file=sys.stderr)
            return self.id

    def use_in(self, case) -> None:
        """Half the well-formed ids (a deterministic half: the last hex digit even) become the
        fixture's; malformed ids stay, so negative cases stay negative."""
        given = (case.path_parameters or {}).get("id")
        if isinstance(given, str) and self.VALID_ID.match(given) and int(given[-1], 16) % 2 == 0:
            ours = self.current()
            if ours:
                case.path_parameters["id"] = ours

    def deleted(self, case, status: int) -> None:
        if status == 204 and (case.path_parameters or {}).get("id") == self.id:
            with self._lock:
                self.id = None


STRATEGY = StrategyFixture(os.environ.get("PIPAI_FUZZ_URL", ""))


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.operation.path == "/v1/strategies/{id}":
        STRATEGY.use_in(case)
    # The transport passes `auth` on to requests.Session.request; the signer runs last.
    kwargs["auth"] = SIGNER


@schemathesis.hook
def after_call(context, case, response):
    COUNT.record(f"{case.operation.method.upper()} {case.operation.path}", response.status_code)
    if case.operation.method.upper() == "DELETE" and case.operation.path == "/v1/strategies/{id}":
        STRATEGY.deleted(case, response.status_code)

