//! DynamoDB stream of the sweeps table: a new sweep sends its chunk messages (the outbox relay),
//! a sweep that ends with a webhook its completion notification.

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    pipai_lambda::init_tracing();
    let sdk = pipai_aws::load_sdk_config().await;
    let queue = pipai_aws::SqsSweepQueue::from_env(&sdk)?;
    let notifications = pipai_aws::SqsQueue::from_env(&sdk)?;
    run(service_fn(|event: LambdaEvent<Event>| async {
        Ok::<DynamoDbEventResponse, Error>(
            pipai_lambda::sweeps::handle_stream_batch(&queue, &notifications, event.payload, pipai_aws::sweep_change)
                .await,
        )
    }))
    .await
}
