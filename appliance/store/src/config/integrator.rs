use serde::{Deserialize, Serialize};

use super::{KeyPath, Problem, check};

/// `[integrator]`: security definitions and REST channels of the integrator.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Integrator {
    pub security: Vec<SecurityDef>,
    pub channels: Vec<Channel>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SecurityDef {
    pub name: String,
    pub kind: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Channel {
    pub name: String,
    pub url_path: String,
    #[serde(default = "default_format")]
    pub data_format: String,
    pub service: String,
    #[serde(default)]
    pub security: Option<String>,
}

fn default_format() -> String {
    "json".into()
}

/// The seed reserves names starting with `AR` for built-in objects.
fn reserved(out: &mut Vec<Problem>, path: &KeyPath, name: &str) {
    if name.starts_with("AR") {
        check::push(
            out,
            path,
            format!("{name:?} starts with \"AR\", which is reserved for built-in objects"),
        );
    }
}

impl Integrator {
    pub(super) fn validate(&self, path: &KeyPath, out: &mut Vec<Problem>) {
        let sec = path.key("security");
        for (i, def) in self.security.iter().enumerate() {
            let at = sec.index(i);
            check::object_name(out, &at.key("name"), &def.name);
            reserved(out, &at.key("name"), &def.name);
            if !["basic", "apikey", "hmac"].contains(&def.kind.as_str()) {
                check::push(
                    out,
                    &at.key("kind"),
                    format!("{:?} is not one of basic, apikey, hmac", def.kind),
                );
            }
        }
        check::unique(
            out,
            &sec,
            "name",
            self.security.iter().map(|s| s.name.as_str()),
        );
        let chans = path.key("channels");
        for (i, ch) in self.channels.iter().enumerate() {
            let at = chans.index(i);
            check::object_name(out, &at.key("name"), &ch.name);
            reserved(out, &at.key("name"), &ch.name);
            if !ch.url_path.starts_with('/') {
                check::push(out, &at.key("url_path"), "must start with '/'");
            }
            if !["json", "form", "xml", "raw"].contains(&ch.data_format.as_str()) {
                check::push(
                    out,
                    &at.key("data_format"),
                    format!("{:?} is not one of json, form, xml, raw", ch.data_format),
                );
            }
            if let Some(name) = &ch.security
                && !self.security.iter().any(|s| &s.name == name)
            {
                check::push(
                    out,
                    &at.key("security"),
                    format!("no security definition is named {name:?}"),
                );
            }
        }
        check::unique(
            out,
            &chans,
            "name",
            self.channels.iter().map(|c| c.name.as_str()),
        );
    }
}
