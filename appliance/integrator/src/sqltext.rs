//! The SQL text of a service's statement → PostgreSQL's `$n` parameters.
//! Services write SQLAlchemy's `:name`, psycopg's `%(name)s` or `%s`, or
//! PostgreSQL's own `$1`; the values always travel as bind parameters,
//! never inside the text. Quoted strings, quoted identifiers,
//! dollar-quoted bodies, comments and `::` casts are left alone. Pure.

/// Where the `$n` parameters of the rewritten text take their values from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binds {
    /// No placeholders.
    None,
    /// `$n` is the value of the n-th name (`:name`, `%(name)s`).
    Named(Vec<String>),
    /// `$n` is the n-th value of the list (`%s`, `$n`).
    Positional(usize),
}

/// The text with `$n` placeholders, and where their values come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewritten {
    pub sql: String,
    pub binds: Binds,
}

#[derive(PartialEq, Clone, Copy)]
enum Style {
    Colon,
    Pyformat,
    Dollar,
}

/// Stands for a `%%` until the style is known (PostgreSQL refuses NUL in
/// statement text, so it cannot be part of one).
const ESCAPED_PERCENT: char = '\0';

fn ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Rewrites `sql`; an error names what cannot be taken (mixed styles, an
/// unterminated `%(name`, a lone `%`).
pub fn rewrite(sql: &str) -> Result<Rewritten, String> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = String::with_capacity(sql.len() + 8);
    let mut names: Vec<String> = Vec::new();
    let mut positional = 0usize;
    let mut highest_dollar = 0usize;
    let mut style: Option<Style> = None;
    let mut set_style = |s: Style| -> Result<(), String> {
        match style {
            Some(have) if have != s => Err(
                "the statement mixes placeholder styles; use one of :name, %(name)s / %s, or $1"
                    .into(),
            ),
            _ => {
                style = Some(s);
                Ok(())
            }
        }
    };
    let mut named = |name: String, out: &mut String| {
        let n = match names.iter().position(|x| *x == name) {
            Some(i) => i + 1,
            None => {
                names.push(name);
                names.len()
            }
        };
        out.push_str(&format!("${n}"));
    };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            '\'' | '"' => {
                // E'...' strings take backslash escapes; a doubled quote is one.
                let backslash = c == '\''
                    && i > 0
                    && matches!(chars[i - 1], 'e' | 'E')
                    && (i < 2 || !ident_char(chars[i - 2]));
                let start = i;
                i += 1;
                while i < chars.len() {
                    if backslash && chars[i] == '\\' {
                        i += 2;
                        continue;
                    }
                    if chars[i] == c {
                        if chars.get(i + 1) == Some(&c) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                let end = (i + 1).min(chars.len());
                out.extend(&chars[start..end]);
                i = end;
                continue;
            }
            '-' if next == Some('-') => {
                let start = i;
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                out.extend(&chars[start..i]);
                continue;
            }
            '/' if next == Some('*') => {
                let start = i;
                let mut depth = 0;
                while i < chars.len() {
                    if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                        depth += 1;
                        i += 2;
                    } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                let end = i.min(chars.len());
                out.extend(&chars[start..end]);
                i = end;
                continue;
            }
            '$' if next.is_some_and(|d| d.is_ascii_digit()) => {
                set_style(Style::Dollar)?;
                let start = i + 1;
                i += 1;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
                let n: String = chars[start..i].iter().collect();
                highest_dollar = highest_dollar.max(n.parse().unwrap_or(usize::MAX));
                out.push('$');
                out.push_str(&n);
                continue;
            }
            '$' if i == 0 || !ident_char(chars[i - 1]) => {
                // A dollar-quoted body: $tag$ ... $tag$.
                let mut j = i + 1;
                while j < chars.len() && ident_char(chars[j]) && !chars[j].is_ascii_digit() {
                    j += 1;
                }
                if chars.get(j) == Some(&'$') {
                    let tag: String = chars[i..=j].iter().collect();
                    let body: String = chars[j + 1..].iter().collect();
                    let len = match body.find(&tag) {
                        Some(p) => j + 1 + body[..p].chars().count() + tag.chars().count(),
                        None => chars.len(),
                    };
                    out.extend(&chars[i..len]);
                    i = len;
                    continue;
                }
            }
            ':' if next == Some(':') => {
                out.push_str("::");
                i += 2;
                continue;
            }
            ':' if next.is_some_and(|d| d.is_alphabetic() || d == '_')
                && (i == 0 || !ident_char(chars[i - 1])) =>
            {
                set_style(Style::Colon)?;
                let start = i + 1;
                i += 1;
                while i < chars.len() && ident_char(chars[i]) {
                    i += 1;
                }
                named(chars[start..i].iter().collect(), &mut out);
                continue;
            }
            '%' => {
                match next {
                    Some('%') => {
                        // `%%` is psycopg's escape of `%`, kept as written
                        // unless the statement turns out to use its style.
                        out.push(ESCAPED_PERCENT);
                        i += 2;
                    }
                    Some('s') => {
                        set_style(Style::Pyformat)?;
                        positional += 1;
                        out.push_str(&format!("${positional}"));
                        i += 2;
                    }
                    Some('(') => {
                        set_style(Style::Pyformat)?;
                        let close = chars[i..].iter().position(|&x| x == ')').map(|p| p + i);
                        match close {
                            Some(p) if chars.get(p + 1) == Some(&'s') => {
                                named(chars[i + 2..p].iter().collect(), &mut out);
                                i = p + 2;
                            }
                            _ => return Err("a %( placeholder is not closed by )s".into()),
                        }
                    }
                    // A lone % (modulo, LIKE 'a%' outside quotes is rare)
                    // stays, as psycopg would refuse only with parameters.
                    _ => {
                        out.push('%');
                        i += 1;
                    }
                }
                continue;
            }
            _ => {}
        }
        out.push(c);
        i += 1;
    }
    let out = if style == Some(Style::Pyformat) {
        out.replace(ESCAPED_PERCENT, "%")
    } else {
        out.replace(ESCAPED_PERCENT, "%%")
    };
    if !names.is_empty() && positional > 0 {
        return Err("the statement mixes %(name)s and %s placeholders".into());
    }
    let binds = if !names.is_empty() {
        Binds::Named(names)
    } else if positional > 0 {
        Binds::Positional(positional)
    } else if highest_dollar > 0 {
        Binds::Positional(highest_dollar)
    } else {
        Binds::None
    };
    Ok(Rewritten { sql: out, binds })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(sql: &str) -> (String, Vec<String>) {
        let r = rewrite(sql).unwrap();
        match r.binds {
            Binds::Named(n) => (r.sql, n),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn colon_names_become_numbered_and_repeat() {
        let (sql, names) = named("SELECT * FROM t WHERE a = :a AND b = :b_2 OR a = :a");
        assert_eq!(sql, "SELECT * FROM t WHERE a = $1 AND b = $2 OR a = $1");
        assert_eq!(names, ["a", "b_2"]);
    }

    #[test]
    fn pyformat_and_positional() {
        let (sql, names) = named("INSERT INTO t VALUES (%(x)s, %(y)s) -- 100%% sure");
        assert_eq!(sql, "INSERT INTO t VALUES ($1, $2) -- 100%% sure");
        assert_eq!(names, ["x", "y"]);
        let r = rewrite("SELECT %s, %s, 5 %% 2").unwrap();
        assert_eq!(r.sql, "SELECT $1, $2, 5 % 2");
        assert_eq!(r.binds, Binds::Positional(2));
        let r = rewrite("SELECT $2, $1").unwrap();
        assert_eq!(
            (r.sql.as_str(), r.binds),
            ("SELECT $2, $1", Binds::Positional(2))
        );
    }

    #[test]
    fn quotes_comments_casts_and_dollar_bodies_are_left_alone() {
        let sql = "SELECT ':no', \"a:b\", E'it\\':s', x::text, '%s' /* :c /* :d */ */ FROM t WHERE y = :y -- :z\n";
        let (out, names) = named(sql);
        assert_eq!(out, sql.replace(":y", "$1"));
        assert_eq!(names, ["y"]);
        assert_eq!(named("SELECT 5 %% 2, :a").0, "SELECT 5 %% 2, $1");
        let body = "DO $f$ BEGIN PERFORM :x; END $f$; SELECT :v";
        let (out, names) = named(body);
        assert_eq!(out, "DO $f$ BEGIN PERFORM :x; END $f$; SELECT $1");
        assert_eq!(names, ["v"]);
        assert_eq!(rewrite("SELECT 1").unwrap().binds, Binds::None);
        assert_eq!(
            rewrite("SELECT '{\"a\": 1}'::jsonb ? 'a'").unwrap().binds,
            Binds::None
        );
    }

    #[test]
    fn mixed_or_broken_placeholders_are_refused() {
        assert!(rewrite("SELECT :a, %s").unwrap_err().contains("mixes"));
        assert!(rewrite("SELECT %(a)s, %s").unwrap_err().contains("mixes"));
        assert!(rewrite("SELECT $1, :a").unwrap_err().contains("mixes"));
        assert!(rewrite("SELECT %(a").unwrap_err().contains("not closed"));
    }
}
