//! The parser behind [`super::parse_csv`]: the rows of a large file are cut at line ends into one
//! piece per core, the pieces parsed at once, each into its own stretch of the output columns
//! (allocated once from a count of the lines), and the pieces' outcomes merged in file order.
//!
//! Exactly [`super::parse_csv_reference`]'s bars and errors: each piece runs the same row checks
//! ([`super::parse_row`]) from its own first line number; what a piece cannot see alone, the
//! merge checks where the pieces meet: the first row of a piece against the last row before it
//! (duplicate, unsorted) and the time unit of its first integer `open_time` against the file's
//! (mixed units). The error reported is the first in file order, as the sequential parser stops
//! there. Floats in the common form `-?digits[.digits]` are converted by `fast-float2` (correctly
//! rounded, as the standard library is); any other text goes to the standard library's parser, so
//! what is accepted and refused stays the reference's.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;

use pipai_engine::bars::Bars;

use super::{
    check_row, integer_time, parse_f64, parse_row, CsvError, Head, KlineFormat, Lines, Row, RowError, RowState,
    TimeUnit,
};

/// Files smaller than this are parsed on the calling thread: starting threads would cost more.
const MIN_PIECE_BYTES: usize = 1 << 20;
/// How many bytes of a piece are read between two calls of the [`Release`] hook.
const RELEASE_BYTES: usize = 1 << 20;

/// Called with each stretch of the input once it has been read, so that a mapped file's pages
/// can be given back while the rest is parsed (peak memory: the bars, not the bars plus the file).
/// The stretch may be read again later (it must stay readable).
pub type Release<'a> = &'a (dyn Fn(&[u8]) + Sync);

/// The [`Release`] hook of bytes that stay as they are (in memory already, not mapped).
pub const KEEP: Release<'static> = &|_: &[u8]| {};
/// Most pieces a file is cut into.
const MAX_PIECES: usize = 16;

/// Pieces per core: the cores take them in turn ([`on_each`]), so a core slowed down (page
/// faults land on whichever thread touches a page first) leaves the others more pieces, not idle
/// time at the end. `pipai sweep`'s load of a year's 30 MB of CSV, median of 15 on 2 cores: one
/// piece per core 28.4 ms, 4 per core 25.7 ms, 8 per core 26.1 ms.
const PIECES_PER_CORE: usize = 4;

/// How many pieces a file of `len` bytes is cut into: [`PIECES_PER_CORE`] per core, each at
/// least [`MIN_PIECE_BYTES`], at most [`MAX_PIECES`].
pub(super) fn chunk_count(len: usize) -> usize {
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    (cores * PIECES_PER_CORE).min(MAX_PIECES).min(len / MIN_PIECE_BYTES).max(1)
}

/// Parses CSV bytes in `pieces` pieces (1: sequentially on this thread).
pub(super) fn parse(
    name: &str,
    bytes: &[u8],
    pieces: usize,
    release: Release,
) -> Result<(Bars, KlineFormat), CsvError> {
    let head = Head::detect(name, bytes)?;
    let pieces = split_at_lines(head.body, pieces.max(1));

    // Where each piece's line numbers start and how many rows it can hold (its lines).
    let newlines = on_each(pieces.clone(), |piece| {
        let mut count = 0;
        for block in piece.chunks(RELEASE_BYTES) {
            count += memchr::memchr_iter(b'\n', block).count();
            release(block);
        }
        count
    });
    let mut slots = Vec::with_capacity(pieces.len());
    let (mut lines_before, mut rows_before) = (head.lines_before, 0);
    for (piece, &newlines) in pieces.iter().zip(&newlines) {
        let lines = newlines + usize::from(!piece.is_empty() && !piece.ends_with(b"\n"));
        slots.push(Slot { lines_before, at: rows_before, lines });
        lines_before += newlines as u64;
        rows_before += lines;
    }

    let mut bars = crate::layout::zeroed_bars(rows_before);
    let sizes: Vec<usize> = slots.iter().map(|s| s.lines).collect();
    let work: Vec<_> = pieces.into_iter().zip(&slots).zip(split_columns(&mut bars, &sizes)).collect();
    let outcomes = on_each(work, |((piece, slot), out)| parse_piece(piece, slot.lines_before, &head, out, release));

    if let Some((line, reason)) = first_error(&outcomes) {
        return Err(head.row_err(line, reason));
    }
    compact(&mut bars, &slots, &outcomes);
    head.finish(bars)
}

/// Bytes of CSV a stream is read in at a time: each block is parsed while the next one is read
/// (inflated). 1 MiB: one piece per block, as inflating is the slower side; with 4 MiB blocks a
/// year's zip peaked at 67 MB of RSS instead of 47 MB, no faster.
pub(super) const STREAM_BLOCK_BYTES: usize = 1 << 20;

