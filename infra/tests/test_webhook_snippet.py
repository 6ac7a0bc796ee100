"""docs/webhooks.md's Python receiver snippet, run as written against a delivery signed by the
service's signer (docs/webhooks/delivery-example.json; cli/tests/webhooks_verify.rs checks that
the Rust signer makes exactly that signature).

Run: infra/pytest.sh -q infra/tests/test_webhook_snippet.py
"""

from __future__ import annotations

import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def snippet() -> dict:
    doc = (REPO / "docs/webhooks.md").read_text()
    block = re.search(r"<!-- python-snippet:start -->\s*```python\n(.*?)```\s*<!-- python-snippet:end -->", doc, re.S)
    assert block, "docs/webhooks.md has no python snippet between its markers"
    namespace: dict = {}
    exec(compile(block.group(1), "docs/webhooks.md", "exec"), namespace)
    return namespace


def delivery() -> dict:
    return json.loads((REPO / "docs/webhooks/delivery-example.json").read_text())


def test_the_snippet_accepts_the_services_signature() -> None:
    verify = snippet()["verify_pipai_webhook"]
    d = delivery()
    assert verify(d["secret"], d["headers"], d["body"].encode(), tolerance_s=None)


def test_the_snippet_refuses_tampering_a_wrong_secret_and_stale_timestamps() -> None:
    verify = snippet()["verify_pipai_webhook"]
    d = delivery()
    body = d["body"].encode()
    assert not verify("another-secret", d["headers"], body, tolerance_s=None)
    assert not verify(d["secret"], d["headers"], body.replace(b"done", b"fail"), tolerance_s=None)
    assert not verify(d["secret"], {**d["headers"], "X-PipAI-Event-Id": "evt_" + "0" * 32}, body, tolerance_s=None)
    # Signed in 2026-04: far outside a 300 s window today.
    assert not verify(d["secret"], d["headers"], body, tolerance_s=300)
