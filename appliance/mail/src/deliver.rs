//! The queue runner and the relay: takes due messages from the spool,
//! hands them to the smarthost (or the recipients' domains) with `lettre`,
//! and records the outcome — forget on success, reschedule on a temporary
//! failure, bounce and keep as a dead letter on a permanent one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use alpharen_store::config::{RelayMode, RelayTls};
use lettre::address::{Address, Envelope as LEnvelope};
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::spool::{Area, Envelope, Origin, QueueState};
use crate::{Error, Settings, Shared, message, now, retry};

/// One delivery attempt's result for a group of recipients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    Transient(String),
    Permanent(String),
}

pub enum Relay {
    Smarthost(AsyncSmtpTransport<Tokio1Executor>),
    /// Straight to each recipient domain's mail exchangers on port 25, in
    /// MX preference order (the resolver of `/etc/resolv.conf`).
    Direct {
        hostname: String,
    },
}

const TIMEOUT: Duration = Duration::from_secs(60);

impl Relay {
    /// `Ok(None)` when no relay is configured: mail waits in the queue.
    pub fn build(s: &Settings) -> Result<Option<Relay>, Error> {
        let Some(r) = &s.mail.relay else {
            return Ok(None);
        };
        if r.mode == RelayMode::Direct {
            return Ok(Some(Relay::Direct {
                hostname: s.hostname.clone(),
            }));
        }
        let host = r
            .host
            .clone()
            .ok_or_else(|| Error::Relay("smarthost mode needs mail.relay.host".into()))?;
        let tls = match r.tls {
            RelayTls::None => Tls::None,
            RelayTls::Starttls | RelayTls::Tls => {
                let mut p = TlsParameters::builder(host.clone());
                if let Some(ca) = &r.ca_file {
                    let pem = std::fs::read(ca)
                        .map_err(|e| Error::Relay(format!("mail.relay.ca_file {ca}: {e}")))?;
                    let cert = Certificate::from_pem(&pem)
                        .map_err(|e| Error::Relay(format!("mail.relay.ca_file {ca}: {e}")))?;
                    p = p.add_root_certificate(cert);
                }
                let p = p
                    .build_rustls()
                    .map_err(|e| Error::Relay(format!("TLS setup: {e}")))?;
                if r.tls == RelayTls::Tls {
                    Tls::Wrapper(p)
                } else {
                    Tls::Required(p)
                }
            }
        };
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(r.port)
            .tls(tls)
            .timeout(Some(TIMEOUT))
            .hello_name(ClientId::Domain(s.hostname.clone()))
            // Connection reuse: up to 2 idle connections kept for a minute.
            .pool_config(
                PoolConfig::new()
                    .max_size(2)
                    .idle_timeout(Duration::from_secs(60)),
            );
        if let Some(user) = &r.username {
            let pass = s.relay_password.clone().ok_or_else(|| {
                Error::Relay(format!(
                    "mail.relay.username is set but the secret {} is missing",
                    crate::RELAY_PASSWORD_SECRET
                ))
            })?;
            b = b
                .credentials(Credentials::new(user.clone(), pass))
                .authentication(vec![Mechanism::Plain, Mechanism::Login]);
        }
        Ok(Some(Relay::Smarthost(b.build())))
    }

    /// Connects to the smarthost as a delivery does (TLS and AUTH as
    /// configured) and says NOOP; the error has the server's or the
    /// network's words. `None` in direct mode: no one host to test.
    pub async fn test(&self) -> Option<Result<(), String>> {
        let Relay::Smarthost(t) = self else {
            return None;
        };
        Some(match t.test_connection().await {
            Ok(true) => Ok(()),
            Ok(false) => Err("the smarthost did not answer NOOP".into()),
            Err(e) => Err(e.to_string()),
        })
    }

    /// Splits recipients into the groups one SMTP transaction can carry.
    fn groups(&self, rcpts: &[String]) -> Vec<Vec<String>> {
        match self {
            Relay::Smarthost(_) => vec![rcpts.to_vec()],
            Relay::Direct { .. } => {
                let mut by: BTreeMap<String, Vec<String>> = BTreeMap::new();
                for r in rcpts {
                    let d = r.rsplit_once('@').map_or("", |x| x.1).to_ascii_lowercase();
                    by.entry(d).or_default().push(r.clone());
                }
                by.into_values().collect()
            }
        }
    }