/// Parses the CSV `reader` gives (say a zip entry being inflated), `block` bytes at a time, cut
/// at line ends, without holding the whole text: the next block is read on this thread while the
/// one before is parsed, in pieces, on every core, into the growing output columns. Exactly the
/// bars and errors of [`parse`] on the whole text (each block's pieces are pieces of the file,
/// checked against each other as [`parse`] checks its pieces); the first error stops reading.
/// `size_hint` is the text's size if known (else 0); `read_err` maps a read failure; at most
/// `max_bytes` are read (else `too_large()`).
pub(super) fn parse_stream(
    name: &str,
    reader: &mut dyn std::io::Read,
    block: usize,
    size_hint: u64,
    max_bytes: u64,
    read_err: &(dyn Fn(std::io::Error) -> CsvError + Sync),
    too_large: &(dyn Fn() -> CsvError + Sync),
) -> Result<(Bars, KlineFormat), CsvError> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(1);
    thread::scope(|s| {
        // A parse error, and whether it was found at the end of the text (where a failed read
        // may be its cause) rather than in the rows read.
        const AT_END: bool = true;
        let during = |e| (e, !AT_END);
        let parser = s.spawn(move || {
            let mut stream =
                Stream { bars: Bars::default(), slots: Vec::new(), outcomes: Vec::new(), lines: 0, size_hint };
            let mut head: Option<(KlineFormat, usize)> = None;
            let mut pending: Vec<u8> = Vec::new();
            for text in rx {
                // The first block with a non-blank line decides the format.
                let (format, expected) = match head {
                    Some(h) => h,
                    None => {
                        pending.extend_from_slice(&text);
                        let stripped = pending.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&pending);
                        if stripped.trim_ascii().is_empty() {
                            continue;
                        }
                        let first = Head::detect(name, &pending).map_err(during)?;
                        stream.lines = first.lines_before;
                        head = Some((first.format, first.expected));
                        stream.push(&first, first.body).map_err(during)?;
                        pending = Vec::new();
                        continue;
                    }
                };
                stream.push(&Head { name, format, expected, body: &[], lines_before: 0 }, &text).map_err(during)?;
            }
            let Some((format, expected)) = head else {
                // Blank or empty: what the whole-text parser says about it ("no rows").
                let no_rows = CsvError::Format { file: name.to_string(), reason: "no rows".into() };
                return Err((Head::detect(name, &pending).err().unwrap_or(no_rows), AT_END));
            };
            let Stream { mut bars, slots, outcomes, .. } = stream;
            compact(&mut bars, &slots, &outcomes);
            Head { name, format, expected, body: &[], lines_before: 0 }.finish(bars).map_err(|e| (e, AT_END))
        });
        let read = read_blocks(reader, block, max_bytes, &tx);
        drop(tx);
        let parsed = parser.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        // An error in the rows read is the file's first error, whatever the read did next (the
        // reader stops at its next block once the parser is gone); otherwise a failed read is.
        match (parsed, read) {
            (Err((e, false)), _) => Err(e),
            (_, Err(Stop::Read(e))) => Err(read_err(e)),
            (_, Err(Stop::TooLarge)) => Err(too_large()),
            (Err((e, _)), _) => Err(e),
            // The parser only stops early on an error.
            (Ok(parsed), Err(Stop::Gone) | Ok(())) => Ok(parsed),
        }
    })
}

/// Why reading a stream stopped early.
enum Stop {
    Read(std::io::Error),
    TooLarge,
    /// The parser stopped (an error).
    Gone,
}

/// Sends `reader`'s bytes in blocks of at least `block` bytes that end at a line end (the last
/// one at the end of the text).
fn read_blocks(
    reader: &mut dyn std::io::Read,
    block: usize,
    max_bytes: u64,
    tx: &std::sync::mpsc::SyncSender<Vec<u8>>,
) -> Result<(), Stop> {
    let mut carry: Vec<u8> = Vec::new();
    let mut total = 0u64;
    loop {
        let mut buf = std::mem::take(&mut carry);
        buf.reserve(block);
        let mut eof = false;
        while buf.len() < block || memchr::memrchr(b'\n', &buf).is_none() {
            let at = buf.len();
            buf.resize(at + block.max(1), 0);
            let n = loop {
                match reader.read(&mut buf[at..]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(Stop::Read(e)),
                }
            };
            buf.truncate(at + n);
            total += n as u64;
            if total > max_bytes {
                return Err(Stop::TooLarge);
            }
            if n == 0 {
                eof = true;
                break;
            }
        }
        if !eof {
            let cut = memchr::memrchr(b'\n', &buf).map_or(buf.len(), |i| i + 1);
            carry = buf[cut..].to_vec();
            buf.truncate(cut);
        }
        if !buf.is_empty() && tx.send(buf).is_err() {
            return Err(Stop::Gone);
        }
        if eof {
            return Ok(());
        }
    }
}

/// What a stream's parser has so far: the rows of the blocks parsed, and their pieces' places and
/// outcomes, in file order.
struct Stream {
    bars: Bars,
    slots: Vec<Slot>,
    outcomes: Vec<Outcome>,
    /// Physical lines before the next block.
    lines: u64,
    /// The text's size, if known (0 if not): the columns are allocated for the rows it holds at
    /// the first block's bytes per line, so they do not grow (and get copied) as blocks come.
    size_hint: u64,
}

