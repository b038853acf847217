//! logfwd: remote syslog. It follows the supervisor's log stream over the
//! control socket (`logs.read` with `follow`, every service and the
//! supervisor's own events: the same stream `ctl logs --follow` shows)
//! and sends each line as RFC 5424 to the collectors in `[syslog]`: UDP
//! datagrams, or octet-counted over TCP or TLS with an on-disk queue
//! (`buffer`) while a collector is down. The supervisor's event lines
//! also become SNMP traps (v2c, or v3 with USM: `usm`) to the managers in `[snmp]` (`trap`), and so
//! do other hosts' syslog lines that match a rule of `[syslog.receiver]`
//! (`receive`).
//!
//! It reads no other service's files and opens only its own database,
//! `<state>/logfwd.db`; the lines come from the supervisor alone.

mod ber;
mod buffer;
mod control;
mod deliver;
mod format;
mod receive;
mod trap;
mod usm;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alpharen_rpc::logs::{self, Logs};
use alpharen_store::View;
use alpharen_store::config::{
    Collector, SNMP_COMMUNITY_SECRET, Snmp, SnmpVersion, Syslog, Transport, v3_auth_secret,
    v3_priv_secret,
};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::buffer::Buffer;
use crate::deliver::{SharedStats, Udp, update};
use crate::format::LogLine;

/// Lines of backlog asked for when (re)joining the stream: those newer
/// than the last one taken in are sent, so a restart of this service or
/// of the supervisor's stream leaves no gap the supervisor still holds.
const BACKLOG: usize = 2000;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("from the supervisor: {0}")]
    Rpc(#[from] alpharen_rpc::RpcError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the syslog buffer (logfwd.db): {0}")]
    Buffer(String),
}

/// Where each line goes.
enum Output {
    Udp {
        facility: u8,
        udp: Udp,
    },
    Stream {
        facility: u8,
        key: String,
        collector: Collector,
        wake: Arc<Notify>,
        stats: SharedStats,
        task: JoinHandle<()>,
    },
}

#[derive(Default)]
struct Outputs {
    hostname: String,
    buffer_mb: u32,
    list: Vec<Output>,
}

pub(crate) struct Node {
    state_dir: PathBuf,
    buffer: Arc<Mutex<Buffer>>,
    outputs: tokio::sync::Mutex<Outputs>,
    traps: Arc<tokio::sync::Mutex<trap::Traps>>,
    receiver: tokio::sync::Mutex<receive::Receiver>,
    /// Events older than this service are not trapped again (the backlog
    /// it forwards on start holds the node's earlier ones).
    started_ms: i64,
}

fn limit_bytes(mb: u32) -> u64 {
    u64::from(mb) << 20
}

