//! `<state>/run/vpn.sock`: `vpn.status`, `vpn.peer_add`, `vpn.peer_del`,
//! `vpn.peer_enable`. Peer changes are written by the supervisor
//! (`config.vpn_peer_add`, `config.vpn_peer_remove` and
//! `config.vpn_peer_enable`: the operator asked for this exact change, so it
//! takes effect confirmed and leaves anyone else's pending change pending),
//! then applied here at once. A caller that acts for a logged-in user (the
//! web service) names them in `author`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use alpharen_rpc::{Call, Handler, Reply, RpcError, config, to_params};
use alpharen_store::config::{Vpn, VpnPeer, parse_cidr};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::plan::network_of;
use crate::wgquick::{ClientConfig, qr, render};
use crate::{Error, Shared, io_err, keys, node_key, pool};

/// Keepalive written into road-warrior configs: keeps NAT mappings open so
/// the node can reach the client.
pub const CLIENT_KEEPALIVE: u16 = 25;

pub fn socket_path(state_dir: &Path) -> PathBuf {
    alpharen_rpc::service_socket(state_dir, "vpn")
}

pub async fn start(shared: Arc<Shared>) -> Result<JoinHandle<()>, Error> {
    let dir = shared.state_dir.clone();
    alpharen_rpc::spawn_service(&dir, "vpn", Control(shared)).map_err(io_err("control socket"))
}

