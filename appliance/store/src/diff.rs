//! Key-path views of a document: flattening for `config diff` and setting
//! one value for `config set`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One leaf that differs between two documents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub path: String,
    pub old: Option<Value>,
    pub new: Option<Value>,
}

/// Every leaf of a JSON value keyed by its path (`a.b[0].c`). Empty objects
/// and arrays count as leaves so that adding one shows up.
pub fn flatten(value: &Value) -> BTreeMap<String, Value> {
    fn walk(prefix: &str, value: &Value, out: &mut BTreeMap<String, Value>) {
        match value {
            Value::Object(map) if !map.is_empty() => {
                for (k, v) in map {
                    let p = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&p, v, out);
                }
            }
            Value::Array(items) if !items.is_empty() => {
                for (i, v) in items.iter().enumerate() {
                    walk(&format!("{prefix}[{i}]"), v, out);
                }
            }
            _ => {
                out.insert(prefix.to_string(), value.clone());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk("", value, &mut out);
    out
}

/// Leaf-by-leaf differences, in path order.
pub fn diff(old: &Value, new: &Value) -> Vec<Change> {
    let (a, b) = (flatten(old), flatten(new));
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| Change {
            path: k.clone(),
            old: a.get(k).cloned(),
            new: b.get(k).cloned(),
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Key(String),
    Index(usize),
}

fn parse_path(path: &str) -> Result<Vec<Segment>, String> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if key.is_empty() {
            return Err(format!("{path:?} has an empty key"));
        }
        out.push(Segment::Key(key.to_string()));
        while let Some(r) = rest.strip_prefix('[') {
            let end = r
                .find(']')
                .ok_or_else(|| format!("{path:?} has an unclosed '['"))?;
            let idx = r[..end]
                .parse()
                .map_err(|_| format!("{path:?}: {:?} is not an index", &r[..end]))?;
            out.push(Segment::Index(idx));
            rest = &r[end + 1..];
        }
        if !rest.is_empty() {
            return Err(format!("{path:?}: unexpected {rest:?}"));
        }
    }
    Ok(out)
}

/// Sets the value at `path`, creating tables on the way. An index may point
/// at an existing element or one past the end (append).
pub fn set_path(doc: &mut Value, path: &str, value: Value) -> Result<(), String> {
    let segments = parse_path(path)?;
    let mut cur = doc;
    for seg in segments {
        cur = match seg {
            Segment::Key(k) => {
                if cur.is_null() {
                    *cur = Value::Object(Default::default());
                }
                let Value::Object(map) = cur else {
                    return Err(format!(
                        "{path:?}: {k:?} is inside something that is not a table"
                    ));
                };
                map.entry(k).or_insert(Value::Null)
            }
            Segment::Index(i) => {
                if cur.is_null() {
                    *cur = Value::Array(Vec::new());
                }
                let Value::Array(items) = cur else {
                    return Err(format!(
                        "{path:?}: [{i}] is used on something that is not a list"
                    ));
                };
                if i == items.len() {
                    items.push(Value::Null);
                }
                items
                    .get_mut(i)
                    .ok_or_else(|| format!("{path:?}: index {i} is past the end of the list"))?
            }
        };
    }
    *cur = value;
    Ok(())
}

/// The value at `path`, if there is one.
pub fn get_path(doc: &Value, path: &str) -> Option<Value> {
    let mut cur = doc;
    for seg in parse_path(path).ok()? {
        cur = match seg {
            Segment::Key(k) => cur.get(k.as_str())?,
            Segment::Index(i) => cur.get(i)?,
        };
    }
    Some(cur.clone())
}

/// Interprets a command-line value as TOML (`true`, `42`, `["a"]`, `"s"`),
/// falling back to a plain string so `hostname node2` needs no quotes.
pub fn parse_cli_value(text: &str) -> Value {
    toml::from_str::<toml::Table>(&format!("v = {text}"))
        .ok()
        .and_then(|t| t.get("v").cloned())
        .and_then(|v| serde_json::to_value(v).ok())
        .unwrap_or_else(|| Value::String(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn diff_reports_changed_added_and_removed_leaves() {
        let a = json!({"node": {"hostname": "a", "x": [1, 2]}});
        let b = json!({"node": {"hostname": "b", "x": [1]}, "mail": {"y": true}});
        let paths: Vec<_> = diff(&a, &b).into_iter().map(|c| c.path).collect();
        assert_eq!(paths, vec!["mail.y", "node.hostname", "node.x[1]"]);
    }

    #[test]
    fn set_path_creates_tables_and_appends() {
        let mut doc = json!({});
        set_path(&mut doc, "node.hostname", json!("n2")).unwrap();
        set_path(&mut doc, "network.interfaces[0].name", json!("eth0")).unwrap();
        assert_eq!(
            doc,
            json!({"node": {"hostname": "n2"}, "network": {"interfaces": [{"name": "eth0"}]}})
        );
        assert!(set_path(&mut doc, "network.interfaces[5].name", json!("x")).is_err());
        assert!(set_path(&mut doc, "node.hostname.deeper", json!(1)).is_err());
        assert!(set_path(&mut doc, "a..b", json!(1)).is_err());
    }

    #[test]
    fn cli_values_are_toml_or_plain_strings() {
        assert_eq!(parse_cli_value("true"), json!(true));
        assert_eq!(parse_cli_value("30"), json!(30));
        assert_eq!(parse_cli_value("[\"a\"]"), json!(["a"]));
        assert_eq!(parse_cli_value("node2"), json!("node2"));
        assert_eq!(parse_cli_value("\"quoted\""), json!("quoted"));
    }
}