impl Node {
    /// Brings the outputs in line with `[syslog]`; a stream collector
    /// whose settings did not change keeps its connection.
    async fn apply(&self, hostname: String, syslog: &Syslog) -> Result<(), Error> {
        let mut outs = self.outputs.lock().await;
        let mut old: HashMap<String, Output> = outs
            .list
            .drain(..)
            .map(|o| match &o {
                Output::Stream { key, .. } => (key.clone(), o),
                Output::Udp { udp, .. } => (udp.key(), o),
            })
            .collect();
        let mut keys = Vec::new();
        for c in &syslog.collectors {
            let facility = c.facility.code();
            let key = deliver::key(c);
            if c.transport == Transport::Udp {
                // Its counts outlive a reload.
                let stats = match old.remove(&key) {
                    Some(Output::Udp { udp, .. }) => udp.stats,
                    _ => SharedStats::default(),
                };
                update(&stats, |s| s.collector = key.clone());
                outs.list.push(Output::Udp {
                    facility,
                    udp: Udp::new(c.clone(), stats),
                });
                continue;
            }
            keys.push(key.clone());
            match old.remove(&key) {
                Some(Output::Stream {
                    collector,
                    wake,
                    stats,
                    task,
                    ..
                }) if collector == *c => outs.list.push(Output::Stream {
                    facility,
                    key,
                    collector,
                    wake,
                    stats,
                    task,
                }),
                previous => {
                    let stats = match previous {
                        Some(Output::Stream { stats, task, .. }) => {
                            task.abort();
                            stats
                        }
                        _ => SharedStats::default(),
                    };
                    update(&stats, |s| {
                        s.collector = key.clone();
                        s.state = "connecting";
                    });
                    let wake = Arc::new(Notify::new());
                    let task = tokio::spawn(deliver::stream_collector(
                        c.clone(),
                        self.buffer.clone(),
                        wake.clone(),
                        stats.clone(),
                    ));
                    // Lines queued before a restart go out now.
                    wake.notify_one();
                    outs.list.push(Output::Stream {
                        facility,
                        key,
                        collector: c.clone(),
                        wake,
                        stats,
                        task,
                    });
                }
            }
        }
        for (_, o) in old {
            if let Output::Stream { task, .. } = o {
                task.abort();
            }
        }
        {
            let mut b = self.buffer.lock().unwrap_or_else(|p| p.into_inner());
            b.set_limit(limit_bytes(syslog.buffer_mb));
            b.retain(&keys)?;
        }
        outs.hostname = hostname;
        outs.buffer_mb = syslog.buffer_mb;
        tracing::info!(
            collectors = syslog.collectors.len(),
            "syslog forwarding configured"
        );
        Ok(())
    }

