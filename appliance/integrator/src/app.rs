//! The integrator's state and operations: configuration → routes, secrets,
//! deploys, and the health of the load balancer's servers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use alpharen_rpc::RpcError;
use alpharen_store::View;
use alpharen_store::config::{Integrator, Template};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

use crate::pool::{CodeSet, Pool};
use crate::registry;
use crate::remote::{self, Remote};
use crate::routes::{self, Route, Selected};
use crate::security::{ReplayCache, Rule};
use crate::stats::Stats;
use crate::worker::{Spec, python};
use crate::{Error, lb};

mod deploys;
mod follow;
mod shared;
mod shared_packages;

pub use shared::deploy_log_loop;
pub(crate) use shared_packages::Edit;
pub use shared_packages::package_log_loop;

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub struct App {
    pub state_dir: PathBuf,
    pub dev: bool,
    /// Its view of the store (config and `integrator.*` secrets), as of
    /// the last start or SIGHUP.
    view: RwLock<Arc<View>>,
    pub pool: Arc<Pool>,
    config: RwLock<Arc<Integrator>>,
    routes: RwLock<Arc<Vec<Arc<Route>>>>,
    outgoing: RwLock<Arc<Vec<Value>>>,
    /// The SQL, AMQP and SMTP connections the workers learn in the sync frame.
    connectors: RwLock<Arc<Value>>,
    /// Pools of the outgoing SQL connections.
    pub sql: crate::sql::Pools,
    /// Outgoing AMQP connections.
    pub amqp: crate::amqp::Conns,
    /// The AMQP channels' consumers.
    pub amqp_channels: crate::amqp_channel::Channels,
    pub remotes: RwLock<Arc<Vec<Arc<Remote>>>>,
    /// Servers that left the list lately (see [`remote::REMEMBER`]).
    gone: Mutex<remote::Gone>,
    /// The cluster's members as last read (empty outside a cluster).
    members: RwLock<Arc<Vec<alpharen_cluster::members::Member>>>,
    pub stats: Mutex<Stats>,
    pub replay: Mutex<ReplayCache>,
    generation: AtomicU64,
    pub(crate) deploying: tokio::sync::Mutex<()>,
    /// In a cluster: where this member is in the deploy log and the
    /// package log.
    deploy_log: follow::Follow,
    package_log: follow::Follow,
    /// Wheels (by SHA-256) of a change made on this member while it waits
    /// to apply it: read from here rather than from the cluster, whose
    /// streams may be electing a leader right then.
    offered_wheels: Mutex<HashMap<String, Vec<u8>>>,
    pub local_in_flight: AtomicU32,
    /// Of those, the ones another member forwarded: a member that leaves
    /// waits for them.
    pub forwarded_in_flight: AtomicU32,
    pub local_rtt_us: Mutex<f64>,
    pub client: HttpClient,
    /// KV, queues, locks and jobs (ARKVD / ARPuSuB / ARSCHED).
    pub engine: Arc<crate::engine::Engine>,
    /// The clients of the WebSocket channels.
    pub wsx: crate::wsx::Hub,
    /// The link client to other clusters.
    pub links: crate::links::Links,
}

fn rpc_store(e: alpharen_store::StoreError) -> RpcError {
    RpcError::new(e.code(), e.to_string())
}

