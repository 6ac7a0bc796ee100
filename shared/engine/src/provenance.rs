//! What a result was computed from (`result.provenance`): the engine version, a hash of the
//! canonical resolved config and, per symbol, a hash of exactly the bars simulated. Definitions
//! (so anyone can recompute them) in `docs/market-data.md`, "Provenance of a result".

use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::bars::{Bars, Timeframe};
use crate::config::JobConfig;
use crate::time::iso;

/// The engine's version, as `provenance.engine_version` reports it.
pub const ENGINE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Config fields that never change what a run computes, left out of `config_sha256`: where the
/// config came from (`strategy_id`) and whom to tell when it is done (`notify_url`).
pub const NOT_HASHED: [&str; 2] = ["strategy_id", "notify_url"];

/// `result.provenance`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    pub engine_version: String,
    /// Lowercase hex SHA-256 of [`canonical_config`].
    pub config_sha256: String,
    /// One entry per symbol, in `config.symbols` order.
    pub data: Vec<DataProvenance>,
}

/// The bars one symbol's run used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataProvenance {
    pub symbol: String,
    pub timeframe: Timeframe,
    pub first_open_time: String,
    pub last_open_time: String,
    pub bars: u64,
    /// Lowercase hex SHA-256 of [`bars_bytes`] of the bars simulated.
    pub sha256: String,
}

impl Provenance {
    /// The provenance of a run of `config` on `data` (one series per symbol) whose simulated bars
    /// are `windows` (index ranges into `data`, as `Backtest::windows`).
    pub fn of(config: &JobConfig, data: &[Bars], windows: &[std::ops::Range<usize>]) -> Provenance {
        let hashes = data.iter().zip(windows).map(|(bars, range)| bars_sha256(bars, range.clone())).collect();
        Provenance::with_hashes(config, data, windows, hashes)
    }

    /// [`Provenance::of`] with the bars' hashes already computed: `hashes[i]` is
    /// [`bars_sha256`] of `windows[i]` of `data[i]` (as [`bars_sha256_unless_stopped`] computes
    /// them while the simulation runs).
    pub fn with_hashes(
        config: &JobConfig,
        data: &[Bars],
        windows: &[std::ops::Range<usize>],
        hashes: Vec<String>,
    ) -> Provenance {
        let data = config
            .symbols
            .iter()
            .zip(data.iter().zip(windows).zip(hashes))
            .map(|(symbol, ((bars, range), sha256))| {
                let times = &bars.open_time[range.clone()];
                DataProvenance {
                    symbol: symbol.clone(),
                    timeframe: config.timeframe,
                    first_open_time: times.first().map(|&t| iso(t)).unwrap_or_default(),
                    last_open_time: times.last().map(|&t| iso(t)).unwrap_or_default(),
                    bars: times.len() as u64,
                    sha256,
                }
            })
            .collect();
        Provenance {
            engine_version: ENGINE_VERSION.to_string(),
            config_sha256: hex(&Sha256::digest(canonical_config(config).as_bytes())),
            data,
        }
    }
}

