#!/usr/bin/env python3
"""Local event source mappings: what AWS Lambda does for the SQS queues and the DynamoDB stream,
done against the moto emulator for the functions that `cargo lambda watch` serves.

- Jobs queue -> `job-worker`: batches of up to 10 messages in Lambda's SQS event shape;
  `ReportBatchItemFailures` is honoured (failed items stay, the rest are deleted). A function
  error fails the whole batch. Failed messages become visible again after RETRY_SECONDS (Lambda
  waits the queue's visibility timeout; locally that would be 12 minutes). moto's redrive policy
  moves a message to the dead-letter queue after maxReceiveCount receives, as SQS does.
- Dead-letter queue -> `job-worker` (the same function fails those jobs), same semantics.
- Jobs table stream -> `job-events`: records in order, batches of up to 100, in Lambda's DynamoDB
  event shape. A reported failure retries from the failed record; after MAX_RETRIES (the
  template's MaximumRetryAttempts) the batch is bisected down to the failing record, which is sent
  to the on-failure queue and skipped, as BisectBatchOnFunctionError does.

Reads its configuration from the environment written by create_resources.py (.local/env).
Stops on SIGTERM/SIGINT.
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

RETRY_SECONDS = int(os.environ.get("PIPAI_LOCAL_RETRY_SECONDS", "3"))
MAX_RETRIES = 5
STOP = threading.Event()


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


def sqs_loop(sqs, queue_url, lambda_url, function, region, timeout):
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    while not STOP.is_set():
        try:
            got = sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
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


def deliver_stream_batch(records, lambda_url, function, sqs, failure_queue, timeout):
    """Delivers in order with retries and bisection; returns when every record is handled or skipped."""
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
            if attempts > MAX_RETRIES:
                if len(batch) > 1:
                    batch = batch[: len(batch) // 2]  # bisect towards the poison record
                    attempts = 0
                    continue
                log(f"stream record {batch[0]['dynamodb'].get('SequenceNumber')} kept failing; sent to the on-failure queue")
                if failure_queue:
                    sqs.send_message(QueueUrl=failure_queue, MessageBody=json.dumps({"record": batch[0], "error": str(resp)[:1000]}, default=str))
                pending = pending[1:]
                break
            time.sleep(min(0.2 * 2 ** attempts, 2))


def stream_loop(streams, sqs, stream_arn, lambda_url, function, failure_queue, timeout):
    iterators = {}
    finished = set()
    while not STOP.is_set():
        try:
            shards = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]
            for s in shards:
                sid = s["ShardId"]
                if sid not in iterators and sid not in finished:
                    iterators[sid] = streams.get_shard_iterator(StreamArn=stream_arn, ShardId=sid, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            idle = True
            for sid, it in list(iterators.items()):
                got = streams.get_records(ShardIterator=it, Limit=100)
                nxt = got.get("NextShardIterator")
                if nxt:
                    iterators[sid] = nxt
                else:
                    del iterators[sid]
                    finished.add(sid)
                if got.get("Records"):
                    idle = False
                    deliver_stream_batch(stream_records(got["Records"], stream_arn), lambda_url, function, sqs, failure_queue, timeout)
            if idle:
                time.sleep(0.25)
        except Exception as e:
            log(f"stream polling failed: {e!r}")
            time.sleep(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lambda-url", default=os.environ.get("PIPAI_LAMBDA_URL", "http://127.0.0.1:3000"))
    ap.add_argument("--timeout", type=float, default=180.0, help="seconds an invocation may take")
    args = ap.parse_args()
    env = os.environ
    region = env.get("AWS_REGION", "us-east-1")
    session = boto3.session.Session(region_name=region)
    endpoint = env["AWS_ENDPOINT_URL"]
    sqs = session.client("sqs", endpoint_url=endpoint)
    streams = session.client("dynamodbstreams", endpoint_url=endpoint)

    signal.signal(signal.SIGTERM, lambda *_: STOP.set())
    signal.signal(signal.SIGINT, lambda *_: STOP.set())
    threads = [
        threading.Thread(target=sqs_loop, args=(sqs, env["JOBS_QUEUE_URL"], args.lambda_url, "job-worker", region, args.timeout), daemon=True),
        threading.Thread(target=sqs_loop, args=(sqs, env["JOBS_DLQ_URL"], args.lambda_url, "job-worker", region, args.timeout), daemon=True),
        threading.Thread(target=stream_loop, args=(streams, sqs, env["JOBS_STREAM_ARN"], args.lambda_url, "job-events",
                                                   env.get("STREAM_FAILURE_QUEUE_URL"), args.timeout), daemon=True),
    ]
    for t in threads:
        t.start()
    log(f"delivering SQS and stream events to {args.lambda_url}")
    while not STOP.is_set():
        time.sleep(0.5)
    log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
