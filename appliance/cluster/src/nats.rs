//! nats-server as this service's child, and this member's heartbeat.
//! The child is restarted after it exits (1 s doubling to 30 s) and dies
//! with the service (PR_SET_PDEATHSIG); its log lines join the service's.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alpharen_store::View;
use async_nats::jetstream;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::task::JoinHandle;

use crate::members::{self, Heartbeat, Lb};
use crate::{Error, Node, conf, io_err, secret};

/// What nats-server should run with: its files, by name, with their text
/// and mode.
#[derive(Debug, Clone, PartialEq)]
pub struct Wanted {
    pub files: Vec<(String, String, u32)>,
    pub client_port: u16,
    pub password: String,
    pub heartbeat: Heartbeat,
}

/// What the control socket reports and the heartbeat uses.
#[derive(Default)]
pub struct Shared {
    inner: Mutex<SharedInner>,
}

#[derive(Default, Clone)]
pub struct SharedInner {
    pub state: String,
    pub pid: Option<u32>,
    pub js: Option<jetstream::Context>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, SharedInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
    pub fn get(&self) -> SharedInner {
        self.lock().clone()
    }
    pub fn set_state(&self, s: String) {
        self.lock().state = s;
    }
    pub fn clear(&self) {
        *self.lock() = SharedInner {
            state: "not in a cluster".into(),
            ..SharedInner::default()
        };
    }
    fn set_pid(&self, pid: Option<u32>) {
        self.lock().pid = pid;
    }
    fn set_js(&self, js: jetstream::Context) {
        self.lock().js = Some(js);
    }
}

pub struct Running {
    wanted: Wanted,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    pub fn heartbeat(&self) -> &Heartbeat {
        &self.wanted.heartbeat
    }

    pub fn same(&self, w: &Wanted) -> bool {
        self.wanted.files == w.files && self.wanted.client_port == w.client_port
    }

    /// Whether `w` differs from what runs only in nats.conf's routes,
    /// which nats-server takes on SIGHUP: a member admitted here adds its
    /// route, and restarting this member's server for that would stall
    /// the streams it leads until the others elect new leaders.
    pub fn routes_only(&self, w: &Wanted) -> bool {
        self.wanted.client_port == w.client_port
            && self.wanted.files.len() == w.files.len()
            && self.wanted.files.iter().zip(&w.files).all(|(a, b)| {
                a == b || (a.0 == "nats.conf" && b.0 == a.0 && conf::routes_only_change(&a.1, &b.1))
            })
    }

    /// Writes `w`'s nats.conf and has the running server read it again.
    pub fn reload(&mut self, node: &Node, w: Wanted) -> Result<(), Error> {
        let dir = node.dir();
        for (name, text, mode) in w.files.iter().filter(|f| f.0 == "nats.conf") {
            write_file(&dir, name, text, *mode)?;
        }
        let pid = node.nats.get().pid.ok_or_else(|| {
            Error::Join("nats-server is not running; it reads the new routes when it starts".into())
        })?;
        let pid = nix::unistd::Pid::from_raw(
            i32::try_from(pid).map_err(|_| Error::Join(format!("pid {pid}")))?,
        );
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP)
            .map_err(|e| Error::Join(format!("SIGHUP to nats-server: {e}")))?;
        self.wanted = w;
        Ok(())
    }

    /// Stops the heartbeat and the server (the child is killed with its
    /// keeper task) and waits until its ports are free.
    pub async fn stop(self) {
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

fn need<'a>(view: &'a View, name: &str) -> Result<&'a str, Error> {
    view.secret(name).ok_or_else(|| {
        Error::Join(format!(
            "secret {name} is missing: run `ctl cluster leave`, then init or join again"
        ))
    })
}

