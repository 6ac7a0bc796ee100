//! SQS notifications queue: delivers signed completion webhooks and records the attempts.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use pipai_service::notifier::Notifier;

#[tokio::main]
async fn main() -> Result<(), Error> {
    pipai_lambda::init_tracing();
    let settings = pipai_lambda::config::notifier_settings()?;
    let sdk = pipai_aws::load_sdk_config().await;
    let notifier = Notifier {
        store: pipai_aws::DynamoStore::from_env(&sdk)?,
        queue: pipai_aws::SqsQueue::from_env(&sdk)?,
        sender: pipai_aws::HttpWebhookSender::new(settings.policy),
        master: pipai_aws::load_master_key(&sdk).await?,
        settings,
    };
    let notifier = &notifier;
    run(service_fn(|event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, Error>(pipai_lambda::sqs::handle_notifications(notifier, event.payload).await)
    }))
    .await
}
