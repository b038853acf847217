//! The syslog receiver (`[syslog.receiver]`): UDP and TCP listeners for
//! other hosts' syslog, each message parsed (`parse`), checked against the
//! rules (`rules`) and, when one matches, sent as an `arSyslogMatch` trap
//! to the `[snmp]` managers. A line no rule matches sends nothing.

mod parse;
mod rules;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};

use alpharen_store::config::{Receiver as Config, Severity};
use serde::Serialize;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::trap::{Event, SyslogMatch, Traps};
use parse::{Frame, MAX_MESSAGE};

/// TCP senders served at once; more wait in the kernel's backlog.
const MAX_TCP_CONNECTIONS: usize = 256;

/// What `ctl syslog status` shows of the receiver.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counters {
    pub received: u64,
    pub parse_errors: u64,
    /// Lines each rule matched (by rule name).
    pub matched: BTreeMap<String, u64>,
    pub traps_sent: u64,
}

/// The listeners' addresses and what they share.
#[derive(Clone, PartialEq, Eq)]
struct Listen {
    port: u16,
    udp: bool,
    tcp: bool,
}

struct Shared {
    rules: RwLock<Arc<Vec<rules::Compiled>>>,
    counters: Mutex<Counters>,
    traps: Arc<tokio::sync::Mutex<Traps>>,
}

pub struct Receiver {
    shared: Arc<Shared>,
    dev: bool,
    listening: Option<(Listen, Vec<JoinHandle<()>>)>,
    /// Addresses bound, or why not, for the status.
    pub listeners: Vec<String>,
    pub error: Option<String>,
}

impl Receiver {
    pub fn new(traps: Arc<tokio::sync::Mutex<Traps>>, dev: bool) -> Receiver {
        Receiver {
            shared: Arc::new(Shared {
                rules: RwLock::new(Arc::new(Vec::new())),
                counters: Mutex::new(Counters::default()),
                traps,
            }),
            dev,
            listening: None,
            listeners: Vec::new(),
            error: None,
        }
    }

    pub fn counters(&self) -> Counters {
        self.shared
            .counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Brings rules and listeners in line with the configuration; the
    /// listeners are bound again only when their port or kinds change.
    pub async fn apply(&mut self, cfg: &Config) {
        let compiled = rules::compile(&cfg.rules);
        {
            let mut c = self
                .shared
                .counters
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            c.matched
                .retain(|name, _| compiled.iter().any(|r| r.name == *name));
            for r in &compiled {
                c.matched.entry(r.name.clone()).or_default();
            }
        }
        *self.shared.rules.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(compiled);
        let want = cfg.enabled.then(|| Listen {
            port: cfg.port_or_default(self.dev),
            udp: cfg.udp,
            tcp: cfg.tcp,
        });
        if self.listening.as_ref().map(|(l, _)| l) == want.as_ref() {
            return;
        }
        if let Some((_, tasks)) = self.listening.take() {
            tasks.iter().for_each(JoinHandle::abort);
        }
        self.listeners.clear();
        self.error = None;
        let Some(want) = want else {
            return;
        };
        let ip = if self.dev {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        };
        let addr = SocketAddr::new(ip, want.port);
        let mut tasks = Vec::new();
        let mut errors = Vec::new();
        if want.udp {
            match UdpSocket::bind(addr).await {
                Ok(s) => {
                    self.listeners.push(format!("udp:{addr}"));
                    tasks.push(tokio::spawn(udp(s, self.shared.clone())));
                }
                Err(e) => errors.push(format!("udp:{addr}: {e}")),
            }
        }
        if want.tcp {
            match TcpListener::bind(addr).await {
                Ok(l) => {
                    self.listeners.push(format!("tcp:{addr}"));
                    tasks.push(tokio::spawn(tcp(l, self.shared.clone())));
                }
                Err(e) => errors.push(format!("tcp:{addr}: {e}")),
            }
        }
        for e in &errors {
            tracing::error!(error = %e, "cannot listen for syslog");
        }
        if !self.listeners.is_empty() {
            tracing::info!(listeners = %self.listeners.join(" "), "receiving syslog");
        }
        self.error = (!errors.is_empty()).then(|| errors.join("; "));
        self.listening = Some((want, tasks));
    }
}

impl Shared {
    /// One received message from `peer`: counted, parsed, matched, trapped.
    async fn take(&self, raw: &[u8], peer: IpAddr) {
        let parsed = parse::parse(raw);
        let rules = self.rules.read().unwrap_or_else(|p| p.into_inner()).clone();
        let hit = {
            let mut c = self.counters.lock().unwrap_or_else(|p| p.into_inner());
            c.received += 1;
            let Ok(m) = parsed else {
                c.parse_errors += 1;
                return;
            };
            let host = if m.host.is_empty() {
                peer.to_string()
            } else {
                m.host.clone()
            };
            let Some(i) = rules::first_match(&rules, &m, &host) else {
                return;
            };
            *c.matched.entry(rules[i].name.clone()).or_default() += 1;
            SyslogMatch {
                rule: rules[i].name.clone(),
                host,
                severity: Severity::name(m.severity),
                program: m.program,
                text: m.text,
            }
        };
        let sent = self.traps.lock().await.send(&Event::SyslogMatch(hit)).await;
        self.counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .traps_sent += sent;
    }
}

async fn udp(sock: UdpSocket, shared: Arc<Shared>) {
    let mut buf = vec![0u8; 65536];
    loop {
        match sock.recv_from(&mut buf).await {
            Ok((n, peer)) => shared.take(&buf[..n], peer.ip()).await,
            Err(e) => tracing::debug!(error = %e, "syslog udp receive"),
        }
    }
}

async fn tcp(listener: TcpListener, shared: Arc<Shared>) {
    let slots = Arc::new(Semaphore::new(MAX_TCP_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((conn, peer)) => {
                let shared = shared.clone();
                tokio::spawn(async move {
                    read_stream(conn, peer.ip(), &shared).await;
                    drop(permit);
                });
            }
            Err(e) => tracing::debug!(error = %e, "syslog tcp accept"),
        }
    }
}

/// Reads frames until the sender closes, or sends what cannot be framed
/// (counted as one parse error).
async fn read_stream(mut conn: TcpStream, peer: IpAddr, shared: &Shared) {
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut chunk = vec![0u8; 16384];
    loop {
        let mut at = 0;
        loop {
            match parse::next_frame(&buf[at..]) {
                Frame::Message { start, end, next } => {
                    let msg = &buf[at + start..at + end];
                    if !msg.iter().all(|b| b.is_ascii_whitespace()) {
                        shared.take(msg, peer).await;
                    }
                    at += next;
                }
                Frame::Incomplete => break,
                Frame::Invalid => {
                    shared
                        .counters
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .parse_errors += 1;
                    tracing::debug!(%peer, "syslog tcp stream cannot be framed; closing it");
                    return;
                }
            }
        }
        buf.drain(..at);
        match conn.read(&mut chunk).await {
            Ok(0) | Err(_) => {
                // A last line without its newline still counts.
                if !buf.is_empty() && buf.len() <= MAX_MESSAGE && !buf[0].is_ascii_digit() {
                    shared.take(&buf, peer).await;
                }
                return;
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}
