//! The stored form of a result array (the equity curve, the trades): one JSON document laid out
//! in fixed-size pages, and a small [`PageIndex`] that says where each page starts, so that a
//! reader fetches only the bytes of the pages it returns (an S3 ranged GET) and never parses them.
//!
//! Layout of the array object: `[`, a newline, the elements as compact JSON joined by `,` and a
//! newline, a newline, `]`:
//! ```text
//! [
//! {"id":1,...},
//! {"id":2,...}
//! ]
//! ```
//! It is a plain JSON array (the newlines are whitespace), and since compact JSON never holds a
//! raw newline (serde_json escapes it inside strings), each line is exactly one element with its
//! separator. Page `p` holds elements `p * page_size ..` and starts at byte `offsets[p]`; the last
//! offset is where the last element ends. Pure: no storage, no AWS.

use std::ops::Range;

use serde::{Deserialize, Serialize};

/// The two paged arrays of a result, and their page sizes (the default page of `expand`, and the
/// first page a large result's GET returns, so that page is one stored page).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultArray {
    EquityCurve,
    Trades,
}

/// Equity points per stored page.
pub const EQUITY_PAGE: usize = 2_000;
/// Trades per stored page.
pub const TRADES_PAGE: usize = 1_000;

impl ResultArray {
    pub const ALL: [ResultArray; 2] = [ResultArray::EquityCurve, ResultArray::Trades];

    /// The name in the API (`expand=...`, the result's keys).
    pub fn name(self) -> &'static str {
        match self {
            ResultArray::EquityCurve => "equity_curve",
            ResultArray::Trades => "trades",
        }
    }

    /// `expand`'s value.
    pub fn parse(name: &str) -> Option<ResultArray> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The artifact holding the array.
    pub fn artifact(self) -> &'static str {
        match self {
            ResultArray::EquityCurve => "equity_curve.json",
            ResultArray::Trades => "trades.json",
        }
    }

    pub fn page_size(self) -> usize {
        match self {
            ResultArray::EquityCurve => EQUITY_PAGE,
            ResultArray::Trades => TRADES_PAGE,
        }
    }
}

/// The artifact holding the metrics and [`ResultPages`]; written after the arrays, so it exists
/// only when they are complete.
pub const RESULT_ARTIFACT: &str = "result.json";

/// The index of both arrays of a result, stored next to them (in [`RESULT_ARTIFACT`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultPages {
    pub equity_curve: PageIndex,
    pub trades: PageIndex,
}

/// What [`RESULT_ARTIFACT`] holds: the result's metrics and summary, and the page indexes of
/// its arrays (never the arrays themselves).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredResult {
    #[serde(flatten)]
    pub summary: crate::model::ResultSummary,
    pub pages: ResultPages,
    /// `result.benchmark` and `result.provenance` (API.md part 2); absent from results stored
    /// before them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub benchmark: Option<pipai_engine::benchmark::Benchmark>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<pipai_engine::provenance::Provenance>,
    /// The downloadable files uploaded beside it (`crate::artifacts`); absent when they could
    /// not be written, and from results stored before them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<StoredFile>>,
}

/// One downloadable file of a done job, at `results/{job_id}/{name}`: the artifacts route's
/// entry without its `url`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredFile {
    pub name: String,
    pub content: pipai_artifacts::Content,
    pub format: pipai_artifacts::Format,
    pub bytes: u64,
}

impl ResultPages {
    pub fn get(&self, array: ResultArray) -> &PageIndex {
        match array {
            ResultArray::EquityCurve => &self.equity_curve,
            ResultArray::Trades => &self.trades,
        }
    }
}

/// Where the pages of one stored array start. Deserializing checks it is consistent, so a
/// reader can trust every range it computes from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "UncheckedIndex")]
pub struct PageIndex {
    /// Elements in the array.
    count: usize,
    page_size: usize,
    /// Byte offset of each page's first element, then the end of the last element: one more
    /// than there are pages.
    offsets: Vec<u64>,
}

#[derive(Deserialize)]
struct UncheckedIndex {
    count: usize,
    page_size: usize,
    offsets: Vec<u64>,
}

/// Why stored pages could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    #[error("inconsistent page index: {0}")]
    Index(&'static str),
    #[error("stored page bytes do not match the index: {0}")]
    Bytes(String),
}

impl TryFrom<UncheckedIndex> for PageIndex {
    type Error = PageError;

