//! The service loop: one task owns the desired state and reconciles on
//! config reloads (SIGHUP), link events, DHCP reports, lease expiry and a
//! slow periodic tick; SIGTERM releases leases and exits.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alpharen_rpc::{Call, Handler, Reply, RpcError};
use alpharen_store::View;
use alpharen_store::config::Network;
use futures_util::StreamExt;
use rtnetlink::{Handle, MulticastGroup, new_connection, new_multicast_connection};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::Error;
use crate::dhcp::{self, Held, LeaseClock, Report};
use crate::plan::{self, Actual};
use crate::status::{DnsView, LeaseView, Shared, TimeView};
use crate::{netlink, resolv, sntp};

const SNTP_INTERVAL: Duration = Duration::from_secs(64);
const RESYNC_INTERVAL: Duration = Duration::from_secs(30);

struct Svc {
    state_dir: PathBuf,
    dev: bool,
    handle: Handle,
    net: Network,
    hostname: String,
    managed: bool,
    leases: HashMap<String, Held>,
    tasks: HashMap<String, dhcp::Task>,
    tx: mpsc::Sender<Report>,
    shared: Arc<Mutex<Shared>>,
    missing: Vec<String>,
    /// VLANs the kernel refused; retried on the slow tick, not on every event.
    failed_vlans: Vec<String>,
}

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

impl Svc {
    async fn load(&mut self) -> Result<(), Error> {
        let cfg = alpharen_rpc::view::view::<View>(&self.state_dir, "net")
            .await?
            .config;
        self.managed = cfg.network.manage.unwrap_or(!self.dev);
        self.net = cfg.network;
        self.hostname = cfg.node.hostname;
        tracing::info!(
            managed = self.managed,
            interfaces = self.net.interfaces.len(),
            "network config loaded"
        );
        Ok(())
    }

    fn resolv_path(&self) -> PathBuf {
        if self.dev {
            self.state_dir.join("run").join("resolv.conf")
        } else {
            PathBuf::from("/run/resolv.conf")
        }
    }

    fn set_clock(&self) -> bool {
        self.managed && self.net.time.set_clock.unwrap_or(!self.dev)
    }

