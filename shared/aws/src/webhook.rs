//! The webhook adapters: name resolution (the system resolver) and the sender, which resolves
//! the host itself, checks every address with the service's rules, connects to exactly the
//! address it checked (no second lookup: DNS rebinding cannot swap it), speaks one HTTP/1.1
//! POST over TLS (rustls on ring, the Mozilla roots of `webpki-roots`), reads only the status
//! line and never follows a redirect. Connect, TLS, send and the status line all share one
//! deadline ([`SEND_TIMEOUT_MS`]).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use pipai_service::notifier::{SendOutcome, WebhookPost, WebhookSender, SEND_TIMEOUT_MS};
use pipai_service::webhook::{BoxFuture, HostResolver, NotifyHost, Resolver, WebhookPolicy};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a name may take to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);
/// The most of an answer read while looking for its status line.
const MAX_STATUS_LINE: usize = 8 * 1024;

/// The system's resolver (getaddrinfo), bounded by a timeout.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl HostResolver for SystemResolver {
    fn resolve<'a>(&'a self, host: &'a str) -> BoxFuture<'a, Result<Vec<IpAddr>, String>> {
        Box::pin(async move {
            match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, 443))).await {
                Err(_) => Err(format!("resolving timed out after {} s", RESOLVE_TIMEOUT.as_secs())),
                Ok(Err(e)) => Err(e.to_string()),
                Ok(Ok(addrs)) => Ok(addrs.map(|a| a.ip()).collect()),
            }
        })
    }
}

/// Sends webhooks over the network.
#[derive(Clone)]
pub struct HttpWebhookSender {
    policy: WebhookPolicy,
    resolver: Resolver,
    tls: tokio_rustls::TlsConnector,
}

impl HttpWebhookSender {
    /// With the system resolver.
    pub fn new(policy: WebhookPolicy) -> Self {
        Self::with_resolver(policy, Resolver::new(SystemResolver))
    }

    pub fn with_resolver(policy: WebhookPolicy, resolver: Resolver) -> Self {
        let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        HttpWebhookSender { policy, resolver, tls: tokio_rustls::TlsConnector::from(Arc::new(config)) }
    }

    async fn send(&self, post: &WebhookPost<'_>) -> SendOutcome {
        let url = post.url;
        let addresses = match url.host() {
            Some(NotifyHost::Ip(ip)) => vec![ip],
            Some(NotifyHost::Domain(name)) => match self.resolver.resolve(&name).await {
                Ok(found) => found,
                Err(e) => return SendOutcome::Refused(format!("host {name} could not be resolved: {e}")),
            },
            None => return SendOutcome::Refused("the URL has no host".into()),
        };
        let address = match url.check_resolved(&addresses, self.policy) {
            Ok(a) => a,
            Err(e) => return SendOutcome::Refused(e.to_string()),
        };
        let tcp = match TcpStream::connect(address).await {
            Ok(s) => s,
            Err(e) => return SendOutcome::Failed(format!("could not connect to {address}: {e}")),
        };
        let request = request_bytes(post);
        if !url.is_https() {
            return exchange(tcp, &request).await;
        }
        // The name the certificate must carry: the host without a trailing dot, or the IP.
        let server_name = match url.host() {
            Some(NotifyHost::Domain(name)) => match ServerName::try_from(name.clone()) {
                Ok(n) => n,
                Err(_) => return SendOutcome::Failed(format!("{name} is not a valid TLS server name")),
            },
            _ => ServerName::IpAddress(address.ip().into()),
        };
        match self.tls.connect(server_name, tcp).await {
            Ok(tls) => exchange(tls, &request).await,
            Err(e) => SendOutcome::Failed(format!("TLS with {address}: {e}")),
        }
    }
}

impl WebhookSender for HttpWebhookSender {
    async fn post(&self, post: &WebhookPost<'_>) -> SendOutcome {
        match tokio::time::timeout(Duration::from_millis(SEND_TIMEOUT_MS), self.send(post)).await {
            Ok(outcome) => outcome,
            Err(_) => SendOutcome::TimedOut,
        }
    }
}

/// The whole request: `Connection: close`, a JSON body, the signature headers.
fn request_bytes(post: &WebhookPost<'_>) -> Vec<u8> {
    let mut head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: PipAI-Webhooks/1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n",
        post.url.path_and_query(),
        post.url.host_header(),
        post.body.len()
    );
    for (name, value) in &post.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(post.body);
    bytes
}

