//! The dyndns2 client: keeps this node's public name current at an
//! upstream provider (another ARDPX node or an external service). The
//! address comes from an interface or a check URL; an update is sent only
//! when it differs from the last one the provider accepted. Errors back off
//! (1 min doubling to 1 h); answers that say "stop" (`badauth`, `nohost`,
//! `notfqdn`, `abuse`, ...) halt the client until the configuration
//! changes, so a wrong password never hammers the provider.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alpharen_store::config::{DyndnsClient, split_url};
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::Request;
use hyper::header::{AUTHORIZATION, HOST, USER_AGENT};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde::Serialize;

/// What the provider's answer means for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `good` or `nochg`: the name has the address.
    Accepted,
    /// The provider refuses this client until someone fixes the config.
    Refused(String),
    /// Worth trying again later (`911`, `dnserr`, network, odd answers).
    Failed(String),
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Wait(Duration),
    Halt,
}

const BACKOFF_FIRST: Duration = Duration::from_secs(60);
const BACKOFF_MAX: Duration = Duration::from_secs(3600);
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_BODY: usize = 64 * 1024;

/// Reads the first line of a dyndns2 answer.
pub fn outcome(body: &str) -> Outcome {
    let code = body.split_whitespace().next().unwrap_or("");
    match code {
        "good" | "nochg" => Outcome::Accepted,
        "badauth" | "nohost" | "notfqdn" | "abuse" | "badagent" | "!donator" | "numhost" => {
            Outcome::Refused(code.to_string())
        }
        "" => Outcome::Failed("empty answer".into()),
        other => Outcome::Failed(format!("provider answered {other:?}")),
    }
}

/// `failures` counts consecutive failures including this one.
pub fn next_step(outcome: &Outcome, failures: u32, interval: Duration) -> Step {
    match outcome {
        Outcome::Accepted => Step::Wait(interval),
        Outcome::Refused(_) => Step::Halt,
        Outcome::Failed(_) => {
            let exp = failures.saturating_sub(1).min(16);
            Step::Wait((BACKOFF_FIRST * 2u32.pow(exp)).min(BACKOFF_MAX))
        }
    }
}

/// The first thing in a text that parses as an IP address (check URLs
/// answer plain text or a little HTML).
pub fn find_address(text: &str) -> Option<IpAddr> {
    text.split(|c: char| !(c.is_ascii_hexdigit() || c == '.' || c == ':'))
        .find_map(|w| w.trim_matches(|c| c == '.' || c == ':').parse().ok())
}

/// For `ctl dpx`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    pub hostname: String,
    pub state: String,
    pub address: Option<IpAddr>,
    pub last_answer: Option<String>,
    pub last_error: Option<String>,
}

pub type Shared = Arc<Mutex<Option<Status>>>;

fn set(shared: &Shared, f: impl FnOnce(&mut Status)) {
    let mut g = shared.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(s) = g.as_mut() {
        f(s);
    }
}

