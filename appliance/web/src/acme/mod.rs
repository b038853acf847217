//! ACME certificates for the console (`[acme]`): the web service orders
//! a certificate for the configured host names over HTTP-01 (its
//! plain-HTTP listener answers), TLS-ALPN-01 (its HTTPS listener answers)
//! or DNS-01 (the dpx service publishes the TXT records, or an external
//! server takes them by TSIG-signed RFC 2136 update), keeps it in
//! `<state>/tls/acme.pem` with its key in the secret store
//! (`web.acme.key`, the account in `web.acme.account.*`), serves it
//! through the TLS resolver without dropping connections, and renews it
//! before it ends. A failed order is retried with backoff while the
//! certificate served before keeps serving; `web.status` reports it.

pub mod challenge;
pub mod order;
pub mod plan;
pub mod rfc2136;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use alpharen_store::config::Acme as AcmeConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use serde::Serialize;
use tokio::sync::{Notify, watch};

use crate::tls;

/// The certificate's private key (PKCS#8 PEM), made once.
pub const KEY_SECRET: &str = "web.acme.key";
/// One account per directory URL (`order::account_secret`).
pub const ACCOUNT_SECRET_PREFIX: &str = "web.acme.account.";
/// Longest sleep before the plan is looked at again.
const MAX_SLEEP: Duration = Duration::from_secs(86_400);

/// What `web.status` shows under `acme`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    pub enabled: bool,
    /// `off`, `waiting` (the certificate is good until `renew_at`),
    /// `ordering`, or `failed` (retried at `next_attempt`).
    pub state: &'static str,
    pub directory: Option<String>,
    pub domains: Vec<String>,
    /// The console serves the CA's certificate (not the self-signed or
    /// `web.cert` one).
    pub serving: bool,
    /// Unix seconds.
    pub not_after: Option<i64>,
    pub renew_at: Option<i64>,
    /// How `renew_at` was chosen: `ARI window START..END` (unix seconds,
    /// the CA's suggestion) or `lifetime (…)` with why ARI is not used.
    pub schedule: Option<String>,
    pub next_attempt: Option<i64>,
    pub last_success: Option<i64>,
    /// Failed orders since the last success.
    pub failures: u32,
    pub last_error: Option<String>,
}

/// `[acme]` and the `web.acme.*` secrets of the current view.
#[derive(Debug, Clone, Default, PartialEq)]
struct Setup {
    cfg: AcmeConfig,
    secrets: BTreeMap<String, String>,
}

pub struct Acme {
    state_dir: PathBuf,
    /// The answers of the order in flight (HTTP-01 tokens, TLS-ALPN-01
    /// certificates).
    pub answers: order::Answers,
    status: Mutex<Status>,
    /// The CA's certificate, once one is held.
    held: Mutex<Option<(plan::Held, CertifiedKey)>>,
    setup: watch::Sender<Setup>,
    force: Notify,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn cert_file(state_dir: &Path) -> PathBuf {
    state_dir.join("tls").join("acme.pem")
}

/// Validity and DNS names of the chain's first certificate.
pub fn held_of(chain: &[CertificateDer<'_>]) -> Result<plan::Held, String> {
    let der = chain.first().ok_or("no certificate in the chain")?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| format!("certificate does not parse: {e}"))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(d) = n {
                names.push(d.to_ascii_lowercase());
            }
        }
    }
    let v = cert.validity();
    let digest = {
        use sha2::{Digest, Sha256};
        Sha256::digest(der.as_ref())
    };
    let mut seed = [0u8; 8];
    seed.copy_from_slice(&digest[..8]);
    Ok(plan::Held {
        not_before: v.not_before.timestamp(),
        not_after: v.not_after.timestamp(),
        names,
        seed: u64::from_be_bytes(seed),
    })
}

/// A chain in PEM with its key in PEM, checked to belong together.
fn certified(chain_pem: &str, key_pem: &str) -> Result<(plan::Held, CertifiedKey), String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("not a PEM certificate chain: {e}"))?;
    let held = held_of(&chain)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| format!("{KEY_SECRET} is not a PEM private key: {e}"))?;
    let ck = CertifiedKey::from_der(chain, key, &tls::provider()).map_err(|e| e.to_string())?;
    ck.keys_match()
        .map_err(|_| format!("{KEY_SECRET} does not belong to the certificate"))?;
    Ok((held, ck))
}