/// Writes the request and reads the status line's code.
async fn exchange<T: AsyncRead + AsyncWrite + Unpin>(mut io: T, request: &[u8]) -> SendOutcome {
    if let Err(e) = io.write_all(request).await {
        return SendOutcome::Failed(format!("sending the request: {e}"));
    }
    let _ = io.flush().await;
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !answer.windows(2).any(|w| w == b"\r\n") && answer.len() < MAX_STATUS_LINE {
        match io.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) => return SendOutcome::Failed(format!("reading the answer: {e}")),
        }
    }
    match status_code(&answer) {
        Some(code) => SendOutcome::Answered(code),
        None if answer.is_empty() => SendOutcome::Failed("the receiver closed the connection without answering".into()),
        None => SendOutcome::Failed("the answer is not HTTP/1.x".into()),
    }
}

/// `HTTP/1.1 204 No Content` -> 204.
fn status_code(answer: &[u8]) -> Option<u16> {
    let line = answer.split(|b| *b == b'\n').next()?;
    let text = std::str::from_utf8(line).ok()?;
    let mut parts = text.split_ascii_whitespace();
    let version = parts.next()?;
    let code = parts.next()?;
    (version.starts_with("HTTP/1.") && code.len() == 3).then(|| code.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipai_service::webhook::NotifyUrl;

    #[test]
    fn status_lines_parse() {
        assert_eq!(status_code(b"HTTP/1.1 204 No Content\r\n"), Some(204));
        assert_eq!(status_code(b"HTTP/1.0 500\r\n"), Some(500));
        assert_eq!(status_code(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(status_code(b""), None);
    }

    #[test]
    fn requests_carry_the_signature_headers_and_body() {
        let url = NotifyUrl::parse("https://hooks.example.com:8443/in?x=1", WebhookPolicy::default()).unwrap();
        let post = WebhookPost { url: &url, headers: vec![("X-PipAI-Event-Id", "evt_1".into())], body: b"{}" };
        let text = String::from_utf8(request_bytes(&post)).unwrap();
        assert!(text.starts_with("POST /in?x=1 HTTP/1.1\r\nHost: hooks.example.com:8443\r\n"), "{text}");
        assert!(text.contains("\r\nX-PipAI-Event-Id: evt_1\r\n") && text.ends_with("\r\n\r\n{}"));
    }

    /// Names that resolve to internal addresses now (as after a DNS rebinding), or not at all.
    struct Rebound;

    impl HostResolver for Rebound {
        fn resolve<'a>(&'a self, host: &'a str) -> BoxFuture<'a, Result<Vec<IpAddr>, String>> {
            let found = match host {
                "loop.example.com" => Ok(vec![IpAddr::from([127, 0, 0, 1])]),
                "meta.example.com" => Ok(vec![IpAddr::from([93, 184, 216, 34]), IpAddr::from([169, 254, 169, 254])]),
                "mapped.example.com" => Ok(vec!["::ffff:10.0.0.1".parse().unwrap()]),
                _ => Err("NXDOMAIN".into()),
            };
            Box::pin(async move { found })
        }
    }

    #[tokio::test]
    async fn refused_addresses_are_never_connected_to() {
        // A table resolver and loopback only: this test sends no traffic anywhere.
        let sender = HttpWebhookSender::with_resolver(WebhookPolicy::default(), Resolver::new(Rebound));
        for (text, why) in [
            ("https://loop.example.com/x", "loopback"),
            ("https://meta.example.com/", "metadata"),
            ("https://mapped.example.com/", "private"),
            ("https://gone.example.com/", "could not be resolved"),
            ("http://127.0.0.1:9/", "https://"),
        ] {
            let url = NotifyUrl::try_from(text.to_string()).unwrap();
            let post = WebhookPost { url: &url, headers: vec![], body: b"{}" };
            match sender.post(&post).await {
                SendOutcome::Refused(message) => assert!(message.contains(why), "{text}: {message}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_loopback_receiver_is_reached_where_allowed_and_redirects_are_answers() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            for status in ["302 Found", "204 No Content"] {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = vec![0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ =
                    s.write_all(format!("HTTP/1.1 {status}\r\nLocation: http://10.0.0.1/\r\n\r\n").as_bytes()).await;
            }
        });
        let local = WebhookPolicy { allow_http_loopback: true };
        let sender = HttpWebhookSender::with_resolver(local, Resolver::new(Rebound));
        let url = NotifyUrl::parse(&format!("http://127.0.0.1:{port}/hook"), local).unwrap();
        let post = WebhookPost { url: &url, headers: vec![], body: b"{}" };
        assert_eq!(sender.post(&post).await, SendOutcome::Answered(302), "not followed");
        assert_eq!(sender.post(&post).await, SendOutcome::Answered(204));
    }
}
