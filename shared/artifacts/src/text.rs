//! CSV text: UTC times as the API writes them, a day's date formatted once.

use pipai_engine::time::{day_start, iso, DAY_MS};

/// Appends `ms` as `pipai_engine::time::iso` writes it (`2025-01-01T00:00:00Z`), formatting
/// the date once per UTC day (`cache` holds the last day and its `YYYY-MM-DDT`).
pub fn push_iso(out: &mut String, ms: i64, cache: &mut Option<(i64, String)>) {
    let day = day_start(ms);
    let in_day = ms - day;
    if in_day % 1000 != 0 || !(0..DAY_MS).contains(&in_day) {
        out.push_str(&iso(ms));
        return;
    }
    if cache.as_ref().is_none_or(|(d, _)| *d != day) {
        let text = iso(day);
        match text.find('T') {
            Some(t) => *cache = Some((day, text[..=t].to_string())),
            None => {
                out.push_str(&iso(ms));
                return;
            }
        }
    }
    let (_, date) = cache.as_ref().expect("set above");
    let s = in_day / 1000;
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    out.push_str(date);
    for (i, v) in [h, m, s].into_iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        out.push(char::from(b'0' + (v / 10) as u8));
        out.push(char::from(b'0' + (v % 10) as u8));
    }
    out.push('Z');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_text_as_iso() {
        let mut cache = None;
        for ms in
            [0, 59_000, 1_735_689_600_000, 1_735_775_999_000, 1_735_689_600_123, -1000, -86_400_000, 4_102_444_799_000]
        {
            let mut out = String::new();
            push_iso(&mut out, ms, &mut cache);
            assert_eq!(out, iso(ms), "{ms}");
        }
    }
}
