//! The job service's logic, free of AWS: the signed public API, the worker that runs jobs and
//! the stream bookkeeping, each generic over the [`ports`] it needs. `pipai-aws` implements the
//! ports on DynamoDB, SQS and S3; [`memory`] implements them in memory for tests.

pub mod api;
pub mod artifacts;
pub mod auth;
pub mod clock;
pub mod compare;
pub mod cursor;
pub mod error;
pub mod events;
pub mod http;
pub mod ids;
pub mod memory;
pub mod model;
pub mod notifier;
pub mod pages;
pub mod ports;
pub mod secrets;
pub mod settings;
pub mod strategies;
pub mod sweep_api;
pub mod sweep_events;
pub mod sweep_ranking;
pub mod sweep_worker;
pub mod sweeps;
pub mod webhook;
pub mod worker;

pub use api::{Api, ApiSettings, Route};
pub use error::ApiError;
pub use http::{ApiRequest, ApiResponse};
pub use ids::{JobId, KeyId, RunToken, StrategyId, SweepId, UserId};
