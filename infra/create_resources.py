#!/usr/bin/env python3
"""Create in a local moto server exactly the DynamoDB tables, SQS queues and S3 buckets
that template.yaml declares, then write <repo>/.local/env for the Rust functions.

The template is the single source of truth: keys, GSIs, streams, TTL, queue attributes
(visibility timeout, retention, redrive policy) and bucket settings are read from it, so
local and deployed resources cannot drift. Physical names are PREFIX + logical id
(`pipai-local-JobsTable`); S3 bucket names are lower-cased because S3 requires it
(`pipai-local-resultsbucket`).

Idempotent: a resource that exists is left as it is. moto keeps its state in memory, so
after a change to template.yaml restart it (`infra/local.sh up` does) rather than update
in place; infra/check_resources.py says whether a running moto matches the template.

Run with the project venv:  .venv/bin/python infra/create_resources.py [--port 4566]
Credentials are always the dummy `test`/`test` and the endpoint is always explicit, so
this script cannot touch a real AWS account.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import re
import secrets
import shlex
import sys
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parent.parent
DEFAULT_TEMPLATE = REPO / "template.yaml"
DEFAULT_ENV_FILE = REPO / ".local" / "env"
DEFAULT_PREFIX = "pipai-local-"
REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's default account

TABLE = "AWS::DynamoDB::Table"
QUEUE = "AWS::SQS::Queue"
BUCKET = "AWS::S3::Bucket"
MANAGED_TYPES = (TABLE, QUEUE, BUCKET)

# Extra variables written to the env file besides the functions' own Environment,
# name -> (logical id, attribute). Attribute "Ref" is what !Ref returns.
EXTRA_ENV = {
    "JOBS_DLQ_URL": ("JobsDeadLetterQueue", "Ref"),
    "STREAM_FAILURE_QUEUE_URL": ("StreamFailureQueue", "Ref"),
    "JOBS_STREAM_ARN": ("JobsTable", "StreamArn"),
}


class TemplateError(Exception):
    pass


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = _NoValue()


# ----------------------------------------------------------------------------- template
def load_template(path: Path) -> dict:
    """Parse a CloudFormation/SAM YAML or JSON template, short-form tags included.

    cfn-lint's decoder turns !Ref/!GetAtt/!Sub/!If... into their long forms
    ({"Ref": ...}, {"Fn::GetAtt": [res, attr]}, ...).
    """
    from cfnlint.decode import decode  # from the venv

    template, matches = decode(str(path))
    if matches or template is None:
        raise TemplateError(f"cannot parse {path}: " + "; ".join(str(m) for m in matches))
    return template


class Resolver:
    """Evaluates the intrinsic functions a template uses, against local physical resources.

    `physical(logical_id)` returns a dict of the resource's attributes ("Ref", "Arn", ...),
    creating or looking it up as the caller decides.
    """

    def __init__(self, template: dict, params: dict[str, str], physical: Callable[[str], dict]):
        self.template = template
        self.physical = physical
        self.params: dict[str, Any] = {}
        for name, spec in (template.get("Parameters") or {}).items():
            if name in params:
                self.params[name] = params[name]
            elif "Default" in spec:
                self.params[name] = spec["Default"]
            else:
                raise TemplateError(f"parameter {name} has no Default; pass --param {name}=VALUE")
        unknown = set(params) - set(self.params)
        if unknown:
            raise TemplateError(f"unknown parameter(s): {', '.join(sorted(unknown))}")
        self._conditions: dict[str, bool] = {}

    # pseudo parameters as a local stack would see them
    PSEUDO = {
        "AWS::Region": REGION,
        "AWS::AccountId": ACCOUNT_ID,
        "AWS::Partition": "aws",
        "AWS::URLSuffix": "amazonaws.com",
        "AWS::StackName": "pipai-local",
        "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT_ID}:stack/pipai-local/local",
    }

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            conds = self.template.get("Conditions") or {}
            if name not in conds:
                raise TemplateError(f"unknown condition {name}")
            self._conditions[name] = bool(self.resolve(conds[name]))
        return self._conditions[name]

    def resource_enabled(self, logical_id: str) -> bool:
        cond = self.template["Resources"][logical_id].get("Condition")
        return True if cond is None else self.condition(cond)

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.PSEUDO:
            return self.PSEUDO[name]
        if name in self.params:
            return self.params[name]
        if name in self.template.get("Resources", {}):
            return self.physical(name)["Ref"]
        raise TemplateError(f"Ref to unknown name {name}")

    def get_att(self, logical_id: str, attr: str) -> Any:
        attrs = self.physical(logical_id)
        if attr not in attrs:
            raise TemplateError(f"GetAtt {logical_id}.{attr} is not supported locally")
        return attrs[attr]

    def _sub(self, text: str, variables: dict) -> str:
        def repl(m: re.Match) -> str:
            expr = m.group(1)
            if expr.startswith("!"):
                return "${" + expr[1:] + "}"
            if expr in variables:
                return str(self.resolve(variables[expr]))
            if "." in expr and expr.split(".", 1)[0] in self.template.get("Resources", {}):
                res, attr = expr.split(".", 1)
                return str(self.get_att(res, attr))
            return str(self.ref(expr))

        return re.sub(r"\$\{([^}]+)\}", repl, text)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, dict):
            if len(value) == 1:
                (key, arg), = value.items()
                if key == "Ref":
                    return self.ref(arg)
                if key == "Fn::GetAtt":
                    if isinstance(arg, str):
                        arg = arg.split(".", 1)
                    return self.get_att(arg[0], self.resolve(arg[1]))
                if key == "Fn::Sub":
                    if isinstance(arg, str):
                        return self._sub(arg, {})
                    return self._sub(arg[0], arg[1])
                if key == "Fn::If":
                    cond, yes, no = arg
                    return self.resolve(yes if self.condition(cond) else no)
                if key == "Fn::Equals":
                    a, b = (self.resolve(x) for x in arg)
                    return str(a) == str(b)
                if key == "Fn::Not":
                    return not self.resolve(arg[0])
                if key == "Condition":
                    return self.condition(arg)
                if key.startswith("Fn::"):
                    raise TemplateError(f"{key} is not supported by create_resources.py")
            out = {}
            for k, v in value.items():
                r = self.resolve(v)
                if r is not NO_VALUE:
                    out[str(k)] = r
            return out
        if isinstance(value, list):
            return [r for r in (self.resolve(v) for v in value) if r is not NO_VALUE]
        if isinstance(value, str):
            return str(value)
        return value


def managed_resources(template: dict) -> list[tuple[str, str]]:
    """(logical id, type) of every table, queue and bucket, in template order."""
    return [
        (lid, res["Type"])
        for lid, res in template.get("Resources", {}).items()
        if res.get("Type") in MANAGED_TYPES
    ]


def physical_name(prefix: str, logical_id: str, rtype: str) -> str:
    return (prefix + logical_id).lower() if rtype == BUCKET else prefix + logical_id


def env_from_template(template: dict, resolver: Resolver) -> dict[str, str]:
    """The functions' environment: Globals.Function plus every function's own variables."""
    env: dict[str, str] = {}
    sources = [((template.get("Globals") or {}).get("Function") or {})]
    for res in template.get("Resources", {}).values():
        if res.get("Type") in ("AWS::Serverless::Function", "AWS::Lambda::Function"):
            sources.append(res.get("Properties") or {})
    for props in sources:
        variables = ((props.get("Environment") or {}).get("Variables")) or {}
        for name, value in variables.items():
            resolved = str(resolver.resolve(value))
            if name in env and env[name] != resolved:
                raise TemplateError(f"environment variable {name} differs between functions")
            env[name] = resolved
    for name, (lid, attr) in EXTRA_ENV.items():
        if lid in template.get("Resources", {}):
            env[name] = str(resolver.get_att(lid, attr) if attr != "Ref" else resolver.ref(lid))
    return env


# ----------------------------------------------------------------------------- converters
def table_spec(props: dict) -> dict:
    """create_table kwargs (without TableName) from resolved AWS::DynamoDB::Table properties."""
    if props.get("BillingMode") != "PAY_PER_REQUEST":
        raise TemplateError("tables are PAY_PER_REQUEST; provisioned throughput is not created locally")
    spec: dict[str, Any] = {
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": "PAY_PER_REQUEST",
    }
    gsis = [
        {"IndexName": g["IndexName"], "KeySchema": g["KeySchema"], "Projection": g["Projection"]}
        for g in props.get("GlobalSecondaryIndexes") or []
    ]
    if gsis:
        spec["GlobalSecondaryIndexes"] = gsis
    stream = props.get("StreamSpecification")
    if stream and stream.get("StreamViewType"):
        spec["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
    sse = props.get("SSESpecification")
    if sse and str(sse.get("SSEEnabled")).lower() == "true":
        spec["SSESpecification"] = {"Enabled": True, "SSEType": sse.get("SSEType", "KMS")}
        if sse.get("KMSMasterKeyId"):
            spec["SSESpecification"]["KMSMasterKeyId"] = sse["KMSMasterKeyId"]
    return spec


def ttl_spec(props: dict) -> str | None:
    ttl = props.get("TimeToLiveSpecification")
    if ttl and str(ttl.get("Enabled")).lower() == "true":
        return ttl["AttributeName"]
    return None


QUEUE_ATTRIBUTES = (
    "DelaySeconds", "MaximumMessageSize", "MessageRetentionPeriod", "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout", "RedrivePolicy", "RedriveAllowPolicy", "FifoQueue", "ContentBasedDeduplication",
    "DeduplicationScope", "FifoThroughputLimit", "KmsMasterKeyId", "KmsDataKeyReusePeriodSeconds",
    "SqsManagedSseEnabled",
)


def queue_attributes(props: dict) -> dict[str, str]:
    """SQS API attributes (all strings) from resolved AWS::SQS::Queue properties."""
    attrs = {}
    for name in QUEUE_ATTRIBUTES:
        if name not in props:
            continue
        value = props[name]
        if isinstance(value, dict):
            value = json.dumps(value, separators=(",", ":"))
        elif isinstance(value, bool):
            value = "true" if value else "false"
        attrs[name] = str(value)
    return attrs


def encryption_rules(enc: dict) -> list[dict]:
    """S3 API encryption rules from CloudFormation's BucketEncryption."""
    rules = []
    for r in enc.get("ServerSideEncryptionConfiguration") or []:
        rule: dict[str, Any] = {}
        default = r.get("ServerSideEncryptionByDefault")
        if default:
            rule["ApplyServerSideEncryptionByDefault"] = {
                k: v for k, v in default.items() if k in ("SSEAlgorithm", "KMSMasterKeyID")
            }
        if "BucketKeyEnabled" in r:
            rule["BucketKeyEnabled"] = str(r["BucketKeyEnabled"]).lower() == "true"
        rules.append(rule)
    return rules


