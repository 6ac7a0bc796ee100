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
    if case.operation.path == "/v1/strategies/{id}":
        STRATEGY.use_in(case)
    # The transport passes `auth` on to requests.Session.request; the signer runs last.
    kwargs["auth"] = SIGNER
    keep_webhooks_local(case.body)
    if isinstance(kwargs.get("json"), dict):
        keep_webhooks_local(kwargs["json"])


@schemathesis.hook
def after_call(context, case, response):
    COUNT.record(f"{case.operation.method.upper()} {case.operation.path}", response.status_code)
    if case.operation.method.upper() == "DELETE" and case.operation.path == "/v1/strategies/{id}":
        STRATEGY.deleted(case, response.status_code)



# ---- Compare and delete: real jobs to compare, so the 200 answers are reached too.
#
# Random job ids are never the caller's (404). Before the run, the caller gets two done jobs and a
# cancelled one (PIPAI_FUZZ_URL, set by `infra/openapi.sh fuzz`); a generated compare body that is
# valid (2-10 distinct ids) is given those ids instead, so it stays valid and answers 200. Deletes
# reach 204 through the document's links (create -> cancel -> delete), and then `use_after_free`
# checks the job is gone. The fuzzer reuses ids it saw in answers: a delete of a fixture job is
# sent for an unknown id instead (404), so the fixtures live through the run.

COMPARE_PATH = "/v1/backtest/compare"
JOB_ID = __import__("re").compile(r"^bt_[0-9a-f]{6,8}$")


def _fixture_jobs(base_url: str) -> list[str]:
    """Two done jobs and a cancelled one of the fuzzing key's user (best effort, about 10 s)."""
    import json
    import time

    def call(method: str, path: str, body: dict | None = None) -> requests.Response:
        data = json.dumps(body).encode() if body is not None else b""
        headers = {"x-pipai-api-key": "", "x-pipai-timestamp": "", "x-pipai-signature": ""}
        if body is not None:
            headers["content-type"] = "application/json"
        return requests.request(method, base_url + path, data=data, headers=headers, auth=SIGNER, timeout=30)

    small = {"template_id": "tpl_ma_cross", "params": {"fast": 5, "slow": 20}, "symbols": ["BTCUSDT"],
             "timeframe": "1h", "start": "2024-01-01T00:00:00Z", "end": "2024-03-01T00:00:00Z", "capital": "10000.00"}
    ids = []
    try:
        for fast in (5, 10):
            created = call("POST", "/v1/backtest/jobs", {**small, "params": {"fast": fast, "slow": 20}})
            if created.status_code == 201:
                ids.append(created.json()["id"])
        cancelled = call("POST", "/v1/backtest/jobs", {**small, "timeframe": "1m", "end": "2025-12-31T23:59:00Z"})
        if cancelled.status_code == 201:
            ids.append(cancelled.json()["id"])
            call("POST", f"/v1/backtest/jobs/{ids[-1]}/cancel")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            statuses = [call("GET", f"/v1/backtest/jobs/{i}").json().get("status") for i in ids]
            if all(s in ("done", "failed", "cancelled") for s in statuses):
                break
            time.sleep(0.5)
    except (requests.RequestException, ValueError, KeyError) as e:
        print(f"fuzz hooks: could not make the compare fixture jobs: {e}", file=sys.stderr)
    print(f"fuzz hooks: compare fixture jobs {ids}", file=sys.stderr)
    return ids


FIXTURE_JOBS = _fixture_jobs(os.environ["PIPAI_FUZZ_URL"].rstrip("/")) if os.environ.get("PIPAI_FUZZ_URL") else []


@schemathesis.hook
def map_body(context, body):
    operation = context.operation
    if operation is None or operation.path != COMPARE_PATH or len(FIXTURE_JOBS) < 2:
        return body
    ids = body.get("job_ids") if isinstance(body, dict) and set(body) == {"job_ids"} else None
    valid = (isinstance(ids, list) and 2 <= len(ids) <= 10 and len(set(map(str, ids))) == len(ids)
             and all(isinstance(i, str) and JOB_ID.match(i) for i in ids))
    if not valid:
        return body
    return {"job_ids": FIXTURE_JOBS[:max(2, min(len(ids), len(FIXTURE_JOBS)))]}


