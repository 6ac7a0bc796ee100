"""Over HTTP against a running local stack (`infra/local.sh up`): the API port answers like API
Gateway (infra/local_gateway.py), not like `cargo lambda watch`.

  PIPAI_API_URL=http://127.0.0.1:3000 PIPAI_LOCAL_DIR=.local infra/pytest.sh -q infra/tests

PIPAI_API_URL defaults to http://127.0.0.1:3000 and PIPAI_LOCAL_DIR to <repo>/.local; the demo key
is the one local.sh saved in $PIPAI_LOCAL_DIR/demo-key.env. infra/test.sh runs this against its
own stack.
"""
from __future__ import annotations

import http.client
import json
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from infra.fuzz.signing import CLOCK, signed_headers  # noqa: E402 (the repo on the path first)
API = urlsplit(os.environ.get("PIPAI_API_URL") or "http://127.0.0.1:3000")
LOCAL_DIR = Path(os.environ.get("PIPAI_LOCAL_DIR") or REPO / ".local")
FUNCTIONS = ("create-job", "get-job", "list-jobs", "cancel-job", "list-symbols", "list-templates",
             "job-worker", "job-events", "delete-job", "compare-jobs")


@pytest.fixture(scope="module")
def demo_key() -> tuple[str, str]:
    lines = dict(line.split("=", 1) for line in (LOCAL_DIR / "demo-key.env").read_text().split())
    return lines["PIPAI_API_KEY"], lines["PIPAI_API_SECRET"]


def signed(key: tuple[str, str], method: str, target: str, body: bytes = b"") -> dict[str, str]:
    """The three signature headers for `target` (path and query as sent), a fresh timestamp each."""
    path, _, query = target.partition("?")
    return signed_headers(key[0], key[1], CLOCK.next_ms(), method, path, query, body)


def request(method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None):
    """(status, parsed JSON body, raw body); the target goes out byte for byte."""
    conn = http.client.HTTPConnection(API.hostname, API.port, timeout=120)
    try:
        conn.request(method, target, body=body, headers=headers or {})
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = None
    return resp.status, parsed, raw


def assert_not_found(status, body, raw):
    assert status == 404, raw
    assert isinstance(body, dict) and set(body) == {"code", "message"}, raw
    assert body["code"] == "NOT_FOUND"
    assert not [f for f in FUNCTIONS if f in raw.decode(errors="replace")], "the 404 names a function"


def test_unrouted_path_is_404_naming_no_function():
    assert_not_found(*request("GET", "/v1/backtest/no-such-thing"))
    assert_not_found(*request("GET", "/"))


@pytest.mark.parametrize("method,target", [("DELETE", "/v1/backtest/templates"), ("POST", "/v1/backtest/symbols"),
                                           ("PUT", "/v1/backtest/jobs"), ("GET", "/v1/backtest/jobs/bt_0000aa/cancel")])
def test_known_path_with_another_method_is_404(method, target):
    assert_not_found(*request(method, target))


@pytest.mark.parametrize("function", ["job-events", "job-worker"])
def test_invoke_endpoints_are_not_on_the_api_port(function):
    """A forged batch is answered by the gateway's 404, not by the function (whose answer would
    be 200 and `{"batchItemFailures": [...]}`)."""
    forged = json.dumps({"Records": [{"eventSource": "aws:sqs", "messageId": "forged", "body": "{}"}]}).encode()
    status, body, raw = request("POST", f"/2015-03-31/functions/{function}/invocations", forged,
                                {"content-type": "application/json"})
    assert_not_found(status, body, raw)
    assert "batchItemFailures" not in body


def test_body_that_is_not_utf8_reaches_the_function(demo_key):
    body = b"\xff\xfe{"
    headers = {"content-type": "application/json", **signed(demo_key, "POST", "/v1/backtest/jobs", body)}
    status, parsed, raw = request("POST", "/v1/backtest/jobs", body, headers)
    assert status == 400, raw
    assert isinstance(parsed, dict) and set(parsed) == {"code", "message"}, raw
    assert parsed["code"] == "INVALID_PARAMETER"


def test_signed_get_templates_is_200(demo_key):
    status, parsed, raw = request("GET", "/v1/backtest/templates", headers=signed(demo_key, "GET", "/v1/backtest/templates"))
    assert status == 200, raw
    assert parsed is not None


def test_query_string_reaches_the_function_byte_exact(demo_key):
    """`+` is a literal plus in the signature's canonical query: a gateway that rewrote the query
    (`+` to a space or `%20`) would break the signature and get 401."""
    target = "/v1/backtest/jobs?template_id=tpl+x%2By&limit=1"
    status, parsed, raw = request("GET", target, headers=signed(demo_key, "GET", target))
    assert status != 401, raw
    assert status in (200, 400), raw


def test_a_burst_of_clients_is_answered_not_reset():
    """Like API Gateway, the gateway takes a burst of connections at once (the e2e suite sends 20
    creates together): none is reset for want of a listen backlog."""
    import threading

    clients = 64
    start = threading.Barrier(clients)
    statuses: list[object] = []

    def one():
        start.wait()
        try:
            statuses.append(request("GET", "/v1/no-such-route")[0])
        except OSError as e:  # a reset connection
            statuses.append(e)

    threads = [threading.Thread(target=one) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [404] * clients, statuses
