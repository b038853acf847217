//! PID 1. It mounts the kernel filesystems, brings up `lo`, starts the
//! supervisor, reaps every orphan, feeds the watchdog, and turns signals into
//! reboot, poweroff or halt. Nothing else: everything that can fail in
//! interesting ways runs in the supervisor, so a bug there is a restart,
//! never a kernel panic. No async runtime here; one `poll` loop.

use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::reboot::{RebootMode, reboot, set_cad_enabled};
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::SupervisorError;

/// The argument of the next reboot (`reboot(2)`'s RESTART2), left by the
/// supervisor: `0 tryboot` on a Raspberry Pi with a slot armed for its
/// trial (`crate::boot::prepare_reboot`).
pub const REBOOT_ARG: &str = "/run/reboot-arg";

/// Shipped in the root filesystem by the image.
const SEED_CONFIG: &str = "/etc/alpharen/seed.toml";

#[derive(Debug, Clone)]
pub struct InitOptions {
    pub state_dir: PathBuf,
    pub dev: bool,
    /// Running inside a container or PID namespace (tests): skip mounts,
    /// hostname, watchdog and `reboot(2)`; exit instead.
    pub container: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shutdown {
    Reboot,
    Poweroff,
    Halt,
}

/// The busybox convention: SIGTERM reboots, SIGUSR2 powers off, SIGUSR1
/// halts; SIGINT is ctrl-alt-del once the kernel hands it to us.
fn shutdown_for(sig: Signal) -> Option<Shutdown> {
    match sig {
        Signal::SIGTERM | Signal::SIGINT => Some(Shutdown::Reboot),
        Signal::SIGUSR2 => Some(Shutdown::Poweroff),
        Signal::SIGUSR1 => Some(Shutdown::Halt),
        _ => None,
    }
}

fn say(msg: &str) {
    eprintln!("init: {msg}");
}

fn mount_if_missing(source: &str, target: &str, fstype: &str, flags: MsFlags, data: Option<&str>) {
    let _ = std::fs::create_dir_all(target);
    match mount(Some(source), target, Some(fstype), flags, data) {
        Ok(()) | Err(Errno::EBUSY) => {}
        Err(e) => say(&format!("cannot mount {fstype} on {target}: {e}")),
    }
}

fn is_mounted(target: &str) -> bool {
    std::fs::read_to_string("/proc/self/mounts")
        .map(|m| {
            m.lines()
                .any(|l| l.split_whitespace().nth(1) == Some(target))
        })
        .unwrap_or(false)
}

fn mount_kernel_filesystems() {
    let nosuid = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let table: [(&str, &str, &str, MsFlags, Option<&str>); 6] = [
        ("proc", "/proc", "proc", nosuid, None),
        ("sysfs", "/sys", "sysfs", nosuid, None),
        (
            "devtmpfs",
            "/dev",
            "devtmpfs",
            MsFlags::MS_NOSUID,
            Some("mode=0755"),
        ),
        (
            "devpts",
            "/dev/pts",
            "devpts",
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            Some("gid=5,mode=620,ptmxmode=666"),
        ),
        (
            "tmpfs",
            "/run",
            "tmpfs",
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some("mode=0755"),
        ),
        (
            "tmpfs",
            "/tmp",
            "tmpfs",
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some("mode=1777"),
        ),
    ];
    for (source, target, fstype, flags, data) in table {
        if !is_mounted(target) {
            mount_if_missing(source, target, fstype, flags, data);
        }
    }
}

/// Brings the loopback interface up with the classic ioctl; netlink would
/// pull in a runtime for one flag.
fn loopback_up() -> Result<(), Errno> {
    // SAFETY: socket() has no memory preconditions; the fd is closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: fd is a valid socket and req a valid ifreq for these requests.
    let result = unsafe {
        if libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) < 0 {
            Err(Errno::last())
        } else {
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            if libc::ioctl(fd, libc::SIOCSIFFLAGS, &req) < 0 {
                Err(Errno::last())
            } else {
                Ok(())
            }
        }
    };
    // SAFETY: fd came from socket() above and is not used afterwards.
    unsafe { libc::close(fd) };
    result
}

/// Mounts the data partition (GPT name `data`) on the state directory,
/// formatting or repairing it first (see `datafs`). Without one the node
/// still boots, on a tmpfs, and says so: a broken data disk must not make
/// the node unreachable.
fn mount_data(state_dir: &Path) {
    let _ = std::fs::create_dir_all(state_dir);
    if is_mounted(&state_dir.display().to_string()) {
        return;
    }
    let result = match crate::partition::named("data") {
        Some(dev) => crate::datafs::prepare(&dev, state_dir, say),
        None => Err("no partition named \"data\"".to_string()),
    };
    if let Err(e) = result {
        say(&format!(
            "cannot mount the data partition ({e}); running on a temporary {} whose changes are lost at reboot",
            state_dir.display()
        ));
        mount_if_missing(
            "tmpfs",
            &state_dir.display().to_string(),
            "tmpfs",
            MsFlags::MS_NOSUID,
            Some("mode=0755"),
        );
    }
}

