//! `<state>/run/dpx.sock`: the `dpx.*` control methods. `dpx.status` and
//! `dpx.records` for `ctl dpx`; `dpx.dyndns` is how the web service's
//! `/nic/update` changes an address, and `dpx.acme_txt` how its ACME
//! client publishes a DNS-01 answer, without touching the dpx tables itself;
//! `dpx.pg_master` is how pgha publishes a PostgreSQL group's master.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use alpharen_rpc::{Call, Handler, PGHA_UID, Reply, RpcError, WEB_UID};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::server::Core;
use crate::{Error, io_err, update};

/// TTL of dyndns addresses: short, they change.
const DYNDNS_TTL: u32 = 60;
/// TTL of DNS-01 answers: they live for one order.
const ACME_TTL: u32 = 10;
/// TTL of a PostgreSQL group's master (`<group>.pg.<zone>`): clients
/// must follow a failover within seconds.
const PG_MASTER_TTL: u32 = 5;
/// The only names `dpx.acme_txt` may change start with this label.
const ACME_LABEL: &str = "_acme-challenge.";

/// Whether `uid` may call `dpx.acme_txt`: root (the admin), the web
/// service's user, or our own (on a node whose services are not
/// separated, every service runs as one user).
fn acme_caller_ok(uid: u32, me: u32) -> bool {
    uid == 0 || uid == WEB_UID || uid == me
}

/// Whether `uid` may call `dpx.pg_master`: root, the pgha service's
/// user, or our own (services not separated).
fn pgha_caller_ok(uid: u32, me: u32) -> bool {
    uid == 0 || uid == PGHA_UID || uid == me
}

pub fn start(state_dir: &Path, core: Arc<Core>) -> Result<JoinHandle<()>, Error> {
    alpharen_rpc::spawn_service(state_dir, "dpx", Control(core)).map_err(io_err("control socket"))
}

struct Control(Arc<Core>);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DyndnsParams {
    hostname: String,
    ip: IpAddr,
    user: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AcmeTxtParams {
    /// `_acme-challenge.NAME`, inside the zone.
    name: String,
    /// The key authorization's digest (base64url, 43 characters).
    value: String,
    /// Publish (true) or withdraw (false) this one value.
    present: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PgMasterParams {
    /// The pgha group's key: one DNS label.
    group: String,
    /// The master's `pg_host`: an IP address (A or AAAA) or a host name
    /// (CNAME).
    host: String,
}

/// The update records that make `<group>.pg.<zone>` name `host` alone:
/// its A, AAAA and CNAME sets cleared, then the one record added.
fn pg_master_update(p: &PgMasterParams, origin: &Name) -> Result<Vec<Record>, RpcError> {
    let label_ok = !p.group.is_empty()
        && p.group.len() <= 63
        && p.group
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !label_ok {
        return Err(RpcError::invalid_params(format!(
            "group {:?}: a pgha group's key must be one DNS label (letters, digits, - and _) to be published as <group>.pg",
            p.group
        )));
    }
    let name = Name::from_ascii(format!("{}.pg", p.group))
        .and_then(|n| n.append_domain(origin))
        .map_err(|e| RpcError::invalid_params(format!("{}.pg: {e}", p.group)))?;
    let data = match p.host.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => RData::A(A(a)),
        Ok(IpAddr::V6(a)) => RData::AAAA(AAAA(a)),
        Err(_) => {
            let mut target = Name::from_ascii(&p.host).map_err(|e| {
                RpcError::invalid_params(format!(
                    "host {:?} is not an address or a DNS name: {e}",
                    p.host
                ))
            })?;
            target.set_fqdn(true);
            RData::CNAME(CNAME(target))
        }
    };
    let mut out: Vec<Record> = [RecordType::A, RecordType::AAAA, RecordType::CNAME]
        .into_iter()
        .map(|t| {
            let mut clear = Record::update0(name.clone(), 0, t);
            clear.dns_class = DNSClass::ANY;
            clear
        })
        .collect();
    out.push(Record::from_rdata(name, PG_MASTER_TTL, data));
    Ok(out)
}

fn pg_master(core: &Arc<Core>, p: PgMasterParams) -> Result<Value, RpcError> {
    let mut name = String::new();
    let result = core.commit("pgha", |zone, dynamic| {
        let updates = pg_master_update(&p, &zone.origin).map_err(|_| ResponseCode::FormErr)?;
        name = updates[0].name.to_string();
        let mut next = dynamic.clone();
        update::apply(&mut next, &updates);
        let same = |a: &Vec<Record>, b: &Vec<Record>| {
            a.len() == b.len() && a.iter().all(|r| b.iter().any(|s| s == r))
        };
        if same(&next, dynamic) {
            return Ok(false);
        }
        *dynamic = next;
        Ok(true)
    });
    match result {
        Ok(changed) => Ok(json!({"name": name, "changed": changed})),
        Err(ResponseCode::Refused) => Err(RpcError::new("no_zone", "dpx.zone is not set")),
        Err(code) => Err(RpcError::new("dpx_error", format!("update failed: {code}"))),
    }
}

/// The update records for one DNS-01 answer: add it, or delete exactly
/// that value (another order's answer at the same name stays).
fn acme_txt_update(p: &AcmeTxtParams) -> Result<Record, RpcError> {
    if !p.name.to_ascii_lowercase().starts_with(ACME_LABEL) {
        return Err(RpcError::invalid_params(format!(
            "{:?}: only {ACME_LABEL}… names may be changed",
            p.name
        )));
    }
    if p.value.is_empty()
        || p.value.len() > 255
        || !p
            .value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(RpcError::invalid_params(
            "value: a base64url digest (letters, digits, - and _)",
        ));
    }
    let mut name = Name::from_ascii(&p.name)
        .map_err(|e| RpcError::invalid_params(format!("{:?} is not a DNS name: {e}", p.name)))?;
    name.set_fqdn(true);
    let mut rr = Record::from_rdata(name, ACME_TTL, RData::TXT(TXT::new(vec![p.value.clone()])));
    if !p.present {
        rr.ttl = 0;
        rr.dns_class = DNSClass::NONE;
    }
    Ok(rr)
}