impl Acme {
    pub fn new(state_dir: &Path, cfg: &AcmeConfig, secrets: &BTreeMap<String, String>) -> Acme {
        let acme = Acme {
            state_dir: state_dir.to_path_buf(),
            answers: order::Answers::default(),
            status: Mutex::new(Status::default()),
            held: Mutex::new(None),
            setup: watch::Sender::new(Setup::default()),
            force: Notify::new(),
        };
        acme.configure(cfg, secrets);
        acme
    }

    /// A new `[acme]` or view (start, SIGHUP): loads the stored
    /// certificate if there is none yet and wakes the renewal task.
    pub fn configure(&self, cfg: &AcmeConfig, secrets: &BTreeMap<String, String>) {
        let secrets = secrets
            .iter()
            .filter(|(k, _)| k.starts_with("web.acme."))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if cfg.enabled
            && lock(&self.held).is_none()
            && let Some(key) = secrets_key(&secrets)
            && let Ok(pem) = std::fs::read_to_string(cert_file(&self.state_dir))
        {
            match certified(&pem, key) {
                Ok(h) => *lock(&self.held) = Some(h),
                Err(e) => tracing::warn!(error = %e, "the stored ACME certificate is not usable"),
            }
        }
        self.setup.send_if_modified(|s| {
            let new = Setup {
                cfg: cfg.clone(),
                secrets,
            };
            let changed = *s != new;
            *s = new;
            changed
        });
    }

    /// The CA's certificate to serve: while `[acme]` is on and it covers
    /// the configured names and has not ended.
    pub fn certified(&self) -> Option<CertifiedKey> {
        let setup = self.setup.borrow();
        if !setup.cfg.enabled {
            return None;
        }
        let held = lock(&self.held);
        let (h, ck) = held.as_ref()?;
        (plan::covers(h, &setup.cfg.domains) && h.not_after > unix_now()).then(|| ck.clone())
    }

    pub fn status(&self) -> Status {
        let mut s = lock(&self.status).clone();
        s.serving = self.certified().is_some();
        s
    }

    /// `web.acme_renew`: order now, whatever the schedule says.
    pub fn renew_now(&self) -> Result<(), String> {
        if !self.setup.borrow().cfg.enabled {
            return Err("ACME is off: set acme.enabled = true first".into());
        }
        self.force.notify_one();
        Ok(())
    }

    /// The challenge answer for `token`, while an order waits for it.
    pub fn challenge(&self, token: &str) -> Option<String> {
        lock(&self.answers.tokens).get(token).cloned()
    }

