//! `system.*`: reboot and power off the node. Both take no params and
//! answer [`Stopping`]; a supervisor that is not the node's init
//! (development mode) stops itself on `system.poweroff` and refuses
//! `system.reboot` with `not_supported`.

use serde::{Deserialize, Serialize};

pub const REBOOT: &str = "system.reboot";
pub const POWEROFF: &str = "system.poweroff";

/// What `system.reboot` and `system.poweroff` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stopping {
    pub stopping: bool,
}
