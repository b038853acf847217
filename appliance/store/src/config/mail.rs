use serde::{Deserialize, Serialize};

use super::{KeyPath, Problem, check};

/// `[mail]`: the local SMTP listener, the spool's limits and the relay that
/// carries the node's mail out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Mail {
    pub relay: Option<Relay>,
    /// Who receives the node's notifications and bounces of its own mail.
    pub admin_recipients: Vec<String>,
    /// Envelope sender and `From:` of mail the node writes itself;
    /// `alpharen@<node.hostname>` when unset.
    pub from: Option<String>,
    /// The fully qualified name mail clients reach this node by (its MX
    /// target). When the ACME certificate names it (`[acme]` lists it or a
    /// wildcard covering it), STARTTLS serves that certificate instead of
    /// the self-signed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_name: Option<String>,
    pub listen: Listen,
    pub submission: Submission,
    pub limits: Limits,
    /// Seconds a message may stay queued before it is bounced (5 days).
    pub max_queue_age: u64,
    /// Seconds between two notification mails; notifications arriving in
    /// between are grouped into one digest.
    pub notify_interval: u64,
}

impl Default for Mail {
    fn default() -> Self {
        Mail {
            relay: None,
            admin_recipients: Vec::new(),
            from: None,
            tls_name: None,
            listen: Listen::default(),
            submission: Submission::default(),
            limits: Limits::default(),
            max_queue_age: 5 * 24 * 3600,
            notify_interval: 300,
        }
    }
}

/// `[mail.listen]`: the loopback SMTP listener (no AUTH, so never on the LAN).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Listen {
    /// Port on 127.0.0.1 / ::1; 25 on a node, 2525 with `--dev` when unset.
    pub port: Option<u16>,
}

impl Mail {
    /// The loopback listener's port: as set, else 25, or 2525 on a `--dev`
    /// node (where the node is not root).
    pub fn listen_port(&self, dev: bool) -> u16 {
        self.listen.port.unwrap_or(if dev { 2525 } else { 25 })
    }
}

/// `[mail.submission]`: SMTP for the LAN. On these ports the node listens
/// on every address; a client from outside loopback must STARTTLS (with the
/// node's certificate in `<state>/tls/`) and AUTH as a node user before it
/// may send. Empty: loopback only.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Submission {
    /// Usually `[25, 587]`.
    pub ports: Vec<u16>,
}

/// `[mail.limits]`: what one SMTP client may ask of the listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest message in bytes (announced as SIZE).
    pub max_message_size: u64,
    pub max_recipients: u32,
    /// Longest line in bytes including CRLF, for commands and message text.
    pub max_line_length: u32,
    /// Seconds without a complete command before the connection is closed.
    pub idle_timeout: u64,
    pub max_connections: u32,
    pub max_commands_per_minute: u32,
    /// Refused commands before the connection is closed.
    pub max_errors: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size: 10 * 1024 * 1024,
            max_recipients: 100,
            max_line_length: 1000,
            idle_timeout: 300,
            max_connections: 50,
            max_commands_per_minute: 1200,
            max_errors: 10,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Relay {
    pub mode: RelayMode,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default)]
    pub tls: RelayTls,
    /// AUTH user; the password is the secret `mail.relay.password`.
    #[serde(default)]
    pub username: Option<String>,
    /// PEM file with the CA that signed the smarthost's certificate, for
    /// relays with a private CA (added to the built-in roots).
    #[serde(default)]
    pub ca_file: Option<String>,
}

