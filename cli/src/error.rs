//! The CLI's one error type and its exit codes (documented in `pipai --help` of each command).

use std::process::ExitCode;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The job config (or an argument) is wrong: exit code 2.
    #[error("{0}")]
    Config(String),
    /// The market data cannot be used: exit code 3.
    #[error("{0}")]
    Data(String),
    /// Reading or writing a file failed: exit code 1.
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    /// The API could not be reached or answered 5xx: exit code 1.
    #[error("{0}")]
    Network(String),
    /// The API refused the request (4xx): exit code 2.
    #[error("{0}")]
    Api(String),
    /// The job ended `failed`: exit code 3.
    #[error("{0}")]
    JobFailed(String),
    /// The job ended `cancelled`: exit code 4.
    #[error("{0}")]
    JobCancelled(String),
    /// What was checked is not valid (a webhook's signature): exit code 2.
    #[error("{0}")]
    Invalid(String),
}

impl CliError {
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            CliError::Io { .. } | CliError::Network(_) => 1,
            CliError::Config(_) | CliError::Api(_) | CliError::Invalid(_) => 2,
            CliError::Data(_) | CliError::JobFailed(_) => 3,
            CliError::JobCancelled(_) => 4,
        })
    }

    pub fn io(path: impl AsRef<std::path::Path>) -> impl FnOnce(std::io::Error) -> CliError {
        let path = path.as_ref().display().to_string();
        move |source| CliError::Io { path, source }
    }
}