impl Stream {
    /// Parses the next block (`body`, from a line start to a line end), in pieces on every core,
    /// and stops at the first error of the file so far.
    fn push(&mut self, head: &Head, body: &[u8]) -> Result<(), CsvError> {
        let pieces = split_at_lines(body, chunk_count(body.len()));
        let at = self.bars.len();
        let mut sizes = Vec::with_capacity(pieces.len());
        for piece in &pieces {
            let newlines = memchr::memchr_iter(b'\n', piece).count();
            let lines = newlines + usize::from(!piece.is_empty() && !piece.ends_with(b"\n"));
            self.slots.push(Slot { lines_before: self.lines, at: at + sizes.iter().sum::<usize>(), lines });
            self.lines += newlines as u64;
            sizes.push(lines);
        }
        let added: usize = sizes.iter().sum();
        if at == 0 && self.size_hint > body.len() as u64 {
            let estimate = (added as u64 * self.size_hint / body.len().max(1) as u64) * 101 / 100 + 16;
            let estimate = usize::try_from(estimate).unwrap_or(usize::MAX).min(1 << 31);
            for_each_column(&mut self.bars, |c| c.reserve_exact(estimate), |c| c.reserve_exact(estimate));
        }
        if self.bars.open_time.capacity() < at + added {
            // Room for as many blocks again as were read: amortised, like a Vec's own growth.
            let more = (at + added).max(2 * at) - at;
            for_each_column(&mut self.bars, |c| c.reserve_exact(more), |c| c.reserve_exact(more));
        }
        for_each_column(&mut self.bars, |c| c.resize(at + added, 0), |c| c.resize(at + added, 0.0));
        let first_slot = self.slots.len() - pieces.len();
        let columns = split_columns_from(&mut self.bars, at, &sizes);
        let work: Vec<_> = pieces.into_iter().zip(&self.slots[first_slot..]).zip(columns).collect();
        let outcomes = on_each(work, |((piece, slot), out)| parse_piece(piece, slot.lines_before, head, out, KEEP));
        self.outcomes.extend(outcomes);
        match first_error(&self.outcomes) {
            Some((line, reason)) => Err(head.row_err(line, reason)),
            None => Ok(()),
        }
    }
}

/// Runs `times` on the `open_time` column and `values` on each of the others.
fn for_each_column(bars: &mut Bars, times: impl Fn(&mut Vec<i64>), values: impl Fn(&mut Vec<f64>)) {
    times(&mut bars.open_time);
    for column in [&mut bars.open, &mut bars.high, &mut bars.low, &mut bars.close, &mut bars.volume] {
        values(column);
    }
}

/// [`split_columns`] of the rows from `at` on.
fn split_columns_from<'a>(bars: &'a mut Bars, at: usize, sizes: &[usize]) -> Vec<ColumnsMut<'a>> {
    let mut sizes_with_head = Vec::with_capacity(sizes.len() + 1);
    sizes_with_head.push(at);
    sizes_with_head.extend_from_slice(sizes);
    let mut columns = split_columns(bars, &sizes_with_head);
    columns.remove(0);
    columns
}

/// A piece's place: the physical lines before it, and its stretch of the output columns.
struct Slot {
    lines_before: u64,
    at: usize,
    lines: usize,
}

/// What parsing one piece found.
#[derive(Default)]
struct Outcome {
    /// Rows written at the start of the piece's stretch.
    rows: usize,
    /// Line and `open_time` of the piece's first row, when it parsed.
    first: Option<(u64, i64)>,
    /// `open_time` of the piece's last row.
    last: Option<i64>,
    /// Line, raw value and unit of the piece's first integer `open_time`.
    first_integer: Option<(u64, i64, TimeUnit)>,
    /// The row that stopped the piece.
    error: Option<(u64, RowError)>,
}

/// The output columns of one piece.
struct ColumnsMut<'a> {
    open_time: &'a mut [i64],
    /// open, high, low, close, volume.
    values: [&'a mut [f64]; 5],
}

fn parse_piece(piece: &[u8], lines_before: u64, head: &Head, mut out: ColumnsMut, release: Release) -> Outcome {
    let mut state = RowState::new(head.format);
    let mut outcome = Outcome::default();
    let mut fields: [&[u8]; 6] = [&[]; 6];
    let mut released = 0;
    for (line, text) in (Lines { rest: piece, line: lines_before }) {
        let read = text.as_ptr() as usize - piece.as_ptr() as usize;
        if read - released >= RELEASE_BYTES {
            release(&piece[released..read]);
            released = read;
        }
        let had_unit = state.unit.is_some();
        let row = match parse_clean_row(text, head.expected, &mut state) {
            Some(row) => row,
            None => {
                let n = split_six(text, &mut fields);
                parse_row(&fields, n, head.expected, &mut state, parse_f64_fast)
            }
        };
        if let (false, Some(unit), Some(value)) = (had_unit, state.unit, state.first_integer) {
            outcome.first_integer = Some((line, value, unit));
        }
        match row {
            Ok((time, values)) => {
                let i = outcome.rows;
                if i == 0 {
                    outcome.first = Some((line, time));
                }
                out.open_time[i] = time;
                for (column, value) in out.values.iter_mut().zip(values) {
                    column[i] = value;
                }
                outcome.rows += 1;
                outcome.last = Some(time);
            }
            Err(reason) => {
                outcome.error = Some((line, reason));
                break;
            }
        }
    }
    release(&piece[released..]);
    outcome
}