    fn try_from(u: UncheckedIndex) -> Result<Self, PageError> {
        if u.page_size == 0 {
            return Err(PageError::Index("page_size is 0"));
        }
        if u.offsets.len() != u.count.div_ceil(u.page_size) + 1 {
            return Err(PageError::Index("the number of offsets does not match count and page_size"));
        }
        if u.offsets.windows(2).any(|w| w[0] >= w[1]) {
            return Err(PageError::Index("offsets do not increase"));
        }
        Ok(PageIndex { count: u.count, page_size: u.page_size, offsets: u.offsets })
    }
}

/// Bytes to read for a run of elements, and the index of the first element they hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageSpan {
    pub bytes: Range<u64>,
    /// The element the bytes start with (the first element of the first page read).
    pub first_element: usize,
    /// How many elements the bytes hold (whole pages).
    pub elements: usize,
    /// Whether the span ends with the array's last element (else with a separator).
    pub ends_array: bool,
}

/// The separator between two elements.
const SEPARATOR: &[u8] = b",\n";
const OPENING: &[u8] = b"[\n";
const CLOSING: &[u8] = b"\n]";

impl PageIndex {
    pub fn count(&self) -> usize {
        self.count
    }

    /// The length of the array as compact JSON (`[e0,e1]`), as a response carries it.
    pub fn compact_json_len(&self) -> u64 {
        let stored = self.offsets[self.offsets.len() - 1] - self.offsets[0];
        match self.count as u64 {
            0 => 2,
            // Each separator is one byte longer stored than compact; plus the brackets.
            n => stored - (n - 1) + 2,
        }
    }

    /// The pages covering `elements` (clamped to the array); `None` when nothing is left.
    pub fn span(&self, elements: Range<usize>) -> Option<PageSpan> {
        let (start, end) = (elements.start, elements.end.min(self.count));
        if start >= end {
            return None;
        }
        let (first_page, last_page) = (start / self.page_size, (end - 1) / self.page_size);
        let first_element = first_page * self.page_size;
        let past_last = ((last_page + 1) * self.page_size).min(self.count);
        Some(PageSpan {
            bytes: self.offsets[first_page]..self.offsets[last_page + 1],
            first_element,
            elements: past_last - first_element,
            ends_array: past_last == self.count,
        })
    }
}

impl PageSpan {
    /// The elements (compact JSON, borrowed from `bytes`) of the span's pages; `bytes` are what
    /// was read for [`PageSpan::bytes`].
    pub fn elements<'a>(&self, bytes: &'a [u8]) -> Result<Vec<&'a str>, PageError> {
        let text = std::str::from_utf8(bytes).map_err(|e| PageError::Bytes(e.to_string()))?;
        let lines: Vec<&str> = text.split_terminator('\n').collect();
        // Every line but the array's last ends with its separator.
        let separated = |(i, line): (usize, &&str)| line.ends_with(',') || (self.ends_array && i + 1 == lines.len());
        let elements: Vec<&str> = lines.iter().map(|l| l.strip_suffix(',').unwrap_or(l)).collect();
        if elements.len() != self.elements
            || !lines.iter().enumerate().all(separated)
            || elements.iter().any(|e| e.is_empty())
        {
            return Err(PageError::Bytes(format!(
                "{} lines where {} elements were expected at element {}",
                elements.len(),
                self.elements,
                self.first_element
            )));
        }
        Ok(elements)
    }
}

impl PageSpan {
    /// The elements `range` (within the span) of `bytes`, read for [`PageSpan::bytes`].
    pub fn slice<'a>(&self, bytes: &'a [u8], range: Range<usize>) -> Result<Vec<&'a str>, PageError> {
        let mut elements = self.elements(bytes)?;
        let end = range.end.saturating_sub(self.first_element).min(elements.len());
        elements.truncate(end);
        elements.drain(..range.start.saturating_sub(self.first_element).min(end));
        Ok(elements)
    }
}

/// `[e0,e1,...]` from compact JSON elements.
pub fn json_array<'a>(elements: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::from("[");
    for (i, e) in elements.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(e);
    }
    out.push(']');
    out
}

/// Serializes an array into the paged layout, element by element (so a caller can report
/// progress between batches).
#[derive(Debug)]
pub struct PagedArrayWriter {
    bytes: Vec<u8>,
    count: usize,
    page_size: usize,
    offsets: Vec<u64>,
}

impl PagedArrayWriter {
    pub fn new(page_size: usize) -> Self {
        assert!(page_size > 0, "pages hold at least one element");
        PagedArrayWriter { bytes: OPENING.to_vec(), count: 0, page_size, offsets: vec![] }
    }

    pub fn push<T: Serialize>(&mut self, element: &T) {
        if self.count > 0 {
            self.bytes.extend_from_slice(SEPARATOR);
        }
        if self.count.is_multiple_of(self.page_size) {
            self.offsets.push(self.bytes.len() as u64);
        }
        serde_json::to_writer(&mut self.bytes, element).expect("result elements serialize");
        self.count += 1;
    }

