//! Outgoing SQL (`[[integrator.outgoing_sql]]`): a pool of PostgreSQL
//! connections per definition, and the sessions services open on them
//! through the worker pipe (`self.outgoing.sql.get(NAME).session()`), so
//! Python needs no driver. A session takes a pooled connection at its first
//! statement and starts a transaction there; `commit` and `rollback` end
//! it (the next statement begins another); a session closed, or a call
//! ended, without a commit is rolled back before its connection goes back
//! to the pool. A broken connection is dropped by the pool at its next
//! checkout, so a database that restarts costs the calls in flight an
//! error and later calls get fresh connections. A connection naming a
//! pgha group points at the group's master (`sqlha`): a new master gets a
//! new pool and the old one is closed.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use alpharen_store::View;
use alpharen_store::config::{OutgoingSql, SqlTls};
use deadpool_postgres::{Manager, Object, Pool, PoolError, Runtime};
use futures_util::{StreamExt, pin_mut};
use serde_json::{Value, json};
use tokio_postgres::types::ToSql;

use crate::sqlha::{Endpoint, Target};
use crate::sqltext::{Binds, rewrite};
use crate::sqlvalue::{Cell, Param};

/// Rows one statement may answer with; more is refused (use LIMIT).
const MAX_ROWS: usize = 100_000;
/// Prepared statements kept per connection before the cache is emptied.
const MAX_CACHED: usize = 256;

/// Why a request failed: the message, a code for the worker, and the
/// SQLSTATE when the server gave one.
#[derive(Debug)]
pub struct SqlError {
    pub message: String,
    pub code: &'static str,
    pub sqlstate: Option<String>,
    /// The session the failed statement opened or ran in: the worker
    /// keeps it, so its rollback and close reach this session.
    pub session: Option<u64>,
}

impl SqlError {
    fn new(conn: &str, code: &'static str, message: impl std::fmt::Display) -> SqlError {
        SqlError {
            message: format!("outgoing SQL connection {conn:?}: {message}"),
            code,
            sqlstate: None,
            session: None,
        }
    }

    fn db(conn: &str, e: &tokio_postgres::Error) -> SqlError {
        match e.as_db_error() {
            Some(d) => SqlError {
                message: format!(
                    "outgoing SQL connection {conn:?}: {}: {} (SQLSTATE {})",
                    d.severity(),
                    d.message(),
                    d.code().code()
                ),
                code: "sql_error",
                sqlstate: Some(d.code().code().to_string()),
                session: None,
            },
            // No answer from the server: it is down, restarting or
            // unreachable, or TLS failed (the causes say which).
            None => SqlError::new(conn, "sql_unavailable", with_causes(e)),
        }
    }

    pub fn to_reply(&self) -> Value {
        json!({"ok": false, "code": self.code, "error": self.message, "sqlstate": self.sqlstate,
               "session": self.session})
    }
}

/// An error and what caused it ("error performing TLS handshake: invalid
/// peer certificate: UnknownIssuer").
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

/// One definition's pool, rebuilt only when the definition or its password
/// changes, or its pgha group's master does.
struct Conn {
    def: OutgoingSql,
    password: Option<String>,
    /// `Err`: a pgha group's connection while the group has no known
    /// master, and why.
    pool: Result<Pool, String>,
    timeout: Duration,
}

impl Conn {
    /// The connection at `target` (its own host, or its group's master).
    fn new(
        def: &OutgoingSql,
        password: Option<String>,
        timeout: Duration,
        target: Target,
    ) -> Result<Conn, String> {
        let pool = match target {
            Ok(at) => Ok(build_pool(def, password.as_deref(), timeout, &at)?),
            Err(why) => Err(why),
        };
        Ok(Conn {
            def: def.clone(),
            password,
            pool,
            timeout,
        })
    }
}

/// Every definition's pool.
#[derive(Default)]
pub struct Pools {
    conns: RwLock<HashMap<String, Arc<Conn>>>,
    /// The master of each pgha group a connection follows, as last learned.
    masters: RwLock<HashMap<String, Target>>,
}

/// What a group's connections point at before pgha has been asked.
fn not_asked(group: &str) -> Target {
    Err(format!(
        "the master of pgha group {group:?} is not known yet"
    ))
}

