//! pipai-aws against a moto server over HTTP (see `common` for how moto is found or started).

mod common;
mod delete;
mod jobs;
mod market;
mod misc;
mod pipeline;
mod private_moto;
mod strategies;
mod stream;
mod sweeps;
mod webhooks;
