//! GET /v1/backtest/jobs/{id}/artifacts: presigned download URLs of a done job's files.

use lambda_http::{run, service_fn, Error, Request};
use pipai_service::Route;

#[tokio::main]
async fn main() -> Result<(), Error> {
    pipai_lambda::init_tracing();
    let settings = pipai_lambda::config::api_settings()?;
    let sdk = pipai_aws::load_sdk_config().await;
    let api = pipai_aws::api_from_env(&sdk, settings).await?;
    run(service_fn(|req: Request| pipai_lambda::http::handle(&api, Route::GetArtifacts, req))).await
}
