//! One ACME order with instant-acme (ring): the account from its stored
//! credentials (or a new one, kept in the secret store), the challenges
//! answered (HTTP-01 by the plain-HTTP listener from [`Tokens`],
//! TLS-ALPN-01 by the HTTPS listener from [`AlpnCerts`], DNS-01 by a TXT
//! record the dpx service publishes in its zone or an external server
//! takes by RFC 2136 update), a CSR for the
//! certificate key kept in the secret store, and the issued chain.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alpharen_store::config::{Acme as AcmeConfig, AcmeChallenge};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, BodyWrapper, BytesResponse,
    CertificateIdentifier, HttpClient, Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde_json::json;

use super::challenge::{self, AlpnCerts};

/// Token → key authorization of the HTTP-01 challenges in flight.
pub type Tokens = Arc<Mutex<HashMap<String, String>>>;

/// Where an order's challenge answers are served from.
#[derive(Default, Clone)]
pub struct Answers {
    pub tokens: Tokens,
    pub alpn: AlpnCerts,
}

/// One answer put in place, to withdraw when the order ends.
enum Placed {
    Token(String),
    Alpn(String),
    /// TXT record name and value in the dpx zone or the external one.
    Txt(String, String),
}

/// Where DNS-01 answers are published.
pub enum TxtTarget {
    /// The node's own dpx zone, over dpx's control socket.
    Dpx,
    /// An external primary server, by signed RFC 2136 updates.
    Rfc2136(super::rfc2136::Updater),
}

impl TxtTarget {
    /// Adds (`present`, then waits until it is served) or deletes one value.
    async fn change(
        &self,
        state_dir: &Path,
        name: &str,
        value: &str,
        present: bool,
    ) -> Result<(), String> {
        match self {
            TxtTarget::Dpx => dpx_txt(state_dir, name, value, present).await,
            TxtTarget::Rfc2136(u) => {
                u.change(name, value, present).await?;
                if present {
                    u.visible(name, value).await?;
                }
                Ok(())
            }
        }
    }
}

/// How long the dpx service gets to change its zone.
const DPX_TIMEOUT: Duration = Duration::from_secs(10);

/// Asks the dpx service to publish (`present`) or withdraw one TXT value.
async fn dpx_txt(state_dir: &Path, name: &str, value: &str, present: bool) -> Result<(), String> {
    let socket = state_dir.join("run").join("dpx.sock");
    let params = json!({"name": name, "value": value, "present": present});
    alpharen_rpc::call(&socket, "dpx.acme_txt", params, DPX_TIMEOUT)
        .await
        .map(|_| ())
        .map_err(|e| format!("the dpx service did not change {name} TXT: {}", e.message))
}

/// How long the CA gets to validate and to issue.
const POLL: RetryPolicy = RetryPolicy::new()
    .initial_delay(Duration::from_millis(250))
    .backoff(1.5)
    .timeout(Duration::from_secs(90));
/// Longest one request to the CA may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// instant-acme's HTTP client on the web service's own hyper and rustls
/// (ring), trusting the public roots or the operator's CA file.
struct Http(Client<hyper_rustls::HttpsConnector<HttpConnector>, BodyWrapper<Bytes>>);

impl HttpClient for Http {
    fn request(
        &self,
        req: hyper::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let fut = tokio::time::timeout(REQUEST_TIMEOUT, self.0.request(req));
        Box::pin(async move {
            match fut.await {
                Ok(Ok(rsp)) => Ok(BytesResponse::from(rsp)),
                Ok(Err(e)) => Err(instant_acme::Error::Other(chain(&e).into())),
                Err(_) => Err(instant_acme::Error::Str(
                    "the CA did not answer within 30 s",
                )),
            }
        })
    }
}

/// An error with its causes ("client error (Connect): tcp connect error:
/// Connection refused"): hyper's own text leaves out why.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

fn http(ca: Option<&str>) -> Result<Http, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("acme.ca {path}: {e}"))?
                .collect::<Result<_, _>>()
                .map_err(|e| format!("acme.ca {path}: not a PEM certificate: {e}"))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!("acme.ca {path}: no usable CA certificate"));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let tls = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .build();
    Ok(Http(Client::builder(TokioExecutor::new()).build(connector)))
}