    async fn send(&self, from: &str, to: &[String], msg: &[u8]) -> Outcome {
        let env = match envelope(from, to) {
            Ok(e) => e,
            Err(e) => return Outcome::Permanent(e),
        };
        let result = match self {
            Relay::Smarthost(t) => t.send_raw(&env, msg).await,
            Relay::Direct { hostname } => {
                let domain = to
                    .first()
                    .and_then(|r| r.rsplit_once('@'))
                    .map_or(String::new(), |x| x.1.to_string());
                return send_direct(hostname, &domain, &env, msg).await;
            }
        };
        outcome(result)
    }
}

fn outcome<T>(result: Result<T, lettre::transport::smtp::Error>) -> Outcome {
    match result {
        Ok(_) => Outcome::Delivered,
        Err(e) if e.is_permanent() => Outcome::Permanent(e.to_string()),
        Err(e) => Outcome::Transient(e.to_string()),
    }
}

/// What the DNS said about a domain's MX records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MxAnswer {
    /// (preference, exchange) pairs; the exchange `"."` is a null MX.
    Records(Vec<(u16, String)>),
    /// The name exists but has no MX records.
    NoRecords,
    NoDomain,
    Failed(String),
}

/// The hosts to try for `domain`, best first (RFC 5321 5.1: no MX means
/// the domain itself; RFC 7505: a lone "." means it takes no mail).
pub fn mx_hosts(domain: &str, answer: MxAnswer) -> Result<Vec<String>, Outcome> {
    match answer {
        MxAnswer::Records(mut recs) => {
            if recs.iter().any(|(_, h)| h == "." || h.is_empty()) {
                return Err(Outcome::Permanent(format!(
                    "{domain} does not accept mail (null MX)"
                )));
            }
            recs.sort_by_key(|(pref, _)| *pref);
            let mut hosts: Vec<String> = Vec::new();
            for (_, h) in recs {
                let h = h.trim_end_matches('.').to_ascii_lowercase();
                if !hosts.contains(&h) {
                    hosts.push(h);
                }
            }
            Ok(hosts)
        }
        MxAnswer::NoRecords => Ok(vec![domain.to_string()]),
        MxAnswer::NoDomain => Err(Outcome::Permanent(format!(
            "domain {domain} does not exist"
        ))),
        MxAnswer::Failed(e) => Err(Outcome::Transient(format!(
            "MX lookup for {domain} failed: {e}"
        ))),
    }
}

async fn lookup_mx(domain: &str) -> MxAnswer {
    use hickory_resolver::proto::rr::RData;
    let resolver = match hickory_resolver::TokioResolver::builder_tokio().and_then(|b| b.build()) {
        Ok(r) => r,
        Err(e) => return MxAnswer::Failed(format!("no resolver: {e}")),
    };
    match resolver.mx_lookup(format!("{domain}.")).await {
        Ok(l) => MxAnswer::Records(
            l.answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii())),
                    _ => None,
                })
                .collect(),
        ),
        Err(e) if e.is_nx_domain() => MxAnswer::NoDomain,
        Err(e) if e.is_no_records_found() => MxAnswer::NoRecords,
        Err(e) => MxAnswer::Failed(e.to_string()),
    }
}

/// Tries the domain's exchangers in order until one takes the message or
/// refuses it for good.
async fn send_direct(hostname: &str, domain: &str, env: &LEnvelope, msg: &[u8]) -> Outcome {
    let answer = lookup_mx(domain).await;
    tracing::debug!(domain, ?answer, "MX lookup");
    let hosts = match mx_hosts(domain, answer) {
        Ok(h) => h,
        Err(o) => return o,
    };
    let mut last = Outcome::Transient(format!("no mail exchanger for {domain}"));
    for host in hosts {
        let tls = match TlsParameters::new_rustls(host.clone()) {
            Ok(p) => Tls::Opportunistic(p),
            Err(_) => Tls::None,
        };
        let t = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
            .port(25)
            .tls(tls)
            .timeout(Some(TIMEOUT))
            .hello_name(ClientId::Domain(hostname.to_string()))
            .build();
        match outcome(t.send_raw(env, msg).await) {
            Outcome::Transient(e) => {
                tracing::info!(%host, error = %e, "mail exchanger failed; trying the next");
                last = Outcome::Transient(format!("{host}: {e}"));
            }
            done => return done,
        }
    }
    last
}

