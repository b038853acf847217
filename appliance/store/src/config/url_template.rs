//! Channel path templates (`/user/{user_id}`): parsing, matching a request
//! path, which of two templates is more specific, and when two can never
//! be told apart. Shared by the config check (conflicts refused at apply)
//! and the integrator's router, so both follow the same rules.

use std::cmp::Ordering;

use super::{Channel, KeyPath, Problem, check};

/// One `/`-separated part of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Must equal the request's segment byte for byte.
    Literal(String),
    /// `{name}`: any non-empty segment, bound to `name` (percent-decoded).
    Param(String),
}

/// A parsed `url_path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub segments: Vec<Segment>,
}

fn param_name_ok(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Template {
    /// Parses a `url_path`; the error says what is wrong with it.
    pub fn parse(url_path: &str) -> Result<Template, String> {
        let rest = url_path.strip_prefix('/').ok_or("must start with '/'")?;
        if url_path.contains(['?', '#', ' ']) {
            return Err("must hold no '?', '#' or spaces".into());
        }
        let mut segments = Vec::new();
        for part in rest.split('/') {
            let seg = match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                Some(name) if param_name_ok(name) => Segment::Param(name.to_string()),
                Some(name) => {
                    return Err(format!(
                        "{{{name}}} is not a parameter name (letters, digits and '_', not starting with a digit)"
                    ));
                }
                None if part.contains(['{', '}']) => {
                    return Err(format!(
                        "segment {part:?}: a parameter must be a whole segment, as in /user/{{user_id}}"
                    ));
                }
                None => Segment::Literal(part.to_string()),
            };
            if let Segment::Param(name) = &seg
                && segments.contains(&seg)
            {
                return Err(format!("parameter {{{name}}} appears twice"));
            }
            segments.push(seg);
        }
        Ok(Template { segments })
    }

    /// The parameter names, in order.
    pub fn params(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Param(n) => Some(n.as_str()),
            Segment::Literal(_) => None,
        })
    }

    /// The bound parameters when `path` (no query) matches, else `None`.
    /// A parameter takes one whole non-empty segment, so `/user/5/` and
    /// `/user/` do not match `/user/{id}`.
    pub fn matches(&self, path: &str) -> Option<Vec<(String, String)>> {
        let rest = path.strip_prefix('/')?;
        let parts: Vec<&str> = rest.split('/').collect();
        if parts.len() != self.segments.len() {
            return None;
        }
        let mut bound = Vec::new();
        for (seg, part) in self.segments.iter().zip(parts) {
            match seg {
                Segment::Literal(l) if l == part => {}
                Segment::Literal(_) => return None,
                Segment::Param(_) if part.is_empty() => return None,
                Segment::Param(name) => bound.push((name.clone(), percent_decode(part)?)),
            }
        }
        Some(bound)
    }

    /// Which template wins a path both match: at the first segment where
    /// one has a literal and the other a parameter, the literal wins
    /// (`Less` = `self` is more specific). `Equal` means the same shape.
    pub fn specificity(&self, other: &Template) -> Ordering {
        for (a, b) in self.segments.iter().zip(&other.segments) {
            match (a, b) {
                (Segment::Literal(_), Segment::Param(_)) => return Ordering::Less,
                (Segment::Param(_), Segment::Literal(_)) => return Ordering::Greater,
                _ => {}
            }
        }
        Ordering::Equal
    }

    /// True when every path one matches the other matches too and neither
    /// is more specific (they differ at most in parameter names): only the
    /// methods can then tell their channels apart.
    pub fn same_shape(&self, other: &Template) -> bool {
        self.segments.len() == other.segments.len()
            && self
                .segments
                .iter()
                .zip(&other.segments)
                .all(|(a, b)| match (a, b) {
                    (Segment::Literal(x), Segment::Literal(y)) => x == y,
                    (Segment::Param(_), Segment::Param(_)) => true,
                    _ => false,
                })
    }
}

/// `%XX` decoding of one path segment; `None` when the result is not UTF-8
/// or an escape is malformed (such a path matches no template).
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// True when two method lists share a method (empty means any).
pub fn methods_overlap(a: &[String], b: &[String]) -> bool {
    a.is_empty() || b.is_empty() || a.iter().any(|m| b.contains(m))
}