/// The secret holding the account for `directory`: one per CA, since an
/// account exists only at the CA that made it.
pub fn account_secret(directory: &str) -> String {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(directory.as_bytes());
    let hex: String = h[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("{}{hex}", super::ACCOUNT_SECRET_PREFIX)
}

/// The account at `cfg.directory`: from `stored` credentials, or made now
/// and kept in the secret store (never logged); `stored` then holds it.
async fn account(
    state_dir: &Path,
    cfg: &AcmeConfig,
    stored: &mut Option<String>,
) -> Result<Account, String> {
    let builder = || http(cfg.ca.as_deref()).map(|h| Account::builder_with_http(Box::new(h)));
    if let Some(json) = stored {
        let creds: AccountCredentials = serde_json::from_str(json)
            .map_err(|e| format!("the stored ACME account does not parse: {e}"))?;
        return builder()?
            .from_credentials(creds)
            .await
            .map_err(|e| format!("directory {}: {e}", cfg.directory));
    }
    let contact: Vec<String> = cfg.contact.iter().map(|c| format!("mailto:{c}")).collect();
    let contact: Vec<&str> = contact.iter().map(String::as_str).collect();
    let (account, creds) = builder()?
        .create(
            &NewAccount {
                contact: &contact,
                terms_of_service_agreed: cfg.accept_terms,
                only_return_existing: false,
            },
            cfg.directory.clone(),
            None,
        )
        .await
        .map_err(|e| format!("new account at {}: {e}", cfg.directory))?;
    let json = serde_json::to_string(&creds).map_err(|e| e.to_string())?;
    let kept =
        alpharen_rpc::view::keep_secret(state_dir, "web", &account_secret(&cfg.directory), &json)
            .await
            .map_err(|e| format!("keeping the ACME account: {e}"))?;
    tracing::info!(directory = %cfg.directory, id = %account.id(), "ACME account created");
    if kept != json {
        // Another order kept its account first: use that one everywhere.
        *stored = Some(kept);
        return Box::pin(self::account(state_dir, cfg, stored)).await;
    }
    *stored = Some(json);
    Ok(account)
}

/// The ARI identifier (RFC 9773 §4.1) of a certificate: its Authority
/// Key Identifier and serial number.
pub fn cert_id(der: &CertificateDer<'_>) -> Result<CertificateIdentifier<'static>, String> {
    use x509_parser::extensions::ParsedExtension;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| format!("certificate does not parse: {e}"))?;
    let aki = cert
        .iter_extensions()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => a.key_identifier.as_ref().map(|k| k.0),
            _ => None,
        })
        .ok_or("the certificate has no Authority Key Identifier")?;
    Ok(CertificateIdentifier::new(
        rustls::pki_types::Der::from_slice(aki),
        rustls::pki_types::Der::from_slice(cert.tbs_certificate.raw_serial()),
    )
    .into_owned())
}

/// The CA's renewal window for `id` and its Retry-After (seconds);
/// `None` when the directory has no `renewalInfo`.
pub async fn renewal_window(
    state_dir: &Path,
    cfg: &AcmeConfig,
    stored_account: &mut Option<String>,
    id: &CertificateIdentifier<'_>,
) -> Result<Option<(super::plan::Window, i64)>, String> {
    let account = account(state_dir, cfg, stored_account).await?;
    match account.renewal_info(id).await {
        Ok((info, retry)) => Ok(Some((
            super::plan::Window {
                start: info.suggested_window.start.unix_timestamp(),
                end: info.suggested_window.end.unix_timestamp(),
            },
            i64::try_from(retry.as_secs()).unwrap_or(i64::MAX),
        ))),
        Err(instant_acme::Error::Unsupported(_)) => Ok(None),
        Err(e) => Err(format!("renewal information: {e}")),
    }
}

/// Orders a certificate for `cfg.domains` signed for `key_pem`; answers
/// the chain in PEM. The challenge answers are withdrawn whatever happens.
/// `replaces` names the certificate it succeeds (ARI), when the CA has ARI.
pub async fn issue(
    state_dir: &Path,
    cfg: &AcmeConfig,
    stored_account: &mut Option<String>,
    key_pem: &str,
    answers: &Answers,
    txt: &TxtTarget,
    replaces: Option<CertificateIdentifier<'static>>,
) -> Result<String, String> {
    let mut mine = Vec::new();
    let ctx = Ctx {
        state_dir,
        answers,
        txt,
    };
    let result = run(&ctx, cfg, stored_account, key_pem, replaces, &mut mine).await;
    for placed in mine {
        match placed {
            Placed::Token(token) => {
                if let Ok(mut t) = answers.tokens.lock() {
                    t.remove(&token);
                }
            }
            Placed::Alpn(name) => {
                if let Ok(mut a) = answers.alpn.lock() {
                    a.remove(&name);
                }
            }
            Placed::Txt(name, value) => {
                if let Err(e) = txt.change(state_dir, &name, &value, false).await {
                    tracing::warn!(error = %e, "ACME: a DNS-01 answer stays in the zone");
                }
            }
        }
    }
    result
}

