//! rcontain: an OCI container runtime library. The `rcontain` binary is a
//! thin clap layer over this crate; nothing here knows about the CLI.

pub mod capabilities;
pub mod features;
mod names;
pub mod process;
pub mod seccomp;
pub mod signals;
pub mod specgen;

#[cfg(test)]
mod testutil;
