use serde::{Deserialize, Serialize};

use super::{KeyPath, Problem, check};

/// `[dpx]`: the cluster zone served by the node's DNS.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Dpx {
    pub zone: Option<String>,
    pub records: Vec<DnsRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct DnsRecord {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
    #[serde(default)]
    pub ttl: Option<u32>,
}

const RECORD_TYPES: [&str; 7] = ["A", "AAAA", "CNAME", "TXT", "MX", "SRV", "NS"];

impl Dpx {
    pub(super) fn validate(&self, path: &KeyPath, out: &mut Vec<Problem>) {
        if let Some(zone) = &self.zone {
            check::hostname(out, &path.key("zone"), zone);
        }
        if !self.records.is_empty() && self.zone.is_none() {
            check::push(out, &path.key("zone"), "records need a zone to live in");
        }
        for (i, rec) in self.records.iter().enumerate() {
            let at = path.key("records").index(i);
            if rec.name != "@" {
                check::hostname(out, &at.key("name"), rec.name.trim_start_matches("*."));
            }
            if !RECORD_TYPES.contains(&rec.kind.as_str()) {
                check::push(
                    out,
                    &at.key("type"),
                    format!("{:?} is not one of {}", rec.kind, RECORD_TYPES.join(", ")),
                );
            }
            let bad_ip = match rec.kind.as_str() {
                "A" => rec.value.parse::<std::net::Ipv4Addr>().is_err(),
                "AAAA" => rec.value.parse::<std::net::Ipv6Addr>().is_err(),
                _ => false,
            };
            if bad_ip {
                check::push(
                    out,
                    &at.key("value"),
                    format!(
                        "{:?} is not an address for a {} record",
                        rec.value, rec.kind
                    ),
                );
            }
        }
    }
}
