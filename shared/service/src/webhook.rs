//! Completion notifications (webhooks), the domain part: the `notify_url` rules, the event a
//! receiver gets, how it is signed, and the retry schedule. Sending is the notifier's
//! (`crate::notifier`); resolving names and speaking HTTP are adapters behind ports.
//!
//! URL rules (docs/webhooks.md): `https://` only, no user info, at most [`MAX_URL_LEN`] bytes, a
//! host that is not and does not resolve to a loopback, private, shared (CGNAT), link-local,
//! metadata, unspecified, multicast, broadcast, documentation or otherwise reserved address,
//! checked when the job is created and again on the resolved address when sending (DNS
//! rebinding). A deployment may allow `http://127.0.0.1[:port]` for local use
//! ([`WebhookPolicy::allow_http_loopback`]); nothing else over plain http, ever.

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ids::{JobId, SweepId};
use crate::model::JobStatus;

pub const SCHEME: &str = "PIPAI1-WEBHOOK";
pub const HEADER_EVENT_ID: &str = "X-PipAI-Event-Id";
pub const HEADER_TIMESTAMP: &str = "X-PipAI-Timestamp";
pub const HEADER_SIGNATURE: &str = "X-PipAI-Signature";
/// The longest `notify_url` accepted, in bytes.
pub const MAX_URL_LEN: usize = 2048;

/// Why an address may not receive webhooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    Loopback,
    Private,
    SharedCgnat,
    LinkLocal,
    Metadata,
    Unspecified,
    Multicast,
    Broadcast,
    Documentation,
    Reserved,
}

impl AddressClass {
    pub fn describe(self) -> &'static str {
        match self {
            AddressClass::Loopback => "a loopback address",
            AddressClass::Private => "a private address",
            AddressClass::SharedCgnat => "a shared (CGNAT, 100.64.0.0/10) address",
            AddressClass::LinkLocal => "a link-local address",
            AddressClass::Metadata => "a cloud metadata address",
            AddressClass::Unspecified => "an unspecified address",
            AddressClass::Multicast => "a multicast address",
            AddressClass::Broadcast => "a broadcast address",
            AddressClass::Documentation => "a documentation address",
            AddressClass::Reserved => "a reserved address",
        }
    }
}

/// `None` for an address webhooks may reach (a public unicast one); otherwise why not.
pub fn classify(ip: IpAddr) -> Option<AddressClass> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<AddressClass> {
    let [a, b, c, _] = ip.octets();
    let class = match (a, b, c) {
        _ if ip == Ipv4Addr::new(169, 254, 169, 254) => AddressClass::Metadata,
        _ if ip.is_broadcast() => AddressClass::Broadcast,
        (0, ..) => AddressClass::Unspecified,
        (127, ..) => AddressClass::Loopback,
        (10, ..) | (172, 16..=31, _) | (192, 168, _) => AddressClass::Private,
        (100, 64..=127, _) => AddressClass::SharedCgnat,
        (169, 254, _) => AddressClass::LinkLocal,
        (224..=239, ..) => AddressClass::Multicast,
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => AddressClass::Documentation,
        // IETF protocol assignments, benchmarking, 6to4 relay anycast, 240/4.
        (192, 0, 0) | (198, 18..=19, _) | (192, 88, 99) | (240..=255, ..) => AddressClass::Reserved,
        _ => return None,
    };
    Some(class)
}

fn classify_v6(ip: Ipv6Addr) -> Option<AddressClass> {
    let s = ip.segments();
    // Forms that carry an IPv4 address are judged by it: mapped (::ffff:a.b.c.d), compatible
    // (::a.b.c.d), NAT64 (64:ff9b::/96) and 6to4 (2002::/16).
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if ip == Ipv6Addr::UNSPECIFIED {
        return Some(AddressClass::Unspecified);
    }
    if ip == Ipv6Addr::LOCALHOST {
        return Some(AddressClass::Loopback);
    }
    if s[..6] == [0; 6] || (s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4]) {
        return classify_v4(tail).or(Some(AddressClass::Reserved).filter(|_| s[0] == 0));
    }
    if s[0] == 0x2002 {
        let v4 = Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8);
        return classify_v4(v4);
    }
    let class = match s[0] {
        0xfd00 if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) => AddressClass::Metadata,
        x if x & 0xfe00 == 0xfc00 => AddressClass::Private,
        x if x & 0xffc0 == 0xfe80 => AddressClass::LinkLocal,
        x if x & 0xffc0 == 0xfec0 => AddressClass::Private, // site-local (deprecated)
        x if x & 0xff00 == 0xff00 => AddressClass::Multicast,
        0x2001 if s[1] == 0x0db8 => AddressClass::Documentation,
        0x2001 if s[1] < 0x0200 => AddressClass::Reserved, // Teredo, ORCHID and other IETF blocks
        0x0100 if s[1..4] == [0; 3] => AddressClass::Reserved, // discard-only
        x if x & 0xe000 != 0x2000 => AddressClass::Reserved, // outside global unicast 2000::/3
        _ => return None,
    };
    Some(class)
}

