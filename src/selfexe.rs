//! Running the runtime from a sealed, anonymous copy of itself.
//!
//! A container's init is a fork of the runtime, so until it execs the
//! user's program its /proc/PID/exe is the runtime binary. A process in the
//! container that shares its pid namespace and holds CAP_SYS_PTRACE could
//! open that magic link and, once the runtime is no longer executing, write
//! through it to the host's binary (CVE-2019-5736). Non-dumpability stops
//! unprivileged attackers only. Before spawning anything, `create`, `run`
//! and `exec` therefore re-exec themselves from a memfd copy sealed against
//! every write: /proc/PID/exe then leads to that copy, which nobody can
//! modify, and never to a file on the host.

use anyhow::{Context, Result};
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd};

const SEALS: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// Whether this process already runs from a sealed copy.
pub fn is_sealed() -> bool {
    std::fs::File::open("/proc/self/exe")
        .ok()
        .and_then(|f| nix::fcntl::fcntl(f.as_raw_fd(), nix::fcntl::FcntlArg::F_GET_SEALS).ok())
        .is_some_and(|s| s & SEALS == SEALS)
}

/// Re-exec from a sealed memfd copy unless already running from one.
/// Returns only on error, or when already sealed.
pub fn ensure_sealed() -> Result<()> {
    if is_sealed() {
        return Ok(());
    }
    let mut exe = std::fs::File::open("/proc/self/exe").context("opening /proc/self/exe")?;
    let memfd = nix::sys::memfd::memfd_create(
        c"rcontain",
        nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC
            | nix::sys::memfd::MemFdCreateFlag::MFD_ALLOW_SEALING,
    )
    .context("memfd_create")?;
    let mut copy = std::fs::File::from(memfd);
    std::io::copy(&mut exe, &mut copy).context("copying the runtime binary into a memfd")?;
    nix::fcntl::fcntl(
        copy.as_raw_fd(),
        nix::fcntl::FcntlArg::F_ADD_SEALS(nix::fcntl::SealFlag::from_bits_truncate(SEALS)),
    )
    .context("sealing the runtime's memfd copy")?;
    let args: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(a.as_encoded_bytes()))
        .collect::<Result<_, _>>()?;
    let env: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k.into_encoded_bytes();
            kv.push(b'=');
            kv.extend_from_slice(v.as_encoded_bytes());
            CString::new(kv)
        })
        .collect::<Result<_, _>>()?;
    // The fd is close-on-exec; for an ELF binary the kernel has opened it
    // before closing the fd, so fexecve works and leaves no fd behind.
    let e = nix::unistd::fexecve(copy.as_fd().as_raw_fd(), &args, &env).unwrap_err();
    Err(anyhow::anyhow!(
        "re-executing from the sealed copy: {}",
        e.desc()
    ))
}
