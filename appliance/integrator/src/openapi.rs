//! The OpenAPI 3.1 document of the REST channels (`integrator.openapi`,
//! `GET /api/v1/integrator/openapi.json`): every channel's path with its
//! templated parameters, its methods and security, and the SimpleIO input
//! and output of its service when the deploy recorded one. Pure, so the
//! document is unit-tested.

use std::collections::HashMap;

use alpharen_store::config::{Channel, Integrator, IntegratorTls, SecurityDef, Template, TlsMode};
use serde_json::{Map, Value, json};

use crate::registry::{ServiceInfo, Sio, SioElement};

/// What a channel without `methods` is described with (it takes any).
const ANY: [&str; 5] = ["GET", "POST", "PUT", "DELETE", "PATCH"];

fn schema(el: &SioElement) -> Value {
    match &el.kind {
        Some(t) => json!({"type": t}),
        None => json!({}),
    }
}

/// An object schema of SimpleIO elements, leaving out `skip` (bound elsewhere).
fn object(required: &[SioElement], optional: &[SioElement], skip: &[&str]) -> Option<Value> {
    let wanted = |e: &&SioElement| !skip.contains(&e.name.as_str());
    let mut props = Map::new();
    for e in required.iter().chain(optional).filter(wanted) {
        props.insert(e.name.clone(), schema(e));
    }
    if props.is_empty() {
        return None;
    }
    let names: Vec<&str> = required
        .iter()
        .filter(wanted)
        .map(|e| e.name.as_str())
        .collect();
    let mut o = json!({"type": "object", "properties": props});
    if !names.is_empty() {
        o["required"] = json!(names);
    }
    Some(o)
}

fn media_type(data_format: &str) -> &'static str {
    match data_format {
        "form" => "application/x-www-form-urlencoded",
        "xml" => "application/xml",
        "raw" => "application/octet-stream",
        _ => "application/json",
    }
}

