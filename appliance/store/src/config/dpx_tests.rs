//! `[dpx]` keys, users, records, routes and client checks.

use super::tests::paths;
use super::*;

const DPX_FULL: &str = r#"
[dpx]
zone = "arclst.example."
port = 5300
[[dpx.records]]
name = "mail"
type = "MX"
value = "10 mx1"
[[dpx.records]]
name = "_sip._tcp"
type = "SRV"
value = "0 5 5060 sip"
[[dpx.tsig_keys]]
name = "ddns-key"
algorithm = "hmac-sha512"
names = ["*.dyn", "home"]
types = ["A", "AAAA"]
[dpx.dyndns]
min_interval = 30
[[dpx.dyndns.users]]
name = "alice"
hostnames = ["home.arclst.example"]
"#;

#[test]
fn dpx_keys_users_and_records_load() {
    let c = Config::from_toml(DPX_FULL).unwrap();
    assert_eq!(c.dpx.port, Some(5300));
    assert_eq!(c.dpx.tsig_keys[0].algorithm, TsigAlgorithm::HmacSha512);
    assert_eq!(c.dpx.tsig_keys[0].secret_name(), "dpx.tsig.ddns-key");
    assert_eq!(c.dpx.dyndns.users[0].secret_name(), "dpx.dyndns.alice");
    assert_eq!(c.dpx.dyndns.min_interval, 30);
    assert_eq!(Config::from_toml("").unwrap().dpx.dyndns.min_interval, 60);
    assert_eq!(
        Config::from_toml("").unwrap().dpx.udp_workers,
        0,
        "one per CPU"
    );
    let four = Config::from_toml("[dpx]\nudp_workers = 4\n").unwrap();
    assert_eq!(four.dpx.udp_workers, 4);
}

#[test]
fn dpx_problems_name_their_paths() {
    let bad = r#"
[dpx]
zone = "arclst.example."
port = 0
udp_workers = 65
[[dpx.records]]
name = "mail"
type = "MX"
value = "mx1"
[[dpx.records]]
name = "x"
type = "CNAME"
value = "not a host"
[[dpx.tsig_keys]]
name = "k"
algorithm = "hmac-sha256"
names = []
types = ["SOA"]
[[dpx.tsig_keys]]
name = "k"
algorithm = "hmac-sha256"
names = ["ok"]
[[dpx.dyndns.users]]
name = "bob"
hostnames = ["home.elsewhere.example"]
"#;
    assert_eq!(
        paths(Config::from_toml(bad).unwrap_err()),
        [
            "dpx.port",
            "dpx.udp_workers",
            "dpx.records[0].value",
            "dpx.records[1].value",
            "dpx.tsig_keys[1].name",
            "dpx.tsig_keys[0].names",
            "dpx.tsig_keys[0].types[0]",
            "dpx.dyndns.users[0].hostnames[0]",
        ]
    );
    let unknown = "[dpx]\nzone = \"z.example.\"\n[[dpx.tsig_keys]]\nname = \"k\"\nalgorithm = \"hmac-md5\"\nnames = [\"a\"]\n";
    assert_eq!(
        paths(Config::from_toml(unknown).unwrap_err()),
        ["dpx.tsig_keys[0].algorithm"]
    );
}

#[test]
fn dpx_keys_without_a_zone_are_refused() {
    let c = "[[dpx.tsig_keys]]\nname = \"k\"\nalgorithm = \"hmac-sha256\"\nnames = [\"a\"]\n";
    assert_eq!(paths(Config::from_toml(c).unwrap_err()), ["dpx.zone"]);
    assert!(in_zone("Home.Arclst.Example.", "arclst.example"));
    assert!(!in_zone("xarclst.example", "arclst.example."));
}

