//! Drives the real `alpharen` binary: a node in a temporary state dir, its
//! control socket, and `alpharen ctl`. Every wait is bounded.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use alpharen_rpc::{Client, ClientError};
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_alpharen");

pub struct TestNode {
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
}

impl TestNode {
    pub fn start(config: Option<&str>) -> TestNode {
        Self::start_from(Path::new(BIN), config)
    }

    /// A node run from `program`, a copy of the binary a test may replace.
    pub fn start_from(program: &Path, config: Option<&str>) -> TestNode {
        let dir = tempfile::tempdir().unwrap();
        let mut node = TestNode { dir, child: None };
        if let Some(text) = config {
            std::fs::write(node.dir.path().join("seed.toml"), text).unwrap();
        }
        node.spawn_from(program, config.is_some());
        node
    }

    pub fn spawn(&mut self, seed: bool) {
        self.spawn_from(Path::new(BIN), seed);
    }

    fn spawn_from(&mut self, program: &Path, seed: bool) {
        let mut cmd = Command::new(program);
        cmd.args(["run", "--dev", "--state-dir"])
            .arg(self.dir.path());
        if seed {
            cmd.arg("--config").arg(self.dir.path().join("seed.toml"));
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("console.log"))
            .unwrap();
        cmd.stdout(Stdio::null()).stderr(log);
        self.child = Some(cmd.spawn().unwrap());
        wait_until(Duration::from_secs(20), || self.client().ok().map(drop))
            .unwrap_or_else(|| panic!("node did not start: {}", self.console()));
    }

    pub fn state(&self) -> &Path {
        self.dir.path()
    }

    pub fn socket(&self) -> PathBuf {
        self.state().join("run/control.sock")
    }

    pub fn console(&self) -> String {
        std::fs::read_to_string(self.state().join("console.log")).unwrap_or_default()
    }

    pub fn client(&self) -> Result<Client, ClientError> {
        let mut c = Client::connect(&self.socket())?;
        c.call("status", serde_json::json!({}))?;
        Ok(c)
    }

    pub fn call(&self, method: &str, params: Value) -> Result<Value, ClientError> {
        self.client()?.call(method, params)
    }

    pub fn ctl(&self, args: &[&str]) -> Output {
        self.ctl_stdin(args, "")
    }

    pub fn ctl_stdin(&self, args: &[&str], stdin: &str) -> Output {
        use std::io::Write;
        let mut child = Command::new(BIN)
            .arg("ctl")
            .arg("--state-dir")
            .arg(self.state())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// The service's entry in `services.list`.
    pub fn service(&self, name: &str) -> Option<Value> {
        let list = self.call("services.list", serde_json::json!({})).ok()?;
        list.as_array()?.iter().find(|s| s["name"] == name).cloned()
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(c.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        wait_until(Duration::from_secs(30), || c.try_wait().ok().flatten())
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Polls `f` every 50 ms until it yields `Some`, for at most `limit`.
pub fn wait_until<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}