/// Refuses two channels that would take the same requests: paths of the
/// same shape (`/user/{id}` and `/user/{name}`) with a method in common.
/// The problem names both channels.
pub(super) fn channel_conflicts(out: &mut Vec<Problem>, list: &KeyPath, channels: &[Channel]) {
    let parsed: Vec<Option<Template>> = channels
        .iter()
        .map(|c| Template::parse(&c.url_path).ok())
        .collect();
    for (i, (ch, tpl)) in channels.iter().zip(&parsed).enumerate() {
        let Some(tpl) = tpl else { continue };
        let earlier = channels[..i].iter().zip(&parsed[..i]).find(|(o, ot)| {
            ot.as_ref().is_some_and(|ot| ot.same_shape(tpl))
                && methods_overlap(&o.method_list(), &ch.method_list())
        });
        if let Some((other, _)) = earlier {
            let methods = |m: &[String]| {
                if m.is_empty() {
                    "any method".to_string()
                } else {
                    m.join(", ")
                }
            };
            check::push(
                out,
                &list.index(i).key("url_path"),
                format!(
                    "channel {:?} ({} {}) and channel {:?} ({} {}) would take the same requests; \
                     give them different paths or methods",
                    other.name,
                    methods(&other.method_list()),
                    other.url_path,
                    ch.name,
                    methods(&ch.method_list()),
                    ch.url_path
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(p: &str) -> Template {
        Template::parse(p).unwrap()
    }

    #[test]
    fn parses_literals_and_params() {
        assert_eq!(
            t("/user/{user_id}").segments,
            vec![
                Segment::Literal("user".into()),
                Segment::Param("user_id".into())
            ]
        );
        assert_eq!(t("/").segments, vec![Segment::Literal(String::new())]);
        for bad in [
            "user",
            "/u/{}",
            "/u/{1x}",
            "/u/x{id}",
            "/u/{id}/{id}",
            "/u?x",
            "/u/{a-b}",
        ] {
            assert!(Template::parse(bad).is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn matches_binds_and_decodes() {
        let tpl = t("/user/{user_id}/orders/{n}");
        assert_eq!(
            tpl.matches("/user/j%20d/orders/7"),
            Some(vec![
                ("user_id".into(), "j d".into()),
                ("n".into(), "7".into())
            ])
        );
        assert_eq!(tpl.matches("/user/x/orders/"), None);
        assert_eq!(tpl.matches("/user/x/orders/7/"), None);
        assert_eq!(tpl.matches("/user/x/order/7"), None);
        assert_eq!(tpl.matches("/user/%zz/orders/7"), None);
        assert_eq!(t("/a/b").matches("/a/b"), Some(vec![]));
        assert_eq!(t("/a/b").matches("/a/b/"), None);
    }

    #[test]
    fn literal_beats_parameter_leftmost_first() {
        assert_eq!(t("/user/me").specificity(&t("/user/{id}")), Ordering::Less);
        assert_eq!(
            t("/user/{id}").specificity(&t("/user/me")),
            Ordering::Greater
        );
        // The first difference decides: /a/{x} beats /{y}/b for /a/b.
        assert_eq!(t("/a/{x}").specificity(&t("/{y}/b")), Ordering::Less);
        assert_eq!(t("/u/{a}").specificity(&t("/u/{b}")), Ordering::Equal);
    }

    #[test]
    fn same_shape_only_when_indistinguishable() {
        assert!(t("/user/{id}").same_shape(&t("/user/{name}")));
        assert!(t("/x").same_shape(&t("/x")));
        assert!(!t("/user/{id}").same_shape(&t("/user/me")));
        assert!(!t("/user/{id}").same_shape(&t("/user/{id}/x")));
        assert!(!t("/a/{x}").same_shape(&t("/{y}/b")));
    }

    #[test]
    fn methods_overlap_with_empty_as_any() {
        let m = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(methods_overlap(&m(&[]), &m(&["GET"])));
        assert!(methods_overlap(&m(&["GET", "PUT"]), &m(&["PUT"])));
        assert!(!methods_overlap(&m(&["GET"]), &m(&["POST"])));
    }
}
