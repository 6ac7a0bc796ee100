//! DynamoDB stream of the sweeps table: a new sweep sends its chunk messages (the outbox relay);
//! an ended sweep gets its full ranking stored once (`sweep_ranking`).
// The handler future nests the AWS SDK's futures deeply; computing its layout needs more than the default 128.
#![recursion_limit = "256"]

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    pipai_lambda::init_tracing();
    let sdk = pipai_aws::load_sdk_config().await;
    let queue = pipai_aws::SqsSweepQueue::from_env(&sdk)?;
    let store = pipai_aws::DynamoStore::from_env(&sdk)?;
    let results = pipai_aws::S3Results::from_env(&sdk)?;
    let (queue, store, results) = (&queue, &store, &results);
    run(service_fn(|event: LambdaEvent<Event>| async move {
        let event = event.payload;
        let ranked = pipai_lambda::sweeps::store_ended_rankings(store, results, &event, pipai_aws::ended_sweep).await;
        let mut response = pipai_lambda::sweeps::handle_stream_batch(queue, event, pipai_aws::inserted_sweep).await;
        response.batch_item_failures.extend(ranked);
        Ok::<DynamoDbEventResponse, Error>(response)
    }))
    .await
}
