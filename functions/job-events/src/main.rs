//! DynamoDB stream of the jobs table: enqueues new jobs (the outbox relay) and gives users their
//! active-job slot back when a job ends.

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    pipai_lambda::init_tracing();
    let sdk = pipai_aws::load_sdk_config().await;
    let store = pipai_aws::DynamoStore::from_env(&sdk)?;
    let queue = pipai_aws::SqsQueue::from_env(&sdk)?;
    run(service_fn(|event: LambdaEvent<Event>| async {
        Ok::<DynamoDbEventResponse, Error>(
            pipai_lambda::stream::handle_batch(&store, &queue, event.payload, pipai_aws::job_change).await,
        )
    }))
    .await
}
