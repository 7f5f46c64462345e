//! rcontain: an OCI container runtime library. The `rcontain` binary is a
//! thin clap layer over this crate; nothing here knows about the CLI.
//!
//! Flow: `container` (lifecycle) loads the bundle (`spec`), reserves the
//! state (`state`), and `spawn`s the init, which runs `init`: namespaces
//! (`namespaces`), the rootfs (`rootfs`, `mounts`, `devices`, through
//! `safepath`), hooks (`hooks`), process attributes (`process`,
//! `capabilities`, `seccomp`) and finally execve.

pub mod capabilities;
pub mod cgroups;
pub mod channel;
pub mod container;
pub mod devices;
pub mod exec;
pub mod fdpass;
pub mod features;
pub mod foreground;
pub mod hooks;
pub mod image;
pub mod init;
pub mod logging;
pub mod mountinfo;
pub mod mounts;
mod names;
pub mod namespaces;
pub mod process;
pub mod rootfs;
pub mod safepath;
pub mod seccomp;
pub mod selfexe;
pub mod signals;
pub mod spawn;
pub mod spec;
pub mod specgen;
pub mod state;
pub mod sys;
pub mod terminal;

#[cfg(test)]
mod testutil;
