//! The password and key fields of the document. A document may carry a
//! value in clear (a TOML file, a seed's JSON); the write path moves it to
//! the secret store and keeps only a reference, `secret:<name>`, so no
//! revision, comment, diff or answer ever holds the value.

use super::{Config, KeyPath, Section};

/// How a field refers to a stored secret.
pub const SECRET_PREFIX: &str = "secret:";

/// The stored secret a field value names, if it is a reference.
pub fn secret_ref(value: &str) -> Option<&str> {
    value.strip_prefix(SECRET_PREFIX)
}

/// A reference to the stored secret `name`.
pub fn make_ref(name: &str) -> String {
    format!("{SECRET_PREFIX}{name}")
}

/// One password or key field, borrowed from a document.
pub struct SecretField<'a> {
    pub section: Section,
    /// Its key path, for messages.
    pub path: String,
    /// The stored secret a value given in clear is kept under.
    pub name: String,
    /// A value is generated (uuid4) when the field is left out.
    pub generate: bool,
    pub value: &'a mut Option<String>,
}

impl Config {
    /// Every secret-bearing field, in document order.
    pub fn secret_fields(&mut self) -> Vec<SecretField<'_>> {
        let mut out = Vec::new();
        let root = KeyPath::root();
        let security = root.key("integrator").key("security");
        for (i, def) in self.integrator.security.iter_mut().enumerate() {
            out.push(SecretField {
                section: Section::Integrator,
                path: security.index(i).key("password").to_string(),
                // Named by the definition, not its place in the list, so the
                // password stays with it when the list is reordered.
                name: format!("integrator.security.{}", def.name),
                // A JWKS definition verifies with public keys, a client
                // certificate definition with its CA: neither has a secret.
                generate: def.jwks_file.is_none()
                    && def.kind != super::integrator_security::TLS_CLIENT_CERT,
                value: &mut def.password,
            });
        }
        let sql = root.key("integrator").key("outgoing_sql");
        for (i, c) in self.integrator.outgoing_sql.iter_mut().enumerate() {
            out.push(SecretField {
                section: Section::Integrator,
                path: sql.index(i).key("password").to_string(),
                name: super::integrator_conn::sql_password_secret(&c.name),
                // A database's password is the database's; none is made up.
                generate: false,
                value: &mut c.password,
            });
        }
        let amqp = root.key("integrator").key("outgoing_amqp");
        for (i, c) in self.integrator.outgoing_amqp.iter_mut().enumerate() {
            out.push(SecretField {
                section: Section::Integrator,
                path: amqp.index(i).key("password").to_string(),
                name: super::integrator_amqp::amqp_password_secret(&c.name),
                // The broker's password is the broker's; none is made up.
                generate: false,
                value: &mut c.password,
            });
        }
        let pg = root.key("pgha");
        let groups = pg.key("pg_controller");
        for (g, group) in self.pgha.pg_controller.iter_mut().enumerate() {
            let gp = groups.index(g);
            if let Some(d) = group.defaults.as_mut() {
                let dp = gp.key("defaults");
                push_pg(&mut out, &dp, &mut d.ssh_pwd, &mut d.pg_replica_pwd);
            }
            for (n, s) in group.servers.iter_mut().enumerate() {
                let sp = gp.key("servers").index(n);
                push_pg(&mut out, &sp, &mut s.ssh_pwd, &mut s.pg_replica_pwd);
            }
        }
        if let Some(b) = self.pgha.backup_controller.as_mut() {
            let bp = pg.key("backup_controller");
            push(&mut out, &bp.key("storage_ssh_pwd"), &mut b.storage_ssh_pwd);
            if let Some(f) = b.sync_folder.as_mut() {
                let fp = bp.key("sync_folder").key("storage_ssh_pwd");
                push(&mut out, &fp, &mut f.storage_ssh_pwd);
            }
            for (i, inst) in b.pgdb.iter_mut().enumerate() {
                backup_server(&mut out, &bp.key("pgdb").index(i), inst);
            }
        }
        out
    }

    /// A copy whose values in clear are replaced by `(secret)`, for text
    /// that is written before the write path has moved them (comments).
    pub fn redacted(&self) -> Config {
        let mut c = self.clone();
        for f in c.secret_fields() {
            if let Some(v) = f.value.as_mut()
                && secret_ref(v).is_none()
            {
                *v = "(secret)".into();
            }
        }
        c
    }
}

fn push<'a>(out: &mut Vec<SecretField<'a>>, path: &KeyPath, value: &'a mut Option<String>) {
    out.push(SecretField {
        section: Section::Pgha,
        path: path.to_string(),
        name: path.to_string(),
        generate: false,
        value,
    });
}

fn push_pg<'a>(
    out: &mut Vec<SecretField<'a>>,
    at: &KeyPath,
    ssh: &'a mut Option<String>,
    replica: &'a mut Option<String>,
) {
    push(out, &at.key("ssh_pwd"), ssh);
    push(out, &at.key("pg_replica_pwd"), replica);
}

fn backup_server<'a>(out: &mut Vec<SecretField<'a>>, at: &KeyPath, s: &'a mut super::BackupServer) {
    push_pg(out, at, &mut s.ssh_pwd, &mut s.pg_replica_pwd);
    push(out, &at.key("storage_ssh_pwd"), &mut s.storage_ssh_pwd);
    for (i, inner) in s.servers.iter_mut().enumerate() {
        backup_server(out, &at.key("servers").index(i), inner);
    }
}
