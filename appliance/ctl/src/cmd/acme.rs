//! acme status|renew: the web service's `web.status` (its `acme` part)
//! and `web.acme_renew`, forwarded by the supervisor to
//! `<state>/run/web.sock`.

use clap::Subcommand;
use serde_json::json;

use crate::CtlError;
use crate::client::NodeClient;
use crate::output::{Output, text, time};

#[derive(Debug, Subcommand)]
pub enum AcmeCmd {
    /// The console's ACME certificate: state, names, expiry, next renewal,
    /// failures and the last error.
    Status,
    /// Order a certificate now (also after failures, skipping the backoff);
    /// `acme status` shows how it went.
    Renew,
}

impl AcmeCmd {
    pub fn run(self, client: &mut NodeClient, out: &Output) -> Result<(), CtlError> {
        match self {
            AcmeCmd::Status => {
                let v = client.call("web.status", json!({}))?;
                out.show(&v["acme"], |a| {
                    if a["enabled"] != json!(true) {
                        println!("ACME is off ([acme] enabled = false)");
                        return;
                    }
                    let names: Vec<String> = a["domains"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(text)
                        .collect();
                    println!("state:        {}", text(&a["state"]));
                    println!("directory:    {}", text(&a["directory"]));
                    println!("domains:      {}", names.join(", "));
                    println!(
                        "serving:      {}",
                        if a["serving"] == json!(true) {
                            "the CA's certificate"
                        } else {
                            "not the CA's certificate (self-signed or web.cert)"
                        }
                    );
                    println!("expires:      {}", time(&a["not_after"]));
                    println!("renews:       {}", time(&a["renew_at"]));
                    println!("schedule:     {}", text(&a["schedule"]));
                    println!("next attempt: {}", time(&a["next_attempt"]));
                    println!("last success: {}", time(&a["last_success"]));
                    println!("failures:     {}", text(&a["failures"]));
                    println!("last error:   {}", text(&a["last_error"]));
                });
                Ok(())
            }
            AcmeCmd::Renew => {
                let v = client.call("web.acme_renew", json!({}))?;
                out.show(&v, |_| {
                    println!("ordering a certificate; see `alpharen ctl acme status`")
                });
                Ok(())
            }
        }
    }
}
