//! The shell text of pgha's scripts (fence, promote, rebuild, backups):
//! one quoting rule for every configured value, configured commands split
//! into quoted words, and passwords handed to programs in files only the
//! script's user can read.
//!
//! A script is never a process argument: it is written to the stdin of
//! `sh -c` [`EVAL_STDIN`], which reads it whole and evaluates it. So the
//! passwords in it show in no `ps` listing; inside, they go into a private
//! folder (`mktemp -d`, files made under `umask 077`) that the script
//! removes when it exits, and programs read them from there
//! (`sshpass -f`, libpq's `PGPASSFILE`), never from argv or environment.

/// What `sh -c` runs: the script read whole from stdin, then evaluated.
/// Programs the script starts find stdin at its end, so none of them can
/// swallow the rest of the script.
pub const EVAL_STDIN: &str = r#"eval "$(cat)""#;

/// Ends the here-documents that write secret files.
const END: &str = "ALPHAREN_SECRET_END";

#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    #[error("{what} contains a line break, which no password file can hold")]
    LineBreak { what: String },
}

/// Single-quotes a value for a POSIX shell: one word, whatever `s` holds.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A configured command (`pg_ctl`, `sudo -u postgres pg_ctl`), each
/// whitespace-separated word quoted: the value may add arguments, never
/// shell syntax.
pub fn command(s: &str) -> String {
    s.split_whitespace()
        .map(quote)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The `sh -c` command line that runs a script given on stdin.
pub fn runner() -> String {
    format!("sh -c {}", quote(EVAL_STDIN))
}

/// A script under construction: `set -e`, then its lines in order.
#[derive(Debug, Default)]
pub struct Script {
    private: bool,
    remove_on_exit: Vec<String>,
    lines: Vec<String>,
}

impl Script {
    pub fn new() -> Script {
        Script::default()
    }

    /// Writes `content` (one line) to the file `name` of the script's
    /// private folder, removed when the script exits; returns the shell
    /// word naming that file. `what` names the value in errors.
    pub fn secret(&mut self, name: &str, what: &str, content: &str) -> Result<String, ShellError> {
        self.private = true;
        let file = format!("\"$secrets\"/{}", quote(name));
        self.write_secret(&file, what, content)?;
        Ok(file)
    }

    /// Writes `content` (one line) to `path` with mode 0600, to stay
    /// after the script (a password a server keeps using); returns the
    /// shell word naming it.
    pub fn kept_secret(
        &mut self,
        path: &str,
        what: &str,
        content: &str,
    ) -> Result<String, ShellError> {
        let file = quote(path);
        self.write_secret(&file, what, content)?;
        Ok(file)
    }

    /// A here-document into a file made under `umask 077`: the content
    /// is never a process argument.
    fn write_secret(&mut self, file: &str, what: &str, content: &str) -> Result<(), ShellError> {
        if content.contains(['\n', '\r']) {
            return Err(ShellError::LineBreak { what: what.into() });
        }
        self.lines.push(format!(
            "(umask 077; rm -f {file}; cat >{file}) <<'{END}'\n{content}\n{END}"
        ));
        Ok(())
    }

    /// A path (any text; it is quoted here) removed with `rm -rf` when the
    /// script exits, whatever happened.
    pub fn remove_on_exit(&mut self, path: &str) {
        self.remove_on_exit.push(quote(path));
    }

    pub fn line(&mut self, line: impl Into<String>) {
        self.lines.push(line.into());
    }

    pub fn text(&self) -> String {
        let mut out = vec!["set -e".to_string()];
        let mut removed = self.remove_on_exit.clone();
        if self.private {
            out.push("secrets=$(mktemp -d)".into());
            removed.insert(0, "\"$secrets\"".into());
        }
        if !removed.is_empty() {
            out.push(format!(
                "trap {} EXIT",
                quote(&format!("rm -rf {}", removed.join(" ")))
            ));
        }
        out.extend(self.lines.iter().cloned());
        out.join("\n")
    }
}

/// A `.pgpass` line matching any server for `password` (`:` and `\`
/// escaped as libpq wants).
pub fn pgpass_line(password: &str) -> String {
    format!(
        "*:*:*:*:{}",
        password.replace('\\', r"\\").replace(':', r"\:")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `script` the way pgha does: on stdin of `sh -c EVAL_STDIN`.
    fn run(script: &str) -> (i32, String) {
        use std::io::Write;
        let mut child = std::process::Command::new("sh")
            .args(["-c", EVAL_STDIN])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    #[test]
    fn quote_makes_one_inert_word_of_anything() {
        assert_eq!(quote("a'b c"), r"'a'\''b c'");
        for nasty in [
            "a;b",
            "$(touch /tmp/x)",
            "`id`",
            "a b",
            "it's",
            "\"q\"",
            "x\ny",
        ] {
            let (rc, out) = run(&format!("printf '%s' {}", quote(nasty)));
            assert_eq!((rc, out.as_str()), (0, nasty), "{nasty:?}");
        }
    }

    #[test]
    fn command_keeps_words_but_not_syntax() {
        assert_eq!(
            command("sudo -u postgres  pg_ctl"),
            "'sudo' '-u' 'postgres' 'pg_ctl'"
        );
        assert_eq!(command("pg_ctl;reboot"), "'pg_ctl;reboot'");
    }

    #[test]
    fn secrets_are_private_files_gone_after_the_script() {
        let mut s = Script::new();
        let pw = s.secret("pw", "the password", "it's $secret").unwrap();
        s.line(format!("stat -c %a {pw}"));
        s.line(format!("cat {pw}; echo"));
        s.line("echo \"$secrets\"");
        let (rc, out) = run(&s.text());
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(rc, 0);
        assert_eq!(lines[0], "600");
        assert_eq!(lines[1], "it's $secret");
        assert!(!std::path::Path::new(lines[2]).exists(), "{out}");
    }

    #[test]
    fn kept_secrets_stay_private_after_the_script() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a pgpass");
        let mut s = Script::new();
        let file = s
            .kept_secret(&path.display().to_string(), "pw", "x")
            .unwrap();
        s.line(format!("cat {file}"));
        assert_eq!(run(&s.text()), (0, "x\n".to_string()));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_failing_line_ends_the_script_and_still_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("work dir");
        let mut s = Script::new();
        s.remove_on_exit(&tmp.display().to_string());
        s.line(format!("mkdir {}", quote(&tmp.display().to_string())));
        s.line("false");
        s.line("echo not reached");
        let (rc, out) = run(&s.text());
        assert_eq!((rc, out.as_str()), (1, ""));
        assert!(!tmp.exists());
    }

    #[test]
    fn secrets_with_line_breaks_are_refused() {
        let e = Script::new().secret("pw", "ssh_pwd", "a\nb").unwrap_err();
        assert_eq!(
            e.to_string(),
            "ssh_pwd contains a line break, which no password file can hold"
        );
    }

    #[test]
    fn pgpass_escapes_colons_and_backslashes() {
        assert_eq!(pgpass_line(r"a:b\c"), r"*:*:*:*:a\:b\\c");
    }
}
