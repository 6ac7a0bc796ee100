#!/usr/bin/env python3
"""The local stand-in for API Gateway (HTTP API, payload format 2.0) in front of `cargo lambda watch`.

Why it exists: `cargo lambda watch` (1.9.2) serves the API routes itself, but not the way API
Gateway does. On the one port it listens on it also serves the functions' invoke endpoints
(`POST /2015-03-31/functions/NAME/invocations`), so anyone reaching the API could hand job-events
or job-worker a forged stream or SQS batch; a path with no route gets a 404 listing the
functions; and a request body that is not UTF-8 gets a 500 instead of reaching the function. So
`cargo lambda watch` listens on an internal port, and this process, on the API's port, does what
API Gateway does:

- routes METHOD + path by Cargo.toml's `[workspace.metadata.lambda.watch.router]`, the route table
  infra/check_template.py checks against template.yaml's HttpApi events; `{name}` matches one path segment.
  Anything unrouted (an unknown path, a known path with another method, the invoke endpoints) is
  404 `{"code": "NOT_FOUND", "message": ...}`, as API Gateway answers a missing route, in the
  contract's error shape and naming no function;
- builds the payload v2 event: rawPath and rawQueryString exactly as sent (signatures cover
  them), lower-case headers (repeats joined with commas, cookies apart), requestContext, and the
  body as text, or base64 with isBase64Encoded when it is not UTF-8;
- invokes the function through the internal port's invoke endpoint and turns its payload v2
  response (statusCode, headers, multiValueHeaders, cookies, body, isBase64Encoded) into HTTP.
  A function that fails or does not answer gives 500 `{"code": "INTERNAL", ...}`.

Python standard library only. Started and stopped by infra/local.sh:

  local_gateway.py --port 3000 --lambda-url http://127.0.0.1:3001
"""
from __future__ import annotations

import argparse
import base64
import http.client
import json
import re
import signal
import sys
import time
import tomllib
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

REPO = Path(__file__).resolve().parent.parent
# Locally a request can wait behind others for the one instance of its function
# (`--concurrency 1`, see local.sh), so this is longer than API Gateway's 30 s.
INVOKE_TIMEOUT_SECONDS = 300
NOT_FOUND = {"code": "NOT_FOUND", "message": "Not Found: no route matches this method and path"}


class Route:
    """One METHOD + path pattern of the router and the function that serves it."""

    def __init__(self, method: str, pattern: str, function: str):
        self.method = method.upper()
        self.pattern = pattern
        self.function = function
        self.names = re.findall(r"\{([^}/]+)\}", pattern)
        self.regex = re.compile("^" + re.sub(r"\\\{[^}/]+\\\}", "([^/]+)", re.escape(pattern)) + "$")

    @property
    def key(self) -> str:
        return f"{self.method} {self.pattern}"

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """The path parameters when this route serves METHOD + path, else None."""
        m = self.regex.match(path) if method == self.method else None
        return dict(zip(self.names, m.groups())) if m else None


def load_routes(cargo_toml: Path) -> list[Route]:
    with cargo_toml.open("rb") as f:
        router = tomllib.load(f)["workspace"]["metadata"]["lambda"]["watch"]["router"]
    return [Route(r["method"], pattern, r["function"]) for pattern, rs in router.items() for r in rs]


