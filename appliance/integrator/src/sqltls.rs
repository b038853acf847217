//! TLS of outgoing SQL connections, on rustls with the ring provider:
//! `verify-full` checks the server's chain (against `ca_file`, else the
//! public roots) and its host name; `require` encrypts without checking
//! who answers, as libpq's `sslmode=require` does. Also the TLS of
//! requests forwarded to another cluster member's :11223, which pins the
//! certificate the member announces in its heartbeat ([`pinned_config`]).

use std::sync::Arc;

use alpharen_store::config::SqlTls;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

/// The client configuration of a connection's TLS mode.
pub fn client_config(mode: SqlTls, ca_file: Option<&str>) -> Result<ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let config = if mode == SqlTls::Require {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider, None)))
            .with_no_client_auth()
    } else {
        let roots = alpharen_nodetls::client_roots(ca_file).map_err(|e| format!("ca_file {e}"))?;
        if let Some(path) = ca_file
            && roots.is_empty()
        {
            return Err(format!("ca_file {path}: no certificate in it"));
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(config)
}

/// A client that accepts exactly the certificate whose SHA-256 is `pin`
/// (names and chains do not matter: the pin came over the cluster's
/// authenticated membership).
pub fn pinned_config(pin: [u8; 32]) -> Result<ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider, Some(pin))))
        .with_no_client_auth())
}

/// `require`: any certificate (or only the pinned one), but the
/// handshake's signatures are still checked, so the session keys belong
/// to whoever holds that certificate.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>, Option<[u8; 32]>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(pin) = self.1 {
            let got = ring::digest::digest(&ring::digest::SHA256, end_entity.as_ref());
            if got.as_ref() != pin.as_slice() {
                return Err(rustls::Error::General(
                    "the certificate is not the one the member announced".into(),
                ));
            }
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