fn default_port() -> u16 {
    587
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum RelayMode {
    Smarthost,
    Direct,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum RelayTls {
    None,
    #[default]
    Starttls,
    Tls,
}

/// `local@domain` with no spaces or angle brackets; what the config accepts
/// as a mail address.
pub fn is_mail_address(addr: &str) -> bool {
    addr.rsplit_once('@').is_some_and(|(l, d)| {
        !l.is_empty()
            && !d.is_empty()
            && !addr
                .chars()
                .any(|c| c.is_whitespace() || matches!(c, '<' | '>'))
    })
}

impl Mail {
    pub(super) fn validate(&self, path: &KeyPath, out: &mut Vec<Problem>) {
        if let Some(relay) = &self.relay {
            let at = path.key("relay");
            match (&relay.mode, &relay.host) {
                (RelayMode::Smarthost, None) => {
                    check::push(out, &at.key("host"), "a smarthost relay needs a host")
                }
                (_, Some(host)) => check::hostname(out, &at.key("host"), host),
                _ => {}
            }
            if relay.port == 0 {
                check::push(out, &at.key("port"), "port 0 is not a port");
            }
            if let Some(ca) = &relay.ca_file
                && !ca.starts_with('/')
            {
                check::push(out, &at.key("ca_file"), "must be an absolute path");
            }
            if relay.username.as_deref() == Some("") {
                check::push(
                    out,
                    &at.key("username"),
                    "must not be empty (leave it out for no AUTH)",
                );
            }
        }
        for (i, addr) in self.admin_recipients.iter().enumerate() {
            if !is_mail_address(addr) {
                check::push(
                    out,
                    &path.key("admin_recipients").index(i),
                    format!("{addr:?} is not a mail address"),
                );
            }
        }
        if let Some(from) = &self.from
            && !is_mail_address(from)
        {
            check::push(
                out,
                &path.key("from"),
                format!("{from:?} is not a mail address"),
            );
        }
        if let Some(name) = &self.tls_name {
            check::hostname(out, &path.key("tls_name"), name);
            if !name.trim_end_matches('.').contains('.') {
                check::push(
                    out,
                    &path.key("tls_name"),
                    format!("{name:?} must be a fully qualified host name"),
                );
            }
        }
        if self.listen.port == Some(0) {
            check::push(out, &path.key("listen").key("port"), "port 0 is not a port");
        }
        for (i, port) in self.submission.ports.iter().enumerate() {
            let at = path.key("submission").key("ports").index(i);
            if *port == 0 {
                check::push(out, &at, "port 0 is not a port");
            } else if self.submission.ports[..i].contains(port) {
                check::push(out, &at, format!("port {port} is listed twice"));
            }
        }
        if self.max_queue_age < 60 {
            check::push(
                out,
                &path.key("max_queue_age"),
                "must be at least 60 seconds",
            );
        }
        let l = &self.limits;
        let at = path.key("limits");
        if l.max_message_size < 1024 {
            check::push(
                out,
                &at.key("max_message_size"),
                "must be at least 1024 bytes",
            );
        }
        if l.max_recipients == 0 {
            check::push(out, &at.key("max_recipients"), "must be at least 1");
        }
        if !(512..=65536).contains(&l.max_line_length) {
            check::push(
                out,
                &at.key("max_line_length"),
                "must be between 512 and 65536 bytes",
            );
        }
        if l.idle_timeout < 5 {
            check::push(out, &at.key("idle_timeout"), "must be at least 5 seconds");
        }
        for (name, v) in [
            ("max_connections", l.max_connections),
            ("max_commands_per_minute", l.max_commands_per_minute),
            ("max_errors", l.max_errors),
        ] {
            if v == 0 {
                check::push(out, &at.key(name), "must be at least 1");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;

    use crate::config::toml_problems as problems;

    #[test]
    fn defaults_are_valid_and_sane() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.mail.max_queue_age, 432_000);
        assert_eq!(c.mail.limits.max_recipients, 100);
    }

    #[test]
    fn problems_name_their_path() {
        let p = problems(
            "[mail]\nfrom = \"nobody\"\ntls_name = \"mx\"\nadmin_recipients = [\"a@b\", \"x y@z\"]\n\
             [mail.limits]\nmax_recipients = 0\nmax_line_length = 10\n\
             [mail.relay]\nmode = \"smarthost\"\nca_file = \"ca.pem\"\n",
        );
        for want in [
            "mail.from:",
            "mail.tls_name:",
            "mail.admin_recipients[1]:",
            "mail.limits.max_recipients:",
            "mail.limits.max_line_length:",
            "mail.relay.host:",
            "mail.relay.ca_file:",
        ] {
            assert!(
                p.iter().any(|l| l.starts_with(want)),
                "{want} missing in {p:?}"
            );
        }
    }

    #[test]
    fn unknown_keys_are_refused_with_their_path() {
        let p = problems("[mail.limits]\nmax_recipient = 3\n");
        assert_eq!(p.len(), 1);
        assert!(p[0].starts_with("mail.limits"), "{p:?}");
    }
}
