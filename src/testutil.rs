//! Helpers for tests that must change process-wide state (seccomp, uids,
//! capabilities, rlimits): they run the change in a forked child so the
//! test harness keeps its own credentials.

use anyhow::{anyhow, bail, Result};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, pipe, ForkResult};
use std::fs::File;
use std::io::{Read, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Whether the tests run as root; tests that need root return early
/// (and say so) otherwise.
pub fn is_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!("skipped: needs root");
    false
}

/// Runs `f` in a forked child and returns what it returned. The child
/// reports through a pipe, then `_exit`s without running destructors or
/// the harness's exit path.
pub fn in_child<F: FnOnce() -> Result<String>>(f: F) -> Result<String> {
    let (r, w) = pipe()?;
    // SAFETY: the child only runs `f` and `_exit`s. Other harness threads do
    // not exist in the child; glibc resets its malloc locks across fork, so
    // allocating in `f` is sound.
    match unsafe { fork() }? {
        ForkResult::Child => {
            drop(r);
            let out = match catch_unwind(AssertUnwindSafe(f)) {
                Ok(Ok(s)) => format!("ok:{s}"),
                Ok(Err(e)) => format!("err:{e:#}"),
                Err(_) => "err:child panicked".to_string(),
            };
            let _ = File::from(w).write_all(out.as_bytes());
            // SAFETY: _exit is always safe; it skips atexit handlers that
            // belong to the parent's test harness.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => {
            drop(w);
            let mut out = String::new();
            File::from(r).read_to_string(&mut out)?;
            let status = waitpid(child, None)?;
            if status != WaitStatus::Exited(child, 0) {
                bail!("child ended with {status:?}, output {out:?}");
            }
            match (out.strip_prefix("ok:"), out.strip_prefix("err:")) {
                (Some(s), _) => Ok(s.to_string()),
                (_, Some(e)) => Err(anyhow!("{e}")),
                _ => bail!("child wrote {out:?}"),
            }
        }
    }
}