    /// The TLS settings for a ClientHello asking for `acme-tls/1` while a
    /// TLS-ALPN-01 challenge for its name is in flight; `None` otherwise
    /// (the listener's own settings, which never offer `acme-tls/1`).
    pub fn alpn_config(
        &self,
        hello: &rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::ServerConfig>> {
        let ck = challenge::alpn_answer(&self.answers.alpn, hello)?;
        match challenge::alpn_config(ck) {
            Ok(cfg) => Some(Arc::new(cfg)),
            Err(e) => {
                tracing::error!(error = %e, "ACME: cannot answer a TLS-ALPN-01 validation");
                None
            }
        }
    }

    /// Renews for as long as the service runs; installs each new
    /// certificate in `resolver`.
    pub async fn run(self: Arc<Self>, resolver: Arc<tls::Resolver>) {
        let mut rx = self.setup.subscribe();
        let mut failures = plan::Failures::default();
        let mut forced = false;
        let mut key: Option<String> = None;
        let mut accounts: BTreeMap<String, String> = BTreeMap::new();
        let mut last_order_for = None;
        let mut ari = Ari::default();
        loop {
            let setup = rx.borrow_and_update().clone();
            let cfg = &setup.cfg;
            if !cfg.enabled {
                *lock(&self.status) = Status {
                    state: "off",
                    ..Status::default()
                };
                if rx.changed().await.is_err() {
                    return;
                }
                continue;
            }
            // Other names, another CA or another way to answer (a fixed
            // TSIG key): their first order is not delayed by the failures
            // of the previous ones.
            let target = Some((
                cfg.directory.clone(),
                cfg.domains.clone(),
                cfg.challenge,
                cfg.rfc2136.clone(),
                setup
                    .secrets
                    .get(alpharen_store::config::ACME_TSIG_SECRET)
                    .cloned(),
            ));
            if last_order_for != target {
                failures = plan::Failures::default();
                last_order_for = target;
                ari = Ari::default();
            }
            let held = lock(&self.held)
                .as_ref()
                .map(|(h, ck)| (h.clone(), ck.cert.first().cloned()));
            let held = held.filter(|(h, _)| plan::covers(h, &cfg.domains));
            if let Some((h, der)) = &held {
                self.check_ari(&setup, &mut accounts, &mut ari, h, der.as_ref())
                    .await;
            }
            let held = held.map(|(h, _)| h);
            let now = unix_now();
            let step = plan::next_step(
                now,
                held.as_ref(),
                &cfg.domains,
                cfg.renew_before_days,
                ari.window,
                &failures,
                forced,
            );
            self.note(cfg, held.as_ref(), &failures, step, &ari, now);
            match step {
                plan::Step::WaitUntil(at) => {
                    // Wake for the next look at the CA's window too.
                    let at = match (&held, ari.offered) {
                        (Some(_), Some(false)) | (None, _) => at,
                        _ => at.min(ari.next_check),
                    };
                    let wait = Duration::from_secs((at - now).max(1) as u64).min(MAX_SLEEP);
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        r = rx.changed() => if r.is_err() { return },
                        _ = self.force.notified() => forced = true,
                    }
                }
                plan::Step::Order => {
                    forced = false;
                    lock(&self.status).state = "ordering";
                    tracing::info!(directory = %cfg.directory, domains = ?cfg.domains, "ACME: ordering a certificate");
                    let replaces = match (ari.offered, &held) {
                        (Some(true), Some(_)) => ari.id.clone(),
                        _ => None,
                    };
                    match self
                        .order(&setup, &mut key, &mut accounts, &resolver, replaces)
                        .await
                    {
                        Ok(fingerprint) => {
                            failures = plan::Failures::default();
                            lock(&self.status).last_success = Some(unix_now());
                            tracing::info!(%fingerprint, "ACME: certificate installed (SHA-256)");
                        }
                        Err(e) => {
                            failures.count += 1;
                            failures.last_at = unix_now();
                            tracing::error!(error = %e, failures = failures.count,
                                "ACME: order failed; the current certificate keeps serving");
                            // Once per run of failures: the retries are in the log.
                            if failures.count == 1 {
                                let text = alert_text(&cfg.domains, &e);
                                alpharen_rpc::view::alert(&self.state_dir, "web", &text).await;
                            }
                            lock(&self.status).last_error = Some(e);
                        }
                    }
                }
            }
        }
    }

    /// Orders, stores and installs a certificate; answers its fingerprint.
    async fn order(
        &self,
        setup: &Setup,
        key: &mut Option<String>,
        accounts: &mut BTreeMap<String, String>,
        resolver: &tls::Resolver,
        replaces: Option<instant_acme::CertificateIdentifier<'static>>,
    ) -> Result<String, String> {
        let key_pem = match (key.clone(), secrets_key(&setup.secrets)) {
            (Some(k), _) => k,
            (None, Some(k)) => k.to_string(),
            (None, None) => {
                let made = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
                    .map_err(|e| format!("cannot make a key: {e}"))?
                    .serialize_pem();
                alpharen_rpc::view::keep_secret(&self.state_dir, "web", KEY_SECRET, &made)
                    .await
                    .map_err(|e| format!("keeping the certificate key: {e}"))?
            }
        };
        *key = Some(key_pem.clone());
        // Before the CA is asked: a missing or broken TSIG key fails here.
        let txt = match (&setup.cfg.challenge, &setup.cfg.rfc2136) {
            (alpharen_store::config::AcmeChallenge::Dns01, Some(r)) => {
                let secret = setup
                    .secrets
                    .get(alpharen_store::config::ACME_TSIG_SECRET)
                    .map(String::as_str);
                order::TxtTarget::Rfc2136(rfc2136::Updater::new(r, secret)?)
            }
            _ => order::TxtTarget::Dpx,
        };
        let name = order::account_secret(&setup.cfg.directory);
        let mut account = accounts
            .get(&name)
            .or_else(|| setup.secrets.get(&name))
            .cloned();
        let result = order::issue(
            &self.state_dir,
            &setup.cfg,
            &mut account,
            &key_pem,
            &self.answers,
            &txt,
            replaces,
        )
        .await;
        if let Some(a) = account {
            accounts.insert(name, a);
        }
        let chain = result?;
        let (held, ck) = certified(&chain, &key_pem)?;
        let path = cert_file(&self.state_dir);
        tls::write_atomic(&path, chain.as_bytes(), 0o644)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let fingerprint = tls::fingerprint(&ck);
        *lock(&self.held) = Some((held, ck.clone()));
        resolver.set(ck);
        Ok(fingerprint)
    }

