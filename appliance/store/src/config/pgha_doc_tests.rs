//! The `[pgha]` section as a whole document: the seed's JSON forms load
//! unchanged, the TOML form shares their defaults, and problems name
//! their group and key.

use super::tests::paths;
use super::*;

/// The `pg_controller` and `backup_controller` values of the seed's
/// example node (004), as written there.
const SEED_PGHA: &str = r#"{
  "pg_controller": [
    {
      "key": "general",
     "servers": [
       {
        "ssh_host": "192.168.0.123",
        "ssh_port": 9022,
        "ssh_user": "postgres",
        "ssh_pwd": "123456",
        "pg_host": "192.168.0.123",
        "pg_port": 5420,
        "pg_replica_user": "era_replica",
        "pg_replica_pwd": "654321",
        "pg_database": "postgres",
        "pg_ctl_command": "/usr/lib/postgresql/12/bin/pg_ctl",
        "pg_basebackup_command": "pg_basebackup",
        "pg_data_folder": "/var/lib/postgresql/12/instance01",
        "pg_backup_folder": "/var/lib/postgresql/12/backups/instance01",
        "pg_log_filepath": "/var/log/postgresql/postgresql-12-instance01.log",
        "pg_signal_filepath": "/var/lib/postgresql/12/instance01/master.signal"
       },
       {
        "ssh_host": "192.168.0.124",
        "ssh_port": 9022,
        "ssh_user": "postgres",
        "ssh_pwd": "123456",
        "pg_host": "192.168.0.124",
        "pg_port": 5420,
        "pg_replica_user": "era_replica",
        "pg_replica_pwd": "654321",
        "pg_database": "postgres",
        "pg_ctl_command": "/usr/lib/postgresql/12/bin/pg_ctl",
        "pg_basebackup_command": "pg_basebackup",
        "pg_data_folder": "/var/lib/postgresql/12/instance01",
        "pg_backup_folder": "/var/lib/postgresql/12/backups/instance01",
        "pg_log_filepath": "/var/log/postgresql/postgresql-12-instance01.log",
        "pg_signal_filepath": "/var/lib/postgresql/12/instance01/master.signal"
       }
     ]
    }
  ],

  "backup_controller": {
    "hours_interval": [20, 3],
    "weekdays": [1,2,3,4,5,6,7],
    "storage_ssh_host": "storage.local",
    "storage_ssh_port": 8022,
    "storage_ssh_user": "user414",
    "storage_ssh_pwd": "pwd414",
    "storage_ssh_path": "backup/dow_%weekday",
    "sync_folder": {
      "send_mode": "rsync",
      "excluded_paths": ["**/common/fax/*", "**/some_temp_files/*"]
    },
    "pgdb": [
      {
        "servers": [
          {
            "ssh_host": "192.168.0.123",
            "pg_host": "192.168.0.123"
          },        {
            "ssh_host": "192.168.0.124",
            "pg_host": "192.168.0.124"
          }
        ],
        "ssh_port": 9022,
        "ssh_user": "postgres",
        "ssh_pwd": "123456",
        "pg_port": 5420,
        "pg_replica_user": "era_replica",
        "pg_replica_pwd": "654321"
      }
    ]
  }
}"#;

/// The seed's stand-alone `pg_controller` example (with a referee and
/// `pg_config_folder`), the trailing `...` of the seed removed.
const SEED_PG_CONTROLLER: &str = r#"[
  {
    "key": "general",
    "referee": "8.8.8.8",
    "servers": [
      {
        "pg_backup_folder": "/mnt/db/backup/era",
        "pg_basebackup_command": "/usr/lib/postgresql/14/bin/pg_basebackup",
        "pg_config_folder": "/mnt/db/era",
        "pg_ctl_command": "/usr/lib/postgresql/14/bin/pg_ctl",
        "pg_data_folder": "/mnt/db/era",
        "pg_database": "postgres",
        "pg_host": "db1.local",
        "pg_log_filepath": "/mnt/db/era/postgresql-14-era.log",
        "pg_port": 5441,
        "pg_replica_user": "era_replica",
        "pg_replica_pwd": "...",
        "pg_signal_filepath": "/mnt/db/era/master.signal",
        "ssh_host": "db1.local",
        "ssh_port": 2022,
        "ssh_user": "postgres",
        "ssh_pwd": "..."
      },      {
        "pg_backup_folder": "/mnt/db/backup/era",
        "pg_basebackup_command": "/usr/lib/postgresql/14/bin/pg_basebackup",
        "pg_config_folder": "/mnt/db/era",
        "pg_ctl_command": "/usr/lib/postgresql/14/bin/pg_ctl",
        "pg_data_folder": "/mnt/db/era",
        "pg_database": "postgres",
        "pg_host": "db2.local",
        "pg_log_filepath": "/mnt/db/era/postgresql-14-era.log",
        "pg_port": 5441,
        "pg_replica_user": "era_replica",
        "pg_replica_pwd": "...",
        "pg_signal_filepath": "/mnt/db/era/master.signal",
        "ssh_host": "db2.local",
        "ssh_port": 2022,
        "ssh_user": "postgres",
        "ssh_pwd": "..."
      }
    ]
  }
]"#;