fn acme_txt(core: &Arc<Core>, p: AcmeTxtParams) -> Result<Value, RpcError> {
    let rr = acme_txt_update(&p)?;
    let result = core.commit("acme", |zone, dynamic| {
        if !zone.origin.zone_of(&rr.name) {
            return Err(ResponseCode::NotZone);
        }
        Ok(update::apply(dynamic, std::slice::from_ref(&rr)))
    });
    match result {
        Ok(changed) => Ok(json!({"changed": changed})),
        Err(ResponseCode::NotZone) => Err(RpcError::new(
            "not_in_zone",
            format!("{} is not inside the zone", rr.name),
        )),
        Err(ResponseCode::Refused) => Err(RpcError::new("no_zone", "dpx.zone is not set")),
        Err(code) => Err(RpcError::new("dpx_error", format!("update failed: {code}"))),
    }
}

fn record_json(r: &Record, source: &str) -> Value {
    json!({
        "name": r.name.to_string(),
        "type": r.record_type().to_string(),
        "ttl": r.ttl,
        "data": r.data.to_string(),
        "source": source,
    })
}

/// Sets the one address of `hostname` for the IP's family (A or AAAA).
fn dyndns(core: &Arc<Core>, p: DyndnsParams) -> Result<Value, RpcError> {
    let mut name = Name::from_ascii(&p.hostname).map_err(|e| {
        RpcError::invalid_params(format!("{:?} is not a DNS name: {e}", p.hostname))
    })?;
    name.set_fqdn(true);
    let (t, data) = match p.ip {
        IpAddr::V4(a) => (RecordType::A, RData::A(A(a))),
        IpAddr::V6(a) => (RecordType::AAAA, RData::AAAA(AAAA(a))),
    };
    let mut clear = Record::update0(name.clone(), 0, t);
    clear.dns_class = DNSClass::ANY;
    let set = Record::from_rdata(name.clone(), DYNDNS_TTL, data);
    let by = format!("dyndns:{}", p.user);
    let result = core.commit(&by, |zone, dynamic| {
        if !zone.origin.zone_of(&name) {
            return Err(ResponseCode::NotZone);
        }
        let now: Vec<&Record> = dynamic
            .iter()
            .filter(|r| r.name == name && r.record_type() == t)
            .collect();
        if now.len() == 1 && now[0].data == set.data {
            return Ok(false);
        }
        Ok(update::apply(dynamic, &[clear, set.clone()]))
    });
    match result {
        Ok(changed) => Ok(json!({"changed": changed})),
        Err(ResponseCode::NotZone) => Err(RpcError::new(
            "not_in_zone",
            format!("{name} is not inside the zone"),
        )),
        Err(ResponseCode::Refused) => Err(RpcError::new("no_zone", "dpx.zone is not set")),
        Err(code) => Err(RpcError::new("dpx_error", format!("update failed: {code}"))),
    }
}