fn envelope(from: &str, to: &[String]) -> Result<LEnvelope, String> {
    let from = if from.is_empty() {
        None
    } else {
        Some(
            from.parse::<Address>()
                .map_err(|e| format!("sender <{from}>: {e}"))?,
        )
    };
    let to = to
        .iter()
        .map(|r| {
            r.parse::<Address>()
                .map_err(|e| format!("recipient <{r}>: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    LEnvelope::new(from, to).map_err(|e| e.to_string())
}

/// Who hears about a failed message: nobody for a bounce (no loops), the
/// admins for the node's own and local senders' mail, else the sender.
pub fn bounce_target(env: &Envelope, hostname: &str, admins: &[String]) -> Vec<String> {
    if env.from.is_empty() {
        return Vec::new();
    }
    let domain = env.from.rsplit_once('@').map_or("", |x| x.1);
    let local = domain.eq_ignore_ascii_case(hostname) || domain.eq_ignore_ascii_case("localhost");
    if env.origin == Origin::Node || local {
        admins.to_vec()
    } else {
        vec![env.from.clone()]
    }
}

/// Delivers due messages until shutdown; sleeps until the next one is due,
/// a new message arrives, or 30 s pass (to see files `sendmail` wrote).
pub async fn run_queue(shared: Arc<Shared>) {
    loop {
        if shared.shutting_down() {
            return;
        }
        let force = shared.force.swap(false, Ordering::SeqCst);
        let next = match pass(&shared, force).await {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "queue run failed");
                None
            }
        };
        let wait = next.map_or(30, |t| (t - now()).clamp(1, 30));
        tokio::select! {
            _ = shared.wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(wait as u64)) => {}
        }
    }
}

/// One sweep over the queue; returns when the earliest deferred message
/// is due.
async fn pass(shared: &Arc<Shared>, force: bool) -> Result<Option<i64>, Error> {
    let Some(relay) = shared.relay() else {
        return Ok(None);
    };
    let ids = shared.spool_op(|s| s.ids(Area::Queue)).await?;
    let mut next: Option<i64> = None;
    for id in ids {
        if shared.shutting_down() {
            break;
        }
        let id2 = id.clone();
        let Ok(state) = shared.spool_op(move |s| s.state(Area::Queue, &id2)).await else {
            continue;
        };
        if !force && state.next_try > now() {
            next = Some(next.map_or(state.next_try, |n: i64| n.min(state.next_try)));
            continue;
        }
        match deliver_one(shared, &relay, &id, state).await {
            Ok(Some(t)) => next = Some(next.map_or(t, |n: i64| n.min(t))),
            Ok(None) => {}
            Err(e) => tracing::error!(%id, error = %e, "delivery bookkeeping failed"),
        }
    }
    Ok(next)
}

/// Tries one message; returns its next try time if it stays queued.
async fn deliver_one(
    shared: &Arc<Shared>,
    relay: &Relay,
    id: &str,
    mut state: QueueState,
) -> Result<Option<i64>, Error> {
    let s = shared.settings();
    let id_owned = id.to_string();
    let (env, msg) = match shared
        .spool_op(move |sp| sp.load(Area::Queue, &id_owned))
        .await
    {
        Ok(x) => x,
        Err(Error::Spool(crate::spool::SpoolError::NotFound(_))) => return Ok(None),
        Err(e) => return Err(e),
    };
    let pending: Vec<String> = env
        .to
        .iter()
        .filter(|r| !state.done.contains(r))
        .cloned()
        .collect();
    let mut failed: Vec<(Vec<String>, String)> = Vec::new();
    let mut transient: Option<String> = None;
    for group in relay.groups(&pending) {
        match relay.send(&env.from, &group, &msg).await {
            Outcome::Delivered => {
                tracing::info!(%id, rcpts = group.len(), "delivered");
                state.done.extend(group);
            }
            Outcome::Permanent(e) => {
                tracing::warn!(%id, error = %e, "permanent failure");
                state.done.extend(group.iter().cloned());
                failed.push((group, e));
            }
            Outcome::Transient(e) => {
                tracing::info!(%id, error = %e, "deferred");
                transient = Some(e);
            }
        }
    }
    state.attempts += 1;
    let t = now();
    let mut retry_at = None;
    let mut dead_reason = None;
    if let Some(e) = &transient {
        match retry::next_try(env.received, state.attempts, t, s.mail.max_queue_age) {
            Some(at) => {
                state.next_try = at;
                state.last_error = Some(e.clone());
                retry_at = Some(at);
            }
            None => {
                let reason = format!("delivery time expired; last error: {e}");
                let rest: Vec<String> = env
                    .to
                    .iter()
                    .filter(|r| !state.done.contains(r))
                    .cloned()
                    .collect();
                failed.push((rest, reason.clone()));
                dead_reason = Some(reason);
            }
        }
    }
    if let Some((_, e)) = failed.first() {
        dead_reason.get_or_insert_with(|| e.clone());
    }
    for (rcpts, reason) in &failed {
        bounce(shared, &s, &env, rcpts, reason, &msg).await;
    }
    let idc = id.to_string();
    if let Some(reason) = dead_reason {
        state.last_error = Some(reason);
        shared
            .spool_op(move |sp| sp.move_to(Area::Queue, Area::Dead, &idc, &state))
            .await?;
        tracing::warn!(%id, "moved to dead letters");
    } else if retry_at.is_some() {
        shared
            .spool_op(move |sp| sp.set_state(Area::Queue, &idc, &state))
            .await?;
    } else {
        shared
            .spool_op(move |sp| sp.remove(Area::Queue, &idc))
            .await?;
    }
    Ok(retry_at)
}

async fn bounce(
    shared: &Arc<Shared>,
    s: &Settings,
    env: &Envelope,
    failed: &[String],
    reason: &str,
    original: &[u8],
) {
    let to = bounce_target(env, &s.hostname, &s.mail.admin_recipients);
    if to.is_empty() || failed.is_empty() {
        return;
    }
    let daemon = format!("MAILER-DAEMON@{}", s.hostname);
    let text = message::Bounce {
        hostname: &s.hostname,
        from: &daemon,
        to: &to.join(", "),
        failed,
        reason,
        original,
        now: now(),
    }
    .render();
    let benv = Envelope {
        from: String::new(),
        to,
        received: now(),
        origin: Origin::Node,
    };
    match shared.spool_op(move |sp| sp.enqueue(&benv, &text)).await {
        Ok(id) => {
            tracing::info!(%id, "bounce queued");
            // It arrived after this pass listed the queue: look again.
            shared.wake.notify_one();
        }
        Err(e) => tracing::error!(error = %e, "cannot queue a bounce"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(from: &str, origin: Origin) -> Envelope {
        Envelope {
            from: from.into(),
            to: vec!["x@y".into()],
            received: 0,
            origin,
        }
    }

    #[test]
    fn mx_answers_become_hosts_in_order() {
        let recs = MxAnswer::Records(vec![
            (20, "Backup.example.org.".into()),
            (10, "mx1.example.org.".into()),
            (20, "backup.example.org".into()),
        ]);
        assert_eq!(
            mx_hosts("example.org", recs).unwrap(),
            vec!["mx1.example.org", "backup.example.org"]
        );
        assert_eq!(
            mx_hosts("example.org", MxAnswer::NoRecords).unwrap(),
            vec!["example.org"]
        );
        let null = MxAnswer::Records(vec![(0, ".".into())]);
        assert!(matches!(
            mx_hosts("x.org", null),
            Err(Outcome::Permanent(_))
        ));
        assert!(matches!(
            mx_hosts("x.org", MxAnswer::NoDomain),
            Err(Outcome::Permanent(_))
        ));
        assert!(matches!(
            mx_hosts("x.org", MxAnswer::Failed("timeout".into())),
            Err(Outcome::Transient(_))
        ));
    }

    #[test]
    fn bounce_targets() {
        let admins = vec!["ops@corp".to_string()];
        assert!(bounce_target(&env("", Origin::Node), "n1", &admins).is_empty());
        assert_eq!(
            bounce_target(&env("a@ext", Origin::Smtp), "n1", &admins),
            vec!["a@ext"]
        );
        assert_eq!(
            bounce_target(&env("root@n1", Origin::Sendmail), "n1", &admins),
            admins
        );
        assert_eq!(
            bounce_target(&env("alpharen@n1.corp", Origin::Node), "n1", &admins),
            admins
        );
    }

    #[test]
    fn bad_addresses_are_permanent() {
        assert!(envelope("a b@c", &["x@y".into()]).is_err());
        assert!(envelope("", &["x@y".into()]).is_ok());
    }
}
