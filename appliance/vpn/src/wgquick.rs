//! The road-warrior client's wg-quick file and its QR code.

use qrcode::QrCode;
use qrcode::render::{svg, unicode};

/// Everything a wg-quick `[Interface]` + `[Peer]` needs.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub private_key: String,
    pub address: String,
    pub dns: Vec<String>,
    pub server_public_key: String,
    pub endpoint: String,
    pub allowed_ips: Vec<String>,
    pub keepalive: u16,
}

/// wg-quick format, as the official apps import it.
pub fn render(c: &ClientConfig) -> String {
    let mut s = String::from("[Interface]\n");
    s.push_str(&format!("PrivateKey = {}\n", c.private_key));
    s.push_str(&format!("Address = {}\n", c.address));
    if !c.dns.is_empty() {
        s.push_str(&format!("DNS = {}\n", c.dns.join(", ")));
    }
    s.push_str("\n[Peer]\n");
    s.push_str(&format!("PublicKey = {}\n", c.server_public_key));
    s.push_str(&format!("Endpoint = {}\n", c.endpoint));
    s.push_str(&format!("AllowedIPs = {}\n", c.allowed_ips.join(", ")));
    if c.keepalive > 0 {
        s.push_str(&format!("PersistentKeepalive = {}\n", c.keepalive));
    }
    s
}

/// QR code of the config: (terminal text with half blocks, SVG document).
pub fn qr(text: &str) -> Result<(String, String), qrcode::types::QrError> {
    let code = QrCode::new(text.as_bytes())?;
    let term = code
        .render::<unicode::Dense1x2>()
        .dark_color(unicode::Dense1x2::Light)
        .light_color(unicode::Dense1x2::Dark)
        .quiet_zone(true)
        .build();
    let svg = code
        .render::<svg::Color<'_>>()
        .min_dimensions(256, 256)
        .build();
    Ok((term, svg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wg_quick_shape() {
        let c = ClientConfig {
            private_key: "priv".into(),
            address: "10.8.0.2/32".into(),
            dns: vec!["10.8.0.1".into()],
            server_public_key: "pub".into(),
            endpoint: "vpn.example.net:51820".into(),
            allowed_ips: vec!["10.8.0.0/24".into(), "192.168.1.0/24".into()],
            keepalive: 25,
        };
        let t = render(&c);
        assert_eq!(
            t,
            "[Interface]\nPrivateKey = priv\nAddress = 10.8.0.2/32\nDNS = 10.8.0.1\n\n[Peer]\nPublicKey = pub\nEndpoint = vpn.example.net:51820\nAllowedIPs = 10.8.0.0/24, 192.168.1.0/24\nPersistentKeepalive = 25\n"
        );
        let (term, svg) = qr(&t).unwrap();
        assert!(term.lines().count() > 10);
        assert!(svg.contains("<svg"));
    }
}
