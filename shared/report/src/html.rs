//! Escaping and the few writing helpers the page needs. Every piece of text that is not a literal
//! of this crate goes through [`Esc`]: config values and symbols are user input.

use std::fmt;

/// Appends formatted text to a `String` (writing to a `String` cannot fail).
macro_rules! w {
    ($out:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = write!($out, $($arg)*);
    }};
}
pub(crate) use w;

/// `text` escaped for HTML element content and quoted attribute values.
pub struct Esc<'a>(pub &'a str);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(i) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..i])?;
            f.write_str(match rest.as_bytes()[i] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[i + 1..];
        }
        f.write_str(rest)
    }
}

/// A two-column table of `(label, value)` rows; both columns escaped.
pub fn key_value_table<K: AsRef<str>, V: AsRef<str>>(out: &mut String, class: &str, rows: &[(K, V)]) {
    w!(out, "<table class=\"kv {class}\"><tbody>");
    for (k, v) in rows {
        w!(out, "<tr><th scope=\"row\">{}</th><td>{}</td></tr>", Esc(k.as_ref()), Esc(v.as_ref()));
    }
    out.push_str("</tbody></table>");
}

/// A table with a header row; cells are escaped, and a cell whose text starts with `-` gets the
/// `neg` class (losses in red).
pub fn table(out: &mut String, class: &str, head: &[&str], rows: impl IntoIterator<Item = Vec<String>>) {
    w!(out, "<table class=\"{class}\"><thead><tr>");
    for h in head {
        w!(out, "<th scope=\"col\">{}</th>", Esc(h));
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str("<tr>");
        for cell in &row {
            if cell.starts_with('-') {
                w!(out, "<td class=\"neg\">{}</td>", Esc(cell));
            } else {
                w!(out, "<td>{}</td>", Esc(cell));
            }
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_the_five_characters() {
        assert_eq!(
            Esc(r#"<a href="x">Tom & 'Jerry'</a>"#).to_string(),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;"
        );
        assert_eq!(Esc("plain ü ✓").to_string(), "plain ü ✓");
        assert_eq!(Esc("").to_string(), "");
    }
}
