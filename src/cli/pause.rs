//! `pause` / `resume`: freeze and thaw every process of a container.

use anyhow::{bail, Result};
use rcontain::container::state::Status;
use rcontain::container::Runtime;

pub fn pause(rt: &Runtime, id: &str) -> Result<()> {
    match rt.load(id)?.1 {
        Status::Running | Status::Created => super::container_cgroup(rt, id)?.freeze(),
        Status::Paused => bail!("cannot pause container {id:?}: it is already paused"),
        s => bail!("cannot pause container {id:?}: it is {s}, not running"),
    }
}

pub fn resume(rt: &Runtime, id: &str) -> Result<()> {
    match rt.load(id)?.1 {
        Status::Paused => super::container_cgroup(rt, id)?.thaw(),
        s => bail!("cannot resume container {id:?}: it is {s}, not paused"),
    }
}