impl Pools {
    /// Brings the pools in line with the configuration (start, SIGHUP).
    /// A definition that cannot be set up (its CA file unreadable) is left
    /// out and logged; its calls then say it is not configured.
    pub fn reload(&self, view: &View, default_timeout: u64) {
        let old = self.conns.read().map(|c| c.clone()).unwrap_or_default();
        let mut new = HashMap::new();
        for def in &view.config.integrator.outgoing_sql {
            let field = format!("integrator.outgoing_sql {:?}", def.name);
            let password = match view.reveal(&field, def.password.as_deref()) {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(connection = %def.name, error = %e, "outgoing SQL connection left out");
                    continue;
                }
            };
            let timeout = Duration::from_secs(def.timeout.unwrap_or(default_timeout));
            if let Some(c) = old.get(&def.name)
                && c.def == *def
                && c.password == password
                && c.timeout == timeout
            {
                new.insert(def.name.clone(), c.clone());
                continue;
            }
            let target = match &def.pgha_group {
                None => Ok(Endpoint {
                    host: def.host.clone(),
                    port: def.port,
                }),
                Some(g) => self
                    .masters
                    .read()
                    .ok()
                    .and_then(|m| m.get(g).cloned())
                    .unwrap_or_else(|| not_asked(g)),
            };
            match Conn::new(def, password, timeout, target) {
                Ok(conn) => {
                    new.insert(def.name.clone(), Arc::new(conn));
                }
                Err(e) => {
                    tracing::warn!(connection = %def.name, error = %e, "outgoing SQL connection left out")
                }
            }
        }
        if let Ok(mut c) = self.conns.write() {
            *c = new;
        }
    }

    /// The pgha groups the connections follow.
    pub fn groups(&self) -> Vec<String> {
        let conns = self.conns.read().map(|c| c.clone()).unwrap_or_default();
        let mut groups: Vec<String> = conns
            .values()
            .filter_map(|c| c.def.pgha_group.clone())
            .collect();
        groups.sort();
        groups.dedup();
        groups
    }

    /// Takes what pgha said of `group`'s master (`Err`: pgha could not be
    /// asked) and, when the connections must move, gives them new pools
    /// and closes the old ones: their idle connections go at once, the
    /// ones in use when their sessions end.
    pub fn follow(&self, group: &str, observed: Result<Target, String>) {
        let current = self
            .masters
            .read()
            .ok()
            .and_then(|m| m.get(group).cloned())
            .unwrap_or_else(|| not_asked(group));
        let Some(next) = crate::sqlha::decide(&current, observed) else {
            return;
        };
        match &next {
            Ok(at) => {
                tracing::info!(group, master = %at, "outgoing SQL follows the pgha group's master")
            }
            Err(why) => {
                tracing::warn!(group, reason = %why, "outgoing SQL of the pgha group has no server")
            }
        }
        if let Ok(mut m) = self.masters.write() {
            m.insert(group.to_string(), next.clone());
        }
        let Ok(mut conns) = self.conns.write() else {
            return;
        };
        for conn in conns.values_mut() {
            if conn.def.pgha_group.as_deref() != Some(group) {
                continue;
            }
            match Conn::new(&conn.def, conn.password.clone(), conn.timeout, next.clone()) {
                Ok(fresh) => {
                    if let Ok(old) = &conn.pool {
                        old.close();
                    }
                    *conn = Arc::new(fresh);
                }
                Err(e) => {
                    tracing::warn!(connection = %conn.def.name, error = %e, "outgoing SQL connection kept on its old server")
                }
            }
        }
    }

    fn get(&self, name: &str) -> Result<Arc<Conn>, SqlError> {
        self.conns
            .read()
            .ok()
            .and_then(|c| c.get(name).cloned())
            .ok_or_else(|| SqlError {
                message: format!("no outgoing SQL connection is named {name:?}"),
                code: "not_found",
                sqlstate: None,
                session: None,
            })
    }
}

fn build_pool(
    def: &OutgoingSql,
    password: Option<&str>,
    timeout: Duration,
    at: &Endpoint,
) -> Result<Pool, String> {
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(&at.host)
        .port(at.port)
        .dbname(&def.database)
        .user(&def.user)
        .application_name("alpharen-integrator")
        .connect_timeout(timeout)
        // The server ends a statement that outlives the timeout itself.
        .options(format!("-c statement_timeout={}", timeout.as_millis()));
    if let Some(p) = password {
        cfg.password(p);
    }
    let manager = match def.tls {
        SqlTls::Disable => {
            cfg.ssl_mode(tokio_postgres::config::SslMode::Disable);
            Manager::new(cfg, tokio_postgres::NoTls)
        }
        SqlTls::Require | SqlTls::VerifyFull => {
            cfg.ssl_mode(tokio_postgres::config::SslMode::Require);
            let tls = crate::sqltls::client_config(def.tls, def.ca_file.as_deref())?;
            Manager::new(cfg, tokio_postgres_rustls::MakeRustlsConnect::new(tls))
        }
    };
    Pool::builder(manager)
        .max_size(def.pool_size as usize)
        .wait_timeout(Some(timeout))
        .create_timeout(Some(timeout))
        .recycle_timeout(Some(timeout))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| e.to_string())
}

