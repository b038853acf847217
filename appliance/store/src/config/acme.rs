//! `[acme]`: a certificate for the console from an ACME CA (RFC 8555;
//! HTTP-01 on the web service's plain-HTTP port, TLS-ALPN-01 on its HTTPS
//! port, or DNS-01 through the node's own dpx zone or an external DNS
//! server by RFC 2136 updates signed with a TSIG key). The web service
//! owns it.

use serde::{Deserialize, Serialize};

use super::{KeyPath, Problem, TsigAlgorithm, check, in_zone, is_mail_address};

/// The secret holding the base64 TSIG key of `[acme.rfc2136]` (under the
/// web service's `web.acme.` prefix, so only web can read it).
pub const TSIG_SECRET: &str = "web.acme.tsig";

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
    /// A TXT record `_acme-challenge.NAME` in the node's dpx zone, or in
    /// `[acme.rfc2136]`'s zone; the only one that can prove a wildcard name.
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
    /// `http-01` (default), `tls-alpn-01` or `dns-01` (names in `dpx.zone`,
    /// or in `rfc2136.zone` when that is set).
    pub challenge: Challenge,
    /// DNS-01 through an external DNS server instead of the dpx zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rfc2136: Option<Rfc2136>,
}

/// `[acme.rfc2136]`: the primary server of a zone the node does not
/// serve, which takes TSIG-signed RFC 2136 updates of the
/// `_acme-challenge` TXT records. The key itself is the secret
/// [`TSIG_SECRET`], never part of the document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Rfc2136 {
    /// `IP:PORT` of the server (port 53 when left out).
    pub server: String,
    /// The zone the updates are for (its SOA name); every name in
    /// `domains` must be inside it.
    pub zone: String,
    /// The TSIG key's name as the server knows it.
    pub key_name: String,
    /// `hmac-sha256` (default) or `hmac-sha512`.
    #[serde(default)]
    pub algorithm: TsigAlgorithm,
}

impl Rfc2136 {
    /// The server's address: `IP:PORT`, or an IP alone for port 53.
    pub fn server_addr(&self) -> Option<std::net::SocketAddr> {
        let s = self.server.trim();
        s.parse()
            .ok()
            .or_else(|| s.parse::<std::net::IpAddr>().ok().map(|ip| (ip, 53).into()))
    }

    fn validate(&self, path: &KeyPath, out: &mut Vec<Problem>) {
        if self.server_addr().is_none() {
            check::push(
                out,
                &path.key("server"),
                format!("{:?} must be IP:PORT or an IP address", self.server),
            );
        }
        check::hostname(out, &path.key("zone"), &self.zone);
        check::hostname(out, &path.key("key_name"), &self.key_name);
    }
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
            rfc2136: None,
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
            if self.challenge == Challenge::Dns01 {
                let why = match (&self.rfc2136, dpx_zone) {
                    (Some(r), _) if in_zone(d, &r.zone) => None,
                    (Some(r), _) => Some(format!("is not inside acme.rfc2136.zone {:?}", r.zone)),
                    (None, Some(z)) if in_zone(d, z) => None,
                    (None, Some(z)) => Some(format!("is not inside dpx.zone {z:?}")),
                    (None, None) => Some(
                        "needs dpx.zone or [acme.rfc2136] (dns-01 answers are published there)"
                            .to_string(),
                    ),
                };
                if let Some(why) = why {
                    check::push(out, &list.index(i), format!("{d:?} {why}"));
                }
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
        if let Some(r) = &self.rfc2136 {
            let at = path.key("rfc2136");
            r.validate(&at, out);
            if self.challenge != Challenge::Dns01 {
                check::push(
                    out,
                    &at,
                    format!(
                        "is used only with acme.challenge = \"dns-01\" (not {:?})",
                        self.challenge.name()
                    ),
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

    #[test]
    fn rfc2136_takes_the_names_of_its_own_zone() {
        let base = "[dpx]\nzone = \"z.example.\"\n[acme]\nenabled = true\naccept_terms = true\nchallenge = \"dns-01\"\n";
        let ok = format!(
            "{base}domains = [\"*.ext.example\", \"ext.example\"]\n[acme.rfc2136]\nserver = \"127.0.0.1:5353\"\nzone = \"ext.example\"\nkey_name = \"acme-key\"\n"
        );
        assert!(problems(&ok).is_empty(), "{:?}", problems(&ok));
        let c = Config::from_toml(&ok).unwrap();
        let r = c.acme.rfc2136.unwrap();
        assert_eq!(r.algorithm, crate::config::TsigAlgorithm::HmacSha256);
        assert_eq!(r.server_addr(), Some("127.0.0.1:5353".parse().unwrap()));
        let plain = super::Rfc2136 {
            server: "192.0.2.1".into(),
            ..r.clone()
        };
        assert_eq!(plain.server_addr(), Some("192.0.2.1:53".parse().unwrap()));
        // The dpx zone's names are not the external zone's.
        let p = problems(&ok.replace("\"ext.example\"]", "\"a.z.example\"]"));
        assert!(
            p.iter()
                .any(|p| p.starts_with("acme.domains[1]:")
                    && p.contains("not inside acme.rfc2136.zone")),
            "{p:?}"
        );
        let p = problems(
            &ok.replace("127.0.0.1:5353", "ns.example:53")
                .replace("\"acme-key\"", "\"bad key\"")
                .replace("key_name", "algorithm = \"hmac-md5\"\nkey_name"),
        );
        assert!(
            p.iter().any(|p| p.starts_with("acme.rfc2136.algorithm")),
            "{p:?}"
        );
        let p = problems(
            &ok.replace("127.0.0.1:5353", "ns.example:53")
                .replace("\"acme-key\"", "\"bad key\""),
        );
        for want in ["acme.rfc2136.server:", "acme.rfc2136.key_name:"] {
            assert!(p.iter().any(|p| p.starts_with(want)), "{want} in {p:?}");
        }
        let p = problems(
            &ok.replace("dns-01", "http-01")
                .replace("\"*.ext.example\", ", ""),
        );
        assert!(
            p.iter()
                .any(|p| p.starts_with("acme.rfc2136:") && p.contains("only with")),
            "{p:?}"
        );
        // A secret in the document is refused: the key is a secret.
        assert!(Config::from_toml(&format!("{ok}secret = \"abc\"\n")).is_err());
    }
}
