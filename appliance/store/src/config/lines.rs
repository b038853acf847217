//! Which line of a TOML document a problem's key path points at, so a
//! user who applies a file reads "line 12" beside `reaction.flows[0].tasks[1]`.

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::Problem;

/// Adds the line of each problem's path (the deepest part of it the text
/// has) to the problems that have none. Text that is not TOML adds nothing.
pub fn add_lines(text: &str, mut problems: Vec<Problem>) -> Vec<Problem> {
    let Ok(doc) = DeTable::parse(text) else {
        return problems;
    };
    for p in problems.iter_mut().filter(|p| p.line.is_none()) {
        p.line = span_of(doc.get_ref(), &p.path).map(|start| line_of(text, start));
    }
    problems
}

/// One step of a key path: `a.b[2]` is `a`, `b`, `[2]`.
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

fn steps(path: &str) -> Option<Vec<Step<'_>>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, mut rest) = part.split_once('[').map_or((part, ""), |(k, r)| (k, r));
        if !key.is_empty() {
            out.push(Step::Key(key));
        }
        while !rest.is_empty() {
            let (n, after) = rest.split_once(']')?;
            out.push(Step::Index(n.parse().ok()?));
            rest = after.strip_prefix('[').unwrap_or(after);
        }
    }
    Some(out)
}

/// The byte offset where the deepest part of `path` found in `table` starts.
fn span_of(table: &DeTable<'_>, path: &str) -> Option<usize> {
    let steps = steps(path)?;
    let mut found = None;
    let mut here: Option<&Spanned<DeValue<'_>>> = None;
    for step in steps {
        let next = match (step, here.map(|v| v.get_ref())) {
            (Step::Key(k), None) => table
                .iter()
                .find(|(key, _)| key.get_ref() == k)
                .map(|(key, v)| (key.span().start, v)),
            (Step::Key(k), Some(DeValue::Table(t))) => t
                .iter()
                .find(|(key, _)| key.get_ref() == k)
                .map(|(key, v)| (key.span().start, v)),
            (Step::Index(i), Some(DeValue::Array(a))) => a.get(i).map(|v| (v.span().start, v)),
            _ => None,
        };
        let Some((start, value)) = next else { break };
        found = Some(start);
        here = Some(value);
    }
    found
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "[node]\nhostname = \"n1\"\n\n[[reaction.flows]]\nname = \"a\"\n\n[[reaction.flows]]\nname = \"b\"\ntasks = [\n  { kind = \"x\" },\n  { kind = \"mail\" },\n]\n";

    fn line(path: &str) -> Option<usize> {
        let p = vec![Problem {
            path: path.into(),
            message: String::new(),
            line: None,
        }];
        add_lines(DOC, p)[0].line
    }

    #[test]
    fn a_path_finds_its_line_or_its_deepest_known_part() {
        assert_eq!(line("node.hostname"), Some(2));
        assert_eq!(line("reaction.flows[1].name"), Some(8));
        assert_eq!(line("reaction.flows[1].tasks[1].kind"), Some(11));
        // A key the text lacks (a default) points at its table.
        assert_eq!(line("reaction.flows[0].tasks"), Some(4));
        assert_eq!(line("vpn.peers[0]"), None);
        assert_eq!(line(""), None);
    }

    #[test]
    fn text_that_is_not_toml_adds_nothing() {
        let p = vec![Problem {
            path: "node".into(),
            message: String::new(),
            line: None,
        }];
        assert_eq!(add_lines("{\"node\": {}}", p)[0].line, None);
    }
}
