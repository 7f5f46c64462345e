//! Helpers for tests that must change process-wide state (seccomp, uids,
//! capabilities, rlimits): they run the change in a forked child so the
//! test harness keeps its own credentials.
//!
//! Forking the multi-threaded test harness is unsafe in general: a lock
//! another test thread holds at that instant (std's backtrace lock, taken
//! whenever anyhow builds an error with RUST_BACKTRACE set) stays locked
//! forever in the child. So a forking test first re-runs itself alone in
//! a fresh harness process, where no other test thread exists.

use anyhow::{anyhow, bail, Result};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, pipe, ForkResult};
use std::fs::File;
use std::io::{Read, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::Command;

/// Set in the environment of a harness process that runs one test alone.
const ALONE: &str = "RCONTAIN_TEST_ALONE";

/// Runs the calling test again, alone, in a new harness process and
/// checks that it passed. Returns true in the original process (the test
/// should then return) and false in the new one (the test proceeds).
pub fn rerun_alone() -> bool {
    if std::env::var_os(ALONE).is_some() {
        return false;
    }
    let current = std::thread::current();
    let name = current.name().expect("libtest names test threads");
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args([name, "--exact", "--test-threads=1", "--nocapture"])
        .env(ALONE, "1")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{name} failed when run alone:\n{text}"
    );
    assert!(text.contains("1 passed"), "{name} did not run:\n{text}");
    true
}

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
    assert!(
        std::env::var_os(ALONE).is_some(),
        "call rerun_alone() before in_child()"
    );
    let (r, w) = pipe()?;
    // SAFETY: this harness process runs only the calling test (see
    // rerun_alone), so no other thread can hold a lock across the fork;
    // glibc resets its malloc locks in the child. The child only runs `f`
    // and `_exit`s.
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

/// A directory under the system temp dir, removed with its contents when
/// dropped (also when the test fails).
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("rcontain-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
