//! The A/B slots as the boot loader sees them, and the decisions an update
//! makes about them: which slot is inactive, whether it may be written,
//! and the loader entry that arms its one-shot trial. Pure functions of
//! the ESP's entry names and texts, so every rule is unit-tested; the I/O
//! is in `install`.
//!
//! systemd-boot lists `loader/entries/*.conf`, puts entries whose tries
//! ran out (`+0`) last, and among the others boots the highest `version`
//! (same `sort-key`). So an installed slot is armed by giving it a counting
//! entry (`alpharen-b+3.conf`) with a version above every other entry: it
//! is tried three times, and if it never comes up healthy its tries run
//! out and the old slot, whose entry is untouched, boots again. A slot
//! without any entry is never booted: that is how a slot being written, or
//! whose install failed, is marked invalid.

use serde::Serialize;

/// What the loader entries say about one slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "state")]
pub enum SlotState {
    /// `alpharen-X.conf`: it booted and passed the health gate.
    Good,
    /// `alpharen-X+N[-M].conf`, N > 0: armed, N boots left to prove itself.
    Trial { tries_left: u32 },
    /// `alpharen-X+0-M.conf`: every try failed; the boot loader skips it.
    Failed,
    /// No entry: being written, or its install failed. Never booted.
    Invalid,
}

/// One parsed entry file name: `alpharen-<slot>[+<left>[-<done>]].conf`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryName {
    pub slot: char,
    /// `None` for a good entry (no counter).
    pub tries_left: Option<u32>,
}

/// Parses a loader entry's file name; `None` for entries that are not a
/// slot's (other operating systems, memtest).
pub fn parse_entry_name(file: &str) -> Option<EntryName> {
    let rest = file.strip_prefix("alpharen-")?.strip_suffix(".conf")?;
    let (slot, counters) = match rest.split_once('+') {
        Some((s, c)) => (s, Some(c)),
        None => (rest, None),
    };
    let slot = match slot {
        "a" => 'a',
        "b" => 'b',
        _ => return None,
    };
    let tries_left = match counters {
        None => None,
        Some(c) => Some(c.split('-').next()?.parse::<u32>().ok()?),
    };
    Some(EntryName { slot, tries_left })
}

/// The state of `slot` given the entry file names on the ESP. Should a
/// slot have several entries (it never gets them from us), the best wins,
/// since that is the one the boot loader would pick.
pub fn slot_state(files: &[String], slot: char) -> SlotState {
    let mut best = SlotState::Invalid;
    for e in files.iter().filter_map(|f| parse_entry_name(f)) {
        if e.slot != slot {
            continue;
        }
        let state = match e.tries_left {
            None => SlotState::Good,
            Some(0) => SlotState::Failed,
            Some(n) => SlotState::Trial { tries_left: n },
        };
        best = match (best, state) {
            (SlotState::Good, _) | (_, SlotState::Good) => SlotState::Good,
            (SlotState::Trial { .. }, SlotState::Failed) => best,
            _ => state,
        };
    }
    best
}

/// The slot an update writes: the one that did not boot.
pub fn other(slot: char) -> char {
    if slot == 'a' { 'b' } else { 'a' }
}

/// Why an install may not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(
        "the running slot {0} is still on trial (not yet marked good by the health gate); installing now would overwrite the only slot known to work. Wait until `ctl system slots` shows it good"
    )]
    BootedOnTrial(char),
    #[error("the running slot {0} has no loader entry to copy the new slot's entry from")]
    NoTemplate(char),
    #[error("the firmware booted partition {0}, which is no slot's boot partition")]
    NotASlot(u32),
}

/// What an install into the inactive slot will do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The slot written (the inactive one).
    pub target: char,
    /// Entry files of the target to remove first (marks it invalid).
    pub remove: Vec<String>,
    /// The booted slot's entry file, the template of the new entry.
    pub template: String,
    /// The new entry's file name (`alpharen-b+3.conf`).
    pub entry: String,
    /// The `version` line it gets: above every other entry's.
    pub sort_version: u64,
}