struct Watchdog(Option<std::fs::File>);

impl Watchdog {
    fn open(enabled: bool) -> Watchdog {
        let file = enabled
            .then(|| {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open("/dev/watchdog")
                    .ok()
            })
            .flatten();
        if file.is_some() {
            say("feeding /dev/watchdog");
        }
        Watchdog(file)
    }

    /// Fed from the main loop itself, so a wedged loop lets it fire.
    fn feed(&mut self) {
        if let Some(f) = &mut self.0 {
            use std::io::Write;
            let _ = f.write_all(b"\0");
        }
    }
}

fn start_supervisor(opts: &InitOptions) -> std::io::Result<Child> {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe"));
    let mut cmd = Command::new(exe);
    cmd.arg("supervise")
        .arg("--state-dir")
        .arg(&opts.state_dir)
        .arg("--under-init");
    if opts.dev {
        cmd.arg("--dev");
    }
    // The supervisor opens the store anyway (after keeping a copy for a
    // migration, `premigration`); reading it here too cost a third of a
    // second of every boot under QEMU.
    if !opts.container {
        cmd.arg("--set-hostname");
    }
    // The image's defaults seed an empty data partition (DHCP on eth0).
    if Path::new(SEED_CONFIG).exists() {
        cmd.arg("--config").arg(SEED_CONFIG);
    }
    // SAFETY: sigprocmask is async-signal-safe; it only changes the child's
    // mask. Our blocked signals belong to our signalfd and must not stay
    // blocked in the supervisor (it handles SIGTERM itself).
    unsafe {
        cmd.pre_exec(|| {
            let empty = SigSet::empty();
            nix::sys::signal::sigprocmask(
                nix::sys::signal::SigmaskHow::SIG_SETMASK,
                Some(&empty),
                None,
            )
            .map_err(std::io::Error::from)
        });
    }
    cmd.spawn()
}

/// Runs PID 1. Returns only in container mode; on a machine it ends in
/// `reboot(2)`.
pub fn run(opts: InitOptions) -> Result<(), SupervisorError> {
    let err = |what: &str, e: Errno| SupervisorError::Init(format!("{what}: {e}"));
    if !opts.container {
        mount_kernel_filesystems();
        mount_data(&opts.state_dir);
        // ctrl-alt-del becomes SIGINT to us instead of an instant reboot.
        let _ = set_cad_enabled(false);
    }
    if let Err(e) = loopback_up() {
        say(&format!("cannot bring lo up: {e}"));
    }
    let mut mask = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGHUP,
    ] {
        mask.add(s);
    }
    mask.thread_block()
        .map_err(|e| err("cannot block signals", e))?;
    let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| err("cannot create signalfd", e))?;
    let mut watchdog = Watchdog::open(!opts.container);
    let mut state = Pid1 {
        opts,
        supervisor: None,
        restart_at: Some(Instant::now()),
        backoff: Duration::from_secs(1),
        shutdown: None,
    };
    loop {
        watchdog.feed();
        // A panic here must not end PID 1: log it and go round again.
        let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| state.step(&sfd)));
        match step {
            Ok(Some(how)) => break state.finish(how),
            Ok(None) => {}
            Err(_) => say("recovered from a panic in the main loop"),
        }
    }
}

struct Pid1 {
    opts: InitOptions,
    supervisor: Option<(Child, Instant)>,
    restart_at: Option<Instant>,
    backoff: Duration,
    shutdown: Option<Shutdown>,
}