/// The seed's stand-alone `backup_controller` example (storage per entry).
const SEED_BACKUP: &str = r#"{
  "hours_interval": [20, 3],
  "weekdays": [2,4,7],
  "sync_folder": {
    "send_mode": "rsync",
    "excluded_paths": ["**/common/temp/*"],
    "storage_ssh_host": "storage.local",
    "storage_ssh_port": 8022,
    "storage_ssh_user": "user414",
    "storage_ssh_pwd": "...",
    "storage_ssh_path": "backup/dow_%weekday"
  },
  "pgdb": [
    {
      "servers": [
        {
          "ssh_host": "192.168.0.191",
          "pg_host": "192.168.0.191"
        },        {
          "ssh_host": "192.168.0.192",
          "pg_host": "192.168.0.192"
        }
      ],
      "ssh_port": 9022,
      "ssh_user": "postgres",
      "ssh_pwd": "...",
      "pg_port": 5420,
      "pg_replica_user": "era_replica",
      "pg_replica_pwd": "...",
      "storage_ssh_host": "storage.local",
      "storage_ssh_port": 8022,
      "storage_ssh_user": "user414",
      "storage_ssh_pwd": "...",
      "storage_ssh_path": "backup/dow_%weekday"
    }
  ]
}"#;

fn pgha_json(section: &str) -> Result<Config, Vec<Problem>> {
    Config::from_text(&format!("{{\"pgha\": {section}}}"))
}

#[test]
fn seed_pgha_examples_load_unchanged() {
    let c = pgha_json(SEED_PGHA).unwrap();
    let g = c.pgha.pg_controller[0]
        .resolve(0, &KeyPath::root())
        .unwrap();
    assert_eq!(g.key, "general");
    assert_eq!(g.referee, None);
    assert_eq!(g.servers[1].pg_host, "192.168.0.124");
    assert_eq!(g.servers[0].ssh_port, 9022);
    let b = c.pgha.backup_controller.unwrap();
    assert_eq!(b.hours_interval, Some([20, 3]));
    let tries = b.pgdb[0].candidates();
    assert_eq!(tries[1].ssh_host.as_deref(), Some("192.168.0.124"));
    assert_eq!(tries[1].pg_port, Some(5420));

    let both = format!(
        "{{\"pg_controller\": {SEED_PG_CONTROLLER}, \"backup_controller\": {SEED_BACKUP}}}"
    );
    let c = pgha_json(&both).unwrap();
    assert_eq!(c.pgha.pg_controller[0].referee.as_deref(), Some("8.8.8.8"));
    assert_eq!(
        c.pgha
            .backup_controller
            .unwrap()
            .sync_folder
            .unwrap()
            .send_mode,
        Some(SendMode::Rsync)
    );
}

#[test]
fn pgha_toml_form_shares_defaults_and_round_trips() {
    let c = Config::from_toml(
        r#"
[pgha]
grace = 5
[[pgha.groups]]
key = "main"
referee = "http://10.0.0.4:8080/"
[pgha.groups.defaults]
ssh_user = "postgres"
pg_replica_user = "replicator"
pg_data_folder = "/srv/pg"
[[pgha.groups.servers]]
pg_host = "10.0.0.1"
[[pgha.groups.servers]]
pg_host = "10.0.0.2"
pg_port = 5433

[pgha.backup]
weekdays = [1, 3]
hours_interval = [20, 3]
storage_ssh_host = "10.0.0.9"
storage_ssh_path = "pg/%year-%month-%day"
[[pgha.backup.pgdb]]
ssh_host = "10.0.0.1"
send_mode = "zip_cmd"
"#,
    )
    .unwrap();
    assert_eq!(c.pgha.grace, 5);
    let g = c.pgha.pg_controller[0]
        .resolve(0, &KeyPath::root())
        .unwrap();
    assert_eq!(g.servers[1].ssh_host, "10.0.0.2");
    assert_eq!(g.servers[1].ssh_user, "postgres");
    assert_eq!(g.servers[0].pg_port, 5432);
    assert_eq!(g.servers[1].pg_backup_folder, "/tmp/pg_backups");
    assert_eq!(Config::from_toml(&c.to_toml()).unwrap(), c);
}

#[test]
fn pgha_problems_are_reported_per_group() {
    let problems = Config::from_toml(
        r#"
[pgha]
grace = 0
[[pgha.pg_controller]]
key = "good"
[[pgha.pg_controller.servers]]
pg_host = "a"
ssh_user = "postgres"
pg_replica_user = "r"
pg_data_folder = "/d"
[[pgha.pg_controller.servers]]
pg_host = "b"
ssh_user = "postgres"
pg_replica_user = "r"
pg_data_folder = "/d"
[[pgha.pg_controller]]
[[pgha.pg_controller.servers]]
ssh_user = "postgres"
pg_data_folder = "relative"
[[pgha.pg_controller]]
key = "good"
[[pgha.pg_controller.servers]]
pg_host = "a"
[pgha.backup_controller]
weekdays = [0]
[[pgha.backup_controller.pgdb]]
ssh_host = "x"
"#,
    )
    .unwrap_err();
    assert_eq!(
        paths(problems),
        vec![
            "pgha.grace",
            "pgha.pg_controller[1].servers",
            "pgha.pg_controller[1].servers[0].ssh_host",
            "pgha.pg_controller[1].servers[0].pg_replica_user",
            "pgha.pg_controller[1].servers[0].pg_data_folder",
            "pgha.pg_controller[2].servers",
            "pgha.pg_controller[2].servers[0].ssh_user",
            "pgha.pg_controller[2].servers[0].pg_replica_user",
            "pgha.pg_controller[2].servers[0].pg_data_folder",
            "pgha.pg_controller[2].key",
            "pgha.backup_controller.weekdays[0]",
            "pgha.backup_controller.pgdb[0].storage_ssh_host",
        ]
    );
}

#[test]
fn pgha_unknown_keys_are_refused() {
    let e = pgha_json(r#"{"pg_controller": [{"servers": [{"pg_hots": "a"}]}]}"#).unwrap_err();
    assert_eq!(e[0].path, "pgha.pg_controller[0].servers[0].pg_hots");
    assert!(e[0].message.contains("pg_hots"), "{}", e[0].message);
}
