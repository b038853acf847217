//! `config.dns_record_add|remove`: one static record of `[dpx]` in, changed
//! or out,
//! as a checked revision, so the console edits a record without sending
//! the whole section (and its key references) back.

use std::sync::Arc;

use alpharen_rpc::config::{self as m, RecordAdd, RecordRemove};
use alpharen_rpc::{Call, RpcError};
use alpharen_store::config::DnsRecord;
use alpharen_store::{Problem, Write};
use serde_json::Value;

use super::author;
use super::config::{commit, or_default};
use crate::state::NodeState;

/// Whether `r` is the record `name`/`kind`/`value` names (types compare
/// without case, as DNS does).
fn same(r: &DnsRecord, name: &str, kind: &str, value: &str) -> bool {
    r.name == name && r.kind.eq_ignore_ascii_case(kind) && r.value == value
}

fn label(name: &str, kind: &str, value: &str) -> String {
    format!("{name} {} {value}", kind.to_ascii_uppercase())
}

fn no_record(what: &str) -> Vec<Problem> {
    vec![Problem {
        line: None,
        path: "dpx.records".into(),
        message: format!("there is no record {what}"),
    }]
}

pub async fn call(node: &Arc<NodeState>, call: &Call) -> Result<Value, RpcError> {
    if call.method == m::DNS_RECORD_ADD {
        let p: RecordAdd<DnsRecord> = call.params()?;
        let who = author(call, p.author);
        let r = p.record;
        let what = label(&r.name, &r.kind, &r.value);
        let old = p.replace.map(|k| label(&k.name, &k.kind, &k.value));
        let comment = or_default(p.comment, || match &old {
            Some(old) => format!("dns record {old} changed to {what}"),
            None => format!("dns record {what} added"),
        });
        return commit(node, move |s| {
            s.edit(&Write::new(&who, &comment), |c| {
                let at = match &old {
                    None => None,
                    Some(old) => Some(
                        c.dpx
                            .records
                            .iter()
                            .position(|q| label(&q.name, &q.kind, &q.value) == *old)
                            .ok_or_else(|| no_record(old))?,
                    ),
                };
                if c.dpx
                    .records
                    .iter()
                    .enumerate()
                    .any(|(i, q)| Some(i) != at && same(q, &r.name, &r.kind, &r.value))
                {
                    return Err(vec![Problem {
                        line: None,
                        path: "dpx.records".into(),
                        message: format!("the record {what} exists already"),
                    }]);
                }
                match at {
                    Some(i) => c.dpx.records[i] = r.clone(),
                    None => c.dpx.records.push(r.clone()),
                }
                Ok(())
            })
        })
        .await;
    }
    let p: RecordRemove = call.params()?;
    let who = author(call, p.author);
    let what = label(&p.name, &p.kind, &p.value);
    let comment = or_default(p.comment, || format!("dns record {what} removed"));
    commit(node, move |s| {
        s.edit(&Write::new(&who, &comment), |c| {
            let Some(i) = c
                .dpx
                .records
                .iter()
                .position(|q| same(q, &p.name, &p.kind, &p.value))
            else {
                return Err(no_record(&what));
            };
            c.dpx.records.remove(i);
            Ok(())
        })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_named_by_name_type_and_value() {
        let r = DnsRecord {
            name: "www".into(),
            kind: "A".into(),
            value: "192.0.2.1".into(),
            ttl: None,
        };
        assert!(same(&r, "www", "a", "192.0.2.1"));
        assert!(!same(&r, "www", "AAAA", "192.0.2.1"));
        assert!(!same(&r, "www", "A", "192.0.2.2"));
        assert!(!same(&r, "WWW2", "A", "192.0.2.1"));
    }
}
