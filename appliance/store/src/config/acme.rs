//! `[acme]`: a certificate for the console from an ACME CA (RFC 8555;
//! HTTP-01 on the web service's plain-HTTP port, TLS-ALPN-01 on its HTTPS
//! port, or DNS-01 through the node's own dpx zone). The web service owns it.

use serde::{Deserialize, Serialize};

use super::{KeyPath, Problem, check, in_zone, is_mail_address};

/// How the CA checks that the node controls the names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum Challenge {
    /// A file under `/.well-known/acme-challenge/` on the plain-HTTP port.
    #[default]
    #[serde(rename = "http-01")]
    Http01,
    /// A certificate made for the challenge, on the HTTPS port (RFC 8737).
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
    /// A TXT record `_acme-challenge.NAME` in the node's dpx zone; the only
    /// one that can prove a wildcard name.
    #[serde(rename = "dns-01")]
    Dns01,
}

impl Challenge {
    pub fn name(self) -> &'static str {
        match self {
            Challenge::Http01 => "http-01",
            Challenge::TlsAlpn01 => "tls-alpn-01",
            Challenge::Dns01 => "dns-01",
        }
    }
}

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
    /// `http-01` (default), `tls-alpn-01` or `dns-01` (names in `dpx.zone`).
    pub challenge: Challenge,
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
            challenge: Challenge::Http01,
        }
    }
}

impl Acme {
    /// `dpx_zone` is `dpx.zone`: DNS-01 answers are published there.
    pub(super) fn validate(&self, path: &KeyPath, dpx_zone: Option<&str>, out: &mut Vec<Problem>) {
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
            let base = d.strip_prefix("*.");
            check::hostname(out, &list.index(i), base.unwrap_or(d));
            if base.is_some() && self.challenge != Challenge::Dns01 {
                check::push(
                    out,
                    &list.index(i),
                    format!(
                        "{d:?} is a wildcard name: only acme.challenge = \"dns-01\" can prove it (not {:?})",
                        self.challenge.name()
                    ),
                );
            }
            if self.challenge == Challenge::Dns01 && !dpx_zone.is_some_and(|z| in_zone(d, z)) {
                let why = match dpx_zone {
                    Some(z) => format!("is not inside dpx.zone {z:?}"),
                    None => "needs dpx.zone (dns-01 answers are published there)".to_string(),
                };
                check::push(out, &list.index(i), format!("{d:?} {why}"));
            }
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

    #[test]
    fn the_challenge_is_chosen_by_name() {
        use super::Challenge;
        let base = "[acme]\nenabled = true\naccept_terms = true\ndomains = [\"a.z.example\"]\n";
        assert_eq!(
            Config::from_toml(base).unwrap().acme.challenge,
            Challenge::Http01
        );
        let tls = Config::from_toml(&format!("{base}challenge = \"tls-alpn-01\"\n")).unwrap();
        assert_eq!(tls.acme.challenge, Challenge::TlsAlpn01);
        let p = problems(&format!("{base}challenge = \"dns-02\"\n"));
        assert!(
            p.iter()
                .any(|p| p.contains("dns-02") && p.contains("http-01") && p.contains("dns-01")),
            "{p:?}"
        );
    }

    #[test]
    fn wildcards_need_dns01_and_dns01_needs_the_zone() {
        let acme = |challenge: &str, domains: &str| {
            format!(
                "[acme]\nenabled = true\naccept_terms = true\nchallenge = \"{challenge}\"\ndomains = [{domains}]\n"
            )
        };
        let zone = "[dpx]\nzone = \"z.example.\"\n";
        let wild = "\"*.z.example\", \"z.example\"";
        let p = problems(&format!("{zone}{}", acme("http-01", wild)));
        assert!(
            p.iter().any(|p| p.starts_with("acme.domains[0]:")
                && p.contains("only acme.challenge = \"dns-01\"")),
            "{p:?}"
        );
        let p = problems(&format!("{zone}{}", acme("tls-alpn-01", wild)));
        assert!(p.iter().any(|p| p.starts_with("acme.domains[0]:")), "{p:?}");
        assert!(problems(&format!("{zone}{}", acme("dns-01", wild))).is_empty());
        let p = problems(&format!("{zone}{}", acme("dns-01", "\"a.other.example\"")));
        assert!(
            p.iter()
                .any(|p| p.starts_with("acme.domains[0]:") && p.contains("not inside dpx.zone")),
            "{p:?}"
        );
        let p = problems(&acme("dns-01", "\"a.z.example\""));
        assert!(p.iter().any(|p| p.contains("needs dpx.zone")), "{p:?}");
        let p = problems(&format!(
            "{zone}{}",
            acme("dns-01", "\"*.bad name.z.example\"")
        ));
        assert!(p.iter().any(|p| p.starts_with("acme.domains[0]:")), "{p:?}");
    }
}