fn tls_config(ca_file: Option<&str>) -> Result<Arc<rustls::ClientConfig>, String> {
    let roots = alpharen_nodetls::public_roots_and(ca_file)
        .map_err(|e| format!("dpx.client.ca_file {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// One GET; the body as text.
async fn get(
    url: &str,
    auth: Option<&str>,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<String, String> {
    let (https, host, port, path) =
        split_url(url).ok_or_else(|| format!("{url:?} is not a URL"))?;
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut req = Request::get(path).header(HOST, &authority).header(
        USER_AGENT,
        concat!("alpharen-dpx/", env!("CARGO_PKG_VERSION")),
    );
    if let Some(a) = auth {
        req = req.header(AUTHORIZATION, a);
    }
    let req = req.body(Empty::<Bytes>::new()).map_err(|e| e.to_string())?;
    let tcp = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("connect {authority}: {e}"))?;
    if https {
        let name = ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
        let stream = tokio_rustls::TlsConnector::from(tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS with {authority}: {e}"))?;
        send(TokioIo::new(stream), req).await
    } else {
        send(TokioIo::new(tcp), req).await
    }
}

async fn send<I>(io: I, req: Request<Empty<Bytes>>) -> Result<String, String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let body = Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let text = String::from_utf8_lossy(&body).into_owned();
    if status.is_success() || status.as_u16() == 401 {
        Ok(text)
    } else {
        Err(format!("HTTP {status}"))
    }
}

fn interface_address(name: &str) -> Option<IpAddr> {
    let addrs = alpharen_store::host::global_addresses(Some(name));
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
}

async fn current_address(
    c: &DyndnsClient,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<IpAddr, String> {
    match (&c.interface, &c.check_url) {
        (Some(i), _) => interface_address(i).ok_or_else(|| format!("no usable address on {i}")),
        (None, Some(url)) => {
            let body = tokio::time::timeout(HTTP_TIMEOUT, get(url, None, tls))
                .await
                .map_err(|_| format!("{url}: no answer in time"))??;
            find_address(&body).ok_or_else(|| format!("{url} answered no address"))
        }
        (None, None) => Err("no address source".into()),
    }
}

/// Runs until halted or aborted (a reload that changes its settings aborts it).
pub async fn run(c: DyndnsClient, password: Option<String>, status: Shared) {
    *status.lock().unwrap_or_else(|p| p.into_inner()) = Some(Status {
        hostname: c.hostname.clone(),
        state: "starting".into(),
        ..Status::default()
    });
    let Some(password) = password else {
        set(&status, |s| {
            s.state = "halted".into();
            s.last_error = Some(format!("no secret {}", DyndnsClient::PASSWORD_SECRET));
        });
        return;
    };
    let tls = match tls_config(c.ca_file.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "dyndns client halted");
            set(&status, |s| {
                s.state = "halted".into();
                s.last_error = Some(e);
            });
            return;
        }
    };
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{password}", c.username))
    );
    let interval = Duration::from_secs(c.interval);
    let mut registered: Option<IpAddr> = None;
    let mut failures = 0u32;
    loop {
        let result = match current_address(&c, &tls).await {
            Err(e) => Outcome::Failed(e),
            Ok(ip) if Some(ip) == registered => Outcome::Accepted,
            Ok(ip) => {
                set(&status, |s| s.address = Some(ip));
                let url = format!(
                    "{}/nic/update?hostname={}&myip={ip}",
                    c.server.trim_end_matches('/'),
                    c.hostname
                );
                match tokio::time::timeout(HTTP_TIMEOUT, get(&url, Some(&auth), &tls)).await {
                    Ok(Ok(body)) => {
                        let first = body.lines().next().unwrap_or("").trim().to_string();
                        tracing::info!(hostname = %c.hostname, %ip, answer = %first, "dyndns update sent");
                        set(&status, |s| s.last_answer = Some(first));
                        let o = outcome(&body);
                        if o == Outcome::Accepted {
                            registered = Some(ip);
                        }
                        o
                    }
                    Ok(Err(e)) => Outcome::Failed(e),
                    Err(_) => Outcome::Failed(format!("{}: no answer in time", c.server)),
                }
            }
        };
        failures = if let Outcome::Failed(_) = result {
            failures + 1
        } else {
            0
        };
        let step = next_step(&result, failures, interval);
        set(&status, |s| {
            s.state = match (&result, &step) {
                (_, Step::Halt) => "halted",
                (Outcome::Accepted, _) => "ok",
                _ => "backoff",
            }
            .into();
            s.last_error = match &result {
                Outcome::Accepted => None,
                Outcome::Refused(code) => Some(format!("provider answered {code}; fix the config")),
                Outcome::Failed(e) => Some(e.clone()),
            };
        });
        match step {
            Step::Halt => {
                tracing::error!(hostname = %c.hostname, ?result, "dyndns client halted until the configuration changes");
                return;
            }
            Step::Wait(d) => {
                if let Outcome::Failed(e) = &result {
                    tracing::warn!(hostname = %c.hostname, error = %e, retry_in = d.as_secs(), "dyndns update failed");
                }
                tokio::time::sleep(d).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_map_to_outcomes() {
        assert_eq!(outcome("good 192.0.2.1\n"), Outcome::Accepted);
        assert_eq!(outcome("nochg 192.0.2.1"), Outcome::Accepted);
        assert_eq!(outcome("badauth"), Outcome::Refused("badauth".into()));
        assert_eq!(outcome("abuse"), Outcome::Refused("abuse".into()));
        assert!(matches!(outcome("911"), Outcome::Failed(_)));
        assert!(matches!(outcome(""), Outcome::Failed(_)));
    }

    #[test]
    fn refusals_halt_and_failures_back_off_to_an_hour() {
        let i = Duration::from_secs(300);
        assert_eq!(next_step(&Outcome::Accepted, 0, i), Step::Wait(i));
        assert_eq!(
            next_step(&Outcome::Refused("badauth".into()), 0, i),
            Step::Halt
        );
        let f = Outcome::Failed("x".into());
        assert_eq!(next_step(&f, 1, i), Step::Wait(Duration::from_secs(60)));
        assert_eq!(next_step(&f, 2, i), Step::Wait(Duration::from_secs(120)));
        assert_eq!(next_step(&f, 7, i), Step::Wait(Duration::from_secs(3600)));
        assert_eq!(next_step(&f, 100, i), Step::Wait(Duration::from_secs(3600)));
    }

    #[test]
    fn addresses_are_found_in_text_and_html() {
        assert_eq!(find_address("192.0.2.4\n"), "192.0.2.4".parse().ok());
        assert_eq!(
            find_address("<html><body>Current IP Address: 198.51.100.7</body></html>"),
            "198.51.100.7".parse().ok()
        );
        assert_eq!(find_address("2001:db8::1"), "2001:db8::1".parse().ok());
        assert_eq!(find_address("no address here"), None);
    }
}