fn security_scheme(def: &SecurityDef) -> Value {
    match def.kind.as_str() {
        "basic" => json!({"type": "http", "scheme": "basic"}),
        "apikey" => json!({
            "type": "apiKey", "in": "header",
            "name": def.header.as_deref().unwrap_or("X-API-Key"),
        }),
        "jwt" => json!({"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}),
        alpharen_store::config::TLS_CLIENT_CERT => json!({
            "type": "mutualTLS",
            "description": "a TLS client certificate signed by this definition's CA, with an allowed subject",
        }),
        _ => json!({
            "type": "apiKey", "in": "header", "name": "Signature",
            "description": "HMAC-SHA256 HTTP message signature (RFC 9421 style) over @method, @path, date and content-digest, with keyid set to this definition's name",
        }),
    }
}

/// One method of a channel. `listed` is the template its path is listed
/// under: the first of its shape in the configuration, whose parameter
/// names the document uses (OpenAPI allows one path per shape) in place of
/// the channel's own.
fn operation(ch: &Channel, method: &str, svc: Option<&ServiceInfo>, listed: &Template) -> Value {
    let template = Template::parse(&ch.url_path).ok();
    let path_params: Vec<&str> = template.iter().flat_map(|t| t.params()).collect();
    let sio = svc.and_then(|s| s.sio.as_ref());
    let empty = Sio::default();
    let io = sio.unwrap_or(&empty);
    let typed = |name: &str| {
        io.input_required
            .iter()
            .chain(&io.input_optional)
            .find(|e| e.name == name)
            .map_or_else(|| json!({"type": "string"}), schema)
    };
    let mut parameters: Vec<Value> = listed
        .params()
        .zip(&path_params)
        .map(|(name, own)| json!({"name": name, "in": "path", "required": true, "schema": typed(own)}))
        .collect();
    let mut op = json!({
        "operationId": if ch.methods.len() == 1 { ch.name.clone() } else { format!("{}.{}", ch.name, method.to_ascii_lowercase()) },
        "summary": format!("channel {}: service {}", ch.name, ch.service),
        "responses": {
            "200": {"description": "The service's answer"},
            "default": {"description": "An error: {\"error\": ..., \"cid\": ...}"},
        },
    });
    if let Some(doc) = svc.map(|s| s.doc.as_str()).filter(|d| !d.is_empty()) {
        op["description"] = json!(doc);
    }
    let body_method = matches!(method, "POST" | "PUT" | "PATCH");
    if body_method {
        let media = media_type(&ch.data_format);
        let body = object(&io.input_required, &io.input_optional, &path_params);
        op["requestBody"] = match body {
            Some(s) if media != "application/octet-stream" && media != "application/xml" => {
                json!({"required": !io.input_required.is_empty(), "content": {media: {"schema": s}}})
            }
            _ => json!({"content": {media: {}}}),
        };
    } else {
        for (els, required) in [(&io.input_required, true), (&io.input_optional, false)] {
            for e in els
                .iter()
                .filter(|e| !path_params.contains(&e.name.as_str()))
            {
                parameters.push(json!({"name": e.name, "in": "query", "required": required, "schema": schema(e)}));
            }
        }
    }
    if !parameters.is_empty() {
        op["parameters"] = json!(parameters);
    }
    if let Some(out) = object(&io.output_required, &io.output_optional, &[]) {
        op["responses"]["200"]["content"] = json!({"application/json": {"schema": out}});
    }
    if let Some(sec) = &ch.security {
        op["security"] = json!([{ sec.clone(): [] }]);
        op["responses"]["401"] = json!({"description": "Missing or invalid credentials"});
    }
    op
}

/// The document for a configuration and the deployed services.
pub fn document(config: &Integrator, services: &HashMap<&str, &ServiceInfo>) -> Value {
    let mut paths = Map::new();
    let mut listed: Vec<(String, Template)> = Vec::new();
    // WebSocket channels are left out: OpenAPI has no way to describe a
    // message exchange after an upgrade.
    let rest = || config.channels.iter().filter(|c| !c.is_websocket());
    for ch in rest() {
        // The config check refused paths that do not parse.
        let Ok(own) = Template::parse(&ch.url_path) else {
            continue;
        };
        let (key, template) = match listed.iter().find(|(_, t)| t.same_shape(&own)) {
            Some(l) => l.clone(),
            None => {
                listed.push((ch.url_path.clone(), own.clone()));
                (ch.url_path.clone(), own)
            }
        };
        let svc = services.get(ch.service.as_str()).copied();
        let methods: Vec<&str> = if ch.methods.is_empty() {
            ANY.to_vec()
        } else {
            ch.methods.iter().map(String::as_str).collect()
        };
        let item = paths.entry(key).or_insert_with(|| json!({}));
        for m in methods {
            item[m.to_ascii_lowercase()] = operation(ch, m, svc, &template);
        }
    }
    let used: Vec<&SecurityDef> = config
        .security
        .iter()
        .filter(|d| rest().any(|c| c.security.as_ref() == Some(&d.name)))
        .collect();
    let schemes: Map<String, Value> = used
        .iter()
        .map(|d| (d.name.clone(), security_scheme(d)))
        .collect();
    let scheme = if config.tls == IntegratorTls::Mode(TlsMode::Off) {
        "http"
    } else {
        "https"
    };
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "ALPHA-REN integrator channels",
            "version": "1",
            "description": "The REST channels of this node's integrator (the load-balancer port).",
        },
        "servers": [{
            "url": format!("{scheme}://{{host}}:{}", config.port),
            "variables": {"host": {"default": "localhost", "description": "the node's address"}},
        }],
        "paths": paths,
    });
    if !schemes.is_empty() {
        doc["components"] = json!({"securitySchemes": schemes});
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;
    use alpharen_store::Config;

    fn el(name: &str, kind: Option<&str>) -> SioElement {
        SioElement {
            name: name.into(),
            kind: kind.map(String::from),
        }
    }

    #[test]
    fn channels_with_templates_sio_and_security() {
        let config = Config::from_toml(
            r#"
[integrator]
tls = "off"
port = 11223
[[integrator.security]]
name = "b"
kind = "basic"
username = "u"
[[integrator.security]]
name = "k"
kind = "apikey"
[[integrator.channels]]
name = "chat"
url_path = "/chat"
transport = "websocket"
service = "user.get"
security = "k"
[[integrator.channels]]
name = "user.get"
url_path = "/user/{user_id}"
methods = ["GET"]
service = "user.get"
security = "b"
[[integrator.channels]]
name = "user.put"
url_path = "/user/{user_id}"
methods = ["PUT"]
service = "user.get"
[[integrator.channels]]
name = "user.del"
url_path = "/user/{uid}"
methods = ["DELETE"]
service = "user.get"
[[integrator.channels]]
name = "any"
url_path = "/any"
service = "missing"
"#,
        )
        .unwrap()
        .integrator;
        let info = ServiceInfo {
            name: "user.get".into(),
            class: "C".into(),
            doc: "Gets a user.".into(),
            sio: Some(Sio {
                input_required: vec![el("user_id", Some("integer")), el("name", None)],
                input_optional: vec![el("verbose", Some("boolean"))],
                output_required: vec![el("user_name", None)],
                output_optional: vec![],
            }),
        };
        let services = HashMap::from([("user.get", &info)]);
        let doc = document(&config, &services);
        assert_eq!(doc["servers"][0]["url"], "http://{host}:11223");
        let get = &doc["paths"]["/user/{user_id}"]["get"];
        assert_eq!(get["operationId"], "user.get");
        assert_eq!(get["description"], "Gets a user.");
        assert_eq!(
            get["parameters"],
            json!([
                {"name": "user_id", "in": "path", "required": true, "schema": {"type": "integer"}},
                {"name": "name", "in": "query", "required": true, "schema": {}},
                {"name": "verbose", "in": "query", "required": false, "schema": {"type": "boolean"}},
            ])
        );
        assert_eq!(get["security"], json!([{"b": []}]));
        assert_eq!(
            get["responses"]["200"]["content"]["application/json"]["schema"]["required"],
            json!(["user_name"])
        );
        let put = &doc["paths"]["/user/{user_id}"]["put"];
        assert_eq!(
            put["requestBody"]["content"]["application/json"]["schema"],
            json!({"type": "object", "required": ["name"],
                   "properties": {"name": {}, "verbose": {"type": "boolean"}}})
        );
        assert!(put.get("security").is_none());
        // Listed under the first path of its shape, typed by its own name.
        assert!(doc["paths"].get("/user/{uid}").is_none());
        assert_eq!(
            doc["paths"]["/user/{user_id}"]["delete"]["parameters"][0],
            json!({"name": "user_id", "in": "path", "required": true, "schema": {"type": "string"}})
        );
        let any = doc["paths"]["/any"].as_object().unwrap();
        assert_eq!(any.len(), ANY.len());
        assert_eq!(any["post"]["operationId"], "any.post");
        assert_eq!(
            doc["components"]["securitySchemes"]["b"],
            json!({"type": "http", "scheme": "basic"})
        );
        // WebSocket channels, and definitions only they use, are left out.
        assert!(doc["paths"].get("/chat").is_none());
        assert!(doc["components"]["securitySchemes"].get("k").is_none());
    }
}
