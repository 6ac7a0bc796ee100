#!/usr/bin/env python3
"""Local event source mappings: what AWS Lambda does for the SQS queues and the DynamoDB stream,
done against the moto emulator for the functions that `cargo lambda watch` serves.

Why this exists: nothing else runs Lambda's event source mappings (SQS queue -> function,
DynamoDB stream -> function) on this machine. moto only runs them by starting Lambda functions
in Docker, as do LocalStack and `sam local`, and there is no Docker engine here; `cargo lambda
watch` serves invocations but polls nothing. So this script is Lambda's poller, with its event
shapes and batch semantics.

- Jobs queue -> `job-worker`: batches of up to the mapping's BatchSize in Lambda's SQS event shape;
  `ReportBatchItemFailures` is honoured (failed items stay, the rest are deleted). A function
  error fails the whole batch. Failed messages become visible again after RETRY_SECONDS (Lambda
  waits the queue's visibility timeout; locally that would be 12 minutes). moto's redrive policy
  moves a message to the dead-letter queue after maxReceiveCount receives, as SQS does.
- Dead-letter queue -> `job-worker` (the same function fails those jobs), same semantics.
- Notifications queue -> `job-notifier` (completion webhooks), same semantics; its retries are
  new messages with a DelaySeconds, which moto honours, so they need nothing from this script.
- Jobs table stream -> `job-events`: records in order, batches of up to BatchSize, in Lambda's
  DynamoDB event shape. A reported failure retries from the failed record; after
  MaximumRetryAttempts the batch is bisected down to the failing record (BisectBatchOnFunctionError),
  which is sent to the on-failure queue and skipped.

The mappings (function, source, batch size, retries, bisection, on-failure queue) are read from
.local/mappings.json, which create_resources.py writes from template.yaml's
AWS::Lambda::EventSourceMapping resources, so local delivery follows the deployed settings.
A mapping is paused (as `aws lambda update-event-source-mapping --no-enabled` would) while the
directory .local/paused/<mapping name>/ holds any file: `infra/local.sh pause|resume NAME`, and
the end-to-end tests use it to hold jobs in the queue. Stops on SIGTERM/SIGINT.
"""

import argparse
import json
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request

import boto3

RETRY_SECONDS = int(os.environ.get("PIPAI_LOCAL_RETRY_SECONDS", "8"))
STOP = threading.Event()
LOCAL_DIR = os.environ.get("PIPAI_LOCAL_DIR") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".local")
PAUSED_DIR = os.path.join(LOCAL_DIR, "paused")


def paused(mapping):
    try:
        return bool(os.listdir(os.path.join(PAUSED_DIR, mapping["name"])))
    except FileNotFoundError:
        return False


def log(*args):
    print(time.strftime("%H:%M:%S"), "[pump]", *args, flush=True)


def invoke(lambda_url, function, payload, timeout):
    """Invokes a function through cargo lambda watch; (ok, response-json-or-error-text)."""
    req = urllib.request.Request(
        f"{lambda_url}/2015-03-31/functions/{function}/invocations",
        data=json.dumps(payload).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            text = resp.read().decode() or "null"
            body = json.loads(text)
            if isinstance(body, dict) and body.get("errorType"):
                return False, body
            return True, body
    except urllib.error.HTTPError as e:
        return False, f"HTTP {e.code}: {e.read().decode(errors='replace')[:500]}"
    except Exception as e:  # connection refused, timeout: the function crashed or is rebuilding
        return False, repr(e)


def sqs_loop(sqs, mapping, lambda_url, region, timeout):
    queue_url, arn, function = mapping["queue_url"], mapping["queue_arn"], mapping["function"]
    while not STOP.is_set():
        if paused(mapping):
            time.sleep(0.1)
            continue
        try:
            got = sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=mapping["batch_size"], WaitTimeSeconds=1,
                AttributeNames=["All"], MessageAttributeNames=["All"],
            )
        except Exception as e:
            log(f"receive from {queue_url} failed: {e!r}")
            time.sleep(1)
            continue
        messages = got.get("Messages", [])
        if not messages:
            continue
        records = [{
            "messageId": m["MessageId"],
            "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"],
            "attributes": m.get("Attributes", {}),
            "messageAttributes": {},
            "md5OfBody": m.get("MD5OfBody", ""),
            "eventSource": "aws:sqs",
            "eventSourceARN": arn,
            "awsRegion": region,
        } for m in messages]
        ok, resp = invoke(lambda_url, function, {"Records": records}, timeout)
        if ok:
            failed = {f.get("itemIdentifier") for f in (resp or {}).get("batchItemFailures", [])}
        else:
            log(f"{function} failed on a batch of {len(records)} from {arn.rsplit(':', 1)[-1]}: {resp}")
            failed = {m["MessageId"] for m in messages}
        for m in messages:
            if m["MessageId"] in failed:
                sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=RETRY_SECONDS)
            else:
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])


