//! Lambda glue shared by the functions in `functions/`: typed configuration from the
//! environment, logging, and the conversion of each event source's events (API Gateway HTTP API
//! v2, SQS, DynamoDB streams) to the service's handlers and back. Handlers are generic over the
//! service's ports, so tests drive them with the in-memory store and real event shapes.

pub mod config;
pub mod http;
pub mod sqs;
pub mod stream;
pub mod sweeps;

/// Logs as the Lambda runtime sets them up: the level from `AWS_LAMBDA_LOG_LEVEL` (else `RUST_LOG`,
/// else `info`), JSON lines with the current span's fields (`job_id`, `route`) when
/// `AWS_LAMBDA_LOG_FORMAT` is `JSON` (template.yaml's LoggingConfig sets both), text otherwise.
pub fn init_tracing() {
    lambda_runtime::tracing::init_default_subscriber();
}