/// Tries a freshly installed slot gets before the boot loader gives up.
pub const TRIAL_TRIES: u32 = 3;

/// Decides an install from the booted slot and the entries on the ESP:
/// `entries` is (file name, text) of every `alpharen-*` entry. The booted
/// slot must be good, so that a failing new slot has a slot to fall back
/// to.
pub fn plan(booted: char, entries: &[(String, String)]) -> Result<Plan, PlanError> {
    let names: Vec<String> = entries.iter().map(|(n, _)| n.clone()).collect();
    if slot_state(&names, booted) != SlotState::Good {
        return Err(PlanError::BootedOnTrial(booted));
    }
    let target = other(booted);
    let template = entries
        .iter()
        .find(|(n, _)| parse_entry_name(n).is_some_and(|e| e.slot == booted))
        .map(|(n, _)| n.clone())
        .ok_or(PlanError::NoTemplate(booted))?;
    let top = entries
        .iter()
        .filter_map(|(_, text)| sort_version(text))
        .max()
        .unwrap_or(0);
    Ok(Plan {
        target,
        remove: names
            .iter()
            .filter(|n| parse_entry_name(n).is_some_and(|e| e.slot == target))
            .cloned()
            .collect(),
        template,
        entry: format!("alpharen-{target}+{TRIAL_TRIES}.conf"),
        sort_version: top + 1,
    })
}

/// An entry's `version` line, as a number (ours are plain numbers).
pub fn sort_version(entry: &str) -> Option<u64> {
    entry
        .lines()
        .find_map(|l| l.trim().strip_prefix("version"))
        .and_then(|v| v.trim().parse().ok())
}

