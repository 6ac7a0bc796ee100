#!/usr/bin/env python3
"""Static checks of template.yaml against the service's contract: the functions, their
binaries and routes, the worker/stream settings, the environment variable names the Rust
code reads, and no over-broad SAM policy templates. Needs no server.

Prints `PASS`/`FAIL` lines and `N passed, N failed`; exit 1 on a failure.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import create_resources as cr  # noqa: E402
import local_gateway  # noqa: E402


class Checks:
    """Counts and prints one `PASS name` / `FAIL name: why` line per check."""

    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    def check(self, name: str, ok: bool, why: str = "") -> bool:
        if ok:
            self.passed += 1
            print(f"PASS {name}")
        else:
            self.failed += 1
            print(f"FAIL {name}: {why}")
        return ok


# logical id -> (binary, HTTP method, path) ; method None = not an API function
FUNCTIONS = {
    "CreateJobFunction": ("create-job", "POST", "/v1/backtest/jobs"),
    "GetJobFunction": ("get-job", "GET", "/v1/backtest/jobs/{id}"),
    "ListJobsFunction": ("list-jobs", "GET", "/v1/backtest/jobs"),
    "CancelJobFunction": ("cancel-job", "POST", "/v1/backtest/jobs/{id}/cancel"),
    "ListSymbolsFunction": ("list-symbols", "GET", "/v1/backtest/symbols"),
    "ListTemplatesFunction": ("list-templates", "GET", "/v1/backtest/templates"),
    "JobWorkerFunction": ("job-worker", None, None),
    "JobEventsFunction": ("job-events", None, None),
    # Stored strategies.
    "CreateStrategyFunction": ("create-strategy", "POST", "/v1/strategies"),
    "GetStrategyFunction": ("get-strategy", "GET", "/v1/strategies/{id}"),
    "ListStrategiesFunction": ("list-strategies", "GET", "/v1/strategies"),
    "UpdateStrategyFunction": ("update-strategy", "PATCH", "/v1/strategies/{id}"),
    "DeleteStrategyFunction": ("delete-strategy", "DELETE", "/v1/strategies/{id}"),
    # Deleting and comparing jobs.
    "DeleteJobFunction": ("delete-job", "DELETE", "/v1/backtest/jobs/{id}"),
    "CompareJobsFunction": ("compare-jobs", "POST", "/v1/backtest/compare"),
    # Sweeps.
    "CreateSweepFunction": ("create-sweep", "POST", "/v1/backtest/sweeps"),
    "GetSweepFunction": ("get-sweep", "GET", "/v1/backtest/sweeps/{id}"),
    "ListSweepsFunction": ("list-sweeps", "GET", "/v1/backtest/sweeps"),
    "CancelSweepFunction": ("cancel-sweep", "POST", "/v1/backtest/sweeps/{id}/cancel"),
    "SweepEventsFunction": ("sweep-events", None, None),
    "SweepWorkerFunction": ("sweep-worker", None, None),
    # A done job's downloadable files.
    "GetArtifactsFunction": ("get-artifacts", "GET", "/v1/backtest/jobs/{id}/artifacts"),
    "JobNotifierFunction": ("job-notifier", None, None),
}
ENV_NAMES = [
    "JOBS_TABLE", "USERS_TABLE", "API_KEYS_TABLE", "REQUESTS_TABLE", "MARKET_CATALOG_TABLE",
    "JOBS_QUEUE_URL", "RESULTS_BUCKET", "MARKET_DATA_BUCKET", "REQUEST_WEIGHT_BUDGET",
    "API_KEY_MASTER_KEY_PARAM", "RUST_LOG", "STRATEGIES_TABLE", "SWEEPS_TABLE",
]
BROAD_POLICY_TEMPLATES = {"DynamoDBCrudPolicy", "S3CrudPolicy", "S3FullAccessPolicy",
                          "AmazonDynamoDBFullAccess", "AdministratorAccess"}


def mappings_for(res: dict, function: str) -> list[dict]:
    return [
        r["Properties"] for r in res.values()
        if r["Type"] == "AWS::Lambda::EventSourceMapping" and r["Properties"].get("FunctionName") == {"Ref": function}
    ]


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--template", type=Path, default=cr.DEFAULT_TEMPLATE)
    args = p.parse_args()
    t = cr.load_template(args.template)
    res = t["Resources"]
    g = (t.get("Globals") or {}).get("Function") or {}
    c = Checks()

    c.check("globals: runtime provided.al2023", g.get("Runtime") == "provided.al2023", str(g.get("Runtime")))
    c.check("globals: arm64", g.get("Architectures") == ["arm64"], str(g.get("Architectures")))
    c.check("globals: handler bootstrap", g.get("Handler") == "bootstrap", str(g.get("Handler")))
    env = ((g.get("Environment") or {}).get("Variables")) or {}
    for name in ENV_NAMES:
        c.check(f"globals: env {name}", name in env, "missing")

    api_ids = [lid for lid, r in res.items() if r["Type"] == "AWS::Serverless::HttpApi"]
    c.check("one AWS::Serverless::HttpApi", len(api_ids) == 1, str(api_ids))
    funcs = {lid for lid, r in res.items() if r["Type"] == "AWS::Serverless::Function"}
    c.check("exactly the expected functions", funcs == set(FUNCTIONS), str(sorted(funcs)))
    for lid, (binary, method, path) in FUNCTIONS.items():
        r = res.get(lid)
        if r is None:
            continue
        md = r.get("Metadata") or {}
        props = r.get("Properties") or {}
        c.check(f"{lid}: rust-cargolambda, Binary {binary}",
                md.get("BuildMethod") == "rust-cargolambda" and (md.get("BuildProperties") or {}).get("Binary") == binary,
                str(md))
        c.check(f"{lid}: CodeUri ./", props.get("CodeUri", g.get("CodeUri")) in ("./", "."), str(props.get("CodeUri")))
        events = props.get("Events") or {}
        if method:
            routes = [(e["Properties"].get("Method"), e["Properties"].get("Path"), e["Properties"].get("ApiId"))
                      for e in events.values() if e.get("Type") == "HttpApi"]
            c.check(f"{lid}: route {method} {path}", routes == [(method, path, {"Ref": api_ids[0] if api_ids else None})],
                    str(routes))
        else:
            c.check(f"{lid}: no SAM pull events (mappings are explicit, roles stay scoped)",
                    not [e for e in events.values() if e.get("Type") in ("SQS", "DynamoDB", "Kinesis")], str(events))
        for pol in props.get("Policies") or []:
            if isinstance(pol, dict) and len(pol) == 1:
                (name,) = pol
                c.check(f"{lid}: policy {name} is not over-broad", name not in BROAD_POLICY_TEMPLATES, name)

    # The local stack routes by Cargo.toml's router (infra/local_gateway.py): the same routes.
    template_routes = {(m, p): b for b, m, p in FUNCTIONS.values() if m}
    cargo_routes = {(r.method, r.pattern): r.function for r in local_gateway.load_routes(cr.REPO / "Cargo.toml")}
    c.check("Cargo.toml's router = the template's HttpApi routes", cargo_routes == template_routes,
            f"{sorted(cargo_routes.items())} != {sorted(template_routes.items())}")

    worker = (res.get("JobWorkerFunction") or {}).get("Properties") or {}
    c.check("worker: timeout 120", worker.get("Timeout") == 120, str(worker.get("Timeout")))
    c.check("worker: memory 1769", worker.get("MemorySize") == 1769, str(worker.get("MemorySize")))
    wm = {m["EventSourceArn"]["Fn::GetAtt"][0]: m for m in mappings_for(res, "JobWorkerFunction")}
    c.check("worker: mappings on JobsQueue and JobsDeadLetterQueue", set(wm) == {"JobsQueue", "JobsDeadLetterQueue"},
            str(sorted(wm)))
    for q, m in wm.items():
        c.check(f"worker/{q}: ReportBatchItemFailures", m.get("FunctionResponseTypes") == ["ReportBatchItemFailures"],
                str(m.get("FunctionResponseTypes")))
    params = t.get("Parameters") or {}
    bs = (wm.get("JobsQueue") or {}).get("BatchSize")
    if isinstance(bs, dict) and "Ref" in bs:
        spec = params.get(bs["Ref"], {})
        ok = 1 <= int(spec.get("Default", 0)) <= 10 and int(spec.get("MinValue", 0)) >= 1 and int(spec.get("MaxValue", 99)) <= 10
    else:
        ok = isinstance(bs, int) and 1 <= bs <= 10
    c.check("worker/JobsQueue: batch size within 1..10", ok, str(bs))

    q = res["JobsQueue"]["Properties"]
    c.check("JobsQueue: visibility = 6 x worker timeout", q.get("VisibilityTimeout") == 6 * worker.get("Timeout", 0),
            str(q.get("VisibilityTimeout")))
    c.check("JobsQueue: redrive to JobsDeadLetterQueue after 3",
            q.get("RedrivePolicy") == {"deadLetterTargetArn": {"Fn::GetAtt": ["JobsDeadLetterQueue", "Arn"]},
                                       "maxReceiveCount": 3}, str(q.get("RedrivePolicy")))
    dlq = res["JobsDeadLetterQueue"]["Properties"]
    c.check("JobsDeadLetterQueue: retention 14 days", dlq.get("MessageRetentionPeriod") == 1209600,
            str(dlq.get("MessageRetentionPeriod")))
    c.check("JobsDeadLetterQueue: visibility >= worker timeout (Lambda requires it)",
            dlq.get("VisibilityTimeout", 30) >= worker.get("Timeout", 0), str(dlq.get("VisibilityTimeout")))

    em = mappings_for(res, "JobEventsFunction")
    c.check("events: one mapping", len(em) == 1, str(len(em)))
    if em:
        m = em[0]
        c.check("events: JobsTable stream", m.get("EventSourceArn") == {"Fn::GetAtt": ["JobsTable", "StreamArn"]},
                str(m.get("EventSourceArn")))
        for k, v in {"StartingPosition": "TRIM_HORIZON", "BisectBatchOnFunctionError": True,
                     "MaximumRetryAttempts": 5, "FunctionResponseTypes": ["ReportBatchItemFailures"]}.items():
            c.check(f"events: {k}={v}", m.get(k) == v, str(m.get(k)))
        c.check("events: MaximumRecordAgeInSeconds set", isinstance(m.get("MaximumRecordAgeInSeconds"), int), "")
        c.check("events: OnFailure -> StreamFailureQueue",
                (m.get("DestinationConfig") or {}).get("OnFailure", {}).get("Destination")
                == {"Fn::GetAtt": ["StreamFailureQueue", "Arn"]}, str(m.get("DestinationConfig")))

    jt = res["JobsTable"]["Properties"]
    c.check("JobsTable: PITR on", jt.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled") is True, "")
    for lid, r in res.items():
        if r["Type"] == cr.TABLE:
            pr = r["Properties"]
            c.check(f"{lid}: PAY_PER_REQUEST + SSE", pr.get("BillingMode") == "PAY_PER_REQUEST"
                    and (pr.get("SSESpecification") or {}).get("SSEEnabled") is True, "")
        if r["Type"] == cr.BUCKET:
            pr = r["Properties"]
            pab = pr.get("PublicAccessBlockConfiguration") or {}
            c.check(f"{lid}: public access blocked + SSE", all(pab.get(k) is True for k in (
                "BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"))
                and bool(pr.get("BucketEncryption")), "")
    alarms = [r["Properties"] for r in res.values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    watched = {a["Dimensions"][0]["Value"]["Fn::GetAtt"][0] for a in alarms
               if a.get("MetricName") == "ApproximateNumberOfMessagesVisible"}
    c.check("alarms on JobsDeadLetterQueue and StreamFailureQueue",
            {"JobsDeadLetterQueue", "StreamFailureQueue"} <= watched, str(watched))

    # Completion webhooks: the notifier on its queue, a redrive, visibility >= 6 x its timeout.
    notifier = (res.get("JobNotifierFunction") or {}).get("Properties") or {}
    nm = {m["EventSourceArn"]["Fn::GetAtt"][0]: m for m in mappings_for(res, "JobNotifierFunction")}
    c.check("notifier: one mapping, on NotificationsQueue", set(nm) == {"NotificationsQueue"}, str(sorted(nm)))
    c.check("notifier: ReportBatchItemFailures",
            (nm.get("NotificationsQueue") or {}).get("FunctionResponseTypes") == ["ReportBatchItemFailures"], "")
    nq = (res.get("NotificationsQueue") or {}).get("Properties") or {}
    c.check("NotificationsQueue: visibility >= 6 x notifier timeout",
            nq.get("VisibilityTimeout", 0) >= 6 * notifier.get("Timeout", 10), str(nq.get("VisibilityTimeout")))
    c.check("NotificationsQueue: redrive to NotificationsDeadLetterQueue",
            (nq.get("RedrivePolicy") or {}).get("deadLetterTargetArn")
            == {"Fn::GetAtt": ["NotificationsDeadLetterQueue", "Arn"]}, str(nq.get("RedrivePolicy")))
    c.check("alarm on NotificationsDeadLetterQueue", "NotificationsDeadLetterQueue" in watched, str(watched))

    print(f"{c.passed} passed, {c.failed} failed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