/// The error the sequential parser would stop at: the first piece's own error, or a check across
/// pieces (time unit, order), whichever comes first in the file.
fn first_error(outcomes: &[Outcome]) -> Option<(u64, RowError)> {
    let mut file_unit = None;
    let mut previous = None;
    for outcome in outcomes {
        let mut error = outcome.error.clone();
        let before_error = |line: u64, error: &Option<(u64, RowError)>| error.as_ref().is_none_or(|(l, _)| line < *l);
        // The unit is checked as soon as the time parses, before anything else on the row.
        if let (Some(file), Some((line, value, found))) = (file_unit, outcome.first_integer) {
            let at_or_before = error.as_ref().is_none_or(|(l, _)| line <= *l);
            if found != file && at_or_before {
                error = Some((line, RowError::MixedTimeUnit { value, found, file }));
            }
        }
        // The order is checked last on a row: only a row that parsed can break it.
        if let (Some(previous), Some((line, time))) = (previous, outcome.first) {
            if before_error(line, &error) {
                if time == previous {
                    error = Some((line, RowError::Duplicate { time }));
                } else if time < previous {
                    error = Some((line, RowError::Unsorted { time, previous }));
                }
            }
        }
        if error.is_some() {
            return error;
        }
        file_unit = file_unit.or(outcome.first_integer.map(|(_, _, unit)| unit));
        previous = outcome.last.or(previous);
    }
    None
}

/// Cuts `body` into `n` pieces that end at line ends (the last piece at the end of `body`).
fn split_at_lines(body: &[u8], n: usize) -> Vec<&[u8]> {
    let mut pieces = Vec::with_capacity(n);
    let mut rest = body;
    for left in (1..n).rev() {
        let target = rest.len() / (left + 1);
        let cut = memchr::memchr(b'\n', &rest[target..]).map_or(rest.len(), |i| target + i + 1);
        let (piece, after) = rest.split_at(cut);
        pieces.push(piece);
        rest = after;
    }
    pieces.push(rest);
    pieces
}

/// Runs `f` on every item, on this thread and up to one more thread per other core, each taking
/// the next item not yet taken (so a thread slowed down, say by page faults, takes fewer);
/// results in the items' order.
pub(crate) fn on_each<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    let n = items.len();
    let threads = thread::available_parallelism().map_or(1, |c| c.get()).min(n);
    if threads <= 1 {
        return items.into_iter().map(f).collect();
    }
    let queue: Vec<Mutex<Option<T>>> = items.into_iter().map(|item| Mutex::new(Some(item))).collect();
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(slot) = queue.get(i) else { return done };
            let item = slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
            done.extend(item.map(|item| (i, f(item))));
        }
    };
    let mut results: Vec<Option<R>> = (0..n).map(|_| None).collect();
    thread::scope(|s| {
        let others: Vec<_> = (1..threads).map(|_| s.spawn(work)).collect();
        let mine = work();
        let theirs = others.into_iter().map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)));
        for (i, r) in std::iter::once(mine).chain(theirs).flatten() {
            results[i] = Some(r);
        }
    });
    results.into_iter().map(|r| r.expect("every item is taken once")).collect()
}

/// Consecutive stretches of `sizes` rows of every column.
fn split_columns<'a>(bars: &'a mut Bars, sizes: &[usize]) -> Vec<ColumnsMut<'a>> {
    let Bars { open_time, open, high, low, close, volume } = bars;
    let mut times: &mut [i64] = open_time;
    let mut values: [&mut [f64]; 5] = [open, high, low, close, volume];
    let mut out = Vec::with_capacity(sizes.len());
    for &n in sizes {
        let (piece, rest) = std::mem::take(&mut times).split_at_mut(n);
        times = rest;
        let piece_values = values.each_mut().map(|column| {
            let (piece, rest) = std::mem::take(column).split_at_mut(n);
            *column = rest;
            piece
        });
        out.push(ColumnsMut { open_time: piece, values: piece_values });
    }
    out
}