/// The new slot's entry, made from the booted slot's: the same kernel
/// command line (so options the node was given, such as a console, are
/// kept), with the slot's paths, `alpharen.slot=` and title switched to
/// `to`, and `version` set so that it sorts first.
pub fn entry_for(template: &str, from: char, to: char, version: u64) -> String {
    let dir_from = format!("/{from}/");
    let dir_to = format!("/{to}/");
    let mut out = String::new();
    let mut has_version = false;
    for line in template.lines() {
        let t = line.trim_start();
        let word = t.split_whitespace().next().unwrap_or("");
        let new = match word {
            "version" => {
                has_version = true;
                format!("version {version}")
            }
            "linux" | "initrd" | "devicetree" | "efi" => line.replace(&dir_from, &dir_to),
            "options" => t
                .split_whitespace()
                .map(|w| {
                    if w == format!("alpharen.slot={from}") {
                        format!("alpharen.slot={to}")
                    } else if w == format!("root=PARTLABEL=rootfs-{from}") {
                        format!("root=PARTLABEL=rootfs-{to}")
                    } else {
                        w.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join(" "),
            "title" => line.replace(&format!("slot {from}"), &format!("slot {to}")),
            _ => line.to_string(),
        };
        out.push_str(&new);
        out.push('\n');
    }
    if !has_version {
        out.push_str(&format!("version {version}\n"));
    }
    out
}

/// The ESP files an entry boots (`linux`, `initrd`, `devicetree` paths,
/// without the leading slash), which the bundle must bring.
pub fn entry_files(entry: &str) -> Vec<String> {
    entry
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            match w.next()? {
                "linux" | "initrd" | "devicetree" => {
                    w.next().map(|p| p.trim_start_matches('/').to_string())
                }
                _ => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENTRY_A: &str = "title ALPHA-REN slot a\nsort-key alpharen\nversion 2\nlinux /a/vmlinuz\ninitrd /a/initrd.img\noptions console=ttyS0,115200 panic=10 alpharen.slot=a\n";
    const ENTRY_B: &str = "title ALPHA-REN slot b\nsort-key alpharen\nversion 1\nlinux /b/vmlinuz\ninitrd /b/initrd.img\noptions console=ttyS0,115200 panic=10 alpharen.slot=b\n";

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn entry_names_give_the_slot_state() {
        let files = names(&["alpharen-a.conf", "alpharen-b+2-1.conf", "memtest.conf"]);
        assert_eq!(slot_state(&files, 'a'), SlotState::Good);
        assert_eq!(slot_state(&files, 'b'), SlotState::Trial { tries_left: 2 });
        let files = names(&["alpharen-a.conf", "alpharen-b+0-3.conf"]);
        assert_eq!(slot_state(&files, 'b'), SlotState::Failed);
        assert_eq!(
            slot_state(&names(&["alpharen-a.conf"]), 'b'),
            SlotState::Invalid
        );
        assert_eq!(parse_entry_name("alpharen-c.conf"), None);
        assert_eq!(parse_entry_name("alpharen-a+x.conf"), None);
        assert_eq!(
            parse_entry_name("alpharen-b+3.conf"),
            Some(EntryName {
                slot: 'b',
                tries_left: Some(3)
            })
        );
    }

    #[test]
    fn an_install_goes_to_the_slot_that_did_not_boot_and_sorts_first() {
        let entries = vec![
            ("alpharen-a.conf".to_string(), ENTRY_A.to_string()),
            ("alpharen-b+3.conf".to_string(), ENTRY_B.to_string()),
        ];
        let p = plan('a', &entries).expect("plan");
        assert_eq!(p.target, 'b');
        assert_eq!(p.remove, names(&["alpharen-b+3.conf"]));
        assert_eq!(p.template, "alpharen-a.conf");
        assert_eq!(p.entry, "alpharen-b+3.conf");
        assert_eq!(p.sort_version, 3);
        let new = entry_for(ENTRY_A, 'a', 'b', p.sort_version);
        assert_eq!(
            new,
            "title ALPHA-REN slot b\nsort-key alpharen\nversion 3\nlinux /b/vmlinuz\ninitrd /b/initrd.img\noptions console=ttyS0,115200 panic=10 alpharen.slot=b\n"
        );
        assert_eq!(entry_files(&new), names(&["b/vmlinuz", "b/initrd.img"]));
        // Booted from b after a committed update: a is the next target.
        let entries = vec![
            ("alpharen-b.conf".to_string(), new),
            ("alpharen-a.conf".to_string(), ENTRY_A.to_string()),
        ];
        let p = plan('b', &entries).expect("plan");
        assert_eq!((p.target, p.sort_version), ('a', 4));
        assert_eq!(p.remove, names(&["alpharen-a.conf"]));
    }

    #[test]
    fn no_install_while_the_running_slot_is_on_trial() {
        let entries = vec![
            ("alpharen-a.conf".to_string(), ENTRY_A.to_string()),
            ("alpharen-b+2-1.conf".to_string(), ENTRY_B.to_string()),
        ];
        assert_eq!(plan('b', &entries), Err(PlanError::BootedOnTrial('b')));
        // A slot left invalid by a failed install is simply written again.
        let entries = vec![("alpharen-a.conf".to_string(), ENTRY_A.to_string())];
        let p = plan('a', &entries).expect("plan");
        assert!(p.remove.is_empty());
        assert_eq!(p.sort_version, 3);
    }

    #[test]
    fn a_kernel_mounted_root_and_a_missing_version_line_are_switched_too() {
        let t = "title ALPHA-REN slot a\nlinux /a/bzImage\noptions root=PARTLABEL=rootfs-a ro alpharen.slot=a\n";
        assert_eq!(
            entry_for(t, 'a', 'b', 7),
            "title ALPHA-REN slot b\nlinux /b/bzImage\noptions root=PARTLABEL=rootfs-b ro alpharen.slot=b\nversion 7\n"
        );
        assert_eq!(sort_version("version  12\n"), Some(12));
        assert_eq!(sort_version("title x\n"), None);
    }
}
