//! Settings read once at start-up (a Lambda function's cold start, a tool's launch) from named
//! variables, and the one error for a missing or unusable one. Where the variables come from is
//! the caller's choice: [`Env::process`] for the environment, [`Env::from_fn`] in tests.

/// A missing or unusable setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("{name}: {reason}")]
    Invalid { name: String, reason: String },
}

impl ConfigError {
    pub fn invalid(name: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError::Invalid { name: name.into(), reason: reason.into() }
    }
}

/// Where settings come from: a variable's value by its name.
type Lookup<'a> = Box<dyn Fn(&str) -> Option<String> + 'a>;

/// Named settings: a variable that is unset or empty is absent.
pub struct Env<'a> {
    lookup: Lookup<'a>,
}

impl<'a> Env<'a> {
    /// The process environment.
    pub fn process() -> Env<'static> {
        Env { lookup: Box::new(|name| std::env::var(name).ok()) }
    }

    pub fn from_fn(lookup: impl Fn(&str) -> Option<String> + 'a) -> Env<'a> {
        Env { lookup: Box::new(lookup) }
    }

    pub fn optional(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.is_empty())
    }

    pub fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.optional(name).ok_or(ConfigError::Missing(name))
    }

    /// `name` parsed, or `default` when absent; a value that does not parse is an error.
    pub fn parse_or<T: std::str::FromStr>(&self, name: &'static str, default: T) -> Result<T, ConfigError> {
        match self.optional(name) {
            None => Ok(default),
            Some(v) => v.trim().parse().map_err(|_| ConfigError::invalid(name, format!("{v:?} is not a valid value"))),
        }
    }

    /// A whole number from `range` (or `default`), else an error saying the range.
    pub fn int_in(
        &self,
        name: &'static str,
        default: i64,
        range: std::ops::RangeInclusive<i64>,
    ) -> Result<i64, ConfigError> {
        let value = self.parse_or(name, default).ok().filter(|v| range.contains(v));
        value.ok_or_else(|| {
            ConfigError::invalid(name, format!("must be a whole number from {} to {}", range.start(), range.end()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_parsed_or_named_in_the_error() {
        let env = Env::from_fn(|n| match n {
            "A" => Some("7".into()),
            "B" => Some("x".into()),
            "E" => Some(String::new()),
            _ => None,
        });
        assert_eq!(env.int_in("A", 1, 1..=10), Ok(7));
        assert_eq!(env.int_in("Z", 3, 1..=10), Ok(3));
        assert!(env.int_in("B", 1, 1..=10).unwrap_err().to_string().starts_with("B: "));
        assert_eq!(env.required("E"), Err(ConfigError::Missing("E")));
    }
}
