//! `/nic/update`: the dyndns2 protocol (the one ddclient and inadyn speak)
//! for the `[dpx.dyndns]` users. Answers are the reference services'
//! plain-text codes with HTTP 200; the address change itself is asked of
//! the dpx service over its control socket, which owns the zone.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alpharen_store::config::{Dpx, in_zone};
use alpharen_store::limiter::client_net;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;
use serde_json::json;

use crate::{App, ClientIp, auth};

/// One answer line of the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Good(IpAddr),
    Nochg(IpAddr),
    Badauth,
    Nohost,
    Notfqdn,
    Abuse,
    Dnserr,
    /// Server-side trouble: clients back off for a while.
    ServerError,
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Good(ip) => write!(f, "good {ip}"),
            Answer::Nochg(ip) => write!(f, "nochg {ip}"),
            Answer::Badauth => f.write_str("badauth"),
            Answer::Nohost => f.write_str("nohost"),
            Answer::Notfqdn => f.write_str("notfqdn"),
            Answer::Abuse => f.write_str("abuse"),
            Answer::Dnserr => f.write_str("dnserr"),
            Answer::ServerError => f.write_str("911"),
        }
    }
}

/// Which of the requested names `user` may update: a name without a dot
/// (or outside the zone) is `notfqdn`, one not listed for the user `nohost`.
pub fn authorize_hosts(dpx: &Dpx, user: &str, hostnames: &str) -> Vec<Result<String, Answer>> {
    let allowed: Vec<String> = dpx
        .dyndns
        .users
        .iter()
        .filter(|u| u.name == user)
        .flat_map(|u| u.hostnames.iter())
        .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
        .collect();
    hostnames
        .split(',')
        .map(|h| h.trim().trim_end_matches('.').to_ascii_lowercase())
        .map(|h| {
            let zone_ok = dpx.zone.as_deref().is_some_and(|z| in_zone(&h, z));
            if !h.contains('.') || !zone_ok {
                Err(Answer::Notfqdn)
            } else if allowed.contains(&h) {
                Ok(h)
            } else {
                Err(Answer::Nohost)
            }
        })
        .collect()
}

/// A host's last update that passed the throttle, for `web.status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Update {
    /// Unix time.
    pub at: i64,
    pub user: String,
    pub ip: String,
    /// `good` (changed), `nochg` or `failed` (dpx did not apply it).
    pub result: &'static str,
}

/// Every configured dyndns host with its user and last update (`null`
/// when none came since the web service started).
pub fn hosts(dpx: &Dpx, updates: &BTreeMap<String, Update>) -> Vec<serde_json::Value> {
    dpx.dyndns
        .users
        .iter()
        .flat_map(|u| u.hostnames.iter().map(move |h| (u, h)))
        .map(|(u, h)| json!({"host": h, "user": u.name, "last": updates.get(h)}))
        .collect()
}

/// Per-name minimum interval between accepted updates (`abuse` otherwise).
#[derive(Default)]
pub struct Throttle {
    last: HashMap<String, Instant>,
}

/// Names remembered at most; the oldest are forgotten first.
const THROTTLE_CAP: usize = 10_000;

impl Throttle {
    pub fn allow(&mut self, host: &str, now: Instant, min: Duration) -> bool {
        if let Some(t) = self.last.get(host)
            && now.duration_since(*t) < min
        {
            return false;
        }
        if self.last.len() >= THROTTLE_CAP {
            self.last.retain(|_, t| now.duration_since(*t) < min);
        }
        self.last.insert(host.to_string(), now);
        true
    }
}

/// `user:password` from a Basic `Authorization` header.
pub fn basic_auth(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, b64) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

#[derive(Deserialize)]
pub struct Params {
    #[serde(default)]
    hostname: String,
    myip: Option<String>,
}

fn text(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

pub async fn nic_update(
    State(app): State<Arc<App>>,
    ip: Option<axum::Extension<ClientIp>>,
    headers: HeaderMap,
    Query(p): Query<Params>,
) -> Response {
    let client = ip.map(|i| i.0.0);
    let Some((user, password)) = basic_auth(&headers) else {
        let mut r = text(StatusCode::UNAUTHORIZED, Answer::Badauth.to_string());
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"dyndns\""),
        );
        return r;
    };
    let lines = update(&app, client, &user, &password, &p).await;
    let body: Vec<String> = lines.iter().map(Answer::to_string).collect();
    text(StatusCode::OK, body.join("\n"))
}