/// A session of one call: its pooled connection, and whether a
/// transaction is open on it.
struct Session {
    conn: Arc<Conn>,
    client: Option<Object>,
    in_tx: bool,
}

impl Drop for Session {
    /// Never back to the pool inside a transaction: rolled back first, or
    /// the connection is dropped when that fails.
    fn drop(&mut self) {
        if !self.in_tx {
            return;
        }
        let Some(client) = self.client.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    if client.batch_execute("ROLLBACK").await.is_err() {
                        drop(Object::take(client));
                    }
                });
            }
            Err(_) => drop(Object::take(client)),
        }
    }
}

/// The sessions one service call opened, closed (rolled back) with it.
#[derive(Default)]
pub struct Sessions {
    open: HashMap<u64, Session>,
    next: u64,
}

fn param_err(conn: &str, message: String) -> SqlError {
    SqlError::new(conn, "invalid_params", message)
}

/// The values of the `$n` parameters, in order, from the call's params
/// (a dict for names, a list for positions).
fn bind_values<'a>(
    conn: &str,
    binds: &'a Binds,
    params: &'a Value,
) -> Result<Vec<Param<'a>>, SqlError> {
    match binds {
        Binds::None => Ok(Vec::new()),
        Binds::Named(names) => {
            let Some(map) = params.as_object() else {
                return Err(param_err(
                    conn,
                    "named placeholders need a dict of parameters".into(),
                ));
            };
            names
                .iter()
                .map(|n| {
                    map.get(n)
                        .map(|value| Param { name: n, value })
                        .ok_or_else(|| param_err(conn, format!("no value for the parameter {n:?}")))
                })
                .collect()
        }
        Binds::Positional(count) => {
            let list = params.as_array().map(Vec::as_slice).unwrap_or_default();
            if list.len() != *count {
                return Err(param_err(
                    conn,
                    format!(
                        "the statement has {count} placeholders but {} values were given",
                        list.len()
                    ),
                ));
            }
            Ok(list.iter().map(|value| Param { name: "", value }).collect())
        }
    }
}

impl Sessions {
    /// Answers one `sql.*` request of the running service.
    pub async fn call(&mut self, pools: &Pools, req: &Value) -> Result<Value, SqlError> {
        let id = req["session"].as_u64();
        match req["call"].as_str().unwrap_or_default() {
            "sql.execute" => self.execute(pools, id, req).await,
            "sql.commit" => self.end(id, "COMMIT").await,
            "sql.rollback" => self.end(id, "ROLLBACK").await,
            "sql.close" => {
                // The rollback runs after the answer (Session::drop): what
                // was not committed was never visible, and the connection
                // goes back to the pool only once it is done.
                if let Some(id) = id {
                    self.open.remove(&id);
                }
                Ok(Value::Null)
            }
            other => Err(SqlError {
                message: format!("unknown host call {other:?}"),
                code: "method_not_found",
                sqlstate: None,
                session: None,
            }),
        }
    }

    async fn end(&mut self, id: Option<u64>, verb: &str) -> Result<Value, SqlError> {
        let Some(s) = id.and_then(|id| self.open.get_mut(&id)) else {
            return Ok(Value::Null);
        };
        if !s.in_tx {
            return Ok(Value::Null);
        }
        s.in_tx = false;
        let name = s.conn.def.name.clone();
        let Some(client) = s.client.as_ref() else {
            return Ok(Value::Null);
        };
        let limit = s.conn.timeout;
        match tokio::time::timeout(limit, client.batch_execute(verb)).await {
            Ok(Ok(())) => Ok(Value::Null),
            Ok(Err(e)) => Err(SqlError::db(&name, &e)),
            Err(_) => Err(SqlError::new(
                &name,
                "sql_timeout",
                format!("{verb} took longer than {limit:?}"),
            )),
        }
    }

    async fn execute(
        &mut self,
        pools: &Pools,
        id: Option<u64>,
        req: &Value,
    ) -> Result<Value, SqlError> {
        let id = match id {
            Some(id) if self.open.contains_key(&id) => id,
            Some(_) => {
                return Err(SqlError {
                    message: "this session is closed".into(),
                    code: "invalid_params",
                    sqlstate: None,
                    session: None,
                });
            }
            None => {
                let conn = pools.get(req["conn"].as_str().unwrap_or_default())?;
                self.next += 1;
                self.open.insert(
                    self.next,
                    Session {
                        conn,
                        client: None,
                        in_tx: false,
                    },
                );
                self.next
            }
        };
        self.run_in(id, req).await.map_err(|mut e| {
            e.session = Some(id);
            e
        })
    }