def lifecycle_rules(props: dict) -> list[dict]:
    rules = []
    for r in ((props.get("LifecycleConfiguration") or {}).get("Rules")) or []:
        rule: dict[str, Any] = {"Status": r["Status"], "Filter": {"Prefix": r.get("Prefix", "")}}
        if r.get("Id"):
            rule["ID"] = r["Id"]
        if "ExpirationInDays" in r:
            rule["Expiration"] = {"Days": int(r["ExpirationInDays"])}
        nve = r.get("NoncurrentVersionExpiration")
        if nve:
            rule["NoncurrentVersionExpiration"] = {"NoncurrentDays": int(nve["NoncurrentDays"])}
        if "NoncurrentVersionExpirationInDays" in r:
            rule["NoncurrentVersionExpiration"] = {"NoncurrentDays": int(r["NoncurrentVersionExpirationInDays"])}
        aimu = r.get("AbortIncompleteMultipartUpload")
        if aimu:
            rule["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": int(aimu["DaysAfterInitiation"])}
        rules.append(rule)
    return rules


# ----------------------------------------------------------------------------- provisioning
class Provisioner:
    def __init__(self, template: dict, endpoint: str, prefix: str, params: dict[str, str], log=print):
        import boto3  # from the venv

        self.template = template
        self.prefix = prefix
        self.log = log
        session = boto3.session.Session(
            aws_access_key_id="test", aws_secret_access_key="test", region_name=REGION
        )
        self.ddb = session.client("dynamodb", endpoint_url=endpoint)
        self.sqs = session.client("sqs", endpoint_url=endpoint)
        self.s3 = session.client("s3", endpoint_url=endpoint)
        self.ssm = session.client("ssm", endpoint_url=endpoint)
        self.done: dict[str, dict] = {}
        self._in_progress: set[str] = set()
        self.resolver = Resolver(template, params, self.ensure)

    def props(self, logical_id: str) -> dict:
        return self.resolver.resolve(self.template["Resources"][logical_id].get("Properties") or {})

    def ensure(self, logical_id: str) -> dict:
        if logical_id in self.done:
            return self.done[logical_id]
        res = self.template["Resources"].get(logical_id)
        if res is None:
            raise TemplateError(f"no resource {logical_id}")
        if res["Type"] not in MANAGED_TYPES:
            raise TemplateError(f"{logical_id} ({res['Type']}) is not created locally but is referenced")
        if logical_id in self._in_progress:
            raise TemplateError(f"circular reference through {logical_id}")
        if not self.resolver.resource_enabled(logical_id):
            raise TemplateError(f"{logical_id} is disabled by its Condition but is referenced")
        self._in_progress.add(logical_id)
        try:
            props = self.props(logical_id)
            handler = {TABLE: self._table, QUEUE: self._queue, BUCKET: self._bucket}[res["Type"]]
            self.done[logical_id] = handler(logical_id, props)
        finally:
            self._in_progress.discard(logical_id)
        return self.done[logical_id]

    def ensure_all(self) -> None:
        for lid, _ in managed_resources(self.template):
            if self.resolver.resource_enabled(lid):
                self.ensure(lid)

    # -- DynamoDB
    def _table(self, lid: str, props: dict) -> dict:
        name = physical_name(self.prefix, lid, TABLE)
        desc = self._describe_table(name)
        if desc is None:
            self.ddb.create_table(TableName=name, **table_spec(props))
            ttl_attr = ttl_spec(props)
            if ttl_attr:
                self.ddb.update_time_to_live(
                    TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl_attr}
                )
            pitr = (props.get("PointInTimeRecoverySpecification") or {}).get("PointInTimeRecoveryEnabled")
            if str(pitr).lower() == "true":
                self.ddb.update_continuous_backups(
                    TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
                )
            desc = self._describe_table(name)
            self.log(f"created  table  {name}")
        return {"Ref": name, "Arn": desc["TableArn"], "StreamArn": desc.get("LatestStreamArn")}

    def _describe_table(self, name: str) -> dict | None:
        from botocore.exceptions import ClientError

        try:
            return self.ddb.describe_table(TableName=name)["Table"]
        except ClientError as e:
            if e.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
            return None

    # -- SQS
    def _queue(self, lid: str, props: dict) -> dict:
        from botocore.exceptions import ClientError

        name = physical_name(self.prefix, lid, QUEUE)
        try:
            url = self.sqs.get_queue_url(QueueName=name)["QueueUrl"]
        except ClientError as e:
            if "NonExistentQueue" not in e.response["Error"]["Code"]:
                raise
            url = self.sqs.create_queue(QueueName=name, Attributes=queue_attributes(props))["QueueUrl"]
            self.log(f"created  queue  {name}")
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return {"Ref": url, "Arn": arn, "QueueName": name, "QueueUrl": url}

    # -- S3
    def _bucket(self, lid: str, props: dict) -> dict:
        from botocore.exceptions import ClientError

        name = physical_name(self.prefix, lid, BUCKET)
        try:
            self.s3.head_bucket(Bucket=name)
        except ClientError:
            self._create_bucket(name, props)
            self.log(f"created  bucket {name}")
        return {
            "Ref": name,
            "Arn": f"arn:aws:s3:::{name}",
            "DomainName": f"{name}.s3.amazonaws.com",
            "RegionalDomainName": f"{name}.s3.{REGION}.amazonaws.com",
        }

    def _create_bucket(self, name: str, props: dict) -> None:
        self.s3.create_bucket(Bucket=name)
        enc = props.get("BucketEncryption")
        if enc:
            self.s3.put_bucket_encryption(
                Bucket=name, ServerSideEncryptionConfiguration={"Rules": encryption_rules(enc)}
            )
        pab = props.get("PublicAccessBlockConfiguration")
        if pab:
            self.s3.put_public_access_block(
                Bucket=name, PublicAccessBlockConfiguration={k: bool(v) for k, v in pab.items()}
            )
        own = props.get("OwnershipControls")
        if own:
            self.s3.put_bucket_ownership_controls(Bucket=name, OwnershipControls=own)
        ver = (props.get("VersioningConfiguration") or {}).get("Status")
        if ver:
            self.s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": ver})
        rules = lifecycle_rules(props)
        if rules:
            self.s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": rules})

    # -- SSM: the API key master key (not a template resource: it is created outside the
    # stack, but the API functions need it locally).
    def ensure_master_key(self, param_name: str) -> None:
        from botocore.exceptions import ClientError

        try:
            self.ssm.get_parameter(Name=param_name)
            return
        except ClientError as e:
            if e.response["Error"]["Code"] != "ParameterNotFound":
                raise
        key = base64.b64encode(secrets.token_bytes(32)).decode()
        self.ssm.put_parameter(
            Name=param_name, Type="SecureString", Value=key,
            Description="PipAI local: master key for API key secrets (base64 of 32 random bytes)",
        )
        self.log(f"created  ssm    {param_name} (SecureString, base64 of 32 random bytes)")


