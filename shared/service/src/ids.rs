//! Identifiers, parsed once at the edge and typed from then on, so a user id can never be passed
//! where a job id is expected. Each is a string with a checked shape; `Display` and `as_str`
//! give it back for keys, logs and responses, and serde reads it through the same check.

use std::fmt;
use std::str::FromStr;

/// A string that does not have an identifier's shape. `what` names the identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{shown} is not a {what} like {example}")]
pub struct IdError {
    pub what: &'static str,
    pub example: &'static str,
    /// The rejected text, quoted and cut short (it may come from a client).
    pub shown: String,
}

/// Declares a string newtype whose values pass `$valid`.
macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $what:literal, $example:literal, $valid:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }

            fn check(s: &str) -> bool {
                let valid: fn(&str) -> bool = $valid;
                valid(s)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                if Self::check(s) {
                    Ok($name(s.to_string()))
                } else {
                    Err(IdError { what: $what, example: $example, shown: pipai_engine::quoted(s) })
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                if Self::check(&s) {
                    Ok($name(s))
                } else {
                    Err(IdError { what: $what, example: $example, shown: pipai_engine::quoted(&s) })
                }
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

fn lower_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn prefixed_hex(s: &str, prefix: &str, lengths: std::ops::RangeInclusive<usize>) -> bool {
    s.strip_prefix(prefix).is_some_and(|h| lengths.contains(&h.len()) && lower_hex(h))
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::getrandom(&mut buf).expect("the OS random source works");
    hex::encode(buf)
}

string_id!(
    /// A job: `bt_` + 6 to 8 lowercase hex (ours are 8), unique across all users.
    JobId,
    "job id",
    "bt_3c91ef",
    |s| prefixed_hex(s, "bt_", 6..=8)
);

impl JobId {
    /// A fresh id from the OS's random source.
    pub fn random() -> JobId {
        JobId(format!("bt_{}", random_hex(4)))
    }
}

string_id!(
    /// The owner of keys, jobs and everything else: any non-empty text without control
    /// characters and without `#` (the stores use `#` to join a user id with other key parts).
    UserId,
    "user id",
    "trader-1",
    |s| !s.is_empty() && s.len() <= 128 && !s.contains('#') && !s.chars().any(char::is_control)
);

string_id!(
    /// An API key's public id. Ours are `pk_` + 16 lowercase hex; imported keys may be any 1 to
    /// 128 ASCII letters, digits, `_` and `-`.
    KeyId,
    "key id",
    "pk_0123456789abcdef",
    |s| (1..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
);

impl KeyId {
    pub fn random() -> KeyId {
        KeyId(format!("pk_{}", random_hex(8)))
    }
}

string_id!(
    /// One worker run's claim on a job: 16 lowercase hex. A run may write to the job only while
    /// the job holds its token.
    RunToken,
    "run token",
    "0123456789abcdef",
    |s| s.len() == 16 && lower_hex(s)
);

impl RunToken {
    pub fn random() -> RunToken {
        RunToken(random_hex(8))
    }
}

string_id!(
    /// A stored strategy: `st_` + 8 lowercase hex, unique across all users.
    StrategyId,
    "strategy id",
    "st_0a1b2c3d",
    |s| prefixed_hex(s, "st_", 8..=8)
);

impl StrategyId {
    /// A fresh id from the OS's random source.
    pub fn random() -> StrategyId {
        StrategyId(format!("st_{}", random_hex(4)))
    }
}

// ---- Sweeps (crate::sweeps).
string_id!(
    /// A sweep: `sw_` + 8 lowercase hex, unique across all users.
    SweepId,
    "sweep id",
    "sw_0a1b2c3d",
    |s| prefixed_hex(s, "sw_", 8..=8)
);

impl SweepId {
    /// A fresh id from the OS's random source.
    pub fn random() -> SweepId {
        SweepId(format!("sw_{}", random_hex(4)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_have_the_documented_shape() {
        for _ in 0..100 {
            let id = JobId::random();
            assert_eq!(id.as_str().parse::<JobId>().unwrap(), id);
            assert_eq!(id.as_str().len(), 11);
        }
        assert!("bt_3c91ef".parse::<JobId>().is_ok());
        for bad in ["bt_3C91EF", "bt_3c91e", "xx_3c91ef", "bt_3c91ef001", ""] {
            assert!(bad.parse::<JobId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn other_ids_check_their_shape() {
        assert!(KeyId::random().as_str().parse::<KeyId>().is_ok());
        assert!("pk_demo0000000001".parse::<KeyId>().is_ok());
        assert!("pk 0123".parse::<KeyId>().is_err());
        assert!(RunToken::random().as_str().parse::<RunToken>().is_ok());
        assert!("u1".parse::<UserId>().is_ok());
        assert!("a#b".parse::<UserId>().is_err());
        assert!("".parse::<UserId>().is_err());
        assert!(StrategyId::random().as_str().parse::<StrategyId>().is_ok());
        assert!("st_0a1b2c3d".parse::<StrategyId>().is_ok());
        for bad in ["st_0a1b2c", "st_0A1B2C3D", "bt_0a1b2c3d", "st_0a1b2c3d4"] {
            assert!(bad.parse::<StrategyId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn serde_reads_through_the_check_and_errors_quote_briefly() {
        let id: JobId = serde_json::from_str("\"bt_0a1b2c3d\"").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"bt_0a1b2c3d\"");
        assert!(serde_json::from_str::<JobId>("\"nope\"").is_err());
        let long = "x".repeat(200_000);
        let message = long.parse::<JobId>().unwrap_err().to_string();
        assert!(message.len() < 300, "{}", message.len());
    }
}