/// Closes the gaps blank lines and the header left between the pieces' rows.
fn compact(bars: &mut Bars, slots: &[Slot], outcomes: &[Outcome]) {
    let mut kept = 0;
    for (slot, outcome) in slots.iter().zip(outcomes) {
        if slot.at != kept {
            let from = slot.at..slot.at + outcome.rows;
            bars.open_time.copy_within(from.clone(), kept);
            for column in [&mut bars.open, &mut bars.high, &mut bars.low, &mut bars.close, &mut bars.volume] {
                column.copy_within(from.clone(), kept);
            }
        }
        kept += outcome.rows;
    }
    bars.open_time.truncate(kept);
    for column in [&mut bars.open, &mut bars.high, &mut bars.low, &mut bars.close, &mut bars.volume] {
        column.truncate(kept);
    }
}

/// A row in the form exchanges write, parsed in one pass: an integer `open_time` and five plain
/// decimals (`-?digits[.digits]`), no spaces or quotes, and the expected number of columns. On
/// such a line [`parse_row`] would see the same fields and numbers, so the same checks give the
/// same outcome. `None` for any other line, which then takes the general path.
#[inline]
fn parse_clean_row(line: &[u8], expected: usize, st: &mut RowState) -> Option<Result<Row, RowError>> {
    // 1 to 18 digits, then a comma (at most 19 digits are read: they fit in a u64).
    let mut at = 0;
    let mut time = 0u64;
    while let Some(digit) = line.get(at).map(|b| b.wrapping_sub(b'0')).filter(|&d| d <= 9 && at <= 18) {
        time = time * 10 + u64::from(digit);
        at += 1;
    }
    if at == 0 || at > 18 || line.get(at) != Some(&b',') {
        return None;
    }
    let mut rest = &line[at + 1..];
    let mut values = [0.0; 5];
    for (i, value) in values.iter_mut().enumerate() {
        let (parsed, len) = plain_decimal(rest)?;
        *value = parsed;
        // Each field ends at a comma, but the last of a plain row, which ends the line.
        rest = match rest.get(len) {
            Some(b',') if i < 4 || expected > 6 => &rest[len + 1..],
            None if i == 4 && expected == 6 => &[],
            _ => return None,
        };
    }
    // The columns after volume (Binance) are counted, not read.
    if expected > 6 && memchr::memchr_iter(b',', rest).count() != expected - 7 {
        return None;
    }
    Some(integer_time(time as i64, st).and_then(|time| check_row(time, values, st)))
}

/// Powers of ten a double holds exactly.
const EXACT_POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20,
    1e21, 1e22,
];

/// The plain decimal (`-?digits[.digits]`) at the start of `text` and its length in bytes, read in
/// one pass; `None` when `text` does not start with one. The value is the correctly rounded
/// double, as the standard library reads it: when the digits fit in 53 bits and the fraction has
/// at most 22 digits, both the digits and the power of ten are exact doubles and one division
/// rounds once (Clinger's fast path); otherwise `fast-float2` converts the text.
#[inline]
fn plain_decimal(text: &[u8]) -> Option<(f64, usize)> {
    let negative = text.first() == Some(&b'-');
    let mut at = usize::from(negative);
    let mut digits = 0u64;
    let int_start = at;
    while let Some(d) = text.get(at).map(|b| b.wrapping_sub(b'0')).filter(|&d| d <= 9) {
        digits = digits.wrapping_mul(10).wrapping_add(u64::from(d));
        at += 1;
    }
    let int_digits = at - int_start;
    if int_digits == 0 {
        return None;
    }
    let mut frac_digits = 0;
    if text.get(at) == Some(&b'.') {
        at += 1;
        let frac_start = at;
        while let Some(d) = text.get(at).map(|b| b.wrapping_sub(b'0')).filter(|&d| d <= 9) {
            digits = digits.wrapping_mul(10).wrapping_add(u64::from(d));
            at += 1;
        }
        frac_digits = at - frac_start;
        if frac_digits == 0 {
            return None;
        }
    }
    // At most 19 digits cannot have wrapped around.
    if int_digits + frac_digits <= 19 && digits <= 1 << 53 && frac_digits < EXACT_POW10.len() {
        let value = digits as f64 / EXACT_POW10[frac_digits];
        return Some((if negative { -value } else { value }, at));
    }
    let value = fast_float2::parse::<f64, _>(&text[..at]).ok().filter(|v| v.is_finite())?;
    Some((value, at))
}

/// Splits a line at commas, keeping the first six fields (cleaned as the reference does); returns
/// the number of fields.
#[inline]
fn split_six<'a>(line: &'a [u8], out: &mut [&'a [u8]; 6]) -> usize {
    let mut n = 0;
    let mut start = 0;
    // A plain loop: the commas of a short line are found faster than by a search per field.
    for (at, &b) in line.iter().enumerate() {
        if b == b',' {
            if n < out.len() {
                out[n] = super::clean_field(&line[start..at]);
            }
            n += 1;
            start = at + 1;
        }
    }
    if n < out.len() {
        out[n] = super::clean_field(&line[start..]);
    }
    n + 1
}

/// [`parse_f64`], with `fast-float2` for the plain decimal form both read alike.
#[inline]
fn parse_f64_fast(field: &[u8], column: &'static str) -> Result<f64, RowError> {
    if is_plain_decimal(field) {
        if let Ok(value) = fast_float2::parse::<f64, _>(field) {
            if value.is_finite() {
                return Ok(value);
            }
        }
    }
    parse_f64(field, column)
}

