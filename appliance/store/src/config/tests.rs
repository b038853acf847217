use super::*;

const DESIGN_EXAMPLE: &str = r#"
[node]
hostname = "node1"
confirm_timeout = 120
[[node.extra_services]]
name = "exporter"
command = "/usr/bin/prometheus-node-exporter"
args = []

[network]
manage = true
[[network.interfaces]]
name = "eth0"
dhcp4 = true

[mail.relay]
mode = "smarthost"
host = "smtp.example.net"
port = 587
tls = "starttls"

[dpx]
zone = "arclst.example."
[[dpx.records]]
name = "www"
type = "A"
value = "192.0.2.10"

[[integrator.security]]
name = "cust.basic"
kind = "basic"
username = "cust"
password = "..."

[[integrator.channels]]
name = "cust.user.get"
url_path = "/api/user/get-details"
data_format = "json"
service = "api.user.get-details"
security = "cust.basic"
"#;

fn paths(problems: Vec<Problem>) -> Vec<String> {
    problems.into_iter().map(|p| p.path).collect()
}

#[test]
fn design_example_loads() {
    let c = Config::from_toml(DESIGN_EXAMPLE).unwrap();
    assert_eq!(c.node.hostname, "node1");
    assert_eq!(c.integrator.channels[0].url_path, "/api/user/get-details");
}

#[test]
fn empty_document_is_all_defaults() {
    let c = Config::from_toml("").unwrap();
    assert_eq!(c, Config::default());
    assert_eq!(c.node.confirm_timeout, 120);
}

#[test]
fn unknown_key_is_refused_with_its_path() {
    let err = Config::from_toml("[network]\nmanaged = true\n").unwrap_err();
    assert_eq!(paths(err.clone()), vec!["network.managed"]);
    assert!(
        err[0].message.contains("unknown field"),
        "{}",
        err[0].message
    );
    let err = Config::from_toml("[vpn]\nenable = true\n").unwrap_err();
    assert_eq!(paths(err), vec!["vpn.enable"]);
    let err = Config::from_toml("[bogus]\n").unwrap_err();
    assert!(err[0].message.contains("bogus"));
}

#[test]
fn wrong_type_names_the_key() {
    let err = Config::from_toml("[node]\nconfirm_timeout = \"soon\"\n").unwrap_err();
    assert_eq!(paths(err), vec!["node.confirm_timeout"]);
}

#[test]
fn syntax_error_names_line_and_column() {
    let err = Config::from_toml("[node]\nhostname = \n").unwrap_err();
    assert!(err[0].path.starts_with("line 2"), "{:?}", err);
    let err = Config::from_text("{\"node\": ").unwrap_err();
    assert!(err[0].message.contains("not valid JSON"));
}

#[test]
fn every_invalid_value_is_reported_at_once() {
    let text = r#"
[node]
hostname = "bad_name"
confirm_timeout = 0
[[network.interfaces]]
name = "eth0"
addresses = ["192.0.2.5/24", "300.1.1.1/24", "10.0.0.1"]
gateway4 = "198.51.100.1"
[[node.extra_services]]
name = "web"
command = "relative"
"#;
    let got = paths(Config::from_toml(text).unwrap_err());
    assert_eq!(
        got,
        vec![
            "node.hostname",
            "node.confirm_timeout",
            "node.extra_services[0].name",
            "node.extra_services[0].command",
            "network.interfaces[0].addresses[1]",
            "network.interfaces[0].addresses[2]",
            "network.interfaces[0].gateway4",
        ]
    );
}

#[test]
fn gateway_inside_subnet_is_fine() {
    let text = "[[network.interfaces]]\nname = \"eth0\"\naddresses = [\"192.0.2.5/24\", \"2001:db8::5/64\"]\ngateway4 = \"192.0.2.1\"\n";
    Config::from_toml(text).unwrap();
}

#[test]
fn reserved_and_duplicate_names_are_refused() {
    let text = r#"
[[integrator.security]]
name = "ARadmin"
kind = "basic"
[[integrator.security]]
name = "ARadmin"
kind = "magic"
"#;
    let got = paths(Config::from_toml(text).unwrap_err());
    assert_eq!(
        got,
        vec![
            "integrator.security[0].name",
            "integrator.security[1].name",
            "integrator.security[1].kind",
            "integrator.security[1].name",
        ]
    );
}

#[test]
fn changed_sections_lists_only_differences() {
    let a = Config::default();
    let mut b = a.clone();
    b.node.hostname = "other".into();
    b.network.manage = Some(false);
    assert_eq!(
        a.changed_sections(&b),
        vec![Section::Node, Section::Network]
    );
    assert!(Section::Network.is_risky() && !Section::Node.is_risky());
}

#[test]
fn toml_round_trip_is_lossless() {
    let c = Config::from_toml(DESIGN_EXAMPLE).unwrap();
    assert_eq!(Config::from_toml(&c.to_toml()).unwrap(), c);
}
