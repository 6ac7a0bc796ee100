//! Quoting what a client sent, briefly, for error messages.

/// How much of a client's text an error message repeats.
const MAX_CHARS: usize = 100;

/// `s` quoted as Rust's `{:?}` does, cut after 100 characters (`"abc…" (200000 characters)`), so an
/// error message never echoes a long input whole.
pub fn quoted(s: &str) -> String {
    match s.char_indices().nth(MAX_CHARS) {
        None => format!("{s:?}"),
        Some((cut, _)) => format!("{:?}… ({} characters)", &s[..cut], s.chars().count()),
    }
}

/// `s` as it is, cut after 100 characters, for names (a query parameter's, a field's) that a
/// message shows unquoted.
pub fn brief(s: &str) -> String {
    match s.char_indices().nth(MAX_CHARS) {
        None => s.to_string(),
        Some((cut, _)) => format!("{}… ({} characters)", &s[..cut], s.chars().count()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_input_is_cut() {
        assert_eq!(quoted("ab"), "\"ab\"");
        assert_eq!(brief("ab"), "ab");
        let long = "é".repeat(200_000);
        assert!(quoted(&long).chars().count() < 130);
        assert!(brief(&long).ends_with("(200000 characters)"));
    }
}
