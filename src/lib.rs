//! rcontain: an OCI container runtime library. The `rcontain` binary is a
//! thin clap layer over this crate; nothing here knows about the CLI.
//!
//! Flow: `container` (lifecycle) loads the bundle (`oci::spec`), reserves
//! the state (`container::state`), and `start::spawn` clones the init,
//! which runs `start::init`: namespaces (`namespaces`), the rootfs
//! (`rootfs`: mounts, device nodes, all through `rootfs::safepath`), hooks
//! (`container::hooks`), process attributes (`process`: user, rlimits,
//! capabilities, seccomp) and finally execve. Logic that decides which
//! privileged calls to make goes through `kernel::Kernel`, so that unit
//! tests can record the calls instead of needing root.

// The kernel wrappers, cgroups and images are crates of their own (useful
// without the rest of the runtime); the runtime names them as its modules.
pub use rcontain_cgroups as cgroups;
pub use rcontain_image as image;
pub use rcontain_sys as sys;

pub mod check;
pub mod container;
pub mod kernel;
pub mod logging;
pub mod namespaces;
pub mod oci;
pub mod process;
pub mod rootfs;
pub mod signals;
pub mod start;
pub mod terminal;

#[cfg(test)]
mod testutil;