def payload_v2_event(route: Route, params: dict[str, str], method: str, target: str, headers: list[tuple[str, str]],
                     body: bytes, source_ip: str) -> dict:
    raw_path, _, raw_query = target.partition("?")
    joined: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        name = name.lower()
        if name == "cookie":
            cookies += [c.strip() for c in value.split(";") if c.strip()]
        else:
            joined[name] = f"{joined[name]},{value}" if name in joined else value
    query: dict[str, str] = {}
    for name, value in parse_qsl(raw_query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value
    now = time.time()
    host = joined.get("host", "127.0.0.1").split(":")[0]
    event = {
        "version": "2.0",
        "routeKey": route.key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": joined,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "pipai-local",
            "domainName": host,
            "domainPrefix": host.split(".")[0],
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": joined.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": route.key,
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if params:
        event["pathParameters"] = params
    if body:
        try:
            event["body"] = body.decode("utf-8")
        except UnicodeDecodeError:
            event["body"] = base64.b64encode(body).decode("ascii")
            event["isBase64Encoded"] = True
    return event


class IntegrationError(Exception):
    """The function failed, or its answer is not a payload v2 response."""


def invoke(lambda_url: str, function: str, event: dict) -> dict:
    """The function's payload v2 response, through cargo lambda's invoke endpoint."""
    url = urlsplit(lambda_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=INVOKE_TIMEOUT_SECONDS)
    try:
        conn.request("POST", f"/2015-03-31/functions/{function}/invocations", body=json.dumps(event).encode(),
                     headers={"content-type": "application/json"})
        resp = conn.getresponse()
        text = resp.read()
    except OSError as e:
        raise IntegrationError(f"{function} did not answer: {e!r}") from e
    finally:
        conn.close()
    try:
        answer = json.loads(text or b"null")
    except ValueError as e:
        raise IntegrationError(f"{function} answered HTTP {resp.status} with no JSON") from e
    if resp.status != 200 or not isinstance(answer, dict) or "errorType" in answer \
            or not isinstance(answer.get("statusCode"), int):
        raise IntegrationError(f"{function} failed: HTTP {resp.status} {text[:300]!r}")
    return answer


def response_parts(answer: dict) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body bytes of a payload v2 response."""
    headers = [(k, str(v)) for k, v in (answer.get("headers") or {}).items()]
    for k, values in (answer.get("multiValueHeaders") or {}).items():
        headers += [(k, str(v)) for v in values]
    headers += [("set-cookie", c) for c in answer.get("cookies") or []]
    body = answer.get("body") or ""
    data = base64.b64decode(body) if answer.get("isBase64Encoded") else body.encode("utf-8")
    return answer["statusCode"], headers, data


class Gateway(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as clients of API Gateway expect
    default_request_version = "HTTP/1.1"  # so an unparseable request line still gets a status line
    server_version = "pipai-local-gateway"
    routes: list[Route] = []
    lambda_url = ""

    def __getattr__(self, name: str):
        # Every method token is routed (or answered 404), as API Gateway does; http.server would
        # answer 501 for one it has no do_METHOD for.
        if name.startswith("do_"):
            return self.serve
        raise AttributeError(name)

    def serve(self) -> None:
        body = self.read_body()
        if body is None:
            return
        method = self.command.upper()
        target = self.path
        raw_path = target.partition("?")[0]
        for route in self.routes:
            params = route.match(method, raw_path)
            if params is not None:
                break
        else:
            self.send_json(404, NOT_FOUND)
            return
        event = payload_v2_event(route, params, method, target, list(self.headers.items()), body,
                                 self.client_address[0])
        try:
            status, headers, data = response_parts(invoke(self.lambda_url, route.function, event))
        except (IntegrationError, ValueError, TypeError) as e:
            self.log_message("%s %s: %s", method, route.key, e)
            self.send_json(500, {"code": "INTERNAL", "message": "Internal Server Error"})
            return
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_body(data)

    def read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            chunks = []
            while True:
                line = self.rfile.readline(1024)
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    self.send_error(400, "bad chunked encoding")
                    return None
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)
        try:
            length = int(self.headers.get("content-length") or 0)
        except ValueError:
            self.send_error(400, "bad Content-Length")
            return None
        return self.rfile.read(length) if length > 0 else b""

    def send_json(self, status: int, body: dict) -> None:
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_body(json.dumps(body).encode())

    def send_body(self, data: bytes) -> None:
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def send_error(self, code, message=None, explain=None):
        """http.server's own errors (a malformed request line, headers too long) in the contract's shape."""
        self.close_connection = True
        code_name = "INVALID_PARAMETER" if 400 <= code < 500 else "INTERNAL"
        self.send_json(code, {"code": code_name, "message": message or self.responses.get(code, ("",))[0]})


class Server(ThreadingHTTPServer):
    # socketserver's default backlog is 5: a burst of clients (the e2e suite's 20 concurrent
    # creates) would see connections reset before a thread could accept them.
    request_queue_size = 128
    daemon_threads = True


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, required=True, help="the API's port on 127.0.0.1")
    ap.add_argument("--lambda-url", required=True, help="cargo lambda watch's internal address")
    ap.add_argument("--cargo-toml", type=Path, default=REPO / "Cargo.toml", help="where the router is")
    args = ap.parse_args()
    Gateway.routes = load_routes(args.cargo_toml)
    Gateway.lambda_url = args.lambda_url
    server = Server(("127.0.0.1", args.port), Gateway)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"gateway on http://127.0.0.1:{args.port} -> {args.lambda_url}: "
          + ", ".join(r.key for r in Gateway.routes), flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