    async fn reconcile(&mut self) {
        let actual = match netlink::snapshot(&self.handle).await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read links");
                return;
            }
        };
        let missing = plan::missing(&self.net, &actual);
        if missing != self.missing {
            for m in missing.iter().filter(|m| !self.missing.contains(m)) {
                tracing::warn!(interface = %m, "configured interface is missing; waiting for it");
            }
            self.missing = missing;
        }
        let mut last_error = None;
        if self.managed {
            let leases = &self.leases;
            let input = |name: &str| leases.get(name).map(Held::input);
            self.promote_secondaries(&actual);
            for action in plan::diff(&self.net, &actual, &input) {
                let vlan = match &action {
                    plan::Action::CreateVlan { name, .. } => Some(name.clone()),
                    _ => None,
                };
                if vlan.as_ref().is_some_and(|v| self.failed_vlans.contains(v)) {
                    continue;
                }
                tracing::info!(action = ?action, "apply");
                if let Err(e) = netlink::apply(&self.handle, &action).await {
                    tracing::warn!(action = ?action, error = %e, "netlink change failed");
                    last_error = Some(format!("{action:?}: {e}"));
                    self.failed_vlans.extend(vlan);
                }
            }
            self.accept_ra(&actual);
            self.manage_dhcp(&actual);
            let dns = self.dns();
            let text = resolv::render(&dns.servers, &dns.search);
            match resolv::write_atomic(&self.resolv_path(), &text) {
                Ok(true) => {
                    tracing::info!(path = %self.resolv_path().display(), servers = ?dns.servers, "resolver written")
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "cannot write the resolver file"),
            }
        }
        let configured = self
            .net
            .interfaces
            .iter()
            .filter_map(|i| plan::find_link(i, &actual).map(|l| l.name.clone()))
            .collect();
        let now = Instant::now();
        let leases = self
            .leases
            .iter()
            .map(|(name, h)| LeaseView {
                interface: name.clone(),
                address: format!(
                    "{}/{}",
                    h.lease.yiaddr,
                    dhcp::prefix_len(h.lease.subnet_mask)
                ),
                server: h.lease.srv_id.to_string(),
                router: h.input().router.map(|r| r.to_string()),
                dns: h
                    .lease
                    .dns_srvs
                    .iter()
                    .flatten()
                    .map(|d| d.to_string())
                    .collect(),
                domain: h.lease.domain_name.clone(),
                mtu: h.lease.mtu,
                lease_secs: h.lease.lease_time_sec,
                remaining_secs: h.clock.remaining(now).as_secs(),
                state: h.state.clone(),
            })
            .collect();
        let dns = self.dns();
        let mut s = lock(&self.shared);
        s.managed = self.managed;
        s.dev = self.dev;
        s.configured = configured;
        s.missing = self.missing.clone();
        s.leases = leases;
        s.dns = dns;
        s.time.servers = self.net.time.servers.clone();
        s.time.set_clock = self.set_clock();
        s.last_error = last_error;
    }

    fn dns(&self) -> DnsView {
        let mut servers = self.net.dns.servers.clone();
        let mut search = self.net.dns.search.clone();
        if self.net.dns.use_dhcp {
            let mut names: Vec<&String> = self.leases.keys().collect();
            names.sort();
            for n in names {
                let l = &self.leases[n].lease;
                servers.extend(l.dns_srvs.iter().flatten().map(|d| d.to_string()));
                search.extend(l.domain_name.iter().cloned());
                search.extend(l.domain_search.iter().flatten().cloned());
            }
        }
        DnsView {
            servers,
            search,
            path: self.resolv_path().display().to_string(),
        }
    }

    fn accept_ra(&self, actual: &Actual) {
        for iface in &self.net.interfaces {
            if let (Some(ra), Some(l)) = (iface.accept_ra, plan::find_link(iface, actual)) {
                set_sysctl(&l.name, "ipv6", "accept_ra", if ra { "1" } else { "0" });
            }
        }
    }

    /// The kernel drops every secondary IPv4 address of a subnet with its
    /// primary; moving an address within a subnet (add the new, remove the
    /// old) would then lose the new one, and someone else's address too.
    /// With promotion on, a secondary takes the primary's place instead.
    fn promote_secondaries(&self, actual: &Actual) {
        for iface in &self.net.interfaces {
            if let Some(l) = plan::find_link(iface, actual) {
                set_sysctl(&l.name, "ipv4", "promote_secondaries", "1");
            }
        }
    }

    /// Runs a DHCP client on each dhcp4 link that is up with carrier.
    fn manage_dhcp(&mut self, actual: &Actual) {
        let mut want: Vec<String> = Vec::new();
        let mut present: Vec<String> = Vec::new();
        for iface in self.net.interfaces.iter().filter(|i| i.dhcp4) {
            if let Some(l) = plan::find_link(iface, actual) {
                present.push(l.name.clone());
                if l.up && l.carrier {
                    want.push(l.name.clone());
                }
            }
        }
        self.tasks.retain(|name, t| {
            if t.done.is_finished() {
                return false;
            }
            if want.contains(name) {
                return true;
            }
            tracing::info!(iface = %name, "dhcp client stopped (no carrier or not configured)");
            true
        });
        let stop: Vec<String> = self
            .tasks
            .keys()
            .filter(|n| !want.contains(n))
            .cloned()
            .collect();
        for name in stop {
            if let Some(t) = self.tasks.remove(&name) {
                // Configured but without carrier: keep the lease until it expires.
                let release = !present.contains(&name);
                let _ = t.stop.send(release);
                if release {
                    self.leases.remove(&name);
                }
            }
        }
        // dhcp4 turned off: the lease goes with it
        self.leases.retain(|n, _| present.contains(n));
        for name in want {
            if !self.tasks.contains_key(&name) {
                tracing::info!(iface = %name, "dhcp client started");
                let prior = self.leases.get(&name).map(|h| h.lease.clone());
                let t = dhcp::start(name.clone(), self.hostname.clone(), prior, self.tx.clone());
                self.tasks.insert(name, t);
            }
        }
    }

    /// Returns whether the leases changed.
    fn on_report(&mut self, r: Report) -> bool {
        match r {
            Report::Lease(name, lease) => {
                let clock = LeaseClock::new(
                    Instant::now(),
                    lease.lease_time_sec,
                    lease.t1_sec,
                    lease.t2_sec,
                );
                self.leases.insert(
                    name,
                    Held {
                        lease: *lease,
                        clock,
                        state: "bound".into(),
                    },
                );
                true
            }
            Report::State(name, state) => {
                if let Some(h) = self.leases.get_mut(&name) {
                    h.state = state;
                }
                false
            }
            Report::Expired(name) => self.leases.remove(&name).is_some(),
        }
    }

    fn expire(&mut self) -> bool {
        let now = Instant::now();
        let before = self.leases.len();
        self.leases.retain(|name, h| {
            let keep = h.clock.phase(now) != dhcp::Phase::Expired;
            if !keep {
                tracing::info!(iface = %name, address = %h.lease.yiaddr, "dhcp lease expired; removing it");
            }
            keep
        });
        before != self.leases.len()
    }

    fn sntp(&self) {
        let servers = self.net.time.servers.clone();
        if servers.is_empty() {
            return;
        }
        let set_clock = self.set_clock();
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut errors = Vec::new();
            for s in &servers {
                match sntp::query(s, Duration::from_secs(2)).await {
                    Ok(x) => samples.push(x),
                    Err(e) => errors.push(e),
                }
            }
            let best = sntp::select(&samples).cloned();
            let mut stepped = false;
            if let Some(b) = &best {
                tracing::info!(server = %b.server, offset_ms = b.offset * 1000.0, stratum = b.stratum, "sntp");
                if set_clock && b.offset.abs() > 0.128 {
                    match sntp::step_clock(b.offset) {
                        Ok(()) => {
                            stepped = true;
                            tracing::info!(offset_ms = b.offset * 1000.0, "clock stepped");
                        }
                        Err(e) => tracing::warn!(error = %e, "cannot set the clock"),
                    }
                }
            } else {
                tracing::warn!(errors = ?errors, "no usable time server");
            }
            let mut s = lock(&shared);
            s.time = TimeView {
                servers,
                set_clock,
                last: best,
                checked_at: Some(alpharen_store::now_unix()),
                error: (!errors.is_empty()).then(|| errors.join("; ")),
                clock_stepped: stepped,
            };
        });
    }

    async fn shutdown(&mut self) {
        let tasks: Vec<_> = self.tasks.drain().collect();
        for (_, t) in tasks {
            let _ = t.stop.send(true);
            let _ = tokio::time::timeout(Duration::from_secs(3), t.done).await;
        }
        if self.managed && !self.leases.is_empty() {
            // Released leases may not be used: take their addresses back.
            self.leases.clear();
            let keep = std::mem::take(&mut self.net.interfaces);
            self.net.interfaces = keep
                .into_iter()
                .map(|mut i| {
                    i.dhcp4 = false;
                    i
                })
                .collect();
            self.reconcile().await;
        }
    }
}