async fn update(
    app: &Arc<App>,
    client: Option<IpAddr>,
    user: &str,
    password: &str,
    p: &Params,
) -> Vec<Answer> {
    let dpx = app.dpx();
    let limiter_key = client.map_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), client_net);
    let now = Instant::now();
    let limited = app
        .dyndns_failures
        .lock()
        .map(|l| l.check(&limiter_key, now).is_err())
        .unwrap_or(true);
    let known = dpx.dyndns.users.iter().find(|u| u.name == user);
    let stored = match (limited, known) {
        (false, Some(u)) => app.dyndns_secret(&u.secret_name()),
        _ => None,
    };
    let ok = stored.is_some_and(|s| auth::hash_secret(&s) == auth::hash_secret(password));
    if !ok {
        if let Ok(mut l) = app.dyndns_failures.lock() {
            l.failure(&limiter_key, now);
        }
        tracing::warn!(user, client = ?client, "dyndns: bad credentials");
        return vec![Answer::Badauth];
    }
    let ips: Vec<IpAddr> = match &p.myip {
        Some(list) if !list.trim().is_empty() => {
            match list.split(',').map(|s| s.trim().parse()).collect() {
                Ok(ips) => ips,
                Err(_) => return vec![Answer::Dnserr],
            }
        }
        _ => client.into_iter().collect(),
    };
    let Some(&first) = ips.first() else {
        return vec![Answer::Dnserr];
    };
    let min = Duration::from_secs(dpx.dyndns.min_interval);
    let socket = alpharen_rpc::service_socket(&app.state_dir, "dpx");
    let mut out = Vec::new();
    for host in authorize_hosts(&dpx, user, &p.hostname) {
        let host = match host {
            Ok(h) => h,
            Err(a) => {
                out.push(a);
                continue;
            }
        };
        let allowed = app
            .throttle
            .lock()
            .map(|mut t| t.allow(&host, now, min))
            .unwrap_or(false);
        if !allowed {
            tracing::warn!(user, host, "dyndns: update too soon after the last one");
            out.push(Answer::Abuse);
            continue;
        }
        let mut changed = false;
        let mut failed = false;
        for ip in &ips {
            let params = json!({"hostname": host, "ip": ip, "user": user});
            match alpharen_rpc::call(&socket, "dpx.dyndns", params, crate::CALL_TIMEOUT).await {
                Ok(v) => changed |= v["changed"].as_bool() == Some(true),
                Err(e) => {
                    tracing::error!(host, error = %e.message, "dyndns: the dpx service did not apply the update");
                    failed = true;
                }
            }
        }
        let (answer, result) = match (failed, changed) {
            (true, _) => (Answer::ServerError, "failed"),
            (false, true) => (Answer::Good(first), "good"),
            (false, false) => (Answer::Nochg(first), "nochg"),
        };
        out.push(answer);
        if let Ok(mut u) = app.dyndns_updates.lock() {
            let at = alpharen_store::now_unix();
            let (user, ip) = (user.to_string(), first.to_string());
            u.insert(
                host.clone(),
                Update {
                    at,
                    user,
                    ip,
                    result,
                },
            );
        }
        tracing::info!(user, host, ip = %first, changed, "dyndns update");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dpx() -> Dpx {
        alpharen_store::Config::from_toml(
            "[dpx]\nzone = \"z.example.\"\n[[dpx.dyndns.users]]\nname = \"alice\"\nhostnames = [\"home.z.example\"]\n",
        )
        .unwrap()
        .dpx
    }

    #[test]
    fn users_update_only_their_names() {
        let d = dpx();
        assert_eq!(
            authorize_hosts(
                &d,
                "alice",
                "Home.Z.Example.,other.z.example,home,x.other.example"
            ),
            vec![
                Ok("home.z.example".to_string()),
                Err(Answer::Nohost),
                Err(Answer::Notfqdn),
                Err(Answer::Notfqdn),
            ]
        );
        assert_eq!(
            authorize_hosts(&d, "bob", "home.z.example"),
            vec![Err(Answer::Nohost)]
        );
    }

    #[test]
    fn throttle_answers_abuse_inside_the_interval() {
        let mut t = Throttle::default();
        let now = Instant::now();
        let min = Duration::from_secs(60);
        assert!(t.allow("h", now, min));
        assert!(!t.allow("h", now + Duration::from_secs(59), min));
        assert!(t.allow("other", now, min));
        assert!(t.allow("h", now + Duration::from_secs(61), min));
        assert!(t.allow("h", now + Duration::from_secs(61), Duration::ZERO));
    }

    #[test]
    fn basic_auth_header() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            "Basic YWxpY2U6czNjcjN0OngK".parse().unwrap(),
        );
        assert_eq!(basic_auth(&h), Some(("alice".into(), "s3cr3t:x\n".into())));
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(basic_auth(&h), None);
    }
}
