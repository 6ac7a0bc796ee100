//! pipai-aws against a moto server over HTTP (see `common` for how moto is found or started).

mod common;
mod jobs;
mod market;
mod misc;
mod pipeline;
mod private_moto;
mod stream;
mod webhooks;