/// What a deployment allows beyond the rules (template parameter `AllowHttpLoopbackWebhooks`,
/// env `PIPAI_ALLOW_HTTP_LOOPBACK_WEBHOOKS`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookPolicy {
    /// `http://127.0.0.1[:port]/...` is accepted (local stacks and their tests only).
    pub allow_http_loopback: bool,
}

/// Why a `notify_url` is refused (the API answers 400 on `notify_url` with this message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefusal {
    #[error("must be a string")]
    NotText,
    #[error("is longer than {MAX_URL_LEN} bytes")]
    TooLong,
    #[error("must start with https:// (webhooks are only sent over TLS)")]
    NotHttps,
    #[error("plain http is allowed on this deployment only as http://127.0.0.1[:port]/...")]
    HttpNotLoopback,
    #[error("is not a valid URL ({0})")]
    Malformed(String),
    #[error("must not contain a user name or password")]
    UserInfo,
    #[error("must name a host")]
    NoHost,
    #[error("{0} is {class}; webhooks are only sent to public addresses", class = .1.describe())]
    Address(IpAddr, AddressClass),
    #[error("{0} names this machine or a local network; webhooks are only sent to public hosts")]
    LocalName(String),
    #[error("host {0} is not a fully qualified public name")]
    SingleLabel(String),
    #[error("host {0} could not be resolved")]
    Unresolvable(String),
    #[error("host {host} resolves to {ip}, which is {class}; webhooks are only sent to public addresses", class = .class.describe())]
    ResolvesTo { host: String, ip: IpAddr, class: AddressClass },
}

/// The host of a [`NotifyUrl`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyHost {
    Ip(IpAddr),
    /// Lower case, without a trailing dot.
    Domain(String),
}

/// A `notify_url` that passed the syntactic rules for a policy. Domain names still have to be
/// resolved and their addresses checked ([`NotifyUrl::check_resolved`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NotifyUrl {
    url: url::Url,
}

