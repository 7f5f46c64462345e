//! The fds the runtime inherits from its caller.
//!
//! Only stdio and the `--preserve-fds` range 3 .. 3+N-1 are the caller's
//! to hand to the container. Anything else it left open (a careless engine,
//! a shell's redirection) is closed before the runtime does anything else:
//! an fd to a host directory would otherwise let a container path such as
//! `/proc/self/fd/N/../..` reach the host while the runtime still holds it
//! (CVE-2024-21626 class). The preserved range must be fully open: a gap
//! would be filled by the runtime's own next fd (state dir, cgroup
//! directory, namespaces), which would then cross into the container.

use crate::sys;
use anyhow::{bail, Context, Result};
use nix::fcntl::{fcntl, FcntlArg};

/// Checks that fds 3 .. 3+`preserve`-1 are open and closes every fd above
/// them. Call first thing, before the runtime opens an fd of its own.
pub fn keep_only_preserved(preserve: u32) -> Result<()> {
    let end = preserve
        .checked_add(3)
        .with_context(|| format!("--preserve-fds {preserve}: too large"))?;
    let missing = (3..end).find(|&fd| fcntl(fd as i32, FcntlArg::F_GETFD).is_err());
    sys::close_from(end, &[]).context("closing the fds inherited from the caller")?;
    if let Some(fd) = missing {
        bail!(
            "--preserve-fds {preserve}: fd {fd} is not open (the caller must pass fds 3 to {})",
            end - 1
        );
    }
    Ok(())
}
