//! Request signing (docs/api.md, "Requests and signatures"): the string to sign, the
//! canonical query, verification with replay protection, and request weights. Clients (`pipai
//! jobs`) sign with [`sign_request`]; the API verifies with [`authenticate`].

use hmac::{Hmac, Mac};
use percent_encoding::percent_decode_str;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::http::ApiRequest;
use crate::ids::{KeyId, UserId};
use crate::model::KeyStatus;
use crate::ports::{KeyStore, RequestLog};
use crate::secrets::MasterKey;

type HmacSha256 = Hmac<Sha256>;

pub const HEADER_KEY: &str = "x-pipai-api-key";
pub const HEADER_TIMESTAMP: &str = "x-pipai-timestamp";
pub const HEADER_SIGNATURE: &str = "x-pipai-signature";
pub const HEADER_USED_WEIGHT: &str = "x-pipai-used-weight-1m";
pub const SCHEME: &str = "PIPAI1-HMAC-SHA256";
/// A request's timestamp may be this far from the server's clock, either way.
pub const MAX_SKEW_MS: i64 = 300_000;
pub const WEIGHT_WINDOW_MS: i64 = 60_000;

/// The one message for an unknown key, a disabled key and a bad signature, so keys cannot be
/// probed.
const BAD_CREDENTIALS: &str = "invalid API key or signature";

/// Splits a raw query string into percent-decoded `(name, value)` pairs. `+` is a literal plus
/// (RFC 3986), not a space.
pub fn decode_query(raw: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for part in raw.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = part.split_once('=').unwrap_or((part, ""));
        let decode = |s: &str| {
            percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| format!("query: {} is not UTF-8 once percent-decoded", pipai_engine::quoted(s)))
        };
        out.push((decode(name)?, decode(value)?));
    }
    Ok(out)
}