/// Writes `want` to `/proc/sys/net/<family>/conf/<link>/<key>` when it
/// holds something else.
fn set_sysctl(link: &str, family: &str, key: &str, want: &str) {
    let p = format!("/proc/sys/net/{family}/conf/{link}/{key}");
    if std::fs::read_to_string(&p)
        .map(|s| s.trim() != want)
        .unwrap_or(false)
        && let Err(e) = std::fs::write(&p, want)
    {
        tracing::warn!(interface = %link, error = %e, "cannot set {key}");
    }
}

struct Rpc {
    handle: Handle,
    shared: Arc<Mutex<Shared>>,
}

impl Handler for Rpc {
    async fn call(&self, call: Call) -> Result<Reply, RpcError> {
        match call.method.as_str() {
            "net.status" => {
                let actual = netlink::snapshot(&self.handle)
                    .await
                    .map_err(|e| RpcError::new("internal_error", e.to_string()))?;
                let shared = lock(&self.shared).clone();
                Ok(crate::status::render(&actual, &shared).into())
            }
            m => Err(RpcError::new(
                "method_not_found",
                format!("no method {m:?} in the net service"),
            )),
        }
    }
}

pub async fn run(state_dir: PathBuf, dev: bool) -> Result<(), Error> {
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    let (conn, handle, _) = new_connection()?;
    tokio::spawn(conn);
    let (mconn, _mhandle, mut events) = new_multicast_connection(&[MulticastGroup::Link])?;
    tokio::spawn(mconn);
    let (tx, mut rx) = mpsc::channel(32);
    let shared = Arc::new(Mutex::new(Shared::default()));
    let mut svc = Svc {
        state_dir: state_dir.clone(),
        dev,
        handle: handle.clone(),
        net: Network::default(),
        hostname: String::new(),
        managed: false,
        leases: HashMap::new(),
        tasks: HashMap::new(),
        tx,
        shared: shared.clone(),
        missing: Vec::new(),
        failed_vlans: Vec::new(),
    };
    svc.load().await?;
    alpharen_rpc::spawn_service(&state_dir, "net", Rpc { handle, shared })?;
    tracing::info!(dev, managed = svc.managed, "net service started");
    svc.reconcile().await;
    alpharen_rpc::view::ready(&state_dir, "net").await;
    svc.sntp();
    let mut sntp_tick = tokio::time::interval_at(Instant::now() + SNTP_INTERVAL, SNTP_INTERVAL);
    let mut resync = tokio::time::interval_at(Instant::now() + RESYNC_INTERVAL, RESYNC_INTERVAL);
    // Link events come in bursts; reconcile once shortly after the first.
    let mut pending: Option<Instant> = None;
    let far = Duration::from_secs(86_400 * 365);
    loop {
        let next_expiry = svc.leases.values().map(|h| h.clock.expires()).min();
        let wake = pending.unwrap_or(Instant::now() + far);
        tokio::select! {
            _ = term.recv() => break,
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading the network section");
                if let Err(e) = svc.load().await {
                    tracing::warn!(error = %e, "cannot reload config; keeping the current one");
                }
                svc.failed_vlans.clear();
                svc.reconcile().await;
                svc.sntp();
            }
            Some(_) = events.next() => {
                if pending.is_none() {
                    pending = Some(Instant::now() + Duration::from_millis(10));
                }
            }
            _ = tokio::time::sleep_until(wake), if pending.is_some() => {
                pending = None;
                svc.reconcile().await;
            }
            Some(r) = rx.recv() => {
                if svc.on_report(r) {
                    svc.reconcile().await;
                    // A new or renewed lease may be what makes the time servers reachable.
                    svc.sntp();
                }
            }
            _ = tokio::time::sleep_until(next_expiry.unwrap_or(Instant::now() + far)), if next_expiry.is_some() => {
                if svc.expire() {
                    svc.reconcile().await;
                }
            }
            _ = sntp_tick.tick() => svc.sntp(),
            _ = resync.tick() => {
                svc.failed_vlans.clear();
                svc.reconcile().await;
            }
        }
    }
    tracing::info!("SIGTERM: releasing leases and stopping");
    svc.shutdown().await;
    Ok(())
}
