//! Where the client sends and whose key it signs with, parsed once.

use std::fmt;
use std::time::Duration;

/// Why settings were refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    #[error("API base URL {0:?} must start with http:// or https://")]
    BaseUrl(String),
    #[error("the API key id is empty")]
    EmptyKeyId,
    #[error("the API secret is empty")]
    EmptySecret,
}

/// `http(s)://host[:port][/prefix]`, without a trailing slash: request paths are appended to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl(String);

impl BaseUrl {
    pub fn parse(text: &str) -> Result<BaseUrl, SettingsError> {
        let trimmed = text.trim().trim_end_matches('/');
        let host = trimmed.strip_prefix("http://").or_else(|| trimmed.strip_prefix("https://"));
        match host {
            Some(h) if !h.is_empty() => Ok(BaseUrl(trimmed.to_string())),
            _ => Err(SettingsError::BaseUrl(text.to_string())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The public key id (`X-PipAI-API-Key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyId(String);

impl KeyId {
    pub fn parse(text: &str) -> Result<KeyId, SettingsError> {
        non_empty(text, SettingsError::EmptyKeyId).map(KeyId)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The key's secret; `Debug` does not show it, so settings can be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn parse(text: &str) -> Result<Secret, SettingsError> {
        non_empty(text, SettingsError::EmptySecret).map(Secret)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

fn non_empty(text: &str, empty: SettingsError) -> Result<String, SettingsError> {
    if text.is_empty() {
        Err(empty)
    } else {
        Ok(text.to_string())
    }
}

/// Everything a client needs.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub base_url: BaseUrl,
    pub key_id: KeyId,
    pub secret: Secret,
    /// For the whole exchange of one request: connect, send, read the answer.
    pub timeout: Duration,
}

impl ClientSettings {
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

    /// Settings from text, with [`Self::DEFAULT_TIMEOUT`].
    pub fn parse(base_url: &str, key_id: &str, secret: &str) -> Result<ClientSettings, SettingsError> {
        Ok(ClientSettings {
            base_url: BaseUrl::parse(base_url)?,
            key_id: KeyId::parse(key_id)?,
            secret: Secret::parse(secret)?,
            timeout: Self::DEFAULT_TIMEOUT,
        })
    }

    pub fn with_timeout(self, timeout: Duration) -> ClientSettings {
        ClientSettings { timeout, ..self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_is_trimmed_and_needs_a_scheme_and_host() {
        assert_eq!(BaseUrl::parse("http://127.0.0.1:3000/").unwrap().as_str(), "http://127.0.0.1:3000");
        assert_eq!(BaseUrl::parse("https://api.example.com/prod//").unwrap().as_str(), "https://api.example.com/prod");
        for bad in ["", "127.0.0.1:3000", "ftp://x", "http://", "https:///"] {
            assert_eq!(BaseUrl::parse(bad), Err(SettingsError::BaseUrl(bad.into())), "{bad:?}");
        }
    }

    #[test]
    fn empty_credentials_are_refused_and_the_secret_is_not_shown() {
        assert_eq!(ClientSettings::parse("http://h", "", "s").unwrap_err(), SettingsError::EmptyKeyId);
        assert_eq!(ClientSettings::parse("http://h", "pk_1", "").unwrap_err(), SettingsError::EmptySecret);
        let settings = ClientSettings::parse("http://h", "pk_1", "hunter2").unwrap();
        assert!(!format!("{settings:?}").contains("hunter2"));
    }
}
