//! Versions and the decision whether a node may install a bundle: pure
//! functions of the manifest and what the node runs, so every rule has a
//! unit test and the installer only asks.

use std::cmp::Ordering;
use std::fmt;

use crate::{Error, Manifest};

/// A release version: one to four dot-separated numbers (`0.2.0`),
/// compared number by number, missing numbers counting as 0 (`1.2` equals
/// `1.2.0`). Pre-release suffixes are not supported: a bundle says exactly
/// where it stands, so a downgrade can never hide in string ordering.
#[derive(Debug, Clone, Eq)]
pub struct Version(Vec<u64>);

impl Version {
    pub fn parse(s: &str) -> Result<Version, Error> {
        let bad = || Error::Version(s.to_string());
        let parts = s
            .split('.')
            .map(|p| {
                if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                p.parse::<u64>().map_err(|_| bad())
            })
            .collect::<Result<Vec<_>, _>>()?;
        if parts.len() > 4 {
            return Err(bad());
        }
        Ok(Version(parts))
    }

    fn at(&self, i: usize) -> u64 {
        self.0.get(i).copied().unwrap_or(0)
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        (0..4)
            .map(|i| self.at(i).cmp(&other.at(i)))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s: Vec<String> = self.0.iter().map(u64::to_string).collect();
        f.write_str(&s.join("."))
    }
}

/// What the node runs: its board and version (`/etc/os-release`).
#[derive(Debug, Clone)]
pub struct Running {
    pub board: String,
    pub version: String,
}

/// Why an accepted bundle is accepted, for the installer's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// A newer version.
    Upgrade,
    /// The version that runs now, again (repairs the inactive slot, or
    /// installs a rebuild with another build id).
    Reinstall,
}

/// Whether a node running `running` may install the bundle `m`. Refuses
/// another board's bundle, a node older than the bundle's `min_from`, and
/// any downgrade: an older system may not understand the data partition
/// the newer one migrated, and a signed old bundle with a known hole must
/// not be replayable.
pub fn decide(m: &Manifest, running: &Running) -> Result<Accept, Error> {
    if m.board != running.board {
        return Err(Error::WrongBoard {
            bundle: m.board.clone(),
            node: running.board.clone(),
        });
    }
    let new = Version::parse(&m.version)?;
    let now = Version::parse(&running.version)?;
    let min = Version::parse(&m.min_from)?;
    if now < min {
        return Err(Error::TooOld {
            node: now.to_string(),
            min_from: min.to_string(),
            bundle: new.to_string(),
        });
    }
    match new.cmp(&now) {
        Ordering::Less => Err(Error::Downgrade {
            bundle: new.to_string(),
            node: now.to_string(),
        }),
        Ordering::Equal => Ok(Accept::Reinstall),
        Ordering::Greater => Ok(Accept::Upgrade),
    }
}
