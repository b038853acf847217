//! The prompt's line editing and command splitting: plain functions over
//! bytes, so they are tested without a connection.

pub const PROMPT: &str = "alpharen> ";

/// What the session should do after some typed bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Bytes to send back to the terminal.
    Echo(Vec<u8>),
    /// A finished line to run.
    Run(String),
    /// Ctrl-D on an empty line.
    Exit,
}

/// Basic line editing: printable characters, backspace, Ctrl-U (kill
/// line), Ctrl-C (drop line), Enter; escape sequences (arrows) are ignored.
#[derive(Debug, Default)]
pub struct LineEditor {
    line: String,
    escape: u8,
}

const MAX_LINE: usize = 4096;

impl LineEditor {
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Action> {
        let mut out = Vec::new();
        let mut echo = Vec::new();
        let text = String::from_utf8_lossy(bytes);
        for c in text.chars() {
            if self.escape > 0 {
                // ESC [ X: skip the two bytes after ESC (arrows, etc.).
                self.escape -= 1;
                if self.escape == 1 && c != '[' && c != 'O' {
                    self.escape = 0;
                }
                continue;
            }
            match c {
                '\r' | '\n' => {
                    echo.extend_from_slice(b"\r\n");
                    out.push(Action::Echo(std::mem::take(&mut echo)));
                    out.push(Action::Run(std::mem::take(&mut self.line)));
                }
                '\u{7f}' | '\u{8}' if self.line.pop().is_some() => {
                    echo.extend_from_slice(b"\x08 \x08");
                }
                '\u{15}' => {
                    for _ in 0..self.line.chars().count() {
                        echo.extend_from_slice(b"\x08 \x08");
                    }
                    self.line.clear();
                }
                '\u{3}' => {
                    self.line.clear();
                    echo.extend_from_slice(b"^C\r\n");
                    echo.extend_from_slice(PROMPT.as_bytes());
                }
                '\u{4}' if self.line.is_empty() => {
                    if !echo.is_empty() {
                        out.push(Action::Echo(std::mem::take(&mut echo)));
                    }
                    out.push(Action::Exit);
                    return out;
                }
                '\u{1b}' => self.escape = 2,
                '\t' => {
                    self.line.push(' ');
                    echo.push(b' ');
                }
                c if !c.is_control() && self.line.len() < MAX_LINE => {
                    self.line.push(c);
                    let mut b = [0u8; 4];
                    echo.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
                }
                _ => {}
            }
        }
        if !echo.is_empty() {
            out.push(Action::Echo(echo));
        }
        out
    }
}

/// Splits a command line into words: whitespace separates, single and
/// double quotes group, backslash escapes the next character.
pub fn split_command(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') | (None, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                    in_word = true;
                }
            }
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err("unterminated quote".into());
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_a_shell() {
        assert_eq!(split_command("status").unwrap(), ["status"]);
        assert_eq!(
            split_command(" config set node.timezone 'Europe/Berlin' ").unwrap(),
            ["config", "set", "node.timezone", "Europe/Berlin"]
        );
        assert_eq!(
            split_command(r#"a "b c" d\ e ''"#).unwrap(),
            ["a", "b c", "d e", ""]
        );
        assert!(split_command("a 'b").is_err());
        assert!(split_command("   ").unwrap().is_empty());
    }

    #[test]
    fn edits_lines() {
        let mut e = LineEditor::default();
        let a = e.feed(b"stx\x7fatus\r");
        assert_eq!(a.last(), Some(&Action::Run("status".into())));
        let a = e.feed(b"abc\x15help\r");
        assert_eq!(a.last(), Some(&Action::Run("help".into())));
        let a = e.feed(b"x\x03");
        assert!(matches!(a.last(), Some(Action::Echo(_))));
        assert_eq!(
            e.feed(b"\x1b[Aok\r").last(),
            Some(&Action::Run("ok".into()))
        );
        assert_eq!(e.feed(b"\x04"), vec![Action::Exit]);
    }
}
