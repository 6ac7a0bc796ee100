//! GET /v1/backtest/templates: the strategy template catalog.

use lambda_http::{run, service_fn, Error, Request};
use pipai_service::{Api, Route};

#[tokio::main]
async fn main() -> Result<(), Error> {
    pipai_lambda::init_tracing();
    let settings = pipai_lambda::config::api_settings()?;
    let sdk = pipai_aws::load_sdk_config().await;
    let api = Api {
        store: pipai_aws::DynamoStore::from_env(&sdk)?,
        results: pipai_aws::S3Results::from_env(&sdk)?,
        market: pipai_aws::S3MarketData::from_env(&sdk)?,
        master: pipai_aws::load_master_key(&sdk).await?,
        settings,
    };
    run(service_fn(|req: Request| pipai_lambda::http::handle(&api, Route::ListTemplates, req))).await
}
