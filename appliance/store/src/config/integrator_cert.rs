//! What a `tls_client_cert` security definition names: its CA certificates
//! (PEM text in the configuration) and the distinguished names it allows,
//! written as RFC 4514 strings (`CN=orders,O=Acme,C=DE`, what
//! `openssl x509 -noout -subject -nameopt RFC2253` prints). The parsing
//! lives here so the configuration check and the integrator's matching
//! read a name the same way.

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// One attribute of a name: its type (canonical, see [`attribute_type`])
/// and its value.
pub type Attribute = (String, String);

/// A distinguished name in RFC 4514 order (most specific RDN first); each
/// RDN's attributes sorted, so a multi-valued RDN compares as a set.
pub type Dn = Vec<Vec<Attribute>>;

/// Attribute short names and their OIDs (RFC 4514 §3, plus the ones
/// OpenSSL prints by name).
pub const DN_ATTRIBUTES: &[(&str, &str)] = &[
    ("CN", "2.5.4.3"),
    ("SERIALNUMBER", "2.5.4.5"),
    ("C", "2.5.4.6"),
    ("L", "2.5.4.7"),
    ("ST", "2.5.4.8"),
    ("STREET", "2.5.4.9"),
    ("O", "2.5.4.10"),
    ("OU", "2.5.4.11"),
    ("TITLE", "2.5.4.12"),
    ("GN", "2.5.4.42"),
    ("SN", "2.5.4.4"),
    ("DC", "0.9.2342.19200300.100.1.25"),
    ("UID", "0.9.2342.19200300.100.1.1"),
    ("EMAILADDRESS", "1.2.840.113549.1.9.1"),
];

/// The canonical form of an attribute type: a known short name upper-cased
/// (`cn`, `2.5.4.3` → `CN`), any other OID as written. `None` when it is
/// neither a name nor a dotted OID.
pub fn attribute_type(t: &str) -> Option<String> {
    let upper = t.to_ascii_uppercase();
    if let Some((name, _)) = DN_ATTRIBUTES
        .iter()
        .find(|(n, oid)| *n == upper || *oid == t)
    {
        return Some((*name).to_string());
    }
    let dotted = !t.is_empty()
        && t.split('.').count() > 1
        && t.split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
    dotted.then(|| t.to_string())
}

/// Parses an RFC 4514 string. Backslash escapes (`\,`, `\+`, `\"`, `\\`,
/// `\=`, hex pairs `\C3\A9`) are decoded; spaces around `,`, `+` and `=`
/// are ignored. Hex-encoded BER values (`CN=#04...`) are refused.
pub fn parse_dn(text: &str) -> Result<Dn, String> {
    let mut rdns: Dn = Vec::new();
    let mut rdn: Vec<Attribute> = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        // type
        let mut t = String::new();
        let mut equals = false;
        for c in chars.by_ref() {
            if c == '=' {
                equals = true;
                break;
            }
            t.push(c);
        }
        let t = t.trim();
        if t.is_empty() || !equals {
            return Err(format!(
                "{text:?} is not a distinguished name: an attribute lacks its type or '=' (write CN=name,O=org)"
            ));
        }
        let kind = attribute_type(t).ok_or_else(|| {
            format!("{text:?}: {t:?} is not an attribute type (CN, O, OU, C, ... or a dotted OID)")
        })?;
        // value
        let mut value: Vec<u8> = Vec::new();
        let mut trailing_spaces = 0usize;
        let mut end = None;
        while let Some(c) = chars.next() {
            match c {
                ',' | '+' => {
                    end = Some(c);
                    break;
                }
                '\\' => {
                    trailing_spaces = 0;
                    let Some(e) = chars.next() else {
                        return Err(format!("{text:?}: a '\\' ends the name"));
                    };
                    if e.is_ascii_hexdigit() {
                        let Some(l) = chars.next().filter(char::is_ascii_hexdigit) else {
                            return Err(format!("{text:?}: '\\{e}' is not a hex pair"));
                        };
                        let pair = format!("{e}{l}");
                        value.push(u8::from_str_radix(&pair, 16).map_err(|e| e.to_string())?);
                    } else {
                        let mut b = [0u8; 4];
                        value.extend_from_slice(e.encode_utf8(&mut b).as_bytes());
                    }
                }
                ' ' if value.is_empty() => {}
                '#' if value.is_empty() => {
                    return Err(format!(
                        "{text:?}: hex-encoded values (#...) are not supported; write the value as text"
                    ));
                }
                _ => {
                    trailing_spaces = if c == ' ' { trailing_spaces + 1 } else { 0 };
                    let mut b = [0u8; 4];
                    value.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
                }
            }
        }
        value.truncate(value.len() - trailing_spaces);
        let value = String::from_utf8(value)
            .map_err(|_| format!("{text:?}: an escaped value is not UTF-8"))?;
        if value.is_empty() {
            return Err(format!("{text:?}: {t} has an empty value"));
        }
        rdn.push((kind, value));
        match end {
            Some('+') => {}
            _ => {
                rdn.sort();
                rdns.push(std::mem::take(&mut rdn));
            }
        }
        if end.is_none() {
            return Ok(rdns);
        }
    }
}

/// The DER certificates of PEM text; an error when there is none, when a
/// block is damaged, or when one is not a certificate a chain can end at.
pub fn ca_certificates(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not readable as PEM: {e}"))?;
    if certs.is_empty() {
        return Err("holds no \"-----BEGIN CERTIFICATE-----\" block".into());
    }
    for (i, c) in certs.iter().enumerate() {
        webpki::anchor_from_trusted_cert(c)
            .map_err(|e| format!("certificate {} is not a usable CA certificate: {e}", i + 1))?;
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(t: &str, v: &str) -> Attribute {
        (t.into(), v.into())
    }

    #[test]
    fn names_parse_with_escapes_spaces_and_multi_valued_rdns() {
        assert_eq!(
            parse_dn("CN=orders, o = Acme\\, Inc.,C=DE").unwrap(),
            vec![
                vec![a("CN", "orders")],
                vec![a("O", "Acme, Inc.")],
                vec![a("C", "DE")]
            ]
        );
        assert_eq!(
            parse_dn("uid=x+CN=Jos\\C3\\A9,2.5.4.10=A").unwrap(),
            vec![vec![a("CN", "José"), a("UID", "x")], vec![a("O", "A")]]
        );
        assert_eq!(
            parse_dn("1.2.3.4=v").unwrap(),
            vec![vec![a("1.2.3.4", "v")]]
        );
        assert_eq!(
            parse_dn("CN=a\\ ").unwrap(),
            vec![vec![a("CN", "a ")]],
            "an escaped trailing space is kept"
        );
    }

    #[test]
    fn bad_names_say_what_is_wrong() {
        for (bad, says) in [
            ("orders", "write CN=name"),
            ("CN=", "empty value"),
            ("XX=a", "not an attribute type"),
            ("CN=a,", "lacks its type"),
            ("CN=#0403", "hex-encoded"),
            ("CN=a\\", "ends the name"),
            ("CN=a\\4", "hex pair"),
        ] {
            let e = parse_dn(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn ca_text_needs_a_certificate() {
        assert!(ca_certificates("").unwrap_err().contains("no"));
        assert!(
            ca_certificates("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
                .unwrap_err()
                .contains("certificate 1")
        );
        let broken = "-----BEGIN CERTIFICATE-----\nAA!A\n-----END CERTIFICATE-----\n";
        assert!(ca_certificates(broken).is_err());
    }
}