impl NotifyUrl {
    /// Applies every rule that needs no name resolution.
    pub fn parse(text: &str, policy: WebhookPolicy) -> Result<NotifyUrl, UrlRefusal> {
        if text.len() > MAX_URL_LEN {
            return Err(UrlRefusal::TooLong);
        }
        // The raw text, not the parser's normalisation, decides the scheme: `HTTPS://` or a
        // leading space are refused rather than repaired.
        let http = text.starts_with("http://");
        let allowed_scheme = text.starts_with("https://") || (http && policy.allow_http_loopback);
        if !allowed_scheme {
            return Err(UrlRefusal::NotHttps);
        }
        let url = url::Url::parse(text).map_err(|e| UrlRefusal::Malformed(e.to_string()))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlRefusal::UserInfo);
        }
        let parsed = NotifyUrl { url };
        let host = parsed.host().ok_or(UrlRefusal::NoHost)?;
        if http {
            return match host {
                NotifyHost::Ip(IpAddr::V4(ip)) if ip == Ipv4Addr::LOCALHOST => Ok(parsed),
                _ => Err(UrlRefusal::HttpNotLoopback),
            };
        }
        match host {
            NotifyHost::Ip(ip) => match classify(ip) {
                Some(class) => Err(UrlRefusal::Address(ip, class)),
                None => Ok(parsed),
            },
            NotifyHost::Domain(name) => {
                let local = ["localhost", "local", "internal", "localdomain", "home.arpa", "lan"];
                if local.iter().any(|l| name == *l || name.ends_with(&format!(".{l}"))) {
                    Err(UrlRefusal::LocalName(name))
                } else if !name.contains('.') {
                    Err(UrlRefusal::SingleLabel(name))
                } else {
                    Ok(parsed)
                }
            }
        }
    }

    pub fn host(&self) -> Option<NotifyHost> {
        match self.url.host()? {
            url::Host::Ipv4(ip) => Some(NotifyHost::Ip(IpAddr::V4(ip))),
            url::Host::Ipv6(ip) => Some(NotifyHost::Ip(IpAddr::V6(ip))),
            url::Host::Domain(d) => Some(NotifyHost::Domain(d.trim_end_matches('.').to_ascii_lowercase())),
        }
    }

    pub fn is_https(&self) -> bool {
        self.url.scheme() == "https"
    }

    pub fn port(&self) -> u16 {
        self.url.port_or_known_default().unwrap_or(443)
    }

    /// The request target: path and query (never the fragment).
    pub fn path_and_query(&self) -> String {
        match self.url.query() {
            Some(q) => format!("{}?{q}", self.url.path()),
            None => self.url.path().to_string(),
        }
    }

    /// The `Host` header (and TLS server name: the host without the port).
    pub fn host_header(&self) -> String {
        let host = self.url.host_str().unwrap_or_default();
        match self.url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        }
    }

    pub fn as_str(&self) -> &str {
        self.url.as_str()
    }

    /// The address to connect to, from the addresses the host resolved to (an IP host resolves
    /// to itself): refused when there are none or any of them is not public, except for the
    /// policy's loopback allowance. The sender connects to exactly this address.
    pub fn check_resolved(&self, addresses: &[IpAddr], policy: WebhookPolicy) -> Result<SocketAddr, UrlRefusal> {
        let shown = || self.url.host_str().unwrap_or_default().to_string();
        if !self.is_https() {
            // Only ever the literal 127.0.0.1 (parse allows nothing else over http).
            let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
            return match (policy.allow_http_loopback, self.host()) {
                (true, Some(NotifyHost::Ip(ip))) if ip == loopback => Ok(SocketAddr::new(ip, self.port())),
                (true, _) => Err(UrlRefusal::HttpNotLoopback),
                (false, _) => Err(UrlRefusal::NotHttps),
            };
        }
        let first = *addresses.first().ok_or_else(|| UrlRefusal::Unresolvable(shown()))?;
        for &ip in addresses {
            if let Some(class) = classify(ip) {
                return Err(UrlRefusal::ResolvesTo { host: shown(), ip, class });
            }
        }
        Ok(SocketAddr::new(first, self.port()))
    }
}

impl TryFrom<String> for NotifyUrl {
    type Error = UrlRefusal;
    /// A stored URL: it passed the rules of the deployment that stored it, which may have
    /// allowed loopback http; the notifier checks it again against its own policy.
    fn try_from(text: String) -> Result<Self, UrlRefusal> {
        NotifyUrl::parse(&text, WebhookPolicy { allow_http_loopback: true })
    }
}

impl From<NotifyUrl> for String {
    fn from(u: NotifyUrl) -> String {
        u.url.into()
    }
}

impl fmt::Display for NotifyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A boxed future (for the object-safe resolver).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Name resolution (a port: the adapter asks DNS; tests answer from a table).
pub trait HostResolver: Send + Sync {
    /// The addresses `host` resolves to; `Err` says why there are none.
    fn resolve<'a>(&'a self, host: &'a str) -> BoxFuture<'a, Result<Vec<IpAddr>, String>>;
}

/// Resolves nothing: where no resolver is installed, a domain name is refused at creation.
struct NoResolver;

impl HostResolver for NoResolver {
    fn resolve<'a>(&'a self, _host: &'a str) -> BoxFuture<'a, Result<Vec<IpAddr>, String>> {
        Box::pin(async { Err("no name resolution on this deployment".to_string()) })
    }
}

/// A shared resolver in settings.
#[derive(Clone)]
pub struct Resolver(Arc<dyn HostResolver>);

impl Resolver {
    pub fn new(resolver: impl HostResolver + 'static) -> Resolver {
        Resolver(Arc::new(resolver))
    }

    pub async fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, String> {
        self.0.resolve(host).await
    }
}

impl Default for Resolver {
    fn default() -> Self {
        Resolver::new(NoResolver)
    }
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Resolver(..)")
    }
}