    /// Sends one line to every collector: a datagram now, or into the
    /// queue of each stream collector.
    async fn forward(&self, line: &LogLine) {
        if line.at >= self.started_ms
            && let Some(ev) = trap::classify(line)
        {
            self.traps.lock().await.send(&ev).await;
        }
        let mut outs = self.outputs.lock().await;
        if outs.list.is_empty() {
            return;
        }
        let hostname = outs.hostname.clone();
        let buffer_mb = outs.buffer_mb;
        let mut frames = Vec::new();
        for o in outs.list.iter_mut() {
            match o {
                Output::Udp { facility, udp } => {
                    udp.send(&format::message(*facility, &hostname, line)).await;
                }
                Output::Stream { facility, key, .. } => {
                    let msg = format::message(*facility, &hostname, line);
                    frames.push((key.as_str(), format::octet_frame(&msg)));
                }
            }
        }
        let pushed = self
            .buffer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(&frames, line.at);
        match pushed {
            Ok(dropped) => {
                for (k, n) in dropped {
                    let Some(stats) = outs.list.iter().find_map(|o| match o {
                        Output::Stream { key, stats, .. } if *key == k => Some(stats),
                        _ => None,
                    }) else {
                        continue;
                    };
                    if deliver::note_dropped(stats, n) {
                        tracing::warn!(collector = %k, buffer_mb, "syslog buffer full; dropping its oldest lines until the collector takes them again");
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot queue a log line for syslog"),
        }
        for o in &outs.list {
            if let Output::Stream { wake, .. } = o {
                wake.notify_one();
            }
        }
    }
}

/// What this service reads of its view.
struct Settings {
    hostname: String,
    syslog: Syslog,
    snmp: Snmp,
    community: Option<String>,
    v3: HashMap<String, trap::V3Secrets>,
}

async fn load(state_dir: &Path) -> Result<Settings, Error> {
    let view: View = alpharen_rpc::view::view(state_dir, "logfwd").await?;
    let v3 = view
        .config
        .snmp
        .trap_targets
        .iter()
        .filter(|t| t.version == SnmpVersion::V3)
        .filter_map(|t| t.user.clone())
        .map(|u| {
            let secrets = trap::V3Secrets {
                auth: view.secret(&v3_auth_secret(&u)).map(str::to_string),
                privacy: view.secret(&v3_priv_secret(&u)).map(str::to_string),
            };
            (u, secrets)
        })
        .collect();
    Ok(Settings {
        v3,
        community: view.secret(SNMP_COMMUNITY_SECRET).map(str::to_string),
        hostname: view.config.node.hostname,
        syslog: view.config.syslog,
        snmp: view.config.snmp,
    })
}

impl Node {
    async fn apply_all(&self, s: Settings) -> Result<(), Error> {
        self.traps
            .lock()
            .await
            .configure(&s.snmp, s.community, &s.v3, &s.hostname);
        self.receiver.lock().await.apply(&s.syslog.receiver).await;
        self.apply(s.hostname, &s.syslog).await
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Follows the supervisor's log stream for as long as the service runs,
/// joining it again when it ends (a supervisor restart).
async fn follow(node: Arc<Node>, mut last_at: i64) {
    let socket = alpharen_rpc::control_socket(&node.state_dir);
    let params = alpharen_rpc::to_params(&Logs {
        service: None,
        lines: BACKLOG,
        follow: true,
    });
    let mut failures = 0u32;
    loop {
        match alpharen_rpc::call_stream(
            &socket,
            logs::READ,
            params.clone(),
            Duration::from_secs(30),
        )
        .await
        {
            Ok((first, mut stream)) => {
                failures = 0;
                let backlog: Vec<LogLine> = serde_json::from_value(first).unwrap_or_default();
                let seen = last_at;
                for line in backlog.iter().filter(|l| l.at > seen) {
                    node.forward(line).await;
                    last_at = last_at.max(line.at);
                }
                while let Some(v) = stream.next().await {
                    let mut line: LogLine = match serde_json::from_value(v) {
                        Ok(l) => l,
                        Err(_) => continue,
                    };
                    if line.at == 0 {
                        line.at = now_ms();
                    }
                    node.forward(&line).await;
                    last_at = last_at.max(line.at);
                }
                tracing::warn!("the supervisor's log stream ended; joining it again");
            }
            Err(e) => {
                failures += 1;
                if failures == 1 {
                    tracing::warn!(error = %e, "cannot follow the supervisor's log stream; retrying");
                }
            }
        }
        tokio::time::sleep(deliver::backoff(failures.max(1))).await;
    }
}

/// `alpharen serve logfwd`.
pub fn serve(state_dir: &Path, dev: bool) -> Result<(), Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(state_dir.to_path_buf(), dev))
}

async fn run(state_dir: PathBuf, dev: bool) -> Result<(), Error> {
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    let settings = load(&state_dir).await?;
    let buffer = Buffer::open(&state_dir, limit_bytes(settings.syslog.buffer_mb))?;
    let last_at = buffer.last_at()?;
    let traps = Arc::new(tokio::sync::Mutex::new(trap::Traps::new(
        buffer.next_engine_boots()?,
    )));
    let node = Arc::new(Node {
        state_dir: state_dir.clone(),
        buffer: Arc::new(Mutex::new(buffer)),
        outputs: tokio::sync::Mutex::new(Outputs::default()),
        receiver: tokio::sync::Mutex::new(receive::Receiver::new(traps.clone(), dev)),
        traps,
        started_ms: now_ms(),
    });
    node.apply_all(settings).await?;
    alpharen_rpc::spawn_service(&state_dir, "logfwd", control::Rpc { node: node.clone() })?;
    tokio::spawn(follow(node.clone(), last_at));
    tracing::info!(dev, "logfwd service started");
    alpharen_rpc::view::ready(&state_dir, "logfwd").await;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading the syslog and snmp sections");
                match load(&state_dir).await {
                    Ok(settings) => {
                        if let Err(e) = node.apply_all(settings).await {
                            tracing::error!(error = %e, "syslog configuration not applied");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot reload config; keeping the current one"),
                }
            }
        }
    }
    tracing::info!("logfwd service stopped");
    Ok(())
}