def stream_records(raw, stream_arn):
    out = []
    for r in raw:
        d = dict(r["dynamodb"])
        t = d.get("ApproximateCreationDateTime")
        if hasattr(t, "timestamp"):
            d["ApproximateCreationDateTime"] = t.timestamp()
        rec = dict(r)
        rec["dynamodb"] = d
        rec.setdefault("eventSourceARN", stream_arn)  # moto's records lack it; Lambda's have it
        out.append(rec)
    return out


def deliver_stream_batch(records, lambda_url, mapping, sqs, timeout):
    """Delivers in order with retries and bisection; returns when every record is handled or skipped."""
    function, failure_queue = mapping["function"], mapping.get("on_failure_queue_url")
    max_retries = mapping.get("max_retries", -1)
    pending = list(records)
    while pending and not STOP.is_set():
        batch = pending
        attempts = 0
        while True:
            ok, resp = invoke(lambda_url, function, {"Records": batch}, timeout)
            failures = (resp or {}).get("batchItemFailures", []) if ok else None
            if ok and not failures:
                pending = pending[len(batch):]
                break
            if ok:
                seq = failures[0].get("itemIdentifier")
                idx = next((i for i, r in enumerate(batch) if r["dynamodb"].get("SequenceNumber") == seq), 0)
                pending = pending[idx:]
                batch = pending[:len(batch) - idx] if idx else batch
            attempts += 1
            if max_retries >= 0 and attempts > max_retries:
                if len(batch) > 1 and mapping.get("bisect"):
                    batch = batch[: len(batch) // 2]  # bisect towards the poison record
                    attempts = 0
                    continue
                log(f"stream record {batch[0]['dynamodb'].get('SequenceNumber')} kept failing; sent to the on-failure queue")
                if failure_queue:
                    sqs.send_message(QueueUrl=failure_queue, MessageBody=json.dumps({"record": batch[0], "error": str(resp)[:1000]}, default=str))
                pending = pending[1:]
                break
            time.sleep(min(0.2 * 2 ** attempts, 2))


def stream_loop(streams, sqs, mapping, lambda_url, timeout):
    """Polls every shard from the last record delivered. A fresh iterator each round, because
    moto's iterators hold on to the shard object they were made from, and a cancelled
    TransactWriteItems makes moto swap in a copy of the table, shard and all: an old iterator
    would then never see another record."""
    stream_arn = mapping["stream_arn"]
    last_seq = {}  # shard -> sequence number of the last record delivered
    closed = set()  # shards that ended and were read to their end

    def fresh_iterator(sid):
        if sid in last_seq:
            return streams.get_shard_iterator(StreamArn=stream_arn, ShardId=sid, ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                                              SequenceNumber=last_seq[sid])["ShardIterator"]
        return streams.get_shard_iterator(StreamArn=stream_arn, ShardId=sid, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]

    while not STOP.is_set():
        if paused(mapping):
            time.sleep(0.1)
            continue
        try:
            idle = True
            for shard in streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]:
                sid = shard["ShardId"]
                if sid in closed:
                    continue
                got = streams.get_records(ShardIterator=fresh_iterator(sid), Limit=mapping["batch_size"])
                records = got.get("Records", [])
                if records:
                    idle = False
                    deliver_stream_batch(stream_records(records, stream_arn), lambda_url, mapping, sqs, timeout)
                    last_seq[sid] = records[-1]["dynamodb"]["SequenceNumber"]
                elif not got.get("NextShardIterator"):
                    closed.add(sid)
            if idle:
                time.sleep(0.25)
        except Exception as e:
            log(f"stream polling failed: {e!r}")
            time.sleep(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lambda-url", default=os.environ.get("PIPAI_LAMBDA_URL", "http://127.0.0.1:3001"),
                    help="cargo lambda watch's internal address (infra/local.sh: PIPAI_LOCAL_PORT + 1)")
    ap.add_argument("--timeout", type=float, default=180.0, help="seconds an invocation may take")
    ap.add_argument("--mappings", default=os.path.join(LOCAL_DIR, "mappings.json"),
                    help="event source mappings written by create_resources.py")
    args = ap.parse_args()
    env = os.environ
    region = env.get("AWS_REGION", "us-east-1")
    session = boto3.session.Session(region_name=region)
    endpoint = env["AWS_ENDPOINT_URL"]
    sqs = session.client("sqs", endpoint_url=endpoint)
    streams = session.client("dynamodbstreams", endpoint_url=endpoint)

    signal.signal(signal.SIGTERM, lambda *_: STOP.set())
    signal.signal(signal.SIGINT, lambda *_: STOP.set())
    with open(args.mappings) as f:
        mappings = [m for m in json.load(f) if m["enabled"]]
    threads = []
    for m in mappings:
        if m["kind"] == "sqs":
            threads.append(threading.Thread(target=sqs_loop, args=(sqs, m, args.lambda_url, region, args.timeout), daemon=True))
        else:
            threads.append(threading.Thread(target=stream_loop, args=(streams, sqs, m, args.lambda_url, args.timeout), daemon=True))
    for t in threads:
        t.start()
    log(f"delivering {', '.join(m['name'] for m in mappings)} to {args.lambda_url}")
    while not STOP.is_set():
        time.sleep(0.5)
    log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