/// The canonical form of a resolved config: its JSON as the API echoes it (`config` of a job),
/// without the [`NOT_HASHED`] fields, every object's keys sorted (by their UTF-8 bytes), no
/// whitespace, strings and numbers as `serde_json` writes them (decimals are strings).
pub fn canonical_config(config: &JobConfig) -> String {
    let mut value = serde_json::to_value(config).expect("configs serialize");
    if let Value::Object(map) = &mut value {
        for key in NOT_HASHED {
            map.remove(key);
        }
    }
    let mut out = String::new();
    write_canonical(&value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Bars hashed per call to the hasher (48 bytes each).
const HASH_CHUNK: usize = 4096;

/// Lowercase hex SHA-256 of [`bars_bytes`] of the bars `range` of `bars`.
pub fn bars_sha256(bars: &Bars, range: std::ops::Range<usize>) -> String {
    let never = AtomicBool::new(false);
    let hashes = bars_sha256_unless_stopped(std::slice::from_ref(bars), &[range], &never);
    hashes.and_then(|h| h.into_iter().next()).expect("a hash that is never stopped")
}

/// [`bars_sha256`] of each `windows[i]` of `data[i]`, given up (`None`) as soon as `stop` is set
/// (checked every [`HASH_CHUNK`] bars): what a run computes on another core while it simulates.
pub fn bars_sha256_unless_stopped(
    data: &[Bars],
    windows: &[std::ops::Range<usize>],
    stop: &AtomicBool,
) -> Option<Vec<String>> {
    let mut hashes = Vec::with_capacity(data.len());
    for (bars, range) in data.iter().zip(windows) {
        let mut hasher = Sha256::new();
        feed_unless(&mut hasher, &bars.open_time[range.clone()], i64::to_le_bytes, stop)?;
        for values in [&bars.open, &bars.high, &bars.low, &bars.close, &bars.volume] {
            feed_unless(&mut hasher, &values[range.clone()], f64::to_le_bytes, stop)?;
        }
        hashes.push(hex(&hasher.finalize()));
    }
    Some(hashes)
}

/// Hashes `values` little-endian, [`HASH_CHUNK`] at a time, stopping (`None`) when `stop` is set.
fn feed_unless<T: bytemuck::Pod, const N: usize>(
    hasher: &mut Sha256,
    values: &[T],
    le: impl Fn(T) -> [u8; N],
    stop: &AtomicBool,
) -> Option<()> {
    // Only a big-endian machine copies the values' bytes (through this buffer).
    let mut buf = Vec::new();
    for chunk in values.chunks(HASH_CHUNK) {
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        if cfg!(target_endian = "little") {
            // The values' memory is their little-endian bytes: hashed where they are (a copy
            // first made the year's 25 MB cost ~16 ms instead of ~12).
            hasher.update(bytemuck::cast_slice::<T, u8>(chunk));
        } else {
            buf.resize(HASH_CHUNK * N, 0);
            let bytes = &mut buf[..chunk.len() * N];
            for (out, &v) in bytes.chunks_exact_mut(N).zip(chunk) {
                out.copy_from_slice(&le(v));
            }
            hasher.update(bytes);
        }
    }
    Some(())
}

/// The bytes `provenance.data[].sha256` hashes, for the bars `range` of `bars`: column after
/// column (`open_time`, `open`, `high`, `low`, `close`, `volume`), each value little-endian
/// (`open_time` as i64 milliseconds, the others as IEEE 754 binary64), 48 bytes a bar. (The
/// reference [`bars_sha256`] is tested against; it streams the same bytes.)
pub fn bars_bytes(bars: &Bars, range: std::ops::Range<usize>) -> Vec<u8> {
    let mut out = Vec::with_capacity(range.len() * 48);
    for i in range.clone() {
        out.extend_from_slice(&bars.open_time[i].to_le_bytes());
    }
    for values in [&bars.open, &bars.high, &bars.low, &bars.close, &bars.volume] {
        for i in range.clone() {
            out.extend_from_slice(&values[i].to_le_bytes());
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bars::Bar;
    use chrono::{TimeZone, Utc};
    use serde_json::json;

    fn config(extra: Value) -> JobConfig {
        let mut body = json!({"template_id": "tpl_ma_cross", "params": {"fast": 3, "slow": 10},
            "symbols": ["BTCUSDT"], "timeframe": "1m", "start": "2024-01-01T00:00:00Z",
            "end": "2024-01-02T00:00:00Z", "capital": "10000", "fee_bps": "5"});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        JobConfig::from_value(&body, Utc.with_ymd_and_hms(2100, 1, 1, 0, 0, 0).unwrap()).unwrap()
    }

    #[test]
    fn canonical_config_is_sorted_compact_and_ignores_where_the_config_came_from() {
        let c = canonical_config(&config(json!({})));
        assert_eq!(
            c,
            r#"{"capital":"10000","end":"2024-01-02T00:00:00Z","fee_bps":"5","fee_model":"fixed_bps","leverage":1,"params":{"direction":"long","fast":3,"fraction":"1","slow":10},"start":"2024-01-01T00:00:00Z","symbols":["BTCUSDT"],"template_id":"tpl_ma_cross","timeframe":"1m"}"#
        );
        assert_eq!(canonical_config(&config(json!({"strategy_id": "st_0123abcd"}))), c);
        // Defaults filled in: the same resolved config, the same hash.
        assert_eq!(canonical_config(&config(json!({"leverage": 1, "fee_model": "fixed_bps"}))), c);
        assert_ne!(canonical_config(&config(json!({"fee_bps": "6"}))), c);
    }

    #[test]
    fn the_streamed_hash_is_the_hash_of_the_documented_bytes() {
        let mut bars = Bars::default();
        for i in 0..10_000i64 {
            let p = 100.0 + (i % 37) as f64 * 0.01;
            bars.push(Bar { open_time: i * 60_000, open: p, high: p + 1.0, low: p - 1.0, close: p, volume: 0.5 });
        }
        for range in [0..10_000, 17..9_001, 5..5, 0..1] {
            let expected = hex(&Sha256::digest(bars_bytes(&bars, range.clone())));
            assert_eq!(bars_sha256(&bars, range.clone()), expected, "{range:?}");
        }
        let bytes = bars_bytes(&bars, 1..3);
        assert_eq!(bytes.len(), 96);
        assert_eq!(&bytes[..8], &60_000i64.to_le_bytes());
        assert_eq!(&bytes[16..24], &bars.open[1].to_le_bytes());
        assert_eq!(&bytes[88..], &0.5f64.to_le_bytes());
    }
}