impl Pid1 {
    /// One round: start the supervisor if due, wait for a signal (1 s at
    /// most, for the watchdog), handle it. `Some` once it is time to stop.
    fn step(&mut self, sfd: &SignalFd) -> Option<Shutdown> {
        if let Some(at) = self.restart_at
            && Instant::now() >= at
        {
            self.restart_at = None;
            match start_supervisor(&self.opts) {
                Ok(child) => self.supervisor = Some((child, Instant::now())),
                Err(e) => {
                    say(&format!("cannot start the supervisor: {e}"));
                    self.schedule_restart();
                }
            }
        }
        let mut fds = [PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        let _ = poll(&mut fds, PollTimeout::from(1000u16));
        while let Ok(Some(info)) = sfd.read_signal() {
            let Ok(sig) = Signal::try_from(info.ssi_signo as i32) else {
                continue;
            };
            if let Some(how) = shutdown_for(sig) {
                say(&format!("{sig} received: {how:?}"));
                return Some(how);
            }
        }
        self.reap();
        None
    }

    /// Collects every dead child; notices when it was the supervisor.
    fn reap(&mut self) {
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(status) => {
                    let pid = status.pid();
                    let was_supervisor = self
                        .supervisor
                        .as_ref()
                        .is_some_and(|(c, _)| Some(c.id() as i32) == pid.map(Pid::as_raw));
                    if was_supervisor && self.shutdown.is_none() {
                        let ran = self
                            .supervisor
                            .take()
                            .map(|(_, t)| t.elapsed())
                            .unwrap_or_default();
                        say(&format!("supervisor ended ({status:?}); restarting"));
                        if ran > Duration::from_secs(60) {
                            self.backoff = Duration::from_secs(1);
                        }
                        self.schedule_restart();
                    }
                }
            }
        }
    }

    fn schedule_restart(&mut self) {
        self.restart_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(Duration::from_secs(30));
    }

    /// Stops the supervisor (it stops services in reverse order), then
    /// every leftover process, syncs, unmounts and reboots.
    fn finish(&mut self, how: Shutdown) -> Result<(), SupervisorError> {
        self.shutdown = Some(how);
        if let Some((child, _)) = &self.supervisor {
            let pid = Pid::from_raw(child.id() as i32);
            let _ = kill(pid, Signal::SIGTERM);
            // Each service gets 10 s; bound the whole stop.
            let deadline = Instant::now() + Duration::from_secs(90);
            while Instant::now() < deadline {
                match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::StillAlive) => std::thread::sleep(Duration::from_millis(50)),
                    _ => break,
                }
            }
        }
        let _ = kill(Pid::from_raw(-1), Signal::SIGTERM);
        self.drain(Duration::from_secs(2));
        let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
        self.drain(Duration::from_millis(500));
        nix::unistd::sync();
        if self.opts.container {
            say("stopped");
            return Ok(());
        }
        let arg = match how {
            Shutdown::Reboot => std::fs::read_to_string(REBOOT_ARG)
                .ok()
                .map(|a| a.trim().to_string())
                .filter(|a| !a.is_empty()),
            _ => None,
        };
        for target in ["/data", "/tmp", "/run"] {
            let _ = umount2(target, MntFlags::MNT_DETACH);
        }
        nix::unistd::sync();
        let mode = match how {
            Shutdown::Reboot => RebootMode::RB_AUTOBOOT,
            Shutdown::Poweroff => RebootMode::RB_POWER_OFF,
            Shutdown::Halt => RebootMode::RB_HALT_SYSTEM,
        };
        if let Some(arg) = arg {
            say(&format!("rebooting with \"{arg}\""));
            let e = reboot_with(&arg);
            say(&format!(
                "reboot with \"{arg}\" failed ({e}); rebooting without it"
            ));
        }
        let e = reboot(mode).err().unwrap_or(Errno::UnknownErrno);
        Err(SupervisorError::Init(format!("reboot failed: {e}")))
    }

    /// Reaps until no children remain or the time is up.
    fn drain(&self, limit: Duration) {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Err(Errno::ECHILD) => return,
                Ok(WaitStatus::StillAlive) => std::thread::sleep(Duration::from_millis(20)),
                _ => {}
            }
        }
    }
}

/// `reboot(2)` with `LINUX_REBOOT_CMD_RESTART2` and `arg` (which nix does
/// not offer); returns only if it failed.
fn reboot_with(arg: &str) -> Errno {
    let Ok(arg) = std::ffi::CString::new(arg) else {
        return Errno::EINVAL;
    };
    // SAFETY: the reboot system call with its magic numbers and a
    // NUL-terminated string that outlives the call.
    unsafe {
        libc::syscall(
            libc::SYS_reboot,
            libc::LINUX_REBOOT_MAGIC1,
            libc::LINUX_REBOOT_MAGIC2,
            libc::LINUX_REBOOT_CMD_RESTART2,
            arg.as_ptr(),
        );
    }
    Errno::last()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_map_like_busybox() {
        assert_eq!(shutdown_for(Signal::SIGTERM), Some(Shutdown::Reboot));
        assert_eq!(shutdown_for(Signal::SIGINT), Some(Shutdown::Reboot));
        assert_eq!(shutdown_for(Signal::SIGUSR2), Some(Shutdown::Poweroff));
        assert_eq!(shutdown_for(Signal::SIGUSR1), Some(Shutdown::Halt));
        assert_eq!(shutdown_for(Signal::SIGHUP), None);
    }
}