/// Where one order puts its answers.
struct Ctx<'a> {
    state_dir: &'a Path,
    answers: &'a Answers,
    txt: &'a TxtTarget,
}

/// Puts the answer to `ch` in place and notes it in `mine`.
async fn answer(
    ctx: &Ctx<'_>,
    kind: AcmeChallenge,
    ch: &instant_acme::ChallengeHandle<'_>,
    mine: &mut Vec<Placed>,
) -> Result<(), String> {
    let answers = ctx.answers;
    let name = ch.identifier().to_string();
    let auth = ch.key_authorization();
    match kind {
        AcmeChallenge::Http01 => {
            if let Ok(mut t) = answers.tokens.lock() {
                t.insert(ch.token.clone(), auth.as_str().to_string());
            }
            mine.push(Placed::Token(ch.token.clone()));
        }
        AcmeChallenge::TlsAlpn01 => {
            let ck = challenge::alpn_cert(&name, auth.digest().as_ref())?;
            let host = name.to_ascii_lowercase();
            if let Ok(mut a) = answers.alpn.lock() {
                a.insert(host.clone(), Arc::new(ck));
            }
            mine.push(Placed::Alpn(host));
        }
        AcmeChallenge::Dns01 => {
            let txt = challenge::txt_name(&name);
            let value = auth.dns_value();
            // Noted first: a value the server took before an error is
            // deleted too (deleting an absent value changes nothing).
            mine.push(Placed::Txt(txt.clone(), value.clone()));
            ctx.txt.change(ctx.state_dir, &txt, &value, true).await?;
        }
    }
    Ok(())
}

async fn run(
    ctx: &Ctx<'_>,
    cfg: &AcmeConfig,
    stored_account: &mut Option<String>,
    key_pem: &str,
    replaces: Option<CertificateIdentifier<'static>>,
    mine: &mut Vec<Placed>,
) -> Result<String, String> {
    let account = account(ctx.state_dir, cfg, stored_account).await?;
    let ids: Vec<Identifier> = cfg.domains.iter().cloned().map(Identifier::Dns).collect();
    let replacing = match replaces {
        // A CA may refuse `replaces` (already replaced, another account's
        // certificate): then the order goes without it.
        Some(id) => account
            .new_order(&NewOrder::new(&ids).replaces(id))
            .await
            .inspect_err(|e| tracing::warn!(error = %e, "ACME: the CA refused the order with replaces; ordering without"))
            .ok(),
        None => None,
    };
    let mut order = match replacing {
        Some(o) => o,
        None => account
            .new_order(&NewOrder::new(&ids))
            .await
            .map_err(|e| format!("new order: {e}"))?,
    };
    let mut authzs = order.authorizations();
    while let Some(a) = authzs.next().await {
        let mut a = a.map_err(|e| format!("authorization: {e}"))?;
        let name = a.identifier().to_string();
        match a.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            s => return Err(format!("the authorization for {name} is {s:?}")),
        }
        let kind = cfg.challenge;
        let mut ch = a
            .challenge(challenge::challenge_type(kind))
            .ok_or_else(|| format!("the CA offers no {} challenge for {name}", kind.name()))?;
        answer(ctx, kind, &ch, mine)
            .await
            .map_err(|e| format!("{name}: {e}"))?;
        ch.set_ready()
            .await
            .map_err(|e| format!("challenge for {name}: {e}"))?;
    }
    let status = order
        .poll_ready(&POLL)
        .await
        .map_err(|e| format!("validation: {e}"))?;
    if status != OrderStatus::Ready {
        return Err(format!("validation: the CA marked the order {status:?}"));
    }
    let key = rcgen::KeyPair::from_pem(key_pem).map_err(|e| format!("certificate key: {e}"))?;
    let mut params =
        rcgen::CertificateParams::new(cfg.domains.clone()).map_err(|e| format!("CSR: {e}"))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = params
        .serialize_request(&key)
        .map_err(|e| format!("CSR: {e}"))?;
    order
        .finalize_csr(csr.der())
        .await
        .map_err(|e| format!("finalize: {e}"))?;
    order
        .poll_certificate(&POLL)
        .await
        .map_err(|e| format!("certificate: {e}"))
}
