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

pub(super) fn paths(problems: Vec<Problem>) -> Vec<String> {
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
username = "admin"
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

#[test]
fn integrator_section_problems_are_path_precise() {
    let text = r#"
[integrator]
workers = 2
worker_memory_limit = 8
timeout = 0
servers = ["ftp://x"]
[[integrator.security]]
name = "k"
kind = "apikey"
header = "bad header"
[[integrator.channels]]
name = "c"
url_path = "/a"
methods = ["GET", "FETCH"]
data_format = "yaml"
service = "s"
security = "k"
[[integrator.outgoing]]
name = "o"
host = "http://127.0.0.1:8000/path"
security = "k"
"#;
    let got = paths(Config::from_toml(text).unwrap_err());
    assert_eq!(
        got,
        vec![
            "integrator.worker_memory_limit",
            "integrator.timeout",
            "integrator.servers[0]",
            "integrator.security[0].header",
            "integrator.channels[0].methods[1]",
            "integrator.channels[0].data_format",
            "integrator.outgoing[0].host",
            "integrator.outgoing[0].security",
        ]
    );
    let err = Config::from_toml("[integrator]\nworkerz = 1\n").unwrap_err();
    assert_eq!(err[0].path, "integrator.workerz");
    let ok = Config::from_toml("[integrator]\nworkers = 3\n").unwrap();
    assert_eq!(ok.integrator.workers, 3);
    assert_eq!(ok.integrator.port, 11223);
}

#[test]
fn web_and_ssh_sections_are_checked_with_paths() {
    let ok = Config::from_toml(
        r#"
[web]
https_port = 9443
cert = "/data/tls/mine.pem"
key = "/data/tls/mine.key"
[ssh]
password_auth = false
[ssh.authorized_keys]
admin = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@laptop"]
"#,
    )
    .unwrap();
    assert_eq!(ok.web.https_port, Some(9443));
    assert!(ok.ssh.allow_shell, "prompt allowed by default");
    let bad = Config::from_toml(
        r#"
[web]
https_port = 0
cert = "relative.pem"
session_idle_minutes = 1
[ssh.authorized_keys]
admin = ["ssh-dss AAAA", "ssh-ed25519 !!!"]
"Bad User" = []
"#,
    )
    .unwrap_err();
    let paths: Vec<&str> = bad.iter().map(|p| p.path.as_str()).collect();
    for want in [
        "web.https_port",
        "web.cert",
        "web.key",
        "web.session_idle_minutes",
        "ssh.authorized_keys.admin[0]",
        "ssh.authorized_keys.admin[1]",
        "ssh.authorized_keys.Bad User",
    ] {
        assert!(paths.contains(&want), "{want} not in {paths:?}");
    }
    let unknown = Config::from_toml("[web]\nport = 1\n").unwrap_err();
    assert_eq!(unknown[0].path, "web.port");
}

#[test]
fn network_extensions_parse_and_validate() {
    let ok = r#"
[network]
manage = true
[[network.interfaces]]
name = "eth0"
addresses = ["192.0.2.5/24", "2001:db8::5/64"]
mtu = 1400
gateway4 = "192.0.2.1"
gateway6 = "2001:db8::1"
routes = [{ dest = "198.51.100.0/24", via = "192.0.2.254", metric = 50 }]
accept_ra = false
[[network.vlans]]
id = 10
parent = "eth0"
[network.dns]
servers = ["192.0.2.53"]
search = ["example.net"]
[network.time]
servers = ["192.0.2.123", "pool.example.net", "192.0.2.1:1123"]
set_clock = false
"#;
    let c = Config::from_toml(ok).unwrap();
    assert_eq!(c.network.vlans[0].link_name(), "eth0.10");
    assert!(c.network.dns.use_dhcp);

    let bad = r#"
[[network.interfaces]]
name = "eth0"
addresses = ["10.0.0.1/24"]
gateway6 = "2001:db8::1"
mtu = 10
routes = [{ dest = "nowhere" }, { dest = "default", via = "192.168.9.1" }]
[[network.vlans]]
id = 10
link = "eth0"
[[network.vlans]]
id = 10
link = "eth0"
name = "v10"
[[network.vlans]]
id = 5000
link = "eth0"
[network.dns]
servers = ["not-an-ip"]
"#;
    assert_eq!(
        paths(Config::from_toml(bad).unwrap_err()),
        vec![
            "network.interfaces[0].mtu",
            "network.interfaces[0].gateway6",
            "network.interfaces[0].routes[0].dest",
            "network.interfaces[0].routes[1].via",
            "network.vlans[1].id",
            "network.vlans[2].id",
            "network.dns.servers[0]",
        ]
    );
}

/// serde reads a struct from a sequence too; an array where a table
/// belongs must not turn into defaults (`PUT /api/v1/config
/// {"config": []}` used to reset the whole configuration).
#[test]
fn arrays_are_not_tables() {
    let err = Config::from_value(serde_json::json!([])).unwrap_err();
    assert_eq!(err[0].path, "(document)");
    assert!(err[0].message.contains("not an array"), "{err:?}");
    let err = Config::from_value(serde_json::json!({"web": []})).unwrap_err();
    assert_eq!(err[0].path, "web");
    let err = Config::from_value(serde_json::json!({"mail": {"listen": [25]}})).unwrap_err();
    assert_eq!(err[0].path, "mail.listen");
    // Real arrays stay arrays, tables inside them are checked too.
    let ok = Config::from_value(serde_json::json!({"network": {"interfaces": [{"name": "eth0"}]}}));
    assert!(ok.is_ok(), "{ok:?}");
    let err =
        Config::from_value(serde_json::json!({"network": {"interfaces": [["eth0"]]}})).unwrap_err();
    assert_eq!(err[0].path, "network.interfaces[0]");
    assert!(Config::from_value(serde_json::json!({})).is_ok());
}

#[test]
fn submission_ports_are_checked() {
    let ok = Config::from_toml("[mail.submission]\nports = [25, 587]\n").unwrap();
    assert_eq!(ok.mail.submission.ports, vec![25, 587]);
    let bad = "[mail.submission]\nports = [587, 0, 587]\n";
    assert_eq!(
        paths(Config::from_toml(bad).unwrap_err()),
        vec!["mail.submission.ports[1]", "mail.submission.ports[2]"]
    );
}

#[test]
fn time_zones_are_names_offsets_or_utc() {
    for ok in ["UTC", "Europe/Berlin", "Etc/GMT-5", "+02:00", "-09:30"] {
        let cfg = format!("[node]\ntimezone = {ok:?}\n");
        assert!(Config::from_toml(&cfg).is_ok(), "{ok}");
    }
    for bad in ["Europe/Atlantis", "", "+25:00", "berlin"] {
        let cfg = format!("[node]\ntimezone = {bad:?}\n");
        assert_eq!(
            paths(Config::from_toml(&cfg).unwrap_err()),
            vec!["node.timezone"],
            "{bad}"
        );
    }
}

#[test]
fn channels_that_take_the_same_requests_are_refused_naming_both() {
    let doc = |second: &str, methods: &str| {
        format!(
            "[[integrator.channels]]\nname = \"by-id\"\nurl_path = \"/user/{{id}}\"\nservice = \"s\"\nmethods = [\"GET\"]\n\
             [[integrator.channels]]\nname = \"other\"\nurl_path = \"{second}\"\nservice = \"s\"\nmethods = {methods}\n"
        )
    };
    let err = Config::from_toml(&doc("/user/{name}", "[]")).unwrap_err();
    assert_eq!(paths(err.clone()), vec!["integrator.channels[1].url_path"]);
    assert!(
        err[0].message.contains("\"by-id\"") && err[0].message.contains("\"other\""),
        "{}",
        err[0].message
    );
    assert!(Config::from_toml(&doc("/user/{id}", "[\"GET\", \"PUT\"]")).is_err());
    // Another method, or a more specific path: both channels stand.
    Config::from_toml(&doc("/user/{name}", "[\"DELETE\"]")).unwrap();
    Config::from_toml(&doc("/user/me", "[\"GET\"]")).unwrap();
    let bad = Config::from_toml(&doc("/user/x{id}", "[]")).unwrap_err();
    assert_eq!(paths(bad), vec!["integrator.channels[1].url_path"]);
}

#[test]
fn jwt_definitions_take_their_own_keys_only() {
    let ok = r#"
[[integrator.security]]
name = "hs"
kind = "jwt"
issuer = "https://idp"
audience = "orders"
skew = 10
[[integrator.security]]
name = "rs"
kind = "jwt"
jwks_file = "/etc/idp/jwks.json"
"#;
    let mut c = Config::from_toml(ok).unwrap();
    let generated: Vec<bool> = c.secret_fields().iter().map(|f| f.generate).collect();
    assert_eq!(generated, vec![true, false]);
    let bad = r#"
[[integrator.security]]
name = "rs"
kind = "jwt"
jwks_file = "jwks.json"
password = "x"
[[integrator.security]]
name = "b"
kind = "basic"
username = "u"
issuer = "https://idp"
"#;
    assert_eq!(
        paths(Config::from_toml(bad).unwrap_err()),
        vec![
            "integrator.security[0].jwks_file",
            "integrator.security[0].password",
            "integrator.security[1].issuer",
        ]
    );
}

/// A self-signed P-256 CA (CN=Test CA), for the tls_client_cert checks.
const TEST_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBezCCASGgAwIBAgIUeqDKmC64A+oHR5raCAeThtXLPlIwCgYIKoZIzj0EAwIw
EjEQMA4GA1UEAwwHVGVzdCBDQTAgFw0yNjEyMDMxNTI3MThaGA8yMTI2MTEwOTE1
MjcxOFowEjEQMA4GA1UEAwwHVGVzdCBDQTBZMBMGByqGSM49AgEGCCqGSM49AwEH
A0IABORqe4MiHm8F3gGvN3hMDLoDpdgjVSrJFxhmaw4jvqsQ1aCkyY3SJL4P8h27
uF6Xp4eXjMbN11Fsq+5ZVU6y6l2jUzBRMB0GA1UdDgQWBBSHDQU9GNPvRTQgFVPO
mzLahxOImTAfBgNVHSMEGDAWgBSHDQU9GNPvRTQgFVPOmzLahxOImTAPBgNVHRMB
Af8EBTADAQH/MAoGCCqGSM49BAMCA0gAMEUCIA7zWNvKsq9KprbW91p12di3vMB3
hoRsw3ygZFo1q4MGAiEA18ts/qbK+CkHJ7SRAKyf/4wNQ0SkiQadJm4J6Ioh01Q=
-----END CERTIFICATE-----
";

#[test]
fn tls_client_cert_needs_a_ca_subjects_tls_and_no_secret() {
    let ok = format!(
        "[[integrator.security]]\nname = \"partners\"\nkind = \"tls_client_cert\"\nca = \"\"\"\n{TEST_CA}\"\"\"\ncommon_names = [\"orders\"]\nsubjects = [\"CN=billing,O=Acme\\\\, Inc.\"]\n"
    );
    let mut c = Config::from_toml(&ok).unwrap();
    let generated: Vec<bool> = c.secret_fields().iter().map(|f| f.generate).collect();
    assert_eq!(generated, vec![false], "no secret is made up for it");
    let bad = r#"
[integrator]
tls = "off"
[[integrator.security]]
name = "a"
kind = "tls_client_cert"
password = "x"
[[integrator.security]]
name = "b"
kind = "tls_client_cert"
ca = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
subjects = ["orders", ""]
[[integrator.security]]
name = "c"
kind = "basic"
username = "u"
dns_names = ["x.example"]
"#;
    let problems = Config::from_toml(bad).unwrap_err();
    let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(
        paths(problems),
        vec![
            "integrator.security[0].ca",
            "integrator.security[0].subjects",
            "integrator.security[0].password",
            "integrator.security[0].kind",
            "integrator.security[1].ca",
            "integrator.security[1].subjects[0]",
            "integrator.security[1].subjects[1]",
            "integrator.security[1].kind",
            "integrator.security[2].dns_names",
        ],
        "{text:#?}"
    );
    assert!(text[0].contains("PEM text of the CA"), "{}", text[0]);
    assert!(text[3].contains("integrator.tls is \"off\""), "{}", text[3]);
    assert!(text[4].contains("certificate 1"), "{}", text[4]);
}

#[test]
fn sql_and_smtp_connections_are_checked_and_their_passwords_are_secrets() {
    let ok = r#"
[[integrator.outgoing_sql]]
name = "crm"
host = "db.lan"
database = "crm"
user = "app"
password = "pw"
tls = "verify-full"
ca_file = "/data/ca.pem"
[[integrator.outgoing_smtp]]
name = "alerts"
from = "alerts@example.net"
"#;
    let mut c = Config::from_toml(ok).unwrap();
    let sql = &c.integrator.outgoing_sql[0];
    assert_eq!(
        (sql.port, sql.pool_size, sql.tls),
        (5432, 10, SqlTls::VerifyFull)
    );
    let fields: Vec<(String, String, bool)> = c
        .secret_fields()
        .iter()
        .map(|f| (f.path.clone(), f.name.clone(), f.generate))
        .collect();
    assert_eq!(
        fields,
        vec![(
            "integrator.outgoing_sql[0].password".into(),
            "integrator.outgoing_sql.crm".into(),
            false
        )]
    );
    let bad = r#"
[[integrator.outgoing_sql]]
name = "AR.db"
host = "db lan"
port = 0
database = ""
user = "u"
password = ""
pool_size = 0
ca_file = "ca.pem"
timeout = 0
[[integrator.outgoing_sql]]
name = "AR.db"
host = "h"
database = "d"
user = "u"
[[integrator.outgoing_smtp]]
name = "m"
from = "nobody"
"#;
    assert_eq!(
        paths(Config::from_toml(bad).unwrap_err()),
        vec![
            "integrator.outgoing_sql[0].name",
            "integrator.outgoing_sql[0].host",
            "integrator.outgoing_sql[0].port",
            "integrator.outgoing_sql[0].database",
            "integrator.outgoing_sql[0].password",
            "integrator.outgoing_sql[0].pool_size",
            "integrator.outgoing_sql[0].ca_file",
            "integrator.outgoing_sql[0].ca_file",
            "integrator.outgoing_sql[0].timeout",
            "integrator.outgoing_sql[1].name",
            "integrator.outgoing_sql[1].name",
            "integrator.outgoing_smtp[0].from",
        ]
    );
}

#[test]
fn amqp_connections_and_channels_are_checked_and_their_passwords_are_secrets() {
    let ok = r#"
[[integrator.outgoing_amqp]]
name = "mq"
host = "127.0.0.1"
password = "pw"
[[integrator.channel_amqp]]
name = "orders"
connection = "mq"
queue = "orders"
service = "orders.handle"
"#;
    let mut c = Config::from_toml(ok).unwrap();
    let (mq, ch) = (
        &c.integrator.outgoing_amqp[0],
        &c.integrator.channel_amqp[0],
    );
    assert_eq!(
        (mq.port, mq.vhost.as_str(), mq.user.as_str()),
        (5672, "/", "guest")
    );
    assert_eq!(
        (ch.prefetch, ch.max_attempts, ch.data_format.as_str()),
        (10, 3, "json")
    );
    let fields: Vec<(String, String)> = c
        .secret_fields()
        .iter()
        .map(|f| (f.path.clone(), f.name.clone()))
        .collect();
    assert_eq!(
        fields,
        vec![(
            "integrator.outgoing_amqp[0].password".into(),
            "integrator.outgoing_amqp.mq".into()
        )]
    );
    let bad = r#"
[[integrator.outgoing_amqp]]
name = "mq"
host = "mq lan"
port = 0
vhost = ""
[[integrator.channel_amqp]]
name = "in"
connection = "nope"
queue = "q"
service = "s"
data_format = "yaml"
prefetch = 0
max_attempts = 0
dead_letter_queue = "q"
"#;
    let err = Config::from_toml(bad).unwrap_err();
    assert!(
        err.iter()
            .any(|p| p.message == "no outgoing_amqp connection is named \"nope\""),
        "{err:?}"
    );
    assert_eq!(
        paths(err),
        vec![
            "integrator.outgoing_amqp[0].host",
            "integrator.outgoing_amqp[0].port",
            "integrator.outgoing_amqp[0].vhost",
            "integrator.channel_amqp[0].connection",
            "integrator.channel_amqp[0].data_format",
            "integrator.channel_amqp[0].prefetch",
            "integrator.channel_amqp[0].max_attempts",
            "integrator.channel_amqp[0].dead_letter_queue",
        ]
    );
}

#[test]
fn websocket_channels_take_get_and_their_own_keys_only() {
    let doc = |extra: &str| {
        format!(
            "[[integrator.channels]]\nname = \"rest\"\nurl_path = \"/chat\"\nservice = \"s\"\nmethods = [\"POST\"]\n\
             [[integrator.channels]]\nname = \"ws\"\nurl_path = \"/chat\"\nservice = \"s\"\n{extra}\n"
        )
    };
    // A WebSocket channel is GET only, so a POST channel may share its path.
    let c = Config::from_toml(&doc(
        "transport = \"websocket\"\nmax_message_size = 1024\nping_interval = 5\nidle_timeout = 60",
    ))
    .unwrap();
    assert!(c.integrator.channels[1].is_websocket());
    assert!(c.integrator.channels[1].takes("GET") && !c.integrator.channels[1].takes("POST"));
    // A REST channel without methods takes GET too: the pair conflicts.
    let err = Config::from_toml(&doc("")).unwrap_err();
    assert_eq!(paths(err), vec!["integrator.channels[1].url_path"]);
    let err = Config::from_toml(&doc(
        "transport = \"websocket\"\nmethods = [\"POST\"]\nmax_message_size = 0\nping_interval = 3601",
    ))
    .unwrap_err();
    assert_eq!(
        paths(err),
        vec![
            "integrator.channels[1].max_message_size",
            "integrator.channels[1].ping_interval",
            "integrator.channels[1].methods",
        ]
    );
    let err = Config::from_toml(&doc("methods = [\"GET\"]\nidle_timeout = 5")).unwrap_err();
    assert_eq!(paths(err), vec!["integrator.channels[1].idle_timeout"]);
    let err = Config::from_toml(&doc("transport = \"ws\"\nmethods = [\"GET\"]")).unwrap_err();
    assert_eq!(paths(err), vec!["integrator.channels[1].transport"]);
}
