//! Which channel serves a request: the most specific path template that
//! matches (a literal segment beats a parameter at the first place they
//! differ), then, among channels of that same path shape, the one whose
//! methods allow the request's. Pure, so the rules are unit-tested.

use std::cmp::Ordering;
use std::sync::Arc;
use std::time::Duration;

use alpharen_store::config::{Channel, Template};

use crate::security::Rule;

/// One REST channel ready to serve.
pub struct Route {
    pub channel: Channel,
    /// Its parsed `url_path` (the config check refused unparsable ones).
    pub template: Template,
    pub rule: Option<Rule>,
    pub timeout: Duration,
}

/// Path parameters a template bound: name, decoded value.
pub type Bound = Vec<(String, String)>;

/// The outcome of routing a request.
pub enum Selected {
    /// The channel and the path parameters it binds.
    Route(Arc<Route>, Bound),
    /// The path matches but no channel of it takes this method.
    MethodNotAllowed(Vec<String>),
    NotFound,
}

pub fn select(routes: &[Arc<Route>], path: &str, method: &str) -> Selected {
    let mut best: Vec<(&Arc<Route>, Bound)> = Vec::new();
    for r in routes {
        let Some(bound) = r.template.matches(path) else {
            continue;
        };
        match best
            .first()
            .map(|(b, _)| r.template.specificity(&b.template))
        {
            Some(Ordering::Greater) => {}
            Some(Ordering::Less) => best = vec![(r, bound)],
            Some(Ordering::Equal) | None => best.push((r, bound)),
        }
    }
    if best.is_empty() {
        return Selected::NotFound;
    }
    if let Some(i) = best.iter().position(|(r, _)| r.channel.takes(method)) {
        let (r, bound) = best.swap_remove(i);
        return Selected::Route(r.clone(), bound);
    }
    let mut allowed: Vec<String> = best
        .iter()
        .flat_map(|(r, _)| r.channel.method_list())
        .collect();
    allowed.sort();
    allowed.dedup();
    Selected::MethodNotAllowed(allowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(name: &str, path: &str, methods: &[&str]) -> Arc<Route> {
        Arc::new(Route {
            channel: Channel {
                name: name.into(),
                url_path: path.into(),
                methods: methods.iter().map(|m| m.to_string()).collect(),
                data_format: "json".into(),
                service: "s".into(),
                security: None,
                timeout: None,
                transport: if name.starts_with("ws") {
                    "websocket".into()
                } else {
                    "rest".into()
                },
                max_message_size: None,
                ping_interval: None,
                idle_timeout: None,
            },
            template: Template::parse(path).unwrap(),
            rule: None,
            timeout: Duration::from_secs(1),
        })
    }

    fn name(s: Selected) -> String {
        match s {
            Selected::Route(r, bound) => {
                let b: Vec<String> = bound.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("{} {}", r.channel.name, b.join(","))
            }
            Selected::MethodNotAllowed(m) => format!("405 {}", m.join(",")),
            Selected::NotFound => "404".into(),
        }
    }

    #[test]
    fn most_specific_wins_whatever_the_order() {
        let mut routes = vec![
            route("by-id", "/user/{id}", &[]),
            route("me", "/user/me", &[]),
            route("orders", "/user/{id}/orders", &[]),
            route("a-x", "/a/{x}", &[]),
            route("y-b", "/{y}/b", &[]),
        ];
        for _ in 0..2 {
            assert_eq!(name(select(&routes, "/user/me", "GET")), "me ");
            assert_eq!(name(select(&routes, "/user/42", "GET")), "by-id id=42");
            assert_eq!(
                name(select(&routes, "/user/42/orders", "GET")),
                "orders id=42"
            );
            assert_eq!(name(select(&routes, "/a/b", "GET")), "a-x x=b");
            assert_eq!(name(select(&routes, "/c/b", "GET")), "y-b y=c");
            assert_eq!(name(select(&routes, "/user", "GET")), "404");
            assert_eq!(name(select(&routes, "/user/42/", "GET")), "404");
            routes.reverse();
        }
    }

    #[test]
    fn same_shape_is_split_by_method_and_405_lists_them() {
        let routes = vec![
            route("get", "/user/{id}", &["GET"]),
            route("del", "/user/{uid}", &["DELETE"]),
            route("me", "/user/me", &["POST"]),
        ];
        assert_eq!(name(select(&routes, "/user/7", "GET")), "get id=7");
        assert_eq!(name(select(&routes, "/user/7", "DELETE")), "del uid=7");
        assert_eq!(name(select(&routes, "/user/7", "PUT")), "405 DELETE,GET");
        // The more specific path decides before the method does.
        assert_eq!(name(select(&routes, "/user/me", "GET")), "405 POST");
    }

    #[test]
    fn a_websocket_channel_takes_get_beside_a_post_channel() {
        let routes = vec![route("post", "/chat", &["POST"]), route("ws", "/chat", &[])];
        assert_eq!(name(select(&routes, "/chat", "GET")), "ws ");
        assert_eq!(name(select(&routes, "/chat", "POST")), "post ");
        assert_eq!(name(select(&routes, "/chat", "PUT")), "405 GET,POST");
    }
}
