//! Privilege separation: the system users built-in services run as, the
//! capabilities each keeps, and the drop itself, done in the child between
//! `fork` and `exec`.
//!
//! Everything the child needs is computed before the fork into a plain
//! `Copy` value ([`Drop`]); between fork and exec only raw syscalls run
//! (no allocation, no locks), as async-signal-safety requires. Ids are
//! numeric, so a service can be started even where `/etc/passwd` does not
//! name its user (a development host); the image's passwd and group name
//! them for `ps`.

use std::io;

/// The group every built-in service has as its only supplementary group
/// (defined with the socket access rule in `alpharen_rpc`):
/// it may use the control socket (`<state>/run/control.sock`, 0660) and read
/// and write the state the services share (`<state>/alpharen.db`).
pub use alpharen_rpc::ALPHAREN_GID;

/// A built-in service's system user; its primary group has the same id.
/// Ids are in 901..=949, reserved for the node's services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct User {
    pub name: &'static str,
    pub id: u32,
}

/// The capabilities a service may keep (numbers from linux/capability.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    /// Ports below 1024.
    NetBindService = 10,
    /// Interfaces, addresses, routes, TUN devices, `net.*` sysctls.
    NetAdmin = 12,
    /// Packet sockets (DHCP before an address exists) and SO_BINDTODEVICE.
    NetRaw = 13,
    /// Setting the clock (SNTP).
    SysTime = 25,
}

/// The capability set as the kernel's 64-bit mask (as `/proc/PID/status`
/// prints it in `CapEff:` and the lines beside it).
pub fn cap_mask(caps: &[Cap]) -> u64 {
    caps.iter().fold(0, |m, c| m | 1u64 << (*c as u32))
}

/// Whether this process can separate privileges: only root can change
/// users. A development run as another user keeps today's behaviour.
pub fn available() -> bool {
    nix::unistd::geteuid().is_root()
}

/// What the child does before exec: become `user` with only `caps`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drop {
    uid: u32,
    gid: u32,
    caps: u64,
    /// Keep [`ALPHAREN_GID`] as the one supplementary group (services);
    /// without it the process has none (the user's health check).
    alpharen_group: bool,
}

/// The user a program the node's admin supplies runs as (the update
/// health check): `nobody`, no capabilities, no group of the node's, so
/// it can read neither the store nor the control socket.
pub const NOBODY: User = User {
    name: "nobody",
    id: 65534,
};

/// The highest capability number any kernel may know; the bounding-set
/// loop stops at the first number the running kernel refuses.
const CAP_LIMIT: u32 = 63;
const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

impl Drop {
    pub fn new(user: User, caps: &[Cap]) -> Drop {
        Drop {
            uid: user.id,
            gid: user.id,
            caps: cap_mask(caps),
            alpharen_group: true,
        }
    }

    /// `user` with no capabilities and no supplementary group.
    pub fn bare(user: User) -> Drop {
        Drop {
            alpharen_group: false,
            ..Drop::new(user, &[])
        }
    }

    /// Runs in the forked child, before exec: bounding set cut to `caps`
    /// (needs root, so first), groups, gid and uid changed with the
    /// permitted set kept, `caps` made permitted, effective, inheritable
    /// and ambient (so they survive exec of a file without capabilities),
    /// and no new privileges through exec ever after.
    ///
    /// # Safety
    /// Only for a `pre_exec` closure: it changes the calling process's
    /// credentials. It calls only async-signal-safe syscalls and does not
    /// allocate.
    pub unsafe fn apply(&self) -> io::Result<()> {
        // SAFETY (whole body): prctl, setgroups, setresgid, setresuid and
        // capset act on this process only; every pointer passed points to
        // a live local value of the layout the kernel expects.
        unsafe {
            for cap in 0..=CAP_LIMIT {
                if self.caps & (1u64 << cap) != 0 {
                    continue;
                }
                if libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) == -1 {
                    let e = io::Error::last_os_error();
                    if e.raw_os_error() == Some(libc::EINVAL) {
                        break; // beyond the kernel's last capability
                    }
                    return Err(e);
                }
            }
            check(libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0))?;
            let groups = [ALPHAREN_GID as libc::gid_t];
            let count = if self.alpharen_group { groups.len() } else { 0 };
            check(libc::setgroups(count, groups.as_ptr()))?;
            check(libc::setresgid(self.gid, self.gid, self.gid))?;
            check(libc::setresuid(self.uid, self.uid, self.uid))?;
            let mut header = CapHeader {
                version: LINUX_CAPABILITY_VERSION_3,
                pid: 0,
            };
            let (lo, hi) = (self.caps as u32, (self.caps >> 32) as u32);
            let data = [
                CapData {
                    effective: lo,
                    permitted: lo,
                    inheritable: lo,
                },
                CapData {
                    effective: hi,
                    permitted: hi,
                    inheritable: hi,
                },
            ];
            check(libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) as libc::c_int)?;
            check(libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL,
                0,
                0,
                0,
            ))?;
            for cap in 0..=CAP_LIMIT {
                if self.caps & (1u64 << cap) != 0 {
                    check(libc::prctl(
                        libc::PR_CAP_AMBIENT,
                        libc::PR_CAP_AMBIENT_RAISE,
                        cap as libc::c_ulong,
                        0,
                        0,
                    ))?;
                }
            }
            check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_match_what_proc_status_prints() {
        // CapEff of a process with NET_ADMIN and NET_RAW: 0000000000003000.
        assert_eq!(cap_mask(&[Cap::NetAdmin, Cap::NetRaw]), 0x3000);
        assert_eq!(cap_mask(&[Cap::NetBindService]), 0x400);
        assert_eq!(cap_mask(&[]), 0);
    }
}
