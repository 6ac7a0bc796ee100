"""Serialize moto's DynamoDB requests (loaded at Python startup from PYTHONPATH).

The pipai-aws tests start moto through infra/moto.sh with this directory on PYTHONPATH and
PIPAI_MOTO_SERIALIZE_DYNAMODB=1. Nothing happens without that variable.

Why: moto's server is threaded and its DynamoDB backend takes no lock. Two concurrent
conditional writes can both pass their conditions (20 concurrent creates with a limit of 5
succeed 15 times), and a cancelled TransactWriteItems restores whole-table copies taken when
it began, silently discarding every write other requests made to those tables meanwhile.
Real DynamoDB is atomic per item and serializable per transaction. Holding one lock around
each DynamoDB / DynamoDB Streams request gives moto those semantics; other services (SQS long
polls, S3) stay concurrent.
"""

import os

if os.environ.get("PIPAI_MOTO_SERIALIZE_DYNAMODB") == "1":
    import threading

    import werkzeug.serving as _serving

    _lock = threading.Lock()
    _run_simple = _serving.run_simple

    def _serialized(app):
        def wsgi(environ, start_response):
            if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB"):
                with _lock:
                    # Produce the whole body inside the lock.
                    return list(app(environ, start_response))
            return app(environ, start_response)

        return wsgi

    def run_simple(hostname, port, application, *args, **kwargs):
        return _run_simple(hostname, port, _serialized(application), *args, **kwargs)

    _serving.run_simple = run_simple