/// The API's webhook settings: the policy and how names are resolved at creation.
#[derive(Debug, Clone, Default)]
pub struct WebhookSettings {
    pub policy: WebhookPolicy,
    pub resolver: Resolver,
}

impl WebhookSettings {
    /// A create-job body's `notify_url`: every rule, names resolved and their addresses checked.
    pub async fn accept(&self, value: &serde_json::Value) -> Result<NotifyUrl, UrlRefusal> {
        let text = value.as_str().ok_or(UrlRefusal::NotText)?;
        let url = NotifyUrl::parse(text, self.policy)?;
        let addresses = match url.host() {
            Some(NotifyHost::Domain(name)) if url.is_https() => {
                self.resolver.resolve(&name).await.map_err(|_| UrlRefusal::Unresolvable(name.clone()))?
            }
            Some(NotifyHost::Ip(ip)) => vec![ip],
            _ => vec![],
        };
        url.check_resolved(&addresses, self.policy)?;
        Ok(url)
    }
}

/// What a notification is about: a job or a sweep (`{"kind": "job" | "sweep", "id": ...}`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Subject {
    Job(JobId),
    Sweep(SweepId),
}

impl Subject {
    /// `job` (`sweep`): the first part of an event type.
    pub fn kind(&self) -> &'static str {
        match self {
            Subject::Job(_) => "job",
            Subject::Sweep(_) => "sweep",
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Subject::Job(id) => id.as_str(),
            Subject::Sweep(id) => id.as_str(),
        }
    }
}

/// `job.done`, `job.failed`, `job.cancelled`, `sweep.done`, `sweep.failed`, `sweep.cancelled`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EventType {
    kind: String,
    status: JobStatus,
}

impl EventType {
    /// The event of `subject` reaching terminal `status`; `None` for a status that is not terminal.
    pub fn terminal(subject: &Subject, status: JobStatus) -> Option<EventType> {
        status.is_terminal().then(|| EventType { kind: subject.kind().to_string(), status })
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.kind, self.status)
    }
}

impl TryFrom<String> for EventType {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let (kind, status) = text.split_once('.').ok_or_else(|| format!("{text:?} is not an event type"))?;
        let status: JobStatus = status.parse()?;
        if !matches!(kind, "job" | "sweep") || !status.is_terminal() {
            return Err(format!("{text:?} is not an event type"));
        }
        Ok(EventType { kind: kind.to_string(), status })
    }
}

impl From<EventType> for String {
    fn from(t: EventType) -> String {
        t.to_string()
    }
}

/// `evt_` + 32 lowercase hex: derived from the subject and its terminal status, so every
/// duplicate of a transition carries the same id (receivers deduplicate on it).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EventId(String);

impl EventId {
    pub fn of(subject: &Subject, event_type: &EventType) -> EventId {
        let digest = Sha256::digest(format!("{}|{}|{event_type}", subject.kind(), subject.id()));
        EventId(format!("evt_{}", hex::encode(&digest[..16])))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for EventId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let hex = s.strip_prefix("evt_").unwrap_or_default();
        if hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            Ok(EventId(s.to_string()))
        } else {
            Err(format!("{} is not an event id like evt_ + 32 hex digits", pipai_engine::quoted(s)))
        }
    }
}