/// nats-server's files for the view, or `None` outside a cluster.
pub fn desired(node: &Node, view: &View) -> Result<Option<Wanted>, Error> {
    let c = &view.config.cluster;
    if !c.enabled() {
        return Ok(None);
    }
    let dir = node.dir();
    let advertise = node.advertise(view);
    let password = need(view, secret::CLIENT_PASSWORD)?.to_string();
    let links = crate::linkctl::Wanted::of(view, node.dev)?;
    let remotes = links.remotes();
    let text = conf::render(&conf::Settings {
        server_name: &view.config.node.hostname,
        cluster: &c.name,
        dir: &dir,
        client_port: c.client_port,
        monitor_port: c.monitor_port,
        route_port: c.route_port,
        route_bind: if node.dev { "127.0.0.1" } else { "0.0.0.0" },
        advertise: advertise.as_deref(),
        seeds: &c.seeds,
        client_password: &password,
        listen: links.listen(),
        remotes: &remotes,
    });
    let route = advertise
        .as_deref()
        .map(|a| conf::host_port(a, c.route_port))
        .unwrap_or_default();
    let mut files = vec![
        (
            "ca.pem".into(),
            need(view, secret::CA_CERT)?.to_string(),
            0o644,
        ),
        (
            "node.pem".into(),
            need(view, secret::NODE_CERT)?.to_string(),
            0o644,
        ),
        (
            "node.key".into(),
            need(view, secret::NODE_KEY)?.to_string(),
            0o600,
        ),
    ];
    files.extend(links.files);
    files.push(("nats.conf".into(), text, 0o600));
    Ok(Some(Wanted {
        files,
        client_port: c.client_port,
        password,
        heartbeat: Heartbeat {
            node: view.config.node.hostname.clone(),
            route,
            version: env!("CARGO_PKG_VERSION").to_string(),
            rss_kib: 0,
            at_ms: 0,
            lb: None,
            draining: false,
        },
    }))
}

fn write_file(dir: &Path, name: &str, text: &str, mode: u32) -> Result<(), Error> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let what = || format!("write {}", path.display());
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io_err(what()))?;
    f.write_all(text.as_bytes()).map_err(io_err(what()))?;
    f.sync_all().map_err(io_err(what()))?;
    std::fs::rename(&tmp, &path).map_err(io_err(what()))
}

/// Writes the files and starts the keeper of nats-server and the
/// heartbeat.
pub fn start(node: &Arc<Node>, wanted: Wanted) -> Result<Running, Error> {
    let dir = node.dir();
    std::fs::create_dir_all(&dir).map_err(io_err(format!("create {}", dir.display())))?;
    for (name, text, mode) in &wanted.files {
        write_file(&dir, name, text, *mode)?;
    }
    let conf = dir.join("nats.conf");
    let keeper = tokio::spawn(keep(node.clone(), conf));
    let beat = tokio::spawn(heartbeat(node.clone(), wanted.clone()));
    Ok(Running {
        wanted,
        tasks: vec![beat, keeper],
    })
}

/// The nats-server program: `ALPHAREN_NATS_SERVER`, else a local
/// administrator's (where scripts/deps.sh puts a build machine's, newer
/// than Debian 12's), else the image's.
fn program() -> PathBuf {
    if let Some(p) = std::env::var_os("ALPHAREN_NATS_SERVER") {
        return PathBuf::from(p);
    }
    [
        "/usr/local/sbin/nats-server",
        "/usr/sbin/nats-server",
        "/usr/bin/nats-server",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .unwrap_or_else(|| PathBuf::from("nats-server"))
}

async fn keep(node: Arc<Node>, conf: PathBuf) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let started = tokio::time::Instant::now();
        let mut cmd = tokio::process::Command::new(program());
        cmd.arg("-c")
            .arg(&conf)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        // SAFETY: only async-signal-safe prctl between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                    .map_err(std::io::Error::from)
            });
        }
        match cmd.spawn() {
            Ok(mut child) => {
                node.nats.set_pid(child.id());
                node.nats.set_state("running".into());
                tracing::info!(pid = child.id(), "nats-server started");
                if let Some(out) = child.stderr.take() {
                    tokio::spawn(forward(BufReader::new(out)));
                }
                if let Some(out) = child.stdout.take() {
                    tokio::spawn(forward(BufReader::new(out)));
                }
                let status = child.wait().await;
                node.nats.set_pid(None);
                let what = match status {
                    Ok(s) => format!("exited ({s})"),
                    Err(e) => format!("lost ({e})"),
                };
                tracing::warn!("nats-server {what}; restarting in {} s", backoff.as_secs());
                node.nats.set_state(format!("{what}, restarting"));
            }
            Err(e) => {
                tracing::error!(error = %e, program = %program().display(), "cannot start nats-server");
                node.nats
                    .set_state(format!("cannot start {}: {e}", program().display()));
            }
        }
        if started.elapsed() >= Duration::from_secs(60) {
            backoff = Duration::from_secs(1);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

async fn forward<R: tokio::io::AsyncRead + Unpin>(r: BufReader<R>) {
    let mut lines = r.lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.contains("[ERR]") || line.contains("[FTL]") || line.contains("[WRN]") {
            tracing::warn!(target: "nats", "{line}");
        } else {
            tracing::info!(target: "nats", "{line}");
        }
    }
}

