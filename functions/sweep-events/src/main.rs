//! DynamoDB stream of the sweeps table: a new sweep sends its chunk messages (the outbox relay).

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    pipai_lambda::init_tracing();
    let sdk = pipai_aws::load_sdk_config().await;
    let queue = pipai_aws::SqsSweepQueue::from_env(&sdk)?;
    run(service_fn(|event: LambdaEvent<Event>| async {
        Ok::<DynamoDbEventResponse, Error>(
            pipai_lambda::sweeps::handle_stream_batch(&queue, event.payload, pipai_aws::inserted_sweep).await,
        )
    }))
    .await
}
