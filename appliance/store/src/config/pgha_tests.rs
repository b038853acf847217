//! `[pgha]` host and user name checks.

use crate::config::{Config, Problem};

fn problems(toml: &str) -> Vec<Problem> {
    Config::from_toml(toml).unwrap_err()
}

const GROUP: &str = r#"
[[pgha.pg_controller]]
[[pgha.pg_controller.servers]]
pg_host = "10.0.0.1"
ssh_user = "postgres"
pg_replica_user = "era_replica"
pg_data_folder = "/d"
[[pgha.pg_controller.servers]]
pg_host = "db2.example"
ssh_user = "postgres"
pg_replica_user = "era_replica"
pg_data_folder = "/d"
"#;

#[test]
fn host_names_and_addresses_are_accepted() {
    let c = Config::from_toml(&format!("{GROUP}ssh_host = \"fe80::1\"\n")).unwrap();
    assert_eq!(
        c.pgha.pg_controller[0].servers[1].ssh_host.as_deref(),
        Some("fe80::1")
    );
}

#[test]
fn shell_syntax_in_a_host_is_refused_with_the_field_named() {
    for bad in [
        "a;b",
        "$(reboot)",
        "db 2",
        "a'b",
        "`id`",
        "-oProxyCommand=x",
    ] {
        let p = problems(&format!("{GROUP}ssh_host = {bad:?}\n"));
        assert_eq!(p.len(), 1, "{bad:?}: {p:?}");
        assert_eq!(p[0].path, "pgha.pg_controller[0].servers[1].ssh_host");
        assert_eq!(
            p[0].message,
            format!("{bad:?} is not a host name or IP address")
        );
    }
}

#[test]
fn backup_hosts_and_users_are_checked_where_written() {
    let p = problems(
        r#"
[pgha.backup_controller]
storage_ssh_host = "st;rm -rf /"
storage_ssh_user = "u$(id)"
[pgha.backup_controller.sync_folder]
storage_ssh_host = "a b"
[[pgha.backup_controller.pgdb]]
ssh_host = "db1"
[[pgha.backup_controller.pgdb.servers]]
ssh_user = "x y"
"#,
    );
    let paths: Vec<&str> = p.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "pgha.backup_controller.storage_ssh_host",
            "pgha.backup_controller.storage_ssh_user",
            "pgha.backup_controller.sync_folder.storage_ssh_host",
            "pgha.backup_controller.pgdb[0].servers[0].ssh_user",
        ]
    );
    assert!(p[1].message.starts_with("\"u$(id)\" is not a user name"));
}

#[test]
fn an_outgoing_sql_connection_follows_a_group_that_exists() {
    let sql = "[[integrator.outgoing_sql]]\nname = \"crm\"\ndatabase = \"crm\"\nuser = \"u\"\n";
    // The group above has no key: it is group1.
    let c = Config::from_toml(&format!("{GROUP}{sql}pgha_group = \"group1\"\n")).unwrap();
    assert_eq!(
        c.integrator.outgoing_sql[0].pgha_group.as_deref(),
        Some("group1")
    );
    let p = problems(&format!(
        "{GROUP}{sql}pgha_group = \"main\"\nhost = \"db\"\n"
    ));
    let paths: Vec<&str> = p.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "integrator.outgoing_sql[0].host",
            "integrator.outgoing_sql[0].pgha_group"
        ]
    );
    assert!(
        p[1].message.contains("\"main\" (groups: group1)"),
        "{}",
        p[1].message
    );
    let p = problems(&format!("{sql}pgha_group = \"main\"\n"));
    assert!(
        p[0].message.contains("none is configured"),
        "{}",
        p[0].message
    );
    let p = problems(sql);
    assert_eq!(
        p[0].path, "integrator.outgoing_sql[0].host",
        "no host and no group"
    );
}
