//! net: what the net service sees and did (`net.status`).

use crate::client::NodeClient;
use serde_json::{Value, json};

use crate::CtlError;
use crate::output::{Output, table, text};

fn list(v: &Value) -> String {
    v.as_array()
        .map(|a| a.iter().map(text).collect::<Vec<_>>().join(", "))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "-".into())
}

pub fn status(client: &mut NodeClient, out: &Output) -> Result<(), CtlError> {
    let v = client.call("net.status", json!({}))?;
    out.show(&v, |v| {
        let managed = v["managed"].as_bool() == Some(true);
        println!(
            "managed   {}",
            if managed {
                "yes"
            } else {
                "no (observing only)"
            }
        );
        let missing = list(&v["missing"]);
        if missing != "-" {
            println!("MISSING   {missing}");
        }
        let mut rows = Vec::new();
        for l in v["links"].as_array().into_iter().flatten() {
            let addrs: Vec<String> = l["addresses"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| format!("{} ({})", text(&a["address"]), text(&a["origin"])))
                .collect();
            rows.push(vec![
                text(&l["name"]),
                text(&l["state"]),
                if l["up"].as_bool() == Some(true) {
                    "up"
                } else {
                    "down"
                }
                .into(),
                if l["carrier"].as_bool() == Some(true) {
                    "yes"
                } else {
                    "no"
                }
                .into(),
                text(&l["mtu"]),
                if addrs.is_empty() {
                    "-".into()
                } else {
                    addrs.join(", ")
                },
            ]);
        }
        println!();
        table(
            &["link", "state", "admin", "carrier", "mtu", "addresses"],
            rows,
        );
        let mut routes = Vec::new();
        for l in v["links"].as_array().into_iter().flatten() {
            for r in l["routes"].as_array().into_iter().flatten() {
                routes.push(vec![
                    text(&r["dest"]),
                    text(&r["via"]),
                    text(&l["name"]),
                    text(&r["metric"]),
                    text(&r["origin"]),
                ]);
            }
        }
        println!();
        table(&["route", "via", "dev", "metric", "origin"], routes);
        for l in v["leases"].as_array().into_iter().flatten() {
            println!(
                "\nlease     {} on {} from {} ({}, {}s of {}s left), router {}, dns {}",
                text(&l["address"]),
                text(&l["interface"]),
                text(&l["server"]),
                text(&l["state"]),
                text(&l["remaining_secs"]),
                text(&l["lease_secs"]),
                text(&l["router"]),
                list(&l["dns"]),
            );
        }
        println!(
            "\ndns       {} (search {}) in {}",
            list(&v["dns"]["servers"]),
            list(&v["dns"]["search"]),
            text(&v["dns"]["path"])
        );
        let t = &v["time"];
        match t["last"].as_object() {
            Some(s) => println!(
                "time      offset {:.3} ms from {} (stratum {}), clock {}",
                s.get("offset").and_then(Value::as_f64).unwrap_or(0.0) * 1000.0,
                s.get("server").map(text).unwrap_or_default(),
                s.get("stratum").map(text).unwrap_or_default(),
                if t["set_clock"].as_bool() == Some(true) {
                    "managed"
                } else {
                    "untouched"
                }
            ),
            None => println!(
                "time      {}",
                if t["error"].is_null() {
                    "no servers configured".to_string()
                } else {
                    text(&t["error"])
                }
            ),
        }
    });
    Ok(())
}
