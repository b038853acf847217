//! `<state>/run/mail.sock`: the `mail.*` control methods, and the task
//! that sends held notification digests when their interval ends.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use alpharen_rpc::{Call, Handler, Reply, RpcError};
use serde::Deserialize;
use serde_json::json;
use tokio::task::JoinHandle;

use crate::notify::Digest;
use crate::spool::{Area, Envelope, Origin, QueueState, SpoolError};
use crate::{Error, Shared, io_err, message, now};

pub fn socket_path(state_dir: &Path) -> PathBuf {
    alpharen_rpc::service_socket(state_dir, "mail")
}

pub async fn start(shared: Arc<Shared>) -> Result<JoinHandle<()>, Error> {
    let dir = shared.state_dir.clone();
    alpharen_rpc::spawn_service(&dir, "mail", Control(shared)).map_err(io_err("control socket"))
}

struct Control(Arc<Shared>);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IdParam {
    id: String,
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct QueueParams {
    dead: bool,
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct TestParams {
    to: Vec<String>,
}

/// A relay to test instead of the configured one (the console tests its
/// form before saving it); a password given here is used once, not kept.
#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct RelayTestParams {
    relay: Option<alpharen_store::config::Relay>,
    password: Option<String>,
}

/// Longer than a working smarthost needs; a host that drops packets
/// would otherwise keep the caller for lettre's 60 s per command.
const RELAY_TEST_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NotifyParams {
    subject: String,
    #[serde(default)]
    body: String,
}

fn rpc(e: Error) -> RpcError {
    match e {
        Error::Spool(SpoolError::NotFound(id)) => RpcError::new(
            "not_found",
            format!("no message {id:?} (see `ctl mail queue`)"),
        ),
        Error::Spool(SpoolError::BadId(id)) => {
            RpcError::invalid_params(format!("{id:?} is not a message id"))
        }
        other => RpcError::new("mail_error", other.to_string()),
    }
}

impl Handler for Control {
    async fn call(&self, call: Call) -> Result<Reply, RpcError> {
        let sh = &self.0;
        match call.method.as_str() {
            "mail.status" => {
                let s = sh.settings();
                let q = sh
                    .spool_op(|sp| sp.ids(Area::Queue))
                    .await
                    .map_err(rpc)?
                    .len();
                let d = sh
                    .spool_op(|sp| sp.ids(Area::Dead))
                    .await
                    .map_err(rpc)?
                    .len();
                Ok(json!({
                    "listen": format!("127.0.0.1:{}", s.port),
                    "relay": s.mail.relay.as_ref().map(|r| json!({"mode": r.mode, "host": r.host, "port": r.port, "tls": r.tls})),
                    "relay_usable": sh.relay().is_some(),
                    "queued": q,
                    "dead": d,
                    "sessions": sh.sessions.load(Ordering::SeqCst),
                })
                .into())
            }
            "mail.queue" => {
                let p: QueueParams = call.params()?;
                let area = if p.dead { Area::Dead } else { Area::Queue };
                let list = sh.spool_op(move |sp| sp.list(area)).await.map_err(rpc)?;
                Ok(json!({ "messages": list }).into())
            }
            "mail.flush" => {
                let n = sh
                    .spool_op(|sp| sp.ids(Area::Queue))
                    .await
                    .map_err(rpc)?
                    .len();
                sh.force.store(true, Ordering::SeqCst);
                sh.wake.notify_one();
                Ok(json!({ "queued": n, "relay_usable": sh.relay().is_some() }).into())
            }
            // Sent by `sendmail` after it spooled a message: look now.
            "mail.kick" => {
                sh.wake.notify_one();
                Ok(json!({}).into())
            }
            "mail.delete" => {
                let p: IdParam = call.params()?;
                let id = p.id.clone();
                let r = sh
                    .spool_op(move |sp| match sp.remove(Area::Queue, &id) {
                        Err(SpoolError::NotFound(_)) => sp.remove(Area::Dead, &id),
                        other => other,
                    })
                    .await
                    .map_err(rpc);
                r?;
                tracing::info!(id = %p.id, "message deleted by admin");
                Ok(json!({ "deleted": p.id }).into())
            }
            "mail.retry" => {
                let p: IdParam = call.params()?;
                let id = p.id.clone();
                sh.spool_op(move |sp| {
                    let fresh = QueueState::default();
                    match sp.move_to(Area::Dead, Area::Queue, &id, &fresh) {
                        Err(SpoolError::NotFound(_)) => {
                            sp.load(Area::Queue, &id)?;
                            let mut st = sp.state(Area::Queue, &id)?;
                            st.next_try = 0;
                            sp.set_state(Area::Queue, &id, &st)
                        }
                        other => other,
                    }
                })
                .await
                .map_err(rpc)?;
                sh.wake.notify_one();
                Ok(json!({ "retrying": p.id }).into())
            }
            "mail.test" => {
                let p: TestParams = call.params()?;
                let s = sh.settings();
                let to = if p.to.is_empty() {
                    s.mail.admin_recipients.clone()
                } else {
                    p.to
                };
                if to.is_empty() {
                    return Err(RpcError::new(
                        "no_recipients",
                        "no recipient given and mail.admin_recipients is empty",
                    ));
                }
                if let Some(bad) = to
                    .iter()
                    .find(|a| !alpharen_store::config::is_mail_address(a))
                {
                    return Err(RpcError::invalid_params(format!(
                        "{bad:?} is not a mail address"
                    )));
                }
                let body = format!(
                    "This is a test message from the ALPHA-REN node {}.\nIf you read this, mail from the node reaches you.\n",
                    s.hostname
                );
                let id = queue_node_mail(sh, &to, &format!("[{}] test message", s.hostname), &body)
                    .await
                    .map_err(rpc)?;
                Ok(json!({ "id": id, "to": to }).into())
            }
            "mail.relay_test" => Ok(relay_test(sh, call.params()?).await?.into()),
            "mail.notify" => {
                let p: NotifyParams = call.params()?;
                if p.subject.trim().is_empty() {
                    return Err(RpcError::invalid_params(
                        "mail.notify: subject must not be empty",
                    ));
                }
                let digest = match sh.notifier.lock() {
                    Ok(mut n) => n.offer(now(), &p.subject, &p.body),
                    Err(_) => {
                        return Err(RpcError::new("internal_error", "notifier state poisoned"));
                    }
                };
                sh.notify_wake.notify_one();
                match digest {
                    Some(d) => {
                        let id = send_digest(sh, d).await.map_err(rpc)?;
                        Ok(json!({ "sent": id.is_some(), "id": id, "held": false }).into())
                    }
                    None => Ok(json!({ "sent": false, "id": null, "held": true }).into()),
                }
            }
            other => Err(RpcError::new(
                "method_not_found",
                format!(
                    "unknown method {other:?}; mail.* methods: status, queue, flush, delete, retry, test, notify"
                ),
            )),
        }
    }
}

/// Spools a plain text mail from the node to `to`.
pub async fn queue_node_mail(
    sh: &Arc<Shared>,
    to: &[String],
    subject: &str,
    body: &str,
) -> Result<String, Error> {
    let s = sh.settings();
    let t = now();
    let text = message::compose(&s.node_from, to, subject, body, &s.hostname, t);
    let env = Envelope {
        from: s.node_from.clone(),
        to: to.to_vec(),
        received: t,
        origin: Origin::Node,
    };
    let id = sh.spool_op(move |sp| sp.enqueue(&env, &text)).await?;
    sh.wake.notify_one();
    Ok(id)
}

/// Mails a digest to the admins; `None` when there are no admins to tell.
async fn send_digest(sh: &Arc<Shared>, d: Digest) -> Result<Option<String>, Error> {
    let s = sh.settings();
    if s.mail.admin_recipients.is_empty() {
        tracing::warn!(subject = %d.subject, "notification not mailed: mail.admin_recipients is empty");
        return Ok(None);
    }
    let subject = format!("[{}] {}", s.hostname, d.subject);
    queue_node_mail(sh, &s.mail.admin_recipients, &subject, &d.body)
        .await
        .map(Some)
}

/// Sends held digests when their interval ends.
pub async fn notify_flusher(sh: Arc<Shared>) {
    loop {
        let due = sh.notifier.lock().ok().and_then(|n| n.next_due());
        let wait = match due {
            Some(t) => (t - now()).clamp(0, 3600) as u64,
            None => 3600,
        };
        tokio::select! {
            _ = sh.notify_wake.notified() => continue,
            _ = tokio::time::sleep(Duration::from_secs(wait)) => {}
        }
        let digest = sh.notifier.lock().ok().and_then(|mut n| n.due(now()));
        if let Some(d) = digest
            && let Err(e) = send_digest(&sh, d).await
        {
            tracing::error!(error = %e, "cannot queue a notification digest");
        }
    }
}

/// Connects to the smarthost (the configured one, or the one in `p`) the
/// way deliveries do and reports what happened.
async fn relay_test(sh: &Shared, p: RelayTestParams) -> Result<serde_json::Value, RpcError> {
    let mut s = (*sh.settings()).clone();
    if let Some(r) = p.relay {
        s.mail.relay = Some(r);
    }
    if let Some(pw) = p.password.filter(|pw| !pw.is_empty()) {
        s.relay_password = Some(pw);
    }
    let Some(r) = s.mail.relay.clone() else {
        return Err(RpcError::new(
            "no_relay",
            "no relay to test: mail.relay is not set",
        ));
    };
    let relay = crate::deliver::Relay::build(&s)
        .map_err(|e| RpcError::invalid_params(e.to_string()))?
        .ok_or_else(|| RpcError::new("no_relay", "no relay to test"))?;
    let started = std::time::Instant::now();
    let result = match tokio::time::timeout(RELAY_TEST_TIMEOUT, relay.test()).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            return Err(RpcError::new(
                "no_relay",
                "mail.relay.mode is direct: mail goes to each domain's own mail servers, so there is no smarthost to test",
            ));
        }
        Err(_) => Err(format!(
            "no answer within {} s",
            RELAY_TEST_TIMEOUT.as_secs()
        )),
    };
    Ok(json!({
        "ok": result.is_ok(),
        "error": result.err(),
        "host": r.host,
        "port": r.port,
        "tls": r.tls,
        "auth": r.username.is_some(),
        "millis": started.elapsed().as_millis() as u64,
    }))
}