/// Resident memory of this process and nats-server, KiB.
fn rss_kib(pid: Option<u32>) -> u64 {
    let of = |path: String| {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .unwrap_or(0)
    };
    of("/proc/self/status".into()) + pid.map_or(0, |p| of(format!("/proc/{p}/status")))
}

/// A KV bucket of one value per key, made as a KV stream directly:
/// async-nats's `create_key_value` first asks for account limits in a
/// shape that nats-server 2.9 (Debian 12's, still on members updated
/// from an older firmware) does not answer with.
/// An append-only log stream (every record kept, none deleted) for
/// `subject`, made if it is missing with one replica until the heartbeat
/// raises it with the buckets.
pub(crate) async fn log_stream(
    js: &jetstream::Context,
    name: &str,
    subject: String,
) -> Result<jetstream::stream::Stream, String> {
    js.get_or_create_stream(jetstream::stream::Config {
        name: name.into(),
        subjects: vec![subject],
        deny_delete: true,
        num_replicas: 1,
        ..Default::default()
    })
    .await
    .map_err(|e| e.to_string())
}

/// `max_age_secs` 0 keeps values until replaced.
pub(crate) async fn bucket(
    js: &jetstream::Context,
    name: &str,
    max_age_secs: u64,
) -> Result<jetstream::kv::Store, String> {
    if let Ok(kv) = js.get_key_value(name).await {
        return Ok(kv);
    }
    js.get_or_create_stream(jetstream::stream::Config {
        name: format!("KV_{name}"),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: 1,
        max_age: Duration::from_secs(max_age_secs),
        discard: jetstream::stream::DiscardPolicy::New,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        num_replicas: 1,
        ..Default::default()
    })
    .await
    .map_err(|e| e.to_string())?;
    js.get_key_value(name).await.map_err(|e| e.to_string())
}

/// Connects as the node's client user and puts a heartbeat every
/// [`members::INTERVAL`]; reconnects until aborted.
async fn heartbeat(node: Arc<Node>, w: Wanted) {
    let url = format!("127.0.0.1:{}", w.client_port);
    let mut last_error = String::new();
    loop {
        let client = async_nats::ConnectOptions::with_user_and_password(
            conf::CLIENT_USER.into(),
            w.password.clone(),
        )
        .connection_timeout(Duration::from_secs(3))
        .connect(&url)
        .await;
        let client = match client {
            Ok(c) => c,
            Err(e) => {
                note(
                    &mut last_error,
                    format!("cannot reach nats-server at {url}: {e}"),
                );
                tokio::time::sleep(members::INTERVAL).await;
                continue;
            }
        };
        let js = jetstream::new(client);
        let kv = match bucket(&js, members::BUCKET, 24 * 3600).await {
            Ok(kv) => kv,
            Err(e) => {
                note(&mut last_error, format!("JetStream is not ready: {e}"));
                tokio::time::sleep(members::INTERVAL).await;
                continue;
            }
        };
        node.nats.set_js(js.clone());
        tracing::info!(bucket = members::BUCKET, "membership heartbeat running");
        last_error.clear();
        let mut n: u64 = 0;
        loop {
            if let Err(e) = put_beat(&node, &kv, &w.heartbeat).await {
                note(&mut last_error, e);
            }
            if n.is_multiple_of(5) {
                grow_replicas(&js).await;
            }
            n += 1;
            tokio::time::sleep(members::INTERVAL).await;
        }
    }
}

