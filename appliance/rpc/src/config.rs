//! `config.*`: read, apply, set, history, diff, rollback, confirm, export,
//! and the vpn service's peer edits. Every change takes an optional
//! `author` (the web and ssh doors pass their logged-in user; otherwise
//! the supervisor names the peer's Unix user) and most an
//! `expect_revision`, refused with `conflict` unless it is the current
//! revision.
//!
//! Changes answer `{revision, changed, changes, pending}`: the new
//! revision (null when nothing changed), the sections that changed, the
//! changes by key path and, for a risky change, what reverts when.

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const GET: &str = "config.get";
pub const APPLY: &str = "config.apply";
pub const SET: &str = "config.set";
pub const HISTORY: &str = "config.history";
pub const DIFF: &str = "config.diff";
pub const ROLLBACK: &str = "config.rollback";
pub const CONFIRM: &str = "config.confirm";
pub const VPN_PEER_ADD: &str = "config.vpn_peer_add";
pub const VPN_PEER_REMOVE: &str = "config.vpn_peer_remove";
pub const VPN_PEER_ENABLE: &str = "config.vpn_peer_enable";
pub const EXPORT: &str = "config.export";
pub const DNS_RECORD_ADD: &str = "config.dns_record_add";
pub const DNS_RECORD_REMOVE: &str = "config.dns_record_remove";

/// `config.get`: the document (or one section of it) at the current
/// revision or an older one; answers `{revision, config, pending}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Get {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
}

/// `config.apply`: exactly one of `config` and `text`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Apply {
    /// The document as JSON...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Value>,
    /// ...or as TOML/JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default)]
    pub comment: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// The whole document (absent sections take their defaults) instead
    /// of only the sections it has.
    #[serde(default)]
    pub replace: bool,
    /// Answers with the changes (`{dry_run, changes}`) without making them.
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_revision: Option<i64>,
}

/// `config.set`: one value at a key path such as `node.confirm_timeout`
/// or `dpx.records[0].value`. An empty comment becomes `set PATH = VALUE`
/// (a password shown as its reference).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Set {
    pub path: String,
    pub value: Value,
    #[serde(default)]
    pub comment: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_revision: Option<i64>,
}

/// `config.history`: the newest `limit` revisions and the pending one,
/// `{revisions, pending}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    #[serde(default = "twenty")]
    pub limit: u32,
}

/// The revisions `config.history` lists unless told otherwise.
pub const HISTORY_LIMIT: u32 = 20;

fn twenty() -> u32 {
    HISTORY_LIMIT
}

impl Default for Limit {
    fn default() -> Limit {
        Limit {
            limit: HISTORY_LIMIT,
        }
    }
}

/// `config.diff`: the changes from revision `a` to `b`, by key path.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Diff {
    pub a: i64,
    pub b: i64,
}

/// `config.rollback`: a new revision with revision `revision`'s content.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rollback {
    pub revision: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_revision: Option<i64>,
}

/// `config.confirm`: keeps a pending revision; answers [`Confirmed`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Confirm {
    /// The pending revision being kept; nothing else is confirmed.
    pub revision: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
}

/// What `config.confirm` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmed {
    pub confirmed: i64,
}

/// `config.vpn_peer_add`: a road-warrior peer (an
/// `alpharen_store::config::VpnPeer`, which this crate does not know)
/// added to `vpn.peers`; refused if one has its name.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerAdd<P = Value> {
    pub peer: P,
    #[serde(default)]
    pub comment: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// The revision the caller picked the peer's address from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_revision: Option<i64>,
}

/// `config.vpn_peer_remove`: the peer named `name` taken out of
/// `vpn.peers`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerRemove {
    pub name: String,
    #[serde(default)]
    pub comment: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
}

/// `config.vpn_peer_enable`: the peer named `name` kept in `vpn.peers`
/// but let on (`true`) or off (`false`) the tunnel.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerEnable {
    pub name: String,
    pub enabled: bool,
    #[serde(default)]
    pub comment: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
}

/// `config.export`: the current document as TOML, with a `[secrets]`
/// table if asked; answers [`Exported`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Export {
    #[serde(default)]
    pub with_secrets: bool,
}

/// What `config.export` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exported {
    /// Null before the first revision.
    pub revision: Option<i64>,
    pub text: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn absent_options_are_left_out_so_an_author_can_be_added() {
        let p = crate::to_params(&Rollback {
            revision: 3,
            author: None,
            expect_revision: None,
        });
        assert_eq!(p, json!({"revision": 3}));
        let p = crate::to_params(&Apply {
            text: Some("x".into()),
            ..Apply::default()
        });
        assert_eq!(
            p,
            json!({"text": "x", "comment": "", "replace": false, "dry_run": false})
        );
    }

    #[test]
    fn defaults_are_the_supervisors() {
        let l: Limit = serde_json::from_value(json!({})).unwrap();
        assert_eq!(l.limit, 20);
        let a: Apply = serde_json::from_value(json!({"text": "x"})).unwrap();
        assert!(!a.replace && !a.dry_run && a.comment.is_empty() && a.author.is_none());
        let e = serde_json::from_value::<Set>(json!({"path": "a", "value": 1, "x": 2}));
        assert!(e.unwrap_err().to_string().contains("unknown field `x`"));
    }
}

/// `config.dns_record_add`: a record (an
/// `alpharen_store::config::DnsRecord`) appended to `dpx.records`, or put
/// in the place of `replace`; refused if the same name, type and value is
/// there already.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordAdd<R = Value> {
    pub record: R,
    /// The record this one takes the place of (an edit), keeping its
    /// position; refused if there is no such record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace: Option<RecordKey>,
    #[serde(default)]
    pub comment: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
}

/// A static record by its name, type and value.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordKey {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
}

/// `config.dns_record_remove`: the record of that name, type and value
/// taken out of `dpx.records`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordRemove {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
    #[serde(default)]
    pub comment: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
}