struct Control(Arc<Shared>);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PeerAdd {
    name: String,
    /// What the client routes through the tunnel; default: the pool and
    /// the node's tunnel networks.
    #[serde(default)]
    allowed_ips: Vec<String>,
    author: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PeerDel {
    name: String,
    author: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PeerEnable {
    name: String,
    enabled: bool,
    author: Option<String>,
}

fn vpn_error(e: Error) -> RpcError {
    match e {
        Error::PortInUse { .. } => RpcError::new("port_in_use", e.to_string()),
        other => RpcError::new("vpn_error", other.to_string()),
    }
}

/// One call to the supervisor.
async fn supervisor(state_dir: PathBuf, method: &str, params: Value) -> Result<Value, RpcError> {
    let socket = alpharen_rpc::control_socket(&state_dir);
    alpharen_rpc::call(&socket, method, params, SUPERVISOR_TIMEOUT).await
}

/// Longest the supervisor may take for a config edit (it reconciles).
const SUPERVISOR_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The current section as the supervisor has it (not our cached copy: a
/// change may be on its way to us), with its revision.
async fn current_vpn(state_dir: &Path) -> Result<(Vpn, i64), RpcError> {
    let get = config::Get {
        section: Some("vpn".into()),
        revision: None,
    };
    let v = supervisor(state_dir.to_path_buf(), config::GET, to_params(&get)).await?;
    let revision = v.get("revision").and_then(Value::as_i64).unwrap_or(0);
    let vpn = serde_json::from_value(v.get("config").cloned().unwrap_or(Value::Null))
        .map_err(|e| RpcError::new("internal_error", format!("vpn section: {e}")))?;
    Ok((vpn, revision))
}

/// Tries of a peer add that lost a race with another change (the address
/// it picked may have been taken meanwhile).
const ADD_TRIES: usize = 5;

/// What a road-warrior client routes by default: the pool and the node's
/// tunnel networks, deduplicated.
pub fn default_client_routes(vpn: &Vpn) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let nets = vpn.pool.iter().chain(vpn.addresses.iter());
    for s in nets {
        if let Some((ip, len)) = parse_cidr(s) {
            let n = format!("{}/{len}", network_of(ip, len));
            if !out.contains(&n) {
                out.push(n);
            }
        }
    }
    out
}

impl Control {
    async fn status(&self) -> Result<Value, RpcError> {
        let sh = &self.0;
        let vpn = sh.vpn.lock().map(|g| g.clone()).unwrap_or_default();
        let error = sh.last_error.lock().ok().and_then(|g| g.clone());
        let public_key = crate::view(&sh.state_dir)
            .await
            .ok()
            .and_then(|v| {
                v.secret(crate::PRIVATE_KEY_SECRET)
                    .and_then(keys::from_base64)
            })
            .map(|k| keys::to_base64(&keys::public_of(&k)));
        let mut guard = sh.tunnel.lock().await;
        let (running, backend, live) = match guard.as_mut() {
            Some(t) => (
                true,
                Some(t.backend.kind()),
                t.backend.status().map_err(|e| vpn_error(e.into()))?,
            ),
            None => (false, None, Vec::new()),
        };
        let peers: Vec<Value> = vpn
            .peers
            .iter()
            .map(|p| {
                let st = keys::from_base64(&p.public_key)
                    .and_then(|k| live.iter().find(|s| s.public_key == k));
                json!({
                    "name": p.name,
                    "enabled": p.enabled,
                    "public_key": p.public_key,
                    "allowed_ips": p.allowed_ips,
                    "configured_endpoint": p.endpoint,
                    "endpoint": st.and_then(|s| s.endpoint).map(|e| e.to_string()),
                    "latest_handshake_secs_ago": st.and_then(|s| s.handshake_age).map(|d| d.as_secs()),
                    "rx_bytes": st.map_or(0, |s| s.rx_bytes),
                    "tx_bytes": st.map_or(0, |s| s.tx_bytes),
                })
            })
            .collect();
        Ok(json!({
            "enabled": vpn.enabled,
            "running": running,
            "backend": backend,
            "kernel_wireguard": crate::backend::kernel_available(),
            "interface": vpn.interface,
            "listen_port": vpn.listen_port,
            "addresses": vpn.addresses,
            "public_key": public_key,
            "endpoint": vpn.endpoint,
            "peers": peers,
            "error": error,
        }))
    }

    async fn peer_add(&self, p: PeerAdd, author: String) -> Result<Value, RpcError> {
        let mut tries = 0;
        loop {
            tries += 1;
            match self.try_peer_add(&p, &author).await {
                Err(e) if e.code == "conflict" && tries < ADD_TRIES => continue,
                other => return other,
            }
        }
    }

    async fn try_peer_add(&self, p: &PeerAdd, author: &str) -> Result<Value, RpcError> {
        let sh = &self.0;
        let (vpn, revision) = current_vpn(&sh.state_dir).await?;
        if vpn.peers.iter().any(|x| x.name == p.name) {
            return Err(RpcError::new(
                "exists",
                format!("a peer named {:?} exists already", p.name),
            ));
        }
        let pool_net = vpn.pool_net().ok_or_else(|| {
            RpcError::new("no_pool", "vpn.pool is not set: road-warrior addresses come from it (e.g. `ctl config set vpn.pool '\"10.8.0.0/24\"'`)")
        })?;
        let endpoint = vpn.endpoint.clone().ok_or_else(|| {
            RpcError::new(
                "no_endpoint",
                "vpn.endpoint is not set: clients need the node's public host:port",
            )
        })?;
        let mut taken: Vec<(IpAddr, u8)> = vpn
            .peers
            .iter()
            .flat_map(|x| x.allowed_ips.iter().filter_map(|s| parse_cidr(s)))
            .collect();
        taken.extend(
            vpn.addresses
                .iter()
                .filter_map(|s| parse_cidr(s))
                .map(|(ip, _)| (ip, 32)),
        );
        let addr = pool::allocate(pool_net, &taken).ok_or_else(|| {
            RpcError::new(
                "pool_exhausted",
                format!(
                    "vpn.pool {} has no free address left; delete a peer or widen the pool",
                    vpn.pool.as_deref().unwrap_or("")
                ),
            )
        })?;
        for (i, a) in p.allowed_ips.iter().enumerate() {
            if parse_cidr(a).is_none() {
                return Err(RpcError::invalid_params(format!(
                    "allowed_ips[{i}]: {a:?} is not a CIDR"
                )));
            }
        }
        let server_public = async {
            let view = crate::view(&sh.state_dir).await?;
            node_key(&sh.state_dir, &view).await.map(|(_, p)| p)
        }
        .await
        .map_err(vpn_error)?;
        let (client_secret, client_public) = keys::generate();
        let peer = VpnPeer {
            name: p.name.clone(),
            public_key: keys::to_base64(&client_public),
            allowed_ips: vec![format!("{addr}/32")],
            ..VpnPeer::default()
        };
        let add = config::PeerAdd {
            peer,
            comment: format!("vpn peer add {}", p.name),
            author: Some(author.to_string()),
            expect_revision: Some(revision),
        };
        let out = supervisor(sh.state_dir.clone(), config::VPN_PEER_ADD, to_params(&add)).await?;
        // Do not wait for the SIGHUP: the client may connect right away.
        let applied = sh.reconcile().await.map_err(vpn_error);
        let conf = ClientConfig {
            private_key: keys::to_base64(&client_secret),
            address: format!("{addr}/32"),
            dns: vpn.dns.clone(),
            server_public_key: keys::to_base64(&server_public),
            endpoint,
            allowed_ips: if p.allowed_ips.is_empty() {
                default_client_routes(&vpn)
            } else {
                p.allowed_ips.clone()
            },
            keepalive: CLIENT_KEEPALIVE,
        };
        let text = render(&conf);
        let (qr_text, qr_svg) =
            qr(&text).map_err(|e| RpcError::new("internal_error", format!("QR code: {e}")))?;
        Ok(json!({
            "name": p.name,
            "address": format!("{addr}/32"),
            "public_key": keys::to_base64(&client_public),
            "revision": out.get("revision"),
            "enabled": vpn.enabled,
            "applied": applied.is_ok(),
            "config": text,
            "qr": qr_text,
            "qr_svg": qr_svg,
        }))
    }

    async fn peer_del(&self, p: PeerDel, author: String) -> Result<Value, RpcError> {
        let remove = config::PeerRemove {
            name: p.name.clone(),
            comment: format!("vpn peer del {}", p.name),
            author: Some(author),
        };
        let out = self
            .edit_peer(&p.name, config::VPN_PEER_REMOVE, to_params(&remove))
            .await?;
        Ok(json!({"name": p.name, "removed": true, "revision": out.get("revision")}))
    }

    async fn peer_enable(&self, p: PeerEnable, author: String) -> Result<Value, RpcError> {
        let verb = if p.enabled { "enable" } else { "disable" };
        let edit = config::PeerEnable {
            name: p.name.clone(),
            enabled: p.enabled,
            comment: format!("vpn peer {verb} {}", p.name),
            author: Some(author),
        };
        let out = self
            .edit_peer(&p.name, config::VPN_PEER_ENABLE, to_params(&edit))
            .await?;
        Ok(json!({"name": p.name, "enabled": p.enabled, "revision": out.get("revision")}))
    }

    /// A supervisor edit of the existing peer `name` (`not_found` if the
    /// section has none), then the tunnel brought in line; the edit's answer.
    async fn edit_peer(&self, name: &str, method: &str, params: Value) -> Result<Value, RpcError> {
        let sh = &self.0;
        let (vpn, _) = current_vpn(&sh.state_dir).await?;
        if !vpn.peers.iter().any(|x| x.name == name) {
            return Err(RpcError::new(
                "not_found",
                format!("no peer named {name:?} (see `ctl vpn`)"),
            ));
        }
        let out = supervisor(sh.state_dir.clone(), method, params).await?;
        sh.reconcile().await.map_err(vpn_error)?;
        Ok(out)
    }
}

impl Handler for Control {
    async fn call(&self, call: Call) -> Result<Reply, RpcError> {
        let caller = format!("vpn (uid {})", call.peer.uid);
        let author = |given: &Option<String>| given.clone().unwrap_or_else(|| caller.clone());
        match call.method.as_str() {
            "vpn.status" => Ok(self.status().await?.into()),
            "vpn.peer_add" => {
                let p: PeerAdd = call.params()?;
                let mut problems = Vec::new();
                if p.name.is_empty()
                    || p.name.len() > 64
                    || !p
                        .name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                {
                    problems.push(format!(
                        "{:?} is not a valid name (1-64 letters, digits, '-', '_' or '.')",
                        p.name
                    ));
                }
                if let Some(m) = problems.pop() {
                    return Err(RpcError::invalid_params(m));
                }
                let author = author(&p.author);
                Ok(self.peer_add(p, author).await?.into())
            }
            "vpn.peer_del" => {
                let p: PeerDel = call.params()?;
                let author = author(&p.author);
                Ok(self.peer_del(p, author).await?.into())
            }
            "vpn.peer_enable" => {
                let p: PeerEnable = call.params()?;
                let author = author(&p.author);
                Ok(self.peer_enable(p, author).await?.into())
            }
            "vpn.reload" => {
                self.0.reconcile().await.map_err(vpn_error)?;
                Ok(json!({"reloaded": true}).into())
            }
            other => Err(RpcError::new(
                "method_not_found",
                format!("no method {other:?} in the vpn service"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_routes_are_networks() {
        let vpn = Vpn {
            pool: Some("10.8.0.0/24".into()),
            addresses: vec!["10.8.0.1/24".into(), "fd00::1/64".into()],
            ..Vpn::default()
        };
        assert_eq!(default_client_routes(&vpn), ["10.8.0.0/24", "fd00::/64"]);
    }
}