/// Puts this member's heartbeat now: the time, RSS, load balancer and
/// whether it drains as they are at this moment.
pub(crate) async fn put_beat(
    node: &Node,
    kv: &jetstream::kv::Store,
    base: &Heartbeat,
) -> Result<(), String> {
    let mut beat = base.clone();
    beat.at_ms = members::now_ms();
    beat.rss_kib = rss_kib(node.nats.get().pid);
    beat.draining = node.draining();
    beat.lb = match lb_of(node, &node.view()) {
        Ok(lb) => Some(lb),
        Err(e) => {
            tracing::debug!("no load balancer in the heartbeat: {e}");
            None
        }
    };
    let body = serde_json::to_vec(&beat).unwrap_or_default();
    kv.put(&beat.node, body.into())
        .await
        .map(|_| ())
        .map_err(|e| format!("heartbeat not stored: {e}"))
}

/// This member's :11223 as the others reach it: the advertised address,
/// `integrator.port`, and with TLS the fingerprint of the certificate
/// it serves (read at every beat, so a renewed certificate is followed).
fn lb_of(node: &Node, view: &View) -> Result<Lb, String> {
    use alpharen_store::config::{IntegratorTls, TlsMode};
    let host = node.advertise(view).ok_or("no advertised address")?;
    let i = &view.config.integrator;
    let addr = conf::host_port(&host, i.port);
    let cert = match &i.tls {
        IntegratorTls::Mode(TlsMode::Off) => {
            return Ok(Lb {
                url: format!("http://{addr}"),
                cert_sha256: None,
            });
        }
        IntegratorTls::Mode(TlsMode::Node) => node.state_dir.join("tls").join("cert.pem"),
        IntegratorTls::Files(f) => PathBuf::from(&f.cert),
    };
    let pem = std::fs::read_to_string(&cert).map_err(|e| format!("{}: {e}", cert.display()))?;
    let fp = crate::pki::fingerprint(&pem).map_err(|e| format!("{}: {e}", cert.display()))?;
    Ok(Lb {
        url: format!("https://{addr}"),
        cert_sha256: Some(fp.iter().map(|b| format!("{b:02x}")).collect()),
    })
}

/// Logs a problem once, not at every retry.
fn note(last: &mut String, message: String) {
    if *last != message {
        tracing::warn!("{message}");
        *last = message;
    }
}

/// Raises the cluster's buckets to three replicas once three members are
/// up (JetStream cannot place more replicas than servers).
async fn grow_replicas(js: &jetstream::Context) {
    let up = match crate::control::member_list(js).await {
        Ok(m) => m.iter().filter(|m| m.state == "up").count(),
        Err(_) => return,
    };
    let want = members::replicas(up);
    for bucket in [
        members::BUCKET,
        crate::kv::BUCKET,
        crate::kv::CLAIMS,
        crate::lease::BUCKET,
        crate::lease::STATE,
        crate::locks::BUCKET,
    ] {
        grow(js, &format!("KV_{bucket}"), want).await;
    }
    grow(js, crate::deploys::STREAM, want).await;
    for stream in [crate::pubsub::QUEUES, crate::pubsub::DLQ] {
        grow(js, stream, want).await;
    }
    grow(js, crate::configlog::STREAM, want).await;
    // The link outbox too: an R1 outbox on a member that is down would
    // keep every member's cross-cluster publishes until it returns.
    grow(js, crate::bridge::OUTBOX, want).await;
    grow(js, crate::packages::STREAM, want).await;
    grow(js, &format!("OBJ_{}", crate::packages::WHEELS), want).await;
}

async fn grow(js: &jetstream::Context, name: &str, want: usize) {
    let Ok(mut stream) = js.get_stream(name).await else {
        return;
    };
    let Ok(info) = stream.info().await else {
        return;
    };
    if info.config.num_replicas >= want {
        return;
    }
    let mut config = info.config.clone();
    config.num_replicas = want;
    match js.update_stream(config).await {
        Ok(_) => tracing::info!(stream = name, replicas = want, "bucket replicated"),
        Err(e) => tracing::warn!(stream = name, error = %e, "cannot raise the bucket's replicas"),
    }
}
