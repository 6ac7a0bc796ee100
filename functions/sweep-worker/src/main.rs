//! SQS worker: runs sweep chunks; messages from the dead-letter queue record their chunk failed.
// The worker future nests the AWS SDK's futures deeply; computing its layout needs more than the default 128.
#![recursion_limit = "256"]

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use pipai_service::sweep_worker::SweepWorker;

#[tokio::main]
async fn main() -> Result<(), Error> {
    pipai_lambda::init_tracing();
    let dead_letters = pipai_lambda::config::sweep_dead_letter_queue_name()?;
    let sdk = pipai_aws::load_sdk_config().await;
    let worker = SweepWorker {
        store: pipai_aws::DynamoStore::from_env(&sdk)?,
        market: pipai_aws::S3MarketData::from_env(&sdk)?,
    };
    let (worker, dead_letters) = (&worker, dead_letters.as_str());
    run(service_fn(|event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, Error>(
            pipai_lambda::sweeps::handle_chunk_batch(worker, dead_letters, event.payload).await,
        )
    }))
    .await
}