#[test]
fn dpx_routes_need_http_backends_and_unique_hosts() {
    let ok = "[[dpx.routes]]\nhost = \"app.z.example\"\nbackend = \"http://10.8.0.2:8080\"\n[[dpx.routes]]\nhost = \"app.z.example\"\nbackend = \"http://10.8.0.3:80/\"\npath_prefix = \"/api\"\nvpn_only = true\n[[dpx.routes]]\nhost = \"tls.z.example\"\nbackend = \"https://10.8.0.4\"\nca_file = \"/data/ca.pem\"\ntls_server_name = \"app.lan\"\n";
    let c = Config::from_toml(ok).unwrap();
    let r = &c.dpx.routes;
    assert_eq!(r[1].backend_authority(), Some(("10.8.0.3", 80)));
    assert_eq!(r[2].backend_authority(), Some(("10.8.0.4", 443)));
    assert!(r[2].backend_tls() && !r[1].backend_tls());
    assert_eq!((r[0].connect_timeout, r[0].response_timeout), (5, 60));
    assert_eq!(r[0].health, None);
    let bad = "[[dpx.routes]]\nhost = \"app.z.example\"\nbackend = \"ftp://x:1\"\n[[dpx.routes]]\nhost = \"APP.z.example\"\nbackend = \"http://x:1/base\"\npath_prefix = \"api\"\n[[dpx.routes]]\nhost = \"App.z.example\"\nbackend = \"http://x:0\"\n";
    assert_eq!(
        paths(Config::from_toml(bad).unwrap_err()),
        [
            "dpx.routes[2].host",
            "dpx.routes[0].backend",
            "dpx.routes[1].backend",
            "dpx.routes[1].path_prefix",
            "dpx.routes[2].backend",
        ]
    );
}

#[test]
fn dpx_route_timeouts_tls_and_health_checks() {
    let ok = "[[dpx.routes]]\nhost = \"app.z.example\"\nbackend = \"http://10.8.0.2:8080\"\nresponse_timeout = 1\n[dpx.routes.health]\npath = \"/healthz\"\n";
    let c = Config::from_toml(ok).unwrap();
    let r = &c.dpx.routes[0];
    assert_eq!((r.connect_timeout, r.response_timeout), (5, 1));
    let h = r.health.as_ref().unwrap();
    assert_eq!(h.path, "/healthz");
    assert_eq!(
        (h.interval, h.timeout, h.expect_status, h.fails, h.passes),
        (10, 5, None, 2, 1)
    );
    let bad = "[[dpx.routes]]\nhost = \"app.z.example\"\nbackend = \"http://10.8.0.2:8080\"\nconnect_timeout = 0\nresponse_timeout = 7200\nca_file = \"/ca.pem\"\n[dpx.routes.health]\npath = \"healthz\"\ninterval = 0\nexpect_status = 99\nfails = 0\npasses = 101\n[[dpx.routes]]\nhost = \"b.z.example\"\nbackend = \"https://10.8.0.2\"\ntls_server_name = \"not a name\"\n";
    let problems = Config::from_toml(bad).unwrap_err();
    assert_eq!(
        paths(problems.clone()),
        [
            "dpx.routes[0].connect_timeout",
            "dpx.routes[0].response_timeout",
            "dpx.routes[0].ca_file",
            "dpx.routes[0].health.path",
            "dpx.routes[0].health.interval",
            "dpx.routes[0].health.expect_status",
            "dpx.routes[0].health.fails",
            "dpx.routes[0].health.passes",
            "dpx.routes[1].tls_server_name",
        ]
    );
    assert!(problems[1].message.contains("3600 seconds"), "{problems:?}");
    assert!(problems[2].message.contains("https://"), "{problems:?}");
}

#[test]
fn dpx_client_needs_https_and_one_address_source() {
    let ok = "[dpx.client]\nserver = \"https://dns.example.net:8443\"\nhostname = \"lan1.z.example\"\nusername = \"lan1\"\ncheck_url = \"http://127.0.0.1:9/ip\"\n";
    let c = Config::from_toml(ok).unwrap();
    assert_eq!(c.dpx.client.as_ref().unwrap().interval, 300);
    assert_eq!(
        split_url("http://127.0.0.1:9/ip"),
        Some((false, "127.0.0.1", 9, "/ip"))
    );
    assert_eq!(
        split_url("https://x.example"),
        Some((true, "x.example", 443, "/"))
    );
    assert_eq!(split_url("ftp://x"), None);
    assert_eq!(
        split_url("http://[2001:db8::2]"),
        Some((false, "2001:db8::2", 80, "/"))
    );
    assert_eq!(
        split_url("https://[2001:db8::2]:8443"),
        Some((true, "2001:db8::2", 8443, "/"))
    );
    let bad = "[dpx.client]\nserver = \"http://dns.example.net\"\nhostname = \"lan1\"\nusername = \"a:b\"\ninterface = \"eth0\"\ncheck_url = \"http://x/\"\ninterval = 5\n";
    assert_eq!(
        paths(Config::from_toml(bad).unwrap_err()),
        [
            "dpx.client.server",
            "dpx.client.username",
            "dpx.client",
            "dpx.client.interval"
        ]
    );
}