def _logical_id(value: Any) -> str | None:
    """The logical id a `!Ref X` or `!GetAtt X.Attr` points at (raw template form)."""
    if isinstance(value, dict) and len(value) == 1:
        (key, arg), = value.items()
        if key == "Ref" and isinstance(arg, str):
            return arg
        if key == "Fn::GetAtt":
            return (arg.split(".", 1) if isinstance(arg, str) else arg)[0]
    return None


def event_source_mappings(template: dict, resolver: Resolver) -> list[dict]:
    """The template's event source mappings, for infra/local_pump.py to deliver like Lambda does:
    which function (its cargo binary), which source (queue URL or stream ARN), batch size, and
    the stream error handling (bisect, retries, on-failure queue URL)."""
    resources = template.get("Resources", {})
    out = []
    for lid, res in resources.items():
        if res.get("Type") != "AWS::Lambda::EventSourceMapping" or not resolver.resource_enabled(lid):
            continue
        props = res.get("Properties") or {}
        fn = _logical_id(props.get("FunctionName"))
        binary = (((resources.get(fn) or {}).get("Metadata") or {}).get("BuildProperties") or {}).get("Binary")
        source = _logical_id(props.get("EventSourceArn"))
        if not binary or source not in resources:
            raise TemplateError(f"{lid}: FunctionName must !Ref a cargo-lambda function and EventSourceArn a resource")
        kind = resources[source]["Type"]
        mapping = {
            "name": lid,
            "function": binary,
            "batch_size": int(resolver.resolve(props.get("BatchSize", 10))),
            "enabled": bool(resolver.resolve(props.get("Enabled", True))),
        }
        if kind == QUEUE:
            mapping.update(kind="sqs", queue_url=resolver.ref(source), queue_arn=resolver.get_att(source, "Arn"))
        elif kind == TABLE:
            on_failure = (((props.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination"))
            failure_queue = _logical_id(on_failure)
            mapping.update(
                kind="stream",
                stream_arn=resolver.get_att(source, "StreamArn"),
                bisect=bool(resolver.resolve(props.get("BisectBatchOnFunctionError", False))),
                max_retries=int(resolver.resolve(props.get("MaximumRetryAttempts", -1))),
                on_failure_queue_url=resolver.ref(failure_queue) if failure_queue else None,
            )
        else:
            raise TemplateError(f"{lid}: event source type {kind} is not delivered locally")
        out.append(mapping)
    return out


def write_env_file(path: Path, env: dict[str, str], endpoint: str) -> None:
    base = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
    }
    lines = [
        "# Written by infra/create_resources.py from template.yaml; do not edit, rerun it.",
        "# Use: set -a; . .local/env; set +a   (or just `. .local/env`: the lines export)",
    ]
    for k, v in {**base, **env}.items():
        lines.append(f"export {k}={shlex.quote(v)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, path)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=int(os.environ.get("MOTO_PORT", "4566")),
                   help="moto port on 127.0.0.1 (default: $MOTO_PORT or 4566)")
    p.add_argument("--env-file", type=Path, default=DEFAULT_ENV_FILE,
                   help="where to write the export lines (default <repo>/.local/env)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="template parameter override (repeatable)")
    p.add_argument("-q", "--quiet", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    endpoint = f"http://127.0.0.1:{args.port}"
    params = {}
    for item in args.param:
        if "=" not in item:
            print(f"create_resources: --param wants NAME=VALUE, got {item!r}", file=sys.stderr)
            return 2
        k, v = item.split("=", 1)
        params[k] = v
    log = (lambda *_: None) if args.quiet else print
    try:
        template = load_template(DEFAULT_TEMPLATE)
        prov = Provisioner(template, endpoint, DEFAULT_PREFIX, params, log=log)
        prov.ensure_all()
        if "ApiKeyMasterKeyParameter" in prov.resolver.params:
            prov.ensure_master_key(str(prov.resolver.params["ApiKeyMasterKeyParameter"]))
        env = env_from_template(template, prov.resolver)
        write_env_file(args.env_file, env, endpoint)
        mappings = args.env_file.parent / "mappings.json"
        mappings.write_text(json.dumps(event_source_mappings(template, prov.resolver), indent=2) + "\n")
    except TemplateError as e:
        print(f"create_resources: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # botocore connection errors etc.: one line, not a trace
        if type(e).__name__ in ("EndpointConnectionError", "ConnectionClosedError"):
            print(f"create_resources: no server at {endpoint} (start it: infra/moto.sh start)", file=sys.stderr)
            return 1
        raise
    log(f"{len(prov.done)} resources ready at {endpoint}; env written to {args.env_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