/// `-?digits[.digits]`.
#[inline]
fn is_plain_decimal(field: &[u8]) -> bool {
    let digits = field.strip_prefix(b"-").unwrap_or(field);
    let (mut int_digits, mut dot, mut frac_digits) = (0, false, 0);
    for &b in digits {
        match b {
            b'0'..=b'9' if dot => frac_digits += 1,
            b'0'..=b'9' => int_digits += 1,
            b'.' if !dot => dot = true,
            _ => return false,
        }
    }
    int_digits > 0 && (!dot || frac_digits > 0)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::{parse_csv_reference, write_binance, write_plain};
    use super::*;
    use crate::generate::{Preset, PRESET_ANCHOR_MS};

    /// The chunked parser in 1 to 7 pieces gives what the reference gives, bars or error.
    fn same_as_reference(name: &str, text: &[u8]) -> Result<(), TestCaseError> {
        let reference = parse_csv_reference(name, text);
        for pieces in 1..=7 {
            let chunked = parse(name, text, pieces, KEEP);
            match (&reference, &chunked) {
                (Ok(a), Ok(b)) => prop_assert!(a == b, "{pieces} pieces: bars differ"),
                (Err(a), Err(b)) => {
                    prop_assert_eq!(a.to_string(), b.to_string(), "{} pieces", pieces);
                    prop_assert_eq!(a.row_error(), b.row_error(), "{} pieces", pieces);
                }
                _ => prop_assert!(
                    false,
                    "{pieces} pieces: reference {:?}, chunked {:?}",
                    reference.as_ref().map(|b| b.0.len()),
                    chunked.as_ref().map(|b| b.0.len())
                ),
            }
        }
        for block in [7, 500, 1 << 20] {
            let streamed = streamed(name, text, block);
            match (&reference, &streamed) {
                (Ok(a), Ok(b)) => prop_assert!(a == b, "blocks of {block}: bars differ"),
                (Err(a), Err(b)) => {
                    prop_assert_eq!(a.to_string(), b.to_string(), "blocks of {}", block);
                    prop_assert_eq!(a.row_error(), b.row_error(), "blocks of {}", block);
                }
                _ => prop_assert!(false, "blocks of {block}: reference {:?}", reference.as_ref().map(|b| b.0.len())),
            }
        }
        Ok(())
    }

    /// [`parse_stream`] of `text` in blocks of `block` bytes.
    fn streamed(name: &str, text: &[u8], block: usize) -> Result<(Bars, KlineFormat), CsvError> {
        let read_err = |source| CsvError::Io { file: name.into(), source };
        let too_large = || CsvError::Format { file: name.into(), reason: "too large".into() };
        let mut reader = std::io::Cursor::new(text);
        parse_stream(name, &mut reader, block, text.len() as u64, u64::MAX, &read_err, &too_large)
    }

    #[test]
    fn a_stream_is_read_in_blocks_and_stops_at_its_limit() {
        let bars = day_of_bars(3000);
        let text = write_binance(&bars, TimeUnit::Millis);
        for block in [1, 100, 64 << 10, STREAM_BLOCK_BYTES] {
            assert_eq!(streamed("s.csv", text.as_bytes(), block).unwrap().0, bars, "{block}");
        }
        let read_err = |source| CsvError::Io { file: "s.csv".into(), source };
        let too_large = || CsvError::Format { file: "s.csv".into(), reason: "too large".into() };
        let err = parse_stream("s.csv", &mut text.as_bytes(), 1000, 0, 5000, &read_err, &too_large).unwrap_err();
        assert!(err.to_string().contains("too large"), "{err}");
        // A failing reader.
        struct Failing;
        impl std::io::Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("disk gone"))
            }
        }
        let err = parse_stream("s.csv", &mut Failing, 1000, 0, u64::MAX, &read_err, &too_large).unwrap_err();
        assert!(matches!(err, CsvError::Io { .. }), "{err}");
        assert!(streamed("e.csv", b"", 10).unwrap_err().to_string().contains("no rows"));
        assert!(streamed("e.csv", b"\n \n\n", 1).unwrap_err().to_string().contains("no rows"));
    }

    fn day_of_bars(minutes: i64) -> Bars {
        Preset::btcusdt().generate(PRESET_ANCHOR_MS, PRESET_ANCHOR_MS + minutes * 60_000)
    }

    #[test]
    fn generated_files_and_the_fixture() {
        let bars = day_of_bars(3000);
        for text in [write_plain(&bars), write_binance(&bars, TimeUnit::Millis), write_binance(&bars, TimeUnit::Micros)]
        {
            same_as_reference("g.csv", text.as_bytes()).unwrap();
            let (parsed, _) = parse("g.csv", text.as_bytes(), 4, KEEP).unwrap();
            assert_eq!(parsed, bars);
            let crlf = text.replace('\n', "\r\n");
            same_as_reference("g.csv", crlf.as_bytes()).unwrap();
        }
        let fixture = include_bytes!("../../../engine/crosscheck/fixtures/bars_btcusdt_1h.csv");
        same_as_reference("bars_btcusdt_1h.csv", fixture).unwrap();
        assert_eq!(parse("f.csv", fixture, 5, KEEP).unwrap().0.len(), 8784);
    }

    #[test]
    fn every_byte_read_is_released_twice() {
        // Counted, then parsed: each pass gives back what it has read, a block at a time.
        let text = write_plain(&day_of_bars(60_000));
        let bytes = text.as_bytes();
        let head_len = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
        let released = std::sync::Mutex::new(vec![0u8; bytes.len()]);
        let release = |part: &[u8]| {
            let at = part.as_ptr() as usize - bytes.as_ptr() as usize;
            assert!(part.len() <= 2 * RELEASE_BYTES, "{}", part.len());
            released.lock().unwrap()[at..at + part.len()].iter_mut().for_each(|n| *n += 1);
        };
        assert_eq!(parse("r.csv", bytes, 3, &release).unwrap().0.len(), 60_000);
        assert!(released.into_inner().unwrap()[head_len..].iter().all(|&n| n == 2));
    }

    #[test]
    fn plain_decimals() {
        for plain in ["0", "-0", "1", "42111.81", "-3.25", "007.0"] {
            assert!(is_plain_decimal(plain.as_bytes()), "{plain}");
        }
        for other in ["", "-", ".5", "1.", "1.2.3", "+1", "1e5", "inf", "NaN", "1 ", "--1", "0x1"] {
            assert!(!is_plain_decimal(other.as_bytes()), "{other}");
        }
    }

    #[test]
    fn large_files_are_cut_into_pieces() {
        assert_eq!(chunk_count(1000), 1);
        let cores = thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(chunk_count(64 << 20), (cores * PIECES_PER_CORE).min(MAX_PIECES));
        let pieces = split_at_lines(b"a\nbb\nccc\nd", 3);
        assert_eq!(pieces.concat(), b"a\nbb\nccc\nd");
        assert!(pieces[..2].iter().all(|p| p.ends_with(b"\n")), "{pieces:?}");
    }

    /// Errors that only show where two pieces meet: a duplicate or unsorted row, or a row in
    /// another time unit, as the first row of a later piece.
    #[test]
    fn checks_across_pieces() {
        let bars = day_of_bars(40);
        let text = write_binance(&bars, TimeUnit::Millis);
        let lines: Vec<&str> = text.lines().collect();
        for at in 1..lines.len() {
            let mut duplicate = lines.clone();
            duplicate[at] = lines[at - 1];
            same_as_reference("d.csv", duplicate.join("\n").as_bytes()).unwrap();
            let mut swapped = lines.clone();
            swapped.swap(at - 1, at);
            same_as_reference("s.csv", swapped.join("\n").as_bytes()).unwrap();
            let micros = write_binance(&bars.slice(at..at + 1), TimeUnit::Micros);
            let mut mixed = lines.clone();
            mixed[at] = micros.trim_end();
            same_as_reference("m.csv", mixed.join("\n").as_bytes()).unwrap();
        }
    }

    /// Text a field may be replaced with: numbers in every form the standard library reads or
    /// refuses, times, junk.
    fn field_text() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "",
                "x",
                "NaN",
                "nan",
                "inf",
                "-inf",
                "Infinity",
                "1e5",
                "1E+5",
                "+1",
                ".5",
                "1.",
                "-0",
                "0",
                "0.0",
                "1_0",
                " 2 ",
                "\"3\"",
                "\"",
                "1e400",
                "-1",
                "1.5.5",
                "--1",
                "0x10",
                "1e",
                "e5",
                "١",
                "2025-01-01T00:00:00Z",
                "2025-01-01T00:00:00.000Z",
                "2025-01-01 00:00:00",
                "1735689600",
                "1735689600000000",
                "1735689600000123",
                "99999999999999999999",
            ])
            .prop_map(str::to_string),
            "[-+0-9.eE ]{0,12}",
            (0.0f64..1e6).prop_map(|v| v.to_string()),
        ]
    }

    /// One change to a valid file.
    #[derive(Debug, Clone)]
    enum Corruption {
        Field { line: usize, column: usize, text: String },
        Swap { line: usize },
        Duplicate { line: usize },
        Delete { line: usize },
        Blank { line: usize },
        DropComma { line: usize },
        ExtraField { line: usize },
    }

    fn corruption() -> impl Strategy<Value = Corruption> {
        let line = 0usize..200;
        prop_oneof![
            (line.clone(), 0usize..12, field_text()).prop_map(|(line, column, text)| Corruption::Field {
                line,
                column,
                text
            }),
            line.clone().prop_map(|line| Corruption::Swap { line }),
            line.clone().prop_map(|line| Corruption::Duplicate { line }),
            line.clone().prop_map(|line| Corruption::Delete { line }),
            line.clone().prop_map(|line| Corruption::Blank { line }),
            line.clone().prop_map(|line| Corruption::DropComma { line }),
            line.prop_map(|line| Corruption::ExtraField { line }),
        ]
    }

    fn corrupt(text: &str, corruptions: &[Corruption]) -> String {
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        for c in corruptions {
            let n = lines.len();
            match c {
                Corruption::Field { line, column, text } => {
                    let mut fields: Vec<String> = lines[line % n].split(',').map(str::to_string).collect();
                    let i = column % fields.len();
                    fields[i] = text.clone();
                    lines[line % n] = fields.join(",");
                }
                Corruption::Swap { line } if n > 1 => lines.swap(line % (n - 1), line % (n - 1) + 1),
                Corruption::Duplicate { line } => {
                    let copy = lines[line % n].clone();
                    lines.insert(line % n, copy);
                }
                Corruption::Delete { line } if n > 1 => {
                    lines.remove(line % n);
                }
                Corruption::Blank { line } => lines.insert(line % n, String::new()),
                Corruption::DropComma { line } => lines[line % n] = lines[line % n].replacen(',', "", 1),
                Corruption::ExtraField { line } => lines[line % n].push_str(",1"),
                _ => {}
            }
        }
        lines.join("\n")
    }

    fn any_file() -> impl Strategy<Value = String> {
        (1i64..120, 0usize..4, any::<bool>()).prop_map(|(minutes, layout, crlf)| {
            let bars = day_of_bars(minutes);
            let text = match layout {
                0 => write_plain(&bars),
                1 => write_binance(&bars, TimeUnit::Millis),
                2 => write_binance(&bars, TimeUnit::Micros),
                _ => {
                    // Plain with ISO times, some rows in milliseconds.
                    let mut text = String::from("time,open,high,low,close,volume\n");
                    for i in 0..bars.len() {
                        let b = bars.get(i);
                        let t = if i % 3 == 0 { iso(b.open_time) } else { b.open_time.to_string() };
                        text += &format!("{t},{},{},{},{},{}\n", b.open, b.high, b.low, b.close, b.volume);
                    }
                    text
                }
            };
            if crlf {
                text.replace('\n', "\r\n")
            } else {
                text
            }
        })
    }

    use pipai_engine::time::iso;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Valid files round-trip to the same bars, whatever the pieces.
        #[test]
        fn valid_files_parse_alike(text in any_file()) {
            same_as_reference("v.csv", text.as_bytes())?;
            prop_assert!(parse("v.csv", text.as_bytes(), 3, KEEP).is_ok());
        }

        /// Corrupted files give the reference's error: same line, same reason.
        #[test]
        fn corrupt_files_fail_alike(text in any_file(), corruptions in prop::collection::vec(corruption(), 1..4)) {
            same_as_reference("c.csv", corrupt(&text, &corruptions).as_bytes())?;
        }

        /// The one-pass decimal reader reads the plain form as the standard library does, to the
        /// bit (fast path and fallback alike), its length is the field's, and it refuses the rest.
        #[test]
        fn plain_decimals_read_as_the_standard_library_reads_them(
            negative in any::<bool>(),
            int in "[0-9]{0,24}",
            frac in prop::option::of("[0-9]{0,24}"),
            after in prop::sample::select(vec!["", ",", ",1", "x", "e5", " "]),
        ) {
            let field = format!("{}{int}{}", if negative { "-" } else { "" }, frac.as_ref().map_or(String::new(), |f| format!(".{f}")));
            let text = format!("{field}{after}");
            let std = field.parse::<f64>().ok().filter(|v| v.is_finite());
            let plain = is_plain_decimal(field.as_bytes());
            match plain_decimal(text.as_bytes()) {
                Some((value, len)) => {
                    prop_assert!(plain, "{text:?} read though not plain");
                    prop_assert_eq!(len, field.len());
                    prop_assert_eq!(Some(value.to_bits()), std.map(f64::to_bits), "{:?}", text);
                }
                None => prop_assert!(!plain || std.is_none(), "{text:?} refused"),
            }
        }
    }

    #[test]
    fn plain_decimals_at_the_fast_paths_edges() {
        for text in ["9007199254740992", "9007199254740993", "0.9007199254740993", "1234567890123456789", "12345678901234567890",
            "0.0000000000000000000001", "0.00000000000000000000001", "-0", "-0.0", "00042.500", "179769313486231570000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000.0"] {
            let (value, len) = plain_decimal(text.as_bytes()).unwrap();
            assert_eq!(len, text.len());
            assert_eq!(value.to_bits(), text.parse::<f64>().unwrap().to_bits(), "{text}");
        }
        assert_eq!(plain_decimal(b"1e400"), Some((1.0, 1)));
        assert_eq!(plain_decimal(b"1".repeat(400).as_slice()), None);
        for refused in ["", "-", ".5", "5.", "-.5", "+5", "x"] {
            assert_eq!(plain_decimal(refused.as_bytes()), None, "{refused}");
        }
    }
}
