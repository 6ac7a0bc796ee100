//! SQS worker: runs queued backtests; messages from the dead-letter queue fail their jobs.
// The worker future nests the AWS SDK's futures deeply; computing its layout needs more than the default 128.
#![recursion_limit = "256"]

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use pipai_service::worker::Worker;

#[tokio::main]
async fn main() -> Result<(), Error> {
    pipai_lambda::init_tracing();
    let config = pipai_lambda::config::WorkerConfig::from_env()?;
    let sdk = pipai_aws::load_sdk_config().await;
    let worker = Worker {
        store: pipai_aws::DynamoStore::from_env(&sdk)?,
        results: pipai_aws::S3Results::from_env(&sdk)?,
        market: pipai_aws::S3MarketData::from_env(&sdk)?,
        settings: config.settings.clone(),
    };
    let (worker, dead_letters) = (&worker, config.dead_letter_queue_name.as_str());
    run(service_fn(|event: LambdaEvent<SqsEvent>| async move {
        let deadline_ms =
            pipai_lambda::sqs::invocation_deadline_ms(event.context.deadline, pipai_service::clock::now_ms());
        Ok::<SqsBatchResponse, Error>(
            pipai_lambda::sqs::handle_batch(worker, dead_letters, event.payload, deadline_ms).await,
        )
    }))
    .await
}