impl TryFrom<String> for EventId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<EventId> for String {
    fn from(id: EventId) -> String {
        id.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `"PIPAI1-WEBHOOK\n" + timestamp + "\n" + event_id + "\n" + hex(sha256(body))`.
pub fn string_to_sign(timestamp_ms: &str, event_id: &str, body: &[u8]) -> String {
    format!("{SCHEME}\n{timestamp_ms}\n{event_id}\n{}", hex::encode(Sha256::digest(body)))
}

/// Lowercase hex HMAC-SHA256 of the string to sign under the API key's secret.
pub fn signature(secret: &str, timestamp_ms: &str, event_id: &str, body: &[u8]) -> String {
    crate::auth::signature(secret, &string_to_sign(timestamp_ms, event_id, body))
}

/// The three headers of a delivery.
pub fn signed_headers(secret: &str, timestamp_ms: i64, event_id: &EventId, body: &[u8]) -> Vec<(&'static str, String)> {
    let ts = timestamp_ms.to_string();
    let sig = signature(secret, &ts, event_id.as_str(), body);
    vec![(HEADER_EVENT_ID, event_id.to_string()), (HEADER_TIMESTAMP, ts), (HEADER_SIGNATURE, sig)]
}

/// Why a received delivery does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the signature is not 64 lowercase hex digits")]
    MalformedSignature,
    #[error("the signature does not match (wrong secret, or the body, timestamp or event id changed)")]
    Mismatch,
    #[error("the timestamp is not epoch milliseconds")]
    MalformedTimestamp,
    #[error("the timestamp is {age_s} s away from now (more than the {tolerance_s} s allowed): a replay?")]
    Stale { age_s: i64, tolerance_s: i64 },
}

/// A receiver's check: the signature in constant time, then (with `tolerance_ms`) the
/// timestamp's distance from `now_ms`.
pub fn verify(
    secret: &str,
    timestamp_ms: &str,
    event_id: &str,
    body: &[u8],
    signature_hex: &str,
    freshness: Option<(i64, i64)>,
) -> Result<(), VerifyError> {
    let given = hex::decode(signature_hex)
        .ok()
        .filter(|b| b.len() == 32 && !signature_hex.bytes().any(|c| c.is_ascii_uppercase()))
        .ok_or(VerifyError::MalformedSignature)?;
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(string_to_sign(timestamp_ms, event_id, body).as_bytes());
    mac.verify_slice(&given).map_err(|_| VerifyError::Mismatch)?;
    if let Some((now_ms, tolerance_ms)) = freshness {
        let ts: i64 = timestamp_ms
            .parse()
            .ok()
            .filter(|_| timestamp_ms.bytes().all(|b| b.is_ascii_digit()))
            .ok_or(VerifyError::MalformedTimestamp)?;
        if (now_ms - ts).abs() > tolerance_ms {
            return Err(VerifyError::Stale { age_s: (now_ms - ts) / 1000, tolerance_s: tolerance_ms / 1000 });
        }
    }
    Ok(())
}

/// The retry schedule: after failed attempt `n` (1-based) the next comes `base * 2^(n-1)` later,
/// capped at [`MAX_RETRY_DELAY_MS`] (SQS's longest message delay).
pub const MAX_RETRY_DELAY_MS: u64 = 900_000;

pub fn retry_delay_ms(base_ms: u64, failed_attempt: u32) -> u64 {
    let factor = 1u64 << failed_attempt.saturating_sub(1).min(30);
    base_ms.saturating_mul(factor).min(MAX_RETRY_DELAY_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN: WebhookPolicy = WebhookPolicy { allow_http_loopback: false };
    const LOCAL: WebhookPolicy = WebhookPolicy { allow_http_loopback: true };

    fn refused(text: &str, policy: WebhookPolicy) -> UrlRefusal {
        NotifyUrl::parse(text, policy).expect_err(text)
    }

    #[test]
    fn public_https_urls_pass() {
        for ok in [
            "https://example.com/hook",
            "https://hooks.example.com:8443/a?b=c",
            "https://8.8.8.8/x",
            "https://[2606:4700::1]/",
        ] {
            assert!(NotifyUrl::parse(ok, OPEN).is_ok(), "{ok}");
        }
        let u = NotifyUrl::parse("https://Example.COM.:8443/p/q?x=1#frag", OPEN).unwrap();
        assert_eq!(u.host(), Some(NotifyHost::Domain("example.com".into())));
        assert_eq!((u.port(), u.path_and_query().as_str()), (8443, "/p/q?x=1"));
    }

    #[test]
    fn every_refused_address_class_is_refused() {
        let cases = [
            ("https://127.0.0.1/", AddressClass::Loopback),
            ("https://127.1.2.3/", AddressClass::Loopback),
            ("https://[::1]/", AddressClass::Loopback),
            ("https://10.0.0.1/x", AddressClass::Private),
            ("https://172.16.5.4/", AddressClass::Private),
            ("https://192.168.1.1/", AddressClass::Private),
            ("https://[fc00::1]/", AddressClass::Private),
            ("https://[fd12:3456::1]/", AddressClass::Private),
            ("https://100.64.0.1/", AddressClass::SharedCgnat),
            ("https://100.127.255.255/", AddressClass::SharedCgnat),
            ("https://169.254.1.1/", AddressClass::LinkLocal),
            ("https://[fe80::1]/", AddressClass::LinkLocal),
            ("https://169.254.169.254/", AddressClass::Metadata),
            ("https://[fd00:ec2::254]/", AddressClass::Metadata),
            ("https://0.0.0.0/", AddressClass::Unspecified),
            ("https://[::]/", AddressClass::Unspecified),
            ("https://224.0.0.1/", AddressClass::Multicast),
            ("https://[ff02::1]/", AddressClass::Multicast),
            ("https://255.255.255.255/", AddressClass::Broadcast),
            ("https://192.0.2.10/", AddressClass::Documentation),
            ("https://[2001:db8::1]/", AddressClass::Documentation),
            ("https://240.0.0.1/", AddressClass::Reserved),
            // IPv4 inside IPv6: mapped, compatible, NAT64, 6to4.
            ("https://[::ffff:127.0.0.1]/", AddressClass::Loopback),
            ("https://[::ffff:10.1.2.3]/", AddressClass::Private),
            ("https://[::ffff:169.254.169.254]/", AddressClass::Metadata),
            ("https://[64:ff9b::a00:1]/", AddressClass::Private),
            ("https://[2002:7f00:1::]/", AddressClass::Loopback),
            // The WHATWG parser reads decimal, octal and hex IPv4 forms: they are the same address.
            ("https://2130706433/", AddressClass::Loopback),
            ("https://0177.0.0.1/", AddressClass::Loopback),
            ("https://0x7f.1/", AddressClass::Loopback),
            ("https://0xa9fea9fe/", AddressClass::Metadata),
            ("https://167772161/", AddressClass::Private),
        ];
        for (text, class) in cases {
            match refused(text, OPEN) {
                UrlRefusal::Address(_, c) => assert_eq!(c, class, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn local_names_schemes_userinfo_and_length_are_refused() {
        for name in [
            "https://localhost/",
            "https://localhost./x",
            "https://LOCALHOST:8443/",
            "https://a.localhost/",
            "https://printer.local/",
            "https://db.internal/",
        ] {
            assert!(matches!(refused(name, OPEN), UrlRefusal::LocalName(_)), "{name}");
        }
        assert!(matches!(refused("https://intranet/", OPEN), UrlRefusal::SingleLabel(_)));
        assert_eq!(refused("http://example.com/", OPEN), UrlRefusal::NotHttps);
        assert_eq!(refused("http://127.0.0.1:9/", OPEN), UrlRefusal::NotHttps);
        for bad in
            ["ftp://example.com/", "HTTPS://example.com/", " https://example.com/", "example.com", "", "//example.com"]
        {
            assert_eq!(refused(bad, OPEN), UrlRefusal::NotHttps, "{bad:?}");
        }
        assert_eq!(refused("https://user:pw@example.com/", OPEN), UrlRefusal::UserInfo);
        assert_eq!(refused("https://user@example.com/", OPEN), UrlRefusal::UserInfo);
        assert_eq!(refused(&format!("https://example.com/{}", "a".repeat(MAX_URL_LEN)), OPEN), UrlRefusal::TooLong);
        assert!(matches!(refused("https://exa mple.com/", OPEN), UrlRefusal::Malformed(_)));
        assert!(matches!(
            refused("https:///x", OPEN),
            UrlRefusal::Malformed(_) | UrlRefusal::NoHost | UrlRefusal::SingleLabel(_)
        ));
    }

    #[test]
    fn the_local_allowance_is_http_127_0_0_1_only() {
        let u = NotifyUrl::parse("http://127.0.0.1:8080/hook", LOCAL).unwrap();
        assert_eq!(u.check_resolved(&[], LOCAL).unwrap(), "127.0.0.1:8080".parse().unwrap());
        assert_eq!(u.check_resolved(&[], OPEN), Err(UrlRefusal::NotHttps), "rechecked at send time");
        for no in
            ["http://localhost:8080/", "http://127.0.0.2/", "http://[::1]/", "http://10.0.0.1/", "http://example.com/"]
        {
            assert_eq!(refused(no, LOCAL), UrlRefusal::HttpNotLoopback, "{no}");
        }
        assert!(matches!(refused("https://127.0.0.1/", LOCAL), UrlRefusal::Address(_, AddressClass::Loopback)));
    }

    #[test]
    fn resolved_addresses_are_checked_all_of_them() {
        let u = NotifyUrl::parse("https://hooks.example.com/x", OPEN).unwrap();
        let public: IpAddr = "93.184.216.34".parse().unwrap();
        let private: IpAddr = "10.0.0.7".parse().unwrap();
        assert_eq!(u.check_resolved(&[public], OPEN).unwrap(), SocketAddr::new(public, 443));
        assert!(matches!(u.check_resolved(&[public, private], OPEN), Err(UrlRefusal::ResolvesTo { .. })));
        assert!(matches!(u.check_resolved(&[], OPEN), Err(UrlRefusal::Unresolvable(_))));
    }

    #[test]
    fn signing_matches_a_known_vector() {
        // Computed independently (Python hmac/hashlib): HMAC-SHA256("whsec", string to sign).
        let event_id = "evt_0123456789abcdef0123456789abcdef";
        let sts = string_to_sign("1714385700000", event_id, b"{}");
        assert_eq!(
            sts,
            "PIPAI1-WEBHOOK\n1714385700000\nevt_0123456789abcdef0123456789abcdef\n\
             44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        let sig = signature("whsec", "1714385700000", event_id, b"{}");
        assert_eq!(sig, "57310c9b5770d6596b203ca8d3a1c205bcc20ee88cd446aa63592c029d8e9632");
        assert_eq!(verify("whsec", "1714385700000", event_id, b"{}", &sig, None), Ok(()));
        assert_eq!(verify("other", "1714385700000", event_id, b"{}", &sig, None), Err(VerifyError::Mismatch));
        assert_eq!(verify("whsec", "1714385700000", event_id, b"{ }", &sig, None), Err(VerifyError::Mismatch));
        assert!(matches!(
            verify("whsec", "1714385700000", event_id, b"{}", &sig, Some((1714385700000 + 600_000, 300_000))),
            Err(VerifyError::Stale { .. })
        ));
        assert_eq!(
            verify("whsec", "1", event_id, b"{}", &sig.to_uppercase(), None),
            Err(VerifyError::MalformedSignature)
        );
    }

    #[test]
    fn event_ids_are_deterministic_per_subject_and_status() {
        let job = Subject::Job("bt_00aa11bb".parse().unwrap());
        let done = EventType::terminal(&job, JobStatus::Done).unwrap();
        let failed = EventType::terminal(&job, JobStatus::Failed).unwrap();
        assert_eq!(done.to_string(), "job.done");
        assert_eq!(EventId::of(&job, &done), EventId::of(&job, &done));
        assert_ne!(EventId::of(&job, &done), EventId::of(&job, &failed));
        assert!(EventId::of(&job, &done).as_str().parse::<EventId>().is_ok());
        assert!(EventType::terminal(&job, JobStatus::Running).is_none());
        assert_eq!(serde_json::to_string(&job).unwrap(), r#"{"kind":"job","id":"bt_00aa11bb"}"#);

        let sweep = Subject::Sweep("sw_00aa11bb".parse().unwrap());
        let sweep_done = EventType::terminal(&sweep, JobStatus::Done).unwrap();
        assert_eq!(sweep_done.to_string(), "sweep.done");
        assert_eq!(
            "sweep.cancelled".to_string().try_into(),
            Ok(EventType::terminal(&sweep, JobStatus::Cancelled).unwrap())
        );
        assert_ne!(EventId::of(&sweep, &sweep_done), EventId::of(&job, &done));
        assert_eq!(serde_json::to_string(&sweep).unwrap(), r#"{"kind":"sweep","id":"sw_00aa11bb"}"#);
        assert_eq!(serde_json::from_str::<Subject>(r#"{"kind":"sweep","id":"sw_00aa11bb"}"#).unwrap(), sweep);
    }

    #[test]
    fn the_backoff_schedule_doubles_to_the_cap_and_covers_more_than_an_hour() {
        let delays: Vec<u64> = (1..=6).map(|n| retry_delay_ms(30_000, n)).collect();
        assert_eq!(delays, [30_000, 60_000, 120_000, 240_000, 480_000, 900_000]);
        assert_eq!(retry_delay_ms(30_000, 40), MAX_RETRY_DELAY_MS);
        let total: u64 = (1..crate::notifier::MAX_ATTEMPTS).map(|n| retry_delay_ms(30_000, n)).sum();
        assert!(total > 3_600_000, "{total} ms");
    }
}
