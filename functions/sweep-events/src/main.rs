//! DynamoDB stream of the sweeps table: a new sweep sends its chunk messages (the outbox relay);
//! an ended sweep gets its full ranking stored once (`sweep_ranking`) and, with a webhook, its
//! completion notification.
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
    let notifications = pipai_aws::SqsQueue::from_env(&sdk)?;
    let store = pipai_aws::DynamoStore::from_env(&sdk)?;
    let results = pipai_aws::S3Results::from_env(&sdk)?;
    let (queue, notifications, store, results) = (&queue, &notifications, &store, &results);
    run(service_fn(|event: LambdaEvent<Event>| async move {
        Ok::<DynamoDbEventResponse, Error>(
            pipai_lambda::sweeps::handle_stream_batch(
                queue,
                notifications,
                store,
                results,
                event.payload,
                pipai_aws::sweep_change,
            )
            .await,
        )
    }))
    .await
}