impl Handler for Control {
    async fn call(&self, call: Call) -> Result<Reply, RpcError> {
        let core = &self.0;
        let cur = core.current();
        let value = match call.method.as_str() {
            "dpx.status" => {
                let client = core
                    .client_status()
                    .lock()
                    .map(|c| json!(*c))
                    .unwrap_or(Value::Null);
                let mut v = match &cur.zone {
                    None => json!({"zone": null, "port": null}),
                    Some(z) => json!({
                        "zone": z.origin.to_string(),
                        "port": core.port(),
                        "serial": z.serial,
                        "static_records": z.statics.len(),
                        "dynamic_records": z.dynamic.len(),
                        "tsig_keys": z.keys.iter().map(|k| k.signer.signer_name().to_string()).collect::<Vec<_>>(),
                    }),
                };
                v["client"] = client;
                v["queries"] = core.stats().json();
                v
            }
            "dpx.records" => {
                let records: Vec<Value> = match &cur.zone {
                    None => Vec::new(),
                    Some(z) => z
                        .statics
                        .iter()
                        .map(|r| record_json(r, "config"))
                        .chain(z.dynamic.iter().map(|r| record_json(r, "dynamic")))
                        .collect(),
                };
                json!({"records": records})
            }
            "dpx.dyndns" => dyndns(core, call.params()?)?,
            "dpx.acme_txt" => {
                if !acme_caller_ok(call.peer.uid, nix::unistd::geteuid().as_raw()) {
                    return Err(RpcError::new(
                        "forbidden",
                        format!(
                            "dpx.acme_txt: uid {} is not the web service's user (ar-web, uid {WEB_UID}) or root; only the ACME client may change _acme-challenge records",
                            call.peer.uid
                        ),
                    ));
                }
                acme_txt(core, call.params()?)?
            }
            "dpx.pg_master" => {
                if !pgha_caller_ok(call.peer.uid, nix::unistd::geteuid().as_raw()) {
                    return Err(RpcError::new(
                        "forbidden",
                        format!(
                            "dpx.pg_master: uid {} is not the pgha service's user (ar-pgha, uid {PGHA_UID}) or root",
                            call.peer.uid
                        ),
                    ));
                }
                let p: PgMasterParams = call.params()?;
                if let Some(z) = &cur.zone {
                    pg_master_update(&p, &z.origin)?;
                }
                pg_master(core, p)?
            }
            other => {
                return Err(RpcError::new(
                    "method_not_found",
                    format!("no method {other:?}"),
                ));
            }
        };
        Ok(Reply::Value(value))
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn only_root_and_the_web_user_publish_acme_answers() {
        // Separated services: dpx runs as 905.
        assert!(acme_caller_ok(0, 905));
        assert!(acme_caller_ok(WEB_UID, 905));
        assert!(!acme_caller_ok(908, 905));
        assert!(!acme_caller_ok(1000, 905));
        // Not separated: everything runs as one user.
        assert!(acme_caller_ok(1000, 1000));
    }
    use super::*;

    fn params(name: &str, value: &str, present: bool) -> AcmeTxtParams {
        AcmeTxtParams {
            name: name.into(),
            value: value.into(),
            present,
        }
    }

    #[test]
    fn acme_answers_are_added_and_withdrawn_one_value_at_a_time() {
        let mut dynamic = Vec::new();
        let a = acme_txt_update(&params("_acme-challenge.z.example", "aaa", true)).unwrap();
        let b = acme_txt_update(&params("_acme-challenge.z.example", "bbb", true)).unwrap();
        assert!(update::apply(&mut dynamic, &[a, b]));
        assert_eq!(
            dynamic.len(),
            2,
            "a wildcard and its base name share the name"
        );
        let gone = acme_txt_update(&params("_acme-challenge.z.example", "aaa", false)).unwrap();
        assert!(update::apply(&mut dynamic, &[gone]));
        assert_eq!(dynamic.len(), 1);
        assert_eq!(dynamic[0].data.to_string(), "bbb");
    }

    #[test]
    fn a_pg_master_replaces_every_address_of_its_name() {
        let origin = Name::from_ascii("z.example.").unwrap();
        let p = |host: &str| PgMasterParams {
            group: "main".into(),
            host: host.into(),
        };
        let mut dynamic = Vec::new();
        assert!(update::apply(
            &mut dynamic,
            &pg_master_update(&p("10.0.0.1"), &origin).unwrap()
        ));
        assert!(update::apply(
            &mut dynamic,
            &pg_master_update(&p("fd00::2"), &origin).unwrap()
        ));
        assert_eq!(dynamic.len(), 1, "{dynamic:?}");
        assert_eq!(dynamic[0].name.to_string(), "main.pg.z.example.");
        assert_eq!(dynamic[0].record_type(), RecordType::AAAA);
        assert_eq!(dynamic[0].ttl, PG_MASTER_TTL);
        assert!(update::apply(
            &mut dynamic,
            &pg_master_update(&p("db2.lan"), &origin).unwrap()
        ));
        assert_eq!(dynamic.len(), 1);
        assert_eq!(dynamic[0].data.to_string(), "db2.lan.");
        let bad = PgMasterParams {
            group: "a.b".into(),
            host: "10.0.0.1".into(),
        };
        assert!(pg_master_update(&bad, &origin).is_err());
    }

    #[test]
    fn only_root_and_the_pgha_user_publish_masters() {
        assert!(pgha_caller_ok(0, 903));
        assert!(pgha_caller_ok(PGHA_UID, 903));
        assert!(!pgha_caller_ok(WEB_UID, 903));
    }

    #[test]
    fn only_acme_challenge_txt_values_may_be_changed() {
        let e = acme_txt_update(&params("www.z.example", "aaa", true)).unwrap_err();
        assert!(e.message.contains("_acme-challenge."), "{}", e.message);
        assert!(acme_txt_update(&params("_acme-challenge.z.example", "a b", true)).is_err());
        assert!(acme_txt_update(&params("_acme-challenge.z.example", "", true)).is_err());
    }
}