    /// Puts the plan's view of things into the status.
    fn note(
        &self,
        cfg: &AcmeConfig,
        held: Option<&plan::Held>,
        failures: &plan::Failures,
        step: plan::Step,
        ari: &Ari,
        now: i64,
    ) {
        let mut s = lock(&self.status);
        s.enabled = true;
        s.directory = Some(cfg.directory.clone());
        s.domains = cfg.domains.clone();
        s.not_after = held.map(|h| h.not_after);
        s.renew_at = held.map(|h| plan::due_at(h, cfg.renew_before_days, ari.window, now));
        s.schedule = held.map(|_| ari.schedule.clone());
        s.failures = failures.count;
        if failures.count == 0 {
            s.last_error = None;
        }
        s.next_attempt = match step {
            plan::Step::WaitUntil(at) => Some(at),
            plan::Step::Order => Some(unix_now()),
        };
        s.state = if failures.count > 0 {
            "failed"
        } else {
            "waiting"
        };
    }
}

/// What the CA said about the held certificate's renewal (RFC 9773).
#[derive(Default)]
struct Ari {
    /// The certificate this is about (its seed).
    seed: Option<u64>,
    id: Option<instant_acme::CertificateIdentifier<'static>>,
    /// `Some(false)`: the directory has no `renewalInfo`; not asked again
    /// until the configuration changes.
    offered: Option<bool>,
    window: Option<plan::Window>,
    /// Unix seconds of the next question.
    next_check: i64,
    /// For `Status::schedule`.
    schedule: String,
}

impl Acme {
    /// Asks the CA for `held`'s renewal window when it is time to; on
    /// no ARI or an error the lifetime schedule applies (logged once per
    /// certificate and reason).
    async fn check_ari(
        &self,
        setup: &Setup,
        accounts: &mut BTreeMap<String, String>,
        ari: &mut Ari,
        held: &plan::Held,
        der: Option<&CertificateDer<'static>>,
    ) {
        if ari.seed != Some(held.seed) {
            *ari = Ari {
                seed: Some(held.seed),
                schedule: "lifetime (the CA's renewal information not asked yet)".into(),
                ..Ari::default()
            };
            match der.map(order::cert_id) {
                Some(Ok(id)) => ari.id = Some(id),
                Some(Err(e)) => {
                    ari.offered = Some(false);
                    ari.schedule = format!("lifetime ({e})");
                    tracing::info!(schedule = %ari.schedule, "ACME: renewal schedule");
                }
                None => ari.offered = Some(false),
            }
        }
        let now = unix_now();
        let Some(id) = ari.id.clone() else { return };
        if ari.offered == Some(false) || ari.next_check > now {
            return;
        }
        let name = order::account_secret(&setup.cfg.directory);
        let mut account = accounts
            .get(&name)
            .or_else(|| setup.secrets.get(&name))
            .cloned();
        let result = order::renewal_window(&self.state_dir, &setup.cfg, &mut account, &id).await;
        if let Some(a) = account {
            accounts.insert(name, a);
        }
        let schedule = match result {
            Ok(Some((w, retry))) => {
                ari.offered = Some(true);
                ari.window = Some(w);
                ari.next_check = plan::ari_recheck(now, retry);
                format!("ARI window {}..{}", w.start, w.end)
            }
            Ok(None) => {
                ari.offered = Some(false);
                ari.window = None;
                "lifetime (CA offers no ARI)".to_string()
            }
            Err(e) => {
                ari.window = None;
                ari.next_check = plan::ari_recheck(now, 0);
                format!("lifetime (ARI check failed: {e})")
            }
        };
        if schedule != ari.schedule {
            tracing::info!(schedule = %schedule, "ACME: renewal schedule");
        }
        ari.schedule = schedule;
    }
}

/// The admin's alert for a failed order: one line of at most 900 bytes.
fn alert_text(domains: &[String], error: &str) -> String {
    let mut text = format!(
        "ACME certificate order for {} failed: {}",
        domains.join(", "),
        error.replace(['\n', '\r'], " ")
    );
    if text.len() > 900 {
        let mut end = 900;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

fn secrets_key(secrets: &BTreeMap<String, String>) -> Option<&str> {
    secrets.get(KEY_SECRET).map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alert_is_one_bounded_line() {
        let t = alert_text(&["a.example".into()], "line one\nline two");
        assert_eq!(
            t,
            "ACME certificate order for a.example failed: line one line two"
        );
        let long = alert_text(&["a.example".into()], &"é".repeat(1000));
        assert!(long.len() <= 900 && !long.contains('\n'));
    }
}
