#!/usr/bin/env python3
"""Check that a moto server holds exactly the tables, queues and buckets template.yaml
declares (as infra/create_resources.py makes them), and optionally that moto behaves the
way the local harness relies on (--moto-behaviour).

Prints one `PASS name` / `FAIL name: why` / `INFO name: what` line per check and
`N passed, N failed` at the end; exit status 1 when a check failed.

  .venv/bin/python infra/check_resources.py --port 4566 [--env-file .local/env] [--moto-behaviour]
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import create_resources as cr  # noqa: E402


class Checks:
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

    def info(self, name: str, what: str) -> None:
        print(f"INFO {name}: {what}")

    def run(self, name: str, fn) -> None:
        """A check whose body raises on failure."""
        try:
            fn()
        except Exception as e:  # noqa: BLE001
            self.check(name, False, f"{type(e).__name__}: {e}")
        else:
            self.check(name, True)


def keys(ks):
    return sorted((k["AttributeName"], k["KeyType"]) for k in ks)


class Lookup:
    """Resolves template references against what exists, creating nothing."""

    def __init__(self, template, endpoint, prefix):
        import boto3

        s = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=cr.REGION)
        self.ddb = s.client("dynamodb", endpoint_url=endpoint)
        self.streams = s.client("dynamodbstreams", endpoint_url=endpoint)
        self.sqs = s.client("sqs", endpoint_url=endpoint)
        self.s3 = s.client("s3", endpoint_url=endpoint)
        self.template = template
        self.prefix = prefix
        self.resolver = cr.Resolver(template, {}, self.physical)

    def physical(self, lid):
        res = self.template["Resources"][lid]
        props = res.get("Properties") or {}
        name = cr.physical_name(self.prefix, lid, res["Type"], props)
        if res["Type"] == cr.TABLE:
            d = self.ddb.describe_table(TableName=name)["Table"]
            return {"Ref": name, "Arn": d["TableArn"], "StreamArn": d.get("LatestStreamArn")}
        if res["Type"] == cr.QUEUE:
            url = self.sqs.get_queue_url(QueueName=name)["QueueUrl"]
            arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            return {"Ref": url, "Arn": arn, "QueueName": name, "QueueUrl": url}
        if res["Type"] == cr.BUCKET:
            self.s3.head_bucket(Bucket=name)
            return {"Ref": name, "Arn": f"arn:aws:s3:::{name}"}
        raise cr.TemplateError(f"{lid} is not a local resource")


def check_table(c: Checks, lk: Lookup, lid: str) -> None:
    props = lk.resolver.resolve(lk.template["Resources"][lid]["Properties"])
    spec = cr.table_spec(props)
    name = cr.physical_name(lk.prefix, lid, cr.TABLE)
    try:
        d = lk.ddb.describe_table(TableName=name)["Table"]
    except Exception as e:  # noqa: BLE001
        c.check(f"table {lid} exists", False, str(e))
        return
    c.check(f"table {lid} exists", True)
    c.check(f"table {lid} key schema", keys(d["KeySchema"]) == keys(spec["KeySchema"]),
            f"{d['KeySchema']} != {spec['KeySchema']}")
    have_attrs = {a["AttributeName"]: a["AttributeType"] for a in d["AttributeDefinitions"]}
    want_attrs = {a["AttributeName"]: a["AttributeType"] for a in spec["AttributeDefinitions"]}
    c.check(f"table {lid} attribute types", have_attrs == want_attrs, f"{have_attrs} != {want_attrs}")
    billing = (d.get("BillingModeSummary") or {}).get("BillingMode", "PROVISIONED")
    c.check(f"table {lid} billing {spec['BillingMode']}", billing == spec["BillingMode"], billing)
    have_gsi = {g["IndexName"]: (keys(g["KeySchema"]), g["Projection"]["ProjectionType"])
                for g in d.get("GlobalSecondaryIndexes", [])}
    want_gsi = {g["IndexName"]: (keys(g["KeySchema"]), g["Projection"]["ProjectionType"])
                for g in spec.get("GlobalSecondaryIndexes", [])}
    c.check(f"table {lid} GSIs {sorted(want_gsi) or '[]'}", have_gsi == want_gsi, f"{have_gsi} != {want_gsi}")
    want_stream = (spec.get("StreamSpecification") or {}).get("StreamViewType")
    ss = d.get("StreamSpecification") or {}
    have_stream = ss.get("StreamViewType") if ss.get("StreamEnabled") else None
    c.check(f"table {lid} stream {want_stream}", have_stream == want_stream, str(have_stream))
    if want_stream:
        try:
            sd = lk.streams.describe_stream(StreamArn=d["LatestStreamArn"])["StreamDescription"]
            c.check(f"table {lid} stream describable", sd["StreamViewType"] == want_stream, str(sd))
        except Exception as e:  # noqa: BLE001
            c.check(f"table {lid} stream describable", False, str(e))
    ttl = lk.ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    want_ttl = cr.ttl_spec(props)
    have_ttl = ttl.get("AttributeName") if ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING") else None
    c.check(f"table {lid} ttl {want_ttl}", have_ttl == want_ttl, str(ttl))
    if "SSESpecification" in spec:
        status = (d.get("SSEDescription") or {}).get("Status")
        c.check(f"table {lid} sse", status in ("ENABLED", "ENABLING"), str(d.get("SSEDescription")))


def check_queue(c: Checks, lk: Lookup, lid: str) -> None:
    props = lk.resolver.resolve(lk.template["Resources"][lid].get("Properties") or {})
    name = cr.physical_name(lk.prefix, lid, cr.QUEUE, props)
    try:
        url = lk.sqs.get_queue_url(QueueName=name)["QueueUrl"]
    except Exception as e:  # noqa: BLE001
        c.check(f"queue {lid} exists", False, str(e))
        return
    c.check(f"queue {lid} exists", True)
    have = lk.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    for attr, want in cr.queue_attributes(props).items():
        c.check(f"queue {lid} {attr}={want}", cr._same_attr(attr, have.get(attr), want), str(have.get(attr)))


def check_bucket(c: Checks, lk: Lookup, lid: str) -> None:
    props = lk.resolver.resolve(lk.template["Resources"][lid].get("Properties") or {})
    name = cr.physical_name(lk.prefix, lid, cr.BUCKET)
    try:
        lk.s3.head_bucket(Bucket=name)
    except Exception as e:  # noqa: BLE001
        c.check(f"bucket {lid} exists", False, str(e))
        return
    c.check(f"bucket {lid} exists", True)
    if props.get("BucketEncryption"):
        rules = lk.s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"]
        want = cr.encryption_rules(props["BucketEncryption"])
        algo = [r["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] for r in rules]
        c.check(f"bucket {lid} encryption", algo == [r["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] for r in want], str(rules))
    if props.get("PublicAccessBlockConfiguration"):
        pab = lk.s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]
        want = {k: bool(v) for k, v in props["PublicAccessBlockConfiguration"].items()}
        c.check(f"bucket {lid} public access block", pab == want, str(pab))
    ver = (props.get("VersioningConfiguration") or {}).get("Status")
    if ver:
        have = lk.s3.get_bucket_versioning(Bucket=name).get("Status")
        c.check(f"bucket {lid} versioning {ver}", have == ver, str(have))
    want_rules = cr.lifecycle_rules(props)
    if want_rules:
        have_rules = lk.s3.get_bucket_lifecycle_configuration(Bucket=name)["Rules"]
        exp = lambda rs: sorted((r.get("ID"), (r.get("Expiration") or {}).get("Days"),  # noqa: E731
                                 (r.get("NoncurrentVersionExpiration") or {}).get("NoncurrentDays")) for r in rs)
        c.check(f"bucket {lid} lifecycle {exp(want_rules)}", exp(have_rules) == exp(want_rules), str(have_rules))


def check_no_strays(c: Checks, lk: Lookup) -> None:
    """Nothing with our prefix that the template does not declare."""
    managed = cr.managed_resources(lk.template)
    want_tables = {cr.physical_name(lk.prefix, l, t) for l, t in managed if t == cr.TABLE}
    want_queues = {cr.physical_name(lk.prefix, l, t, lk.template["Resources"][l].get("Properties"))
                   for l, t in managed if t == cr.QUEUE}
    want_buckets = {cr.physical_name(lk.prefix, l, t) for l, t in managed if t == cr.BUCKET}
    tables = {t for t in lk.ddb.list_tables()["TableNames"] if t.startswith(lk.prefix)}
    queues = {u.rsplit("/", 1)[1] for u in lk.sqs.list_queues(QueueNamePrefix=lk.prefix).get("QueueUrls", [])}
    buckets = {b["Name"] for b in lk.s3.list_buckets()["Buckets"] if b["Name"].startswith(lk.prefix.lower())}
    c.check("no tables beyond the template", tables == want_tables, f"{sorted(tables)} vs {sorted(want_tables)}")
    c.check("no queues beyond the template", queues == want_queues, f"{sorted(queues)} vs {sorted(want_queues)}")
    c.check("no buckets beyond the template", buckets == want_buckets, f"{sorted(buckets)} vs {sorted(want_buckets)}")


def check_env_file(c: Checks, lk: Lookup, path: Path, endpoint: str) -> None:
    if not c.check(f"env file {path} exists", path.is_file(), "missing"):
        return
    have = {}
    for line in path.read_text().splitlines():
        if line.startswith("export "):
            k, v = line[len("export "):].split("=", 1)
            have[k] = shlex.split(v)[0] if v else ""
    want = cr.env_from_template(lk.template, lk.resolver)
    want.update({"AWS_ENDPOINT_URL": endpoint, "AWS_REGION": cr.REGION,
                 "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"})
    for required in ("JOBS_TABLE", "USERS_TABLE", "API_KEYS_TABLE", "REQUESTS_TABLE", "MARKET_CATALOG_TABLE",
                     "JOBS_QUEUE_URL", "RESULTS_BUCKET", "MARKET_DATA_BUCKET", "REQUEST_WEIGHT_BUDGET",
                     "API_KEY_MASTER_KEY_PARAM", "RUST_LOG", "JOBS_DLQ_URL", "STREAM_FAILURE_QUEUE_URL",
                     "JOBS_STREAM_ARN"):
        c.check(f"env {required} declared", required in want, "not produced from the template")
    bad = {k: (have.get(k), v) for k, v in want.items() if have.get(k) != v}
    c.check(f"env file has all {len(want)} variables with the template's values", not bad, str(bad))


# ----------------------------------------------------------------------------- moto behaviour
def moto_behaviour(c: Checks, template: dict, endpoint: str) -> None:
    """Probe, on scratch copies of JobsQueue/JobsDeadLetterQueue/JobsTable built from the
    template (prefix pipai-probe-), the moto behaviours the local harness relies on."""
    prefix = "pipai-probe-"
    prov = cr.Provisioner(template, endpoint, prefix, {}, log=lambda *_: None)
    try:
        prov.delete_all()
        q = prov.ensure("JobsQueue")
        dlq = prov.ensure("JobsDeadLetterQueue")
        t = prov.ensure("JobsTable")
        sqs, ddb = prov.sqs, prov.ddb

        # 1. redrive to the DLQ after maxReceiveCount receives
        max_rc = int(json.loads(cr.queue_attributes(prov.props("JobsQueue"))["RedrivePolicy"])["maxReceiveCount"])
        sqs.send_message(QueueUrl=q["Ref"], MessageBody='{"job_id":"bt_probe"}')
        receives = 0
        for _ in range(max_rc + 2):
            msgs = sqs.receive_message(QueueUrl=q["Ref"], MaxNumberOfMessages=1, VisibilityTimeout=0,
                                       AttributeNames=["ApproximateReceiveCount"]).get("Messages", [])
            if not msgs:
                break
            receives += 1
        moved = sqs.receive_message(QueueUrl=dlq["Ref"], MaxNumberOfMessages=1,
                                    AttributeNames=["All"]).get("Messages", [])
        c.check(f"moto: message received {max_rc}x (maxReceiveCount) then not again", receives == max_rc,
                f"received {receives} times")
        c.check("moto: message moved to the DLQ after maxReceiveCount", len(moved) == 1
                and moved[0]["Body"] == '{"job_id":"bt_probe"}', str(moved))
        if moved:
            c.info("moto: DLQ message attributes", json.dumps(moved[0].get("Attributes", {}), sort_keys=True))

        # 1b. visibility timeout from the template hides a received message
        sqs.send_message(QueueUrl=q["Ref"], MessageBody="vis")
        first = sqs.receive_message(QueueUrl=q["Ref"], MaxNumberOfMessages=1).get("Messages", [])
        again = sqs.receive_message(QueueUrl=q["Ref"], MaxNumberOfMessages=1).get("Messages", [])
        c.check("moto: queue VisibilityTimeout hides a received message", len(first) == 1 and not again,
                f"first={len(first)} again={len(again)}")

        # 2. DynamoDB stream: INSERT / MODIFY / REMOVE with NEW_AND_OLD_IMAGES
        item = {"job_id": {"S": "bt_probe"}, "user_id": {"S": "u1"}, "status": {"S": "queued"},
                "submitted_key": {"S": "2026-01-01T00:00:00Z#bt_probe"}}
        ddb.put_item(TableName=t["Ref"], Item=item)
        ddb.update_item(TableName=t["Ref"], Key={"job_id": {"S": "bt_probe"}},
                        UpdateExpression="SET #s = :r", ExpressionAttributeNames={"#s": "status"},
                        ExpressionAttributeValues={":r": {"S": "running"}})
        ddb.delete_item(TableName=t["Ref"], Key={"job_id": {"S": "bt_probe"}})
        import boto3
        st = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test",
                                   region_name=cr.REGION).client("dynamodbstreams", endpoint_url=endpoint)
        desc = st.describe_stream(StreamArn=t["StreamArn"])["StreamDescription"]
        records = []
        for shard in desc["Shards"]:
            it = st.get_shard_iterator(StreamArn=t["StreamArn"], ShardId=shard["ShardId"],
                                       ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            records += st.get_records(ShardIterator=it)["Records"]
        names = [r["eventName"] for r in records]
        c.check("moto: stream records INSERT, MODIFY, REMOVE in order", names == ["INSERT", "MODIFY", "REMOVE"],
                str(names))
        mod = next((r for r in records if r["eventName"] == "MODIFY"), None)
        ok = bool(mod) and mod["dynamodb"].get("OldImage", {}).get("status") == {"S": "queued"} \
            and mod["dynamodb"].get("NewImage", {}).get("status") == {"S": "running"} \
            and mod["dynamodb"].get("StreamViewType") == "NEW_AND_OLD_IMAGES"
        c.check("moto: MODIFY record carries OldImage and NewImage", ok, json.dumps(mod, default=str)[:400])
        if mod:
            c.info("moto: stream record keys", f"record={sorted(mod)} dynamodb={sorted(mod['dynamodb'])}")

        # 3. TTL: enabled, but does moto expire items?
        ttl = ddb.describe_time_to_live(TableName=t["Ref"])["TimeToLiveDescription"]
        c.check("moto: TTL reported ENABLED on expires_at", ttl.get("TimeToLiveStatus") == "ENABLED"
                and ttl.get("AttributeName") == "expires_at", str(ttl))
        ddb.put_item(TableName=t["Ref"], Item={"job_id": {"S": "bt_expired"}, "expires_at": {"N": str(int(time.time()) - 86400)}})
        time.sleep(1.0)
        still = "Item" in ddb.get_item(TableName=t["Ref"], Key={"job_id": {"S": "bt_expired"}})
        c.info("moto: TTL expiry", "expired item is still returned (moto does not delete on TTL; code must "
               "filter expires_at itself)" if still else "expired item was deleted")
    finally:
        prov.delete_all()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--template", type=Path, default=cr.DEFAULT_TEMPLATE)
    p.add_argument("--port", type=int, default=int(os.environ.get("MOTO_PORT", "4566")))
    p.add_argument("--endpoint")
    p.add_argument("--prefix", default=cr.DEFAULT_PREFIX)
    p.add_argument("--env-file", type=Path, default=cr.DEFAULT_ENV_FILE)
    p.add_argument("--moto-behaviour", action="store_true", help="also probe moto's DLQ, stream and TTL behaviour")
    p.add_argument("--counts", type=Path, help="write 'PASSED FAILED' to this file")
    args = p.parse_args()
    endpoint = args.endpoint or f"http://127.0.0.1:{args.port}"

    c = Checks()
    template = cr.load_template(args.template)
    lk = Lookup(template, endpoint, args.prefix)
    for lid, rtype in cr.managed_resources(template):
        {cr.TABLE: check_table, cr.QUEUE: check_queue, cr.BUCKET: check_bucket}[rtype](c, lk, lid)
    check_no_strays(c, lk)
    try:
        check_env_file(c, lk, args.env_file, endpoint)
    except Exception as e:  # noqa: BLE001
        c.check("env file", False, f"{type(e).__name__}: {e}")
    if args.moto_behaviour:
        try:
            moto_behaviour(c, template, endpoint)
        except Exception as e:  # noqa: BLE001
            c.check("moto behaviour probe ran", False, f"{type(e).__name__}: {e}")
    if args.counts:
        args.counts.write_text(f"{c.passed} {c.failed}\n")
    print(f"{c.passed} passed, {c.failed} failed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