    /// The stored bytes and their index.
    pub fn finish(mut self) -> (Vec<u8>, PageIndex) {
        self.offsets.push(self.bytes.len() as u64);
        self.bytes.extend_from_slice(CLOSING);
        (self.bytes, PageIndex { count: self.count, page_size: self.page_size, offsets: self.offsets })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn elements(n: usize) -> Vec<Value> {
        // Strings with commas, brackets, an escaped newline and non-ASCII: none may confuse paging.
        (0..n).map(|i| json!({"id": i, "note": format!("a,b]\n{{ü{i}"), "v": [i, i * 2]})).collect()
    }

    fn stored(values: &[Value], page_size: usize) -> (Vec<u8>, PageIndex) {
        let mut w = PagedArrayWriter::new(page_size);
        values.iter().for_each(|v| w.push(v));
        w.finish()
    }

    /// What a reader returns for `range`: the JSON array of those elements.
    fn read(bytes: &[u8], index: &PageIndex, range: Range<usize>) -> Value {
        let Some(span) = index.span(range.clone()) else { return json!([]) };
        let chunk = &bytes[span.bytes.start as usize..span.bytes.end as usize];
        serde_json::from_str(&json_array(span.slice(chunk, range).unwrap())).unwrap()
    }

    #[test]
    fn the_stored_object_is_the_plain_json_array() {
        for n in [0, 1, 2, 7, 10, 11] {
            let values = elements(n);
            let (bytes, index) = stored(&values, 5);
            assert_eq!(serde_json::from_slice::<Value>(&bytes).unwrap(), json!(values));
            assert_eq!(index.count(), n);
            assert_eq!(index.compact_json_len() as usize, serde_json::to_vec(&values).unwrap().len(), "n={n}");
        }
    }

    #[test]
    fn any_slice_equals_the_plain_slice() {
        for (n, page) in [(0, 3), (1, 1), (9, 3), (10, 3), (23, 5), (25, 25), (26, 25), (40, 1)] {
            let values = elements(n);
            let (bytes, index) = stored(&values, page);
            for start in 0..=n + 1 {
                for len in [1, 2, page - 1, page, page + 1, 2 * page, n + 3] {
                    let end = (start + len).min(n);
                    let want = json!(values.get(start..end).unwrap_or_default());
                    assert_eq!(read(&bytes, &index, start..start + len), want, "n={n} page={page} {start}+{len}");
                }
            }
        }
    }

    #[test]
    fn spans_cover_whole_pages_exactly() {
        let (_, index) = stored(&elements(25), 10);
        let at = |r: Range<usize>| index.span(r).map(|s| (s.first_element, s.elements));
        assert_eq!(at(0..10), Some((0, 10)));
        assert_eq!(at(0..11), Some((0, 20)));
        assert_eq!(at(10..20), Some((10, 10)));
        assert_eq!(at(9..10), Some((0, 10)));
        assert_eq!(at(19..21), Some((10, 15)));
        assert_eq!(at(20..100), Some((20, 5)));
        assert_eq!(at(25..30), None);
        assert_eq!(at(3..3), None);
        let empty = stored(&[], 10).1;
        assert_eq!(empty.span(0..10), None);
        assert_eq!(empty.compact_json_len(), 2);
    }

    #[test]
    fn the_index_round_trips_and_inconsistent_ones_are_refused() {
        let (_, index) = stored(&elements(12), 5);
        let text = serde_json::to_string(&index).unwrap();
        assert_eq!(serde_json::from_str::<PageIndex>(&text).unwrap(), index);
        for bad in [
            json!({"count": 12, "page_size": 0, "offsets": [2]}),
            json!({"count": 12, "page_size": 5, "offsets": [2, 30, 60]}),
            json!({"count": 2, "page_size": 5, "offsets": [9, 9]}),
        ] {
            assert!(serde_json::from_value::<PageIndex>(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn bytes_that_do_not_match_the_index_are_an_error() {
        let (bytes, index) = stored(&elements(10), 5);
        let span = index.span(0..5).unwrap();
        let short = &bytes[span.bytes.start as usize..span.bytes.end as usize - 20];
        assert!(span.elements(short).is_err());
        assert!(span.elements(&[0xff, b'\n']).is_err());
    }

    #[test]
    fn array_names_parse() {
        for a in ResultArray::ALL {
            assert_eq!(ResultArray::parse(a.name()), Some(a));
        }
        assert_eq!(ResultArray::parse("orders"), None);
    }
}
