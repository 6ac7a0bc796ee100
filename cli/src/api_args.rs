//! Where the API is and the key to sign with: the flags every API subcommand takes
//! (`pipai jobs`, `pipai strategies`), defined once.

/// `--url`, `--key`, `--secret` (or PIPAI_API_URL, PIPAI_API_KEY, PIPAI_API_SECRET).
#[derive(clap::Args, Clone, Debug)]
pub struct ApiArgs {
    /// API base URL.
    #[arg(long, env = "PIPAI_API_URL", default_value = "http://127.0.0.1:3000", global = true)]
    pub url: String,
    /// API key id.
    #[arg(long, env = "PIPAI_API_KEY", global = true, hide_env_values = true)]
    pub key: Option<String>,
    /// API key secret.
    #[arg(long, env = "PIPAI_API_SECRET", global = true, hide_env_values = true)]
    pub secret: Option<String>,
}
