//! `[acme]`: a certificate for the console from an ACME CA (RFC 8555,
//! HTTP-01 on the web service's plain-HTTP port). The web service owns it.

use serde::{Deserialize, Serialize};

use super::{KeyPath, Problem, check, is_mail_address};

/// `[acme]`: where the console's certificate comes from when it is not
/// self-signed or the operator's own files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Acme {
    /// Order and renew a certificate; off, the console serves `web.cert`
    /// or the self-signed one.
    pub enabled: bool,
    /// The CA's ACME directory URL (https).
    pub directory: String,
    /// E-mail address the CA may write to about the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    /// The CA's terms of service are accepted (the CA refuses an account
    /// without it).
    pub accept_terms: bool,
    /// Host names the certificate is for; each must resolve to this node
    /// and reach its HTTP port 80 from the CA.
    pub domains: Vec<String>,
    /// PEM file of the CA certificates that the directory's own HTTPS
    /// certificate chains to (absolute path, readable by the web
    /// service's user), for a private ACME CA; left out, the public CAs
    /// built into the firmware.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
    /// Renew when the certificate has fewer days left than this.
    pub renew_before_days: u32,
}

impl Default for Acme {
    fn default() -> Self {
        Acme {
            enabled: false,
            directory: "https://acme-v02.api.letsencrypt.org/directory".into(),
            contact: None,
            accept_terms: false,
            domains: Vec::new(),
            ca: None,
            renew_before_days: 30,
        }
    }
}

impl Acme {
    pub(super) fn validate(&self, path: &KeyPath, out: &mut Vec<Problem>) {
        if !self.directory.starts_with("https://") || self.directory.len() <= "https://".len() {
            check::push(
                out,
                &path.key("directory"),
                format!("{:?} must be an https:// URL", self.directory),
            );
        }
        if let Some(c) = &self.contact
            && !is_mail_address(c)
        {
            check::push(
                out,
                &path.key("contact"),
                format!("{c:?} is not an e-mail address"),
            );
        }
        if let Some(ca) = &self.ca
            && !ca.starts_with('/')
        {
            check::push(
                out,
                &path.key("ca"),
                format!("{ca:?} must be an absolute path"),
            );
        }
        if !(1..=60).contains(&self.renew_before_days) {
            check::push(
                out,
                &path.key("renew_before_days"),
                "must be between 1 and 60 (days)",
            );
        }
        let list = path.key("domains");
        let mut seen = std::collections::HashSet::new();
        for (i, d) in self.domains.iter().enumerate() {
            check::hostname(out, &list.index(i), d);
            if !seen.insert(d.to_ascii_lowercase()) {
                check::push(
                    out,
                    &list.index(i),
                    format!("{d:?} is listed more than once"),
                );
            }
            if d.parse::<std::net::IpAddr>().is_ok() || !d.contains('.') {
                check::push(
                    out,
                    &list.index(i),
                    format!("{d:?} must be a fully qualified host name"),
                );
            }
        }
        if self.enabled {
            if self.domains.is_empty() {
                check::push(out, &list, "needs at least one host name when enabled");
            }
            if !self.accept_terms {
                check::push(
                    out,
                    &path.key("accept_terms"),
                    "must be true when enabled: the CA refuses an account otherwise",
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    use crate::config::toml_problems as problems;

    #[test]
    fn a_section_parses_with_defaults() {
        let c = Config::from_toml(
            "[acme]\nenabled = true\naccept_terms = true\ndomains = [\"node.example.net\"]\n",
        )
        .unwrap();
        assert_eq!(c.acme.renew_before_days, 30);
        assert!(c.acme.directory.starts_with("https://"));
        assert!(problems("").is_empty());
    }

    #[test]
    fn mistakes_are_reported_at_their_key_path() {
        let p = problems(
            "[acme]\nenabled = true\ndirectory = \"http://ca\"\ncontact = \"nobody\"\nca = \"ca.pem\"\nrenew_before_days = 0\ndomains = [\"a.example\", \"a.example\", \"bad name\", \"single\"]\n",
        );
        for want in [
            "acme.directory:",
            "acme.contact:",
            "acme.ca:",
            "acme.renew_before_days:",
            "acme.accept_terms:",
            "acme.domains[2]:",
            "acme.domains[3]:",
        ] {
            assert!(p.iter().any(|p| p.starts_with(want)), "{want} in {p:?}");
        }
        assert!(p.iter().any(|p| p.contains("a.example")), "{p:?}");
        let p = problems("[acme]\nenabled = true\naccept_terms = true\n");
        assert!(p.iter().any(|p| p.starts_with("acme.domains:")), "{p:?}");
    }
}