@schemathesis.hook("before_call")
def spare_fixture_jobs(context, case, kwargs):
    if case.method.upper() == "DELETE" and (case.path_parameters or {}).get("id") in FIXTURE_JOBS:
        case.path_parameters["id"] = "bt_00000000"


# ---- Sweeps: a generated valid (positive) create body becomes a tiny valid sweep as a dry
# run (200 without creating anything, so the fuzzer neither fills the 5 active slots nor runs
# sweeps); half the well-formed sweep ids in paths become a fixture sweep's (made once, 2 configs),
# so GET /v1/backtest/sweeps/{id} (and expand=leaderboard) reaches 200, not only 404.

SWEEPS_PATH = "/v1/backtest/sweeps"
SWEEP_ID = re.compile(r"^sw_[0-9a-f]{8}$")
TINY_SWEEP = {
    "base": {"template_id": "tpl_ma_cross", "params": {"direction": "long"}, "symbols": ["BTCUSDT"],
             "timeframe": "1h", "start": "2024-01-01T00:00:00Z", "end": "2024-03-01T00:00:00Z",
             "capital": "10000.00"},
    "space": {"params.fast": [5, 10], "params.slow": [30]},
}


def _fixture_sweep(base_url: str) -> str | None:
    body = json.dumps(TINY_SWEEP).encode()
    headers = {"x-pipai-api-key": "", "x-pipai-timestamp": "", "x-pipai-signature": "",
               "content-type": "application/json"}
    try:
        r = requests.post(base_url + SWEEPS_PATH, data=body, headers=headers, auth=SIGNER, timeout=30)
        if r.status_code == 201:
            print(f"fuzz hooks: sweep fixture {r.json()['id']}", file=sys.stderr)
            return r.json()["id"]
        print(f"fuzz hooks: could not make the sweep fixture: {r.status_code} {r.text}", file=sys.stderr)
    except (requests.RequestException, ValueError, KeyError) as e:
        print(f"fuzz hooks: could not make the sweep fixture: {e}", file=sys.stderr)
    return None


FIXTURE_SWEEP = _fixture_sweep(os.environ["PIPAI_FUZZ_URL"].rstrip("/")) if os.environ.get("PIPAI_FUZZ_URL") else None


def _positive_body(case) -> bool:
    """Whether the case's body was generated to be valid (a negative one must stay negative)."""
    meta = getattr(case, "meta", None)
    if meta is None:
        return False
    for location, info in (getattr(meta, "components", None) or {}).items():
        if str(getattr(location, "value", location)) == "body":
            return str(getattr(info.mode, "value", info.mode)) == "positive"
    return str(getattr(meta.generation.mode, "value", meta.generation.mode)) == "positive"


@schemathesis.hook("before_call")
def cheap_sweeps(context, case, kwargs):
    if case.operation.path != SWEEPS_PATH or case.operation.method.upper() != "POST":
        return
    if isinstance(case.body, dict) and isinstance(case.body.get("base"), dict) and _positive_body(case):
        case.body = {**TINY_SWEEP, "dry_run": True}


@schemathesis.hook("before_call")
def use_the_fixture_sweep(context, case, kwargs):
    if not FIXTURE_SWEEP or not case.operation.path.startswith(SWEEPS_PATH + "/{id}"):
        return
    given = (case.path_parameters or {}).get("id")
    if isinstance(given, str) and SWEEP_ID.match(given) and int(given[-1], 16) % 2 == 0:
        # A cancel of the fixture would end it early; cancels get an unknown id instead.
        case.path_parameters["id"] = "sw_00000000" if case.operation.path.endswith("/cancel") else FIXTURE_SWEEP


# ---- Artifacts: a well-formed job id (half of them, deterministically: the last hex digit even)
# becomes the first compare fixture job's, a done job of the caller, so the 200 answer (its files'
# presigned URLs) is reached too; the others stay unknown (404), malformed ones 400.

ARTIFACTS_PATH = "/v1/backtest/jobs/{id}/artifacts"


@schemathesis.hook("before_call")
def artifacts_of_a_done_job(context, case, kwargs):
    if case.operation.path != ARTIFACTS_PATH or not FIXTURE_JOBS:
        return
    given = (case.path_parameters or {}).get("id")
    if isinstance(given, str) and JOB_ID.match(given) and int(given[-1], 16) % 2 == 0:
        case.path_parameters["id"] = FIXTURE_JOBS[0]