impl App {
    pub fn open(state_dir: &Path, dev: bool, view: View) -> Result<Arc<App>, Error> {
        let data = crate::data::Data::open(state_dir).map_err(|e| Error::Io {
            what: "open the integrator data".into(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let sdk_dir = state_dir.join("integrator").join("sdk");
        let python = python();
        if crate::sdk::write(&sdk_dir)? {
            let (dir, py) = (sdk_dir.clone(), python.clone());
            std::thread::spawn(move || crate::sdk::compile(&dir, &py));
        }
        let config = view.config.integrator.clone();
        let packages = data.registry(|c| -> Result<_, std::convert::Infallible> {
            Ok(crate::packages::prepare(c, state_dir, &python, &sdk_dir))
        });
        let spec = Spec {
            python,
            sdk_dir,
            packages: packages.unwrap_or_default(),
            memory_limit: config.worker_memory_limit,
        };
        let pool = Pool::new(
            spec,
            0,
            CodeSet {
                generation: 0,
                sync: json!({"op": "sync", "modules": []}),
            },
        );
        let app = Arc::new(App {
            state_dir: state_dir.to_path_buf(),
            dev,
            view: RwLock::new(Arc::new(View::default())),
            pool,
            config: RwLock::new(Arc::new(config)),
            routes: RwLock::new(Arc::new(Vec::new())),
            outgoing: RwLock::new(Arc::new(Vec::new())),
            connectors: RwLock::new(Arc::new(Value::Null)),
            sql: crate::sql::Pools::default(),
            amqp: crate::amqp::Conns::default(),
            amqp_channels: crate::amqp_channel::Channels::default(),
            remotes: RwLock::new(Arc::new(Vec::new())),
            gone: Mutex::new(Vec::new()),
            members: RwLock::new(Arc::new(Vec::new())),
            links: crate::links::Links::default(),
            stats: Mutex::new(Stats::default()),
            replay: Mutex::new(ReplayCache::default()),
            generation: AtomicU64::new(0),
            deploying: tokio::sync::Mutex::new(()),
            deploy_log: follow::Follow::default(),
            package_log: follow::Follow::default(),
            offered_wheels: Mutex::new(HashMap::new()),
            local_in_flight: AtomicU32::new(0),
            forwarded_in_flight: AtomicU32::new(0),
            local_rtt_us: Mutex::new(0.0),
            client: Client::builder(TokioExecutor::new()).build_http(),
            engine: crate::engine::Engine::new(Arc::new(data)),
            wsx: crate::wsx::Hub::default(),
        });
        app.pool
            .set_host(Arc::new(crate::engine::HostImpl(Arc::downgrade(&app))));
        app.reload(view)?;
        Ok(app)
    }

    /// Deploys, rollbacks and undeploys go to the node's audit log (the
    /// supervisor keeps it); a failure to record one does not undo it.
    async fn audit(&self, actor: &str, action: &str, detail: &str) {
        let entry = alpharen_rpc::view::AuditEntry {
            service: "integrator",
            actor,
            action,
            detail,
        };
        alpharen_rpc::view::audit(&self.state_dir, &entry).await;
    }

    /// This node's name (`node.hostname`): it holds the job runs it claims.
    pub fn node_name(&self) -> String {
        self.view().config.node.hostname.clone()
    }

    pub(crate) fn view(&self) -> Arc<View> {
        self.view
            .read()
            .map(|v| v.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    pub fn config(&self) -> Arc<Integrator> {
        self.config
            .read()
            .map(|c| c.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    pub fn route(&self, path: &str, method: &str) -> Selected {
        match self.routes.read() {
            Ok(r) => routes::select(&r, path, method),
            Err(_) => Selected::NotFound,
        }
    }

    pub fn in_flight(&self) -> u32 {
        self.local_in_flight.load(Ordering::Relaxed)
            + self
                .remotes()
                .iter()
                .map(|r| r.in_flight.load(Ordering::Relaxed))
                .sum::<u32>()
    }

    pub fn remotes(&self) -> Arc<Vec<Arc<Remote>>> {
        self.remotes.read().map(|r| r.clone()).unwrap_or_default()
    }

    /// Takes a new view and reconciles routes, secrets, outgoing
    /// connections, workers and servers (start, SIGHUP).
    pub fn reload(&self, view: View) -> Result<(), Error> {
        let (config, rules) = {
            let config = view.config.integrator.clone();
            let mut rules = HashMap::new();
            for def in &config.security {
                let at = format!("integrator.security {:?}", def.name);
                let secret = view
                    .reveal(&at, def.password.as_deref())?
                    .unwrap_or_default();
                let rule = match def.kind.as_str() {
                    "basic" => Rule::Basic {
                        username: def.username.clone().unwrap_or_default(),
                        password: secret,
                    },
                    "apikey" => Rule::ApiKey {
                        header: def.header.clone().unwrap_or_else(|| "X-API-Key".into()),
                        key: secret,
                    },
                    "jwt" => Rule::Jwt(crate::jwt::JwtRule::for_def(def, &secret)),
                    alpharen_store::config::TLS_CLIENT_CERT => {
                        Rule::ClientCert(crate::clientcert::CertRule::for_def(def))
                    }
                    _ => Rule::Hmac {
                        name: def.name.clone(),
                        key: secret,
                        skew: def.skew.unwrap_or(300),
                    },
                };
                rules.insert(def.name.clone(), rule);
            }
            (config, rules)
        };
        let cluster = &view.config.cluster;
        let target = view
            .secret("cluster.client_password")
            .filter(|_| cluster.enabled())
            .map(|pw| {
                (
                    cluster.client_port,
                    pw.to_string(),
                    !cluster.seeds.is_empty(),
                )
            });
        self.engine.data.cluster.set_target(target);
        self.sql.reload(&view, config.timeout);
        self.amqp.reload(&view, config.timeout);
        let connectors = connectors(&view.config, self.dev);
        if let Ok(mut c) = self.connectors.write() {
            *c = Arc::new(connectors);
        }
        match self.view.write() {
            Ok(mut g) => *g = Arc::new(view),
            Err(p) => *p.into_inner() = Arc::new(view),
        }
        let routes: Vec<Arc<Route>> = config
            .channels
            .iter()
            // The config check refused the paths that do not parse.
            .filter_map(|c| {
                Some(Arc::new(Route {
                    channel: c.clone(),
                    template: Template::parse(&c.url_path).ok()?,
                    rule: c.security.as_ref().and_then(|s| rules.get(s).cloned()),
                    timeout: Duration::from_secs(c.timeout.unwrap_or(config.timeout)),
                }))
            })
            .collect();
        let outgoing: Vec<Value> = config
            .outgoing
            .iter()
            .map(|o| {
                let (user, pass) = match o.security.as_ref().and_then(|s| rules.get(s)) {
                    Some(Rule::Basic { username, password }) => (json!(username), json!(password)),
                    _ => (Value::Null, Value::Null),
                };
                json!({
                    "name": o.name, "host": o.host, "url_path": o.url_path,
                    "data_format": o.data_format, "timeout": o.timeout.unwrap_or(config.timeout),
                    "username": user, "password": pass,
                })
            })
            .collect();
        let workers = if config.workers == 0 {
            std::thread::available_parallelism().map_or(1, usize::from)
        } else {
            config.workers as usize
        };
        let mut spec = self.pool.spec();
        spec.memory_limit = config.worker_memory_limit;
        self.pool.set_spec(spec);
        if let Ok(mut r) = self.routes.write() {
            *r = Arc::new(routes);
        }
        if let Ok(mut o) = self.outgoing.write() {
            *o = Arc::new(outgoing);
        }
        if let Ok(mut c) = self.config.write() {
            *c = Arc::new(config);
        }
        self.refresh_remotes();
        self.publish_code()?;
        self.pool.resize(workers);
        Ok(())
    }

    /// Takes a new member list (the discovery loop) and follows it.
    pub fn set_members(&self, members: Vec<alpharen_cluster::members::Member>) {
        if let Ok(mut m) = self.members.write() {
            *m = Arc::new(members);
        }
        self.refresh_remotes();
    }

    /// The balancer's servers from `integrator.servers` and the member
    /// list; logs when the set changes.
    fn refresh_remotes(&self) {
        let members = self.members.read().map(|m| m.clone()).unwrap_or_default();
        let peers = lb::peers(&self.config().servers, &members, &self.node_name());
        let old = self.remotes();
        let Ok(mut gone) = self.gone.lock() else {
            return;
        };
        let (new, still_gone) = remote::reconcile(&old, &gone, &peers, Instant::now());
        *gone = still_gone;
        let bases = |v: &[Arc<Remote>]| v.iter().map(|r| r.base.clone()).collect::<Vec<_>>();
        if bases(&old) != bases(&new) {
            tracing::info!(servers = ?bases(&new), "load balancer servers");
        }
        if let Ok(mut r) = self.remotes.write() {
            *r = Arc::new(new);
        }
    }

    /// Builds the sync frame from the active modules and outgoing
    /// connections and hands it to the pool under a new generation.
    fn publish_code(&self) -> Result<(), Error> {
        let active = self.engine.data.registry(registry::active)?;
        let outgoing = self.outgoing.read().map(|o| o.clone()).unwrap_or_default();
        let connectors = self
            .connectors
            .read()
            .map(|c| c.clone())
            .unwrap_or_default();
        let modules: Vec<Value> = active
            .iter()
            .map(|m| {
                let mut v = json!({"module": m.module, "version": m.version, "source": m.source, "file": m.file});
                if let Some(f) = &m.files {
                    v["files"] = json!(f);
                }
                v
            })
            .collect();
        let deployed = !modules.is_empty();
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        self.pool.set_code(CodeSet {
            generation,
            sync: json!({"op": "sync", "modules": modules, "outgoing": *outgoing,
                         "connectors": *connectors}),
        });
        if deployed {
            self.pool.wake();
        }
        Ok(())
    }

    /// Reveals the secret of a security definition (the socket is
    /// root/alpharen-group only, and generated passwords must be
    /// learnable). A new one is set through the config (`ctl integrator
    /// password NAME --set`).
    pub fn password(&self, security: &str) -> Result<Value, RpcError> {
        let config = self.config();
        let def = config
            .security
            .iter()
            .find(|d| d.name == security)
            .ok_or_else(|| {
                RpcError::new(
                    "not_found",
                    format!("no security definition is named {security:?}"),
                )
            })?;
        let value = self
            .view()
            .reveal(security, def.password.as_deref())
            .map_err(rpc_store)?;
        Ok(
            json!({"security": security, "kind": def.kind, "username": def.username, "password": value}),
        )
    }

    /// HEAD on an outgoing connection's address, as the seed prescribes.
    pub async fn ping(&self, name: &str) -> Result<Value, RpcError> {
        let config = self.config();
        let o = config
            .outgoing
            .iter()
            .find(|o| o.name == name)
            .ok_or_else(|| {
                RpcError::new(
                    "not_found",
                    format!("no outgoing connection is named {name:?}"),
                )
            })?;
        if o.host.starts_with("https://") {
            return Err(RpcError::new(
                "unsupported",
                "ping over https is not supported yet",
            ));
        }
        let url = format!("{}{}", o.host.trim_end_matches('/'), o.url_path);
        let limit = Duration::from_secs(o.timeout.unwrap_or(config.timeout));
        let started = Instant::now();
        let status = head(&self.client, &url, limit).await;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        match status {
            Ok(code) => {
                Ok(json!({"name": name, "url": url, "ok": code < 500, "status": code, "ms": ms}))
            }
            Err(e) => Ok(json!({"name": name, "url": url, "ok": false, "error": e, "ms": ms})),
        }
    }

    pub fn status(&self) -> Value {
        let config = self.config();
        let routes = self.routes.read().map(|r| r.len()).unwrap_or(0);
        let remotes: Vec<Value> = self
            .remotes()
            .iter()
            .map(|r| {
                json!({
                    "server": r.base,
                    "node": r.node,
                    "draining": r.draining.load(Ordering::Relaxed),
                    "healthy": r.healthy.load(Ordering::Relaxed),
                    "in_flight": r.in_flight.load(Ordering::Relaxed),
                    "rtt_ms": r.rtt_us.lock().map(|v| *v / 1000.0).unwrap_or(0.0),
                })
            })
            .collect();
        // Every queue with a message: what waits (ready), what is being
        // delivered, and the dead letters, for /metrics and the charts.
        let queues: Vec<Value> = match self.engine.data.queues().and_then(|q| q.queue_stats()) {
            Ok(stats) => stats
                .iter()
                .map(|q| {
                    let topic = if q.topic.is_empty() {
                        crate::control::INVOKE_ASYNC
                    } else {
                        q.topic.as_str()
                    };
                    json!({"topic": topic, "subscriber": q.subscriber, "ready": q.ready,
                        "in_flight": q.in_flight, "dead": q.dead})
                })
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "queue depths for the status");
                Vec::new()
            }
        };
        json!({
            "port": config.port,
            "queues": queues,
            "workers": self.pool.alive(),
            "idle_workers": self.pool.idle_count(),
            "workers_replaced": self.pool.replaced.load(Ordering::Relaxed),
            "channels": routes,
            "websocket_clients": self.wsx.counts(),
            "in_flight": self.local_in_flight.load(Ordering::Relaxed),
            "forwarded_in_flight": self.forwarded_in_flight.load(Ordering::Relaxed),
            "servers": remotes,
            "python": self.pool.spec().python.display().to_string(),
        })
    }

    /// The balancer's view: index 0 is this server, then the remotes.
    pub fn candidates(&self, remotes: &[Arc<Remote>]) -> Vec<lb::Candidate> {
        let mut out = vec![lb::Candidate {
            healthy: self.pool.can_serve(),
            in_flight: self.local_in_flight.load(Ordering::Relaxed),
            rtt_us: self.local_rtt_us.lock().map(|v| *v).unwrap_or(0.0),
        }];
        out.extend(remotes.iter().map(|r| lb::Candidate {
            healthy: r.takes_new(),
            in_flight: r.in_flight.load(Ordering::Relaxed),
            rtt_us: r.rtt_us.lock().map(|v| *v).unwrap_or(0.0),
        }));
        out
    }
}

/// What the workers need to know of the SQL, AMQP and SMTP connections and
/// the WebSocket channels: names,
/// and each mail sender's address with the node's SMTP listener port (no
/// passwords: those stay in this process).
fn connectors(config: &alpharen_store::Config, dev: bool) -> Value {
    let i = &config.integrator;
    let default_from = format!("integrator@{}", config.node.hostname);
    json!({
        "sql": i.outgoing_sql.iter().map(|c| json!({"name": c.name})).collect::<Vec<_>>(),
        "amqp": i.outgoing_amqp.iter().map(|c| json!({"name": c.name})).collect::<Vec<_>>(),
        "smtp": i.outgoing_smtp.iter().map(|c| json!({
            "name": c.name, "from": c.from.clone().unwrap_or_else(|| default_from.clone()),
        })).collect::<Vec<_>>(),
        "mail_port": config.mail.listen_port(dev),
        "wsx": i.channels.iter().filter(|c| c.is_websocket()).map(|c| c.name.clone()).collect::<Vec<_>>(),
    })
}

/// Status of a HEAD request, or why there was none.
pub async fn head(client: &HttpClient, url: &str, limit: Duration) -> Result<u16, String> {
    let req = hyper::Request::head(url)
        .header("user-agent", "alpharen-integrator")
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    match tokio::time::timeout(limit, client.request(req)).await {
        Err(_) => Err(format!("no answer within {limit:?}")),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(resp)) => {
            let status = resp.status().as_u16();
            let _ = resp.into_body().collect().await;
            Ok(status)
        }
    }
}
