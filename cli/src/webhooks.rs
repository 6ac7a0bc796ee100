//! `pipai webhooks verify`: checks a received completion webhook the way a receiver must
//! (docs/webhooks.md): the signature over the raw body, timestamp and event id, with the API
//! key's secret, and optionally the timestamp's age.

use std::io::Read;

use pipai_service::webhook::verify;

use crate::error::CliError;

/// Completion webhooks (the events the service POSTs to a job's notify_url).
#[derive(clap::Subcommand)]
pub enum WebhooksCommand {
    Verify(VerifyArgs),
}

/// Verify one received webhook: the raw body on stdin, the headers as arguments.
///
/// Exit 0 when the signature matches (and the timestamp is fresh, with --tolerance),
/// 2 when it does not, with the reason on stderr.
///
///   pipai webhooks verify --secret "$PIPAI_API_SECRET" --timestamp 1764115200000 \
///     --event-id evt_... --signature 3f1a... < body.json
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct VerifyArgs {
    /// The secret of the API key that created the job.
    #[arg(long, env = "PIPAI_API_SECRET", hide_env_values = true)]
    secret: String,
    /// The X-PipAI-Timestamp header (epoch milliseconds).
    #[arg(long)]
    timestamp: String,
    /// The X-PipAI-Event-Id header.
    #[arg(long)]
    event_id: String,
    /// The X-PipAI-Signature header.
    #[arg(long)]
    signature: String,
    /// Also refuse a timestamp more than this many seconds from now (300 is a good choice).
    #[arg(long)]
    tolerance: Option<u32>,
}

pub fn run(cmd: WebhooksCommand) -> Result<(), CliError> {
    let WebhooksCommand::Verify(args) = cmd;
    let mut body = Vec::new();
    std::io::stdin().read_to_end(&mut body).map_err(CliError::io("stdin"))?;
    let freshness = args.tolerance.map(|s| (pipai_service::clock::now_ms(), i64::from(s) * 1000));
    verify(&args.secret, &args.timestamp, &args.event_id, &body, &args.signature, freshness)
        .map_err(|e| CliError::Invalid(format!("webhook does not verify: {e}")))?;
    println!("valid: event {} signed at {}", args.event_id, args.timestamp);
    Ok(())
}