    /// Runs the request's statement in open session `id`.
    async fn run_in(&mut self, id: u64, req: &Value) -> Result<Value, SqlError> {
        let Some(s) = self.open.get_mut(&id) else {
            return Ok(Value::Null);
        };
        let name = s.conn.def.name.clone();
        let sql = req["sql"].as_str().unwrap_or_default();
        let text = rewrite(sql).map_err(|e| param_err(&name, e))?;
        // executemany: a list of dicts runs the statement once per dict.
        let many: Vec<&Value> = match &req["params"] {
            Value::Array(a) if a.first().is_some_and(Value::is_object) => a.iter().collect(),
            p => vec![p],
        };
        let mut binds = Vec::with_capacity(many.len());
        for p in &many {
            binds.push(bind_values(&name, &text.binds, p)?);
        }
        if s.client.is_none() {
            let pool = s
                .conn
                .pool
                .as_ref()
                .map_err(|why| SqlError::new(&name, "sql_unavailable", why))?;
            s.client = Some(pool.get().await.map_err(|e| pool_error(&name, e))?);
        }
        let limit = s.conn.timeout;
        let begin = !s.in_tx;
        let Some(client) = s.client.as_ref() else {
            return Ok(Value::Null);
        };
        let run = run(client, begin, &text.sql, &binds, &name);
        let out = match tokio::time::timeout(limit, run).await {
            Ok(r) => r,
            Err(_) => Err(SqlError::new(
                &name,
                "sql_timeout",
                format!("no answer within {limit:?}"),
            )),
        };
        if begin {
            s.in_tx = true;
        }
        if client.statement_cache.size() > MAX_CACHED {
            client.statement_cache.clear();
        }
        let mut out = out?;
        out["session"] = json!(id);
        Ok(out)
    }
}

fn pool_error(conn: &str, e: PoolError) -> SqlError {
    match e {
        PoolError::Backend(e) => SqlError::db(conn, &e),
        PoolError::Timeout(_) => SqlError::new(
            conn,
            "sql_unavailable",
            "no connection to the database within the timeout (server down or pool_size in use)",
        ),
        other => SqlError::new(conn, "sql_unavailable", other),
    }
}

/// BEGIN (when the session has no transaction yet, pipelined with the
/// statement), then the statement once per parameter set.
async fn run(
    client: &Object,
    begin: bool,
    sql: &str,
    binds: &[Vec<Param<'_>>],
    name: &str,
) -> Result<Value, SqlError> {
    let db = |e: tokio_postgres::Error| SqlError::db(name, &e);
    let stmt = if begin {
        let (b, stmt) = tokio::join!(client.batch_execute("BEGIN"), client.prepare_cached(sql));
        b.map_err(db)?;
        stmt.map_err(db)?
    } else {
        client.prepare_cached(sql).await.map_err(db)?
    };
    let columns: Vec<&str> = stmt.columns().iter().map(|c| c.name()).collect();
    let mut rows: Vec<Value> = Vec::new();
    let mut rowcount: u64 = 0;
    for params in binds {
        let refs: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        let stream = client.query_raw(&stmt, refs).await.map_err(db)?;
        pin_mut!(stream);
        while let Some(row) = stream.next().await {
            let row = row.map_err(db)?;
            if rows.len() >= MAX_ROWS {
                return Err(SqlError::new(
                    name,
                    "sql_error",
                    format!("the result has more than {MAX_ROWS} rows; narrow the query (LIMIT)"),
                ));
            }
            let mut cells = Vec::with_capacity(row.len());
            for (i, column) in columns.iter().enumerate() {
                let cell: Cell = row.try_get(i).map_err(|e| {
                    SqlError::new(name, "sql_error", format!("column {column:?}: {e}"))
                })?;
                cells.push(cell.0);
            }
            rows.push(Value::Array(cells));
        }
        rowcount += stream.rows_affected().unwrap_or(0);
    }
    Ok(json!({
        "columns": columns,
        "rows": rows,
        "rowcount": rowcount,
        "returns_rows": !stmt.columns().is_empty(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_names_the_session_it_ran_in() {
        let mut e = SqlError::new("crm", "sql_error", "boom");
        assert_eq!(e.to_reply()["session"], Value::Null);
        e.session = Some(3);
        let reply = e.to_reply();
        assert_eq!(reply["session"], json!(3));
        assert_eq!(
            reply["error"],
            json!("outgoing SQL connection \"crm\": boom")
        );
    }
}
