//! user add|passwd|list|del.

use std::io::{BufRead, IsTerminal, Write};

use crate::client::NodeClient;
use alpharen_rpc::users::{self as m, Add, Del, Passwd};
use clap::Subcommand;
use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
use serde_json::json;

use crate::CtlError;
use crate::output::{Output, table, text, time};

#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Add a user; the password is asked for (or read from stdin).
    Add {
        name: String,
        #[arg(long, default_value = m::DEFAULT_ROLE, value_parser = ["admin", "operator", "viewer"])]
        role: String,
    },
    /// Change a user's password.
    Passwd { name: String },
    /// List users.
    List,
    /// Delete a user (never the last admin).
    Del { name: String },
}

/// Reads a password without echo on a terminal, or one line from a pipe.
fn read_password(prompt: &str) -> Result<String, CtlError> {
    let stdin = std::io::stdin();
    let io = |e: std::io::Error| CtlError::Io(format!("cannot read the password: {e}"));
    let mut line = String::new();
    if stdin.is_terminal() {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
        let saved = tcgetattr(&stdin).map_err(|e| CtlError::Io(e.to_string()))?;
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &quiet);
        let read = stdin.lock().read_line(&mut line);
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &saved);
        eprintln!();
        read.map_err(io)?;
    } else {
        stdin.lock().read_line(&mut line).map_err(io)?;
    }
    let pw = line.trim_end_matches(['\r', '\n']).to_string();
    if pw.is_empty() {
        return Err(CtlError::Usage("no password given".into()));
    }
    Ok(pw)
}

impl UserCmd {
    pub fn run(self, client: &mut NodeClient, out: &Output) -> Result<(), CtlError> {
        match self {
            UserCmd::Add { name, role } => {
                let password = read_password(&format!("password for {name}: "))?;
                let v = client.call(
                    m::ADD,
                    Add {
                        name,
                        password,
                        role,
                        author: None,
                    },
                )?;
                out.show(&v, |v| {
                    println!("user {} added ({})", text(&v["name"]), text(&v["role"]))
                });
            }
            UserCmd::Passwd { name } => {
                let password = read_password(&format!("new password for {name}: "))?;
                let v = client.call(
                    m::PASSWD,
                    Passwd {
                        name: name.clone(),
                        password,
                        author: None,
                    },
                )?;
                out.show(&v, |_| println!("password of {name} changed"));
            }
            UserCmd::List => {
                let v = client.call(m::LIST, json!({}))?;
                out.show(&v, |v| {
                    let rows = v
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|u| vec![text(&u["name"]), text(&u["role"]), time(&u["created_at"])])
                        .collect();
                    table(&["user", "role", "created"], rows);
                });
            }
            UserCmd::Del { name } => {
                let v = client.call(
                    m::DEL,
                    Del {
                        name: name.clone(),
                        author: None,
                    },
                )?;
                out.show(&v, |_| println!("user {name} deleted"));
            }
        }
        Ok(())
    }
}
