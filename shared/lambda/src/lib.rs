//! Lambda glue shared by the functions in `functions/`: typed configuration from the
//! environment, logging, and the conversion of each event source's events (API Gateway HTTP API
//! v2, SQS, DynamoDB streams) to the service's handlers and back. Handlers are generic over the
//! service's ports, so tests drive them with the in-memory store and real event shapes.

pub mod config;
pub mod http;
pub mod sqs;
pub mod stream;

/// JSON logs to stdout (CloudWatch), level from `RUST_LOG` (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt().json().with_env_filter(filter).with_current_span(false).without_time().init();
}