/// RFC 3986 encoding: unreserved characters kept, every other byte `%XX` in upper case.
pub fn rfc3986(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Every parameter decoded, re-encoded the RFC 3986 way, `name=value`, sorted by name then
/// value, joined with `&`.
pub fn canonical_query(raw: &str) -> Result<String, String> {
    let mut pairs: Vec<(String, String)> =
        decode_query(raw)?.into_iter().map(|(n, v)| (rfc3986(&n), rfc3986(&v))).collect();
    pairs.sort();
    Ok(pairs.into_iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("&"))
}

pub fn string_to_sign(
    timestamp: &str,
    api_key: &str,
    method: &str,
    path: &str,
    canonical_query: &str,
    body: &[u8],
) -> String {
    let body_hash = hex::encode(Sha256::digest(body));
    format!("{SCHEME}\n{timestamp}\n{api_key}\n{}\n{path}\n{canonical_query}\n{body_hash}", method.to_ascii_uppercase())
}

fn mac(secret: &str, data: &str) -> HmacSha256 {
    let mut m = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    m.update(data.as_bytes());
    m
}

/// Lowercase hex HMAC-SHA256 of the string to sign.
pub fn signature(secret: &str, string_to_sign: &str) -> String {
    hex::encode(mac(secret, string_to_sign).finalize().into_bytes())
}

/// The three headers for a request (what a client sends).
pub fn sign_request(
    api_key: &str,
    secret: &str,
    timestamp_ms: i64,
    method: &str,
    path: &str,
    raw_query: &str,
    body: &[u8],
) -> Vec<(String, String)> {
    let ts = timestamp_ms.to_string();
    let canonical = canonical_query(raw_query).unwrap_or_default();
    let sig = signature(secret, &string_to_sign(&ts, api_key, method, path, &canonical, body));
    vec![(HEADER_KEY.into(), api_key.into()), (HEADER_TIMESTAMP.into(), ts), (HEADER_SIGNATURE.into(), sig)]
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub key_id: KeyId,
    pub user_id: UserId,
}

/// Verifies the signature headers of `req` (raw body bytes, before parsing) and, for
/// state-changing methods, that the signature was not seen before within the window.
pub async fn authenticate<K: KeyStore, L: RequestLog>(
    req: &ApiRequest,
    now_ms: i64,
    keys: &K,
    log: &L,
    master: &MasterKey,
) -> Result<Principal, ApiError> {
    let header = |name: &str, shown: &str| {
        req.header(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ApiError::Unauthenticated(format!("missing header {shown}")))
    };
    let key_id = header(HEADER_KEY, "X-PipAI-API-Key")?;
    let ts_text = header(HEADER_TIMESTAMP, "X-PipAI-Timestamp")?;
    let sig = header(HEADER_SIGNATURE, "X-PipAI-Signature")?;
    let ts: i64 = ts_text.parse().ok().filter(|_| ts_text.bytes().all(|b| b.is_ascii_digit())).ok_or_else(|| {
        ApiError::Unauthenticated("X-PipAI-Timestamp must be Unix epoch milliseconds as digits".into())
    })?;
    if (now_ms - ts).abs() > MAX_SKEW_MS {
        return Err(ApiError::Unauthenticated(format!(
            "X-PipAI-Timestamp is more than 300 s from server time ({now_ms} ms); check the client clock"
        )));
    }
    // A query that cannot be decoded is malformed input, whoever sent it.
    let canonical = canonical_query(&req.raw_query).map_err(ApiError::InvalidParameter)?;
    let sts = string_to_sign(ts_text, key_id, &req.method, &req.path, &canonical, &req.body);
    let given = hex::decode(sig).ok().filter(|b| b.len() == 32 && sig.bytes().all(|c| !c.is_ascii_uppercase()));

    // A key id of the wrong shape cannot exist: treated exactly like an unknown key.
    let record = match key_id.parse::<KeyId>() {
        Ok(id) => keys.get_key(&id).await?,
        Err(_) => None,
    };
    // Same work whether or not the key exists (a throwaway secret when it does not), so timing
    // does not tell either.
    let (secret, usable) = match &record {
        Some(k) if k.status == KeyStatus::Active => {
            match master.decrypt_secret(k.key_id.as_str(), &k.secret_ciphertext) {
                Ok(s) => (s, true),
                Err(e) => return Err(ApiError::Internal(format!("key {key_id}: {e}"))),
            }
        }
        _ => ("pipai-no-such-key".to_string(), false),
    };
    let matches = match given {
        Some(bytes) => mac(&secret, &sts).verify_slice(&bytes).is_ok(),
        None => false,
    };
    let Some(record) = record.filter(|_| usable && matches) else {
        return Err(ApiError::Unauthenticated(BAD_CREDENTIALS.into()));
    };
    if matches!(req.method.as_str(), "POST" | "PATCH" | "DELETE" | "PUT") {
        let fresh = log.remember_signature(&record.key_id, sig, ts + MAX_SKEW_MS + 60_000).await?;
        if !fresh {
            return Err(ApiError::Unauthenticated("this signature was already used: sign every request anew".into()));
        }
    }
    Ok(Principal { key_id: record.key_id, user_id: record.user_id })
}

/// Charges `weight` to the key's 60-second window; the used weight for the response header, or
/// 429 with `Retry-After` when the budget is spent.
pub async fn charge_weight<L: RequestLog>(
    log: &L,
    key_id: &KeyId,
    weight: u32,
    budget: u32,
    now_ms: i64,
) -> Result<u32, (ApiError, u32)> {
    let window = now_ms.div_euclid(WEIGHT_WINDOW_MS) * WEIGHT_WINDOW_MS;
    let used = log.add_weight(key_id, window, weight).await.map_err(|e| (ApiError::from(e), 0))?;
    if used > budget {
        let retry = ((window + WEIGHT_WINDOW_MS - now_ms) as u64).div_ceil(1000).max(1);
        return Err((
            ApiError::RateLimited {
                message: format!(
                    "request weight budget of {budget} per minute is spent ({used} used); retry in {retry} s"
                ),
                retry_after_s: Some(retry),
            },
            used,
        ));
    }
    Ok(used)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_query_sorts_decodes_and_reencodes() {
        assert_eq!(canonical_query("").unwrap(), "");
        assert_eq!(canonical_query("limit=10&status=done").unwrap(), "limit=10&status=done");
        assert_eq!(canonical_query("status=done&limit=10").unwrap(), "limit=10&status=done");
        // Encoded differently on the wire, canonically the same.
        assert_eq!(canonical_query("from=2025-01-01T00%3a00%3A00Z").unwrap(), "from=2025-01-01T00%3A00%3A00Z");
        assert_eq!(canonical_query("from=2025-01-01T00:00:00Z").unwrap(), "from=2025-01-01T00%3A00%3A00Z");
        // Same name sorted by value; a bare name has an empty value; + is literal.
        assert_eq!(canonical_query("a=2&a=1&b").unwrap(), "a=1&a=2&b=");
        assert_eq!(canonical_query("q=a+b%20c").unwrap(), "q=a%2Bb%20c");
        assert_eq!(canonical_query("x=%C3%A9~").unwrap(), "x=%C3%A9~");
        assert!(canonical_query("x=%FF").is_err());
    }

    #[test]
    fn string_to_sign_has_the_documented_lines() {
        let s = string_to_sign("1714385700000", "pk_demo", "get", "/v1/backtest/jobs", "limit=10", b"");
        let lines: Vec<&str> = s.split('\n').collect();
        assert_eq!(
            lines,
            vec![
                "PIPAI1-HMAC-SHA256",
                "1714385700000",
                "pk_demo",
                "GET",
                "/v1/backtest/jobs",
                "limit=10",
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            ]
        );
    }

    #[test]
    fn signature_is_known_answer_hmac() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            signature("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
