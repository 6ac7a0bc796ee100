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
}

impl CliError {
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            CliError::Io { .. } => 1,
            CliError::Config(_) => 2,
            CliError::Data(_) => 3,
        })
    }

    pub fn io(path: impl AsRef<std::path::Path>) -> impl FnOnce(std::io::Error) -> CliError {
        let path = path.as_ref().display().to_string();
        move |source| CliError::Io { path, source }
    }
}
