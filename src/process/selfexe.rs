//! Running the runtime from a binary nothing can write to.
//!
//! A container's init is a fork of the runtime, so until it execs the
//! user's program its /proc/PID/exe is the runtime binary. A process in the
//! container that shares its pid namespace and holds CAP_SYS_PTRACE could
//! open that magic link and, once the runtime is no longer executing, write
//! through it to the host's binary (CVE-2019-5736). Non-dumpability stops
//! unprivileged attackers only.
//!
//! So before spawning anything, `create` and `exec` make their exe a
//! read-only mount of their own binary, and `run` does where the
//! container could reach its init in time (`ensure_read_only_exe_for_run`):
//! /proc/PID/exe then refers to that
//! mount, and opening it for writing fails with EROFS, without copying the
//! binary. The mount is a detached clone (`open_tree(OPEN_TREE_CLONE)` of
//! /proc/self/exe, made read-only with `mount_setattr`): it is in no mount
//! table, so neither this nor any later mount namespace copies or shows
//! it, and no mount namespace is made for it, whose cost would grow with
//! the host's mount table.
//!
//! The process moves onto the clone in place (`sys::exe::switch_exe`: its
//! mappings of the binary replaced, then `prctl(PR_SET_MM_MAP)`), which
//! spares a second exec of the runtime: its loader start and page faults
//! were a sixth of a start's CPU time (docs/benchmarks.md). Where the
//! kernel refuses that (built without CONFIG_CHECKPOINT_RESTORE, no
//! CAP_SYS_ADMIN, a seccomp filter) the runtime re-executes itself from the
//! clone with `execveat`. Kernels without open_tree or mount_setattr
//! (before 5.12) get a read-only bind mount made in a private mount
//! namespace instead, which the re-executed process leaves again at once.
//! A binary already on a read-only mount needs nothing.

use anyhow::{anyhow, Context, Result};
use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

/// Carries the fd of the original mount namespace across the fallback's
/// re-exec.
const MNTNS_ENV: &str = "_RCONTAIN_MNTNS_FD";
/// Carries why the exe could not be switched in place across the re-exec
/// from the clone, for the debug log.
const REEXEC_ENV: &str = "_RCONTAIN_REEXEC";

fn exe_is_read_only() -> bool {
    nix::sys::statvfs::statvfs("/proc/self/exe")
        .is_ok_and(|s| s.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
}

/// Called first thing in `main`: after a re-exec, drop what the previous
/// image passed on, and after one through the fallback go back to the
/// mount namespace the runtime was started in. Returns what `main` is to
/// say in the debug log once it has one.
pub fn after_reexec() -> Result<Option<String>> {
    if let Some(why) = std::env::var_os(REEXEC_ENV) {
        // SAFETY: single-threaded at this point; nothing else reads the env.
        unsafe { std::env::remove_var(REEXEC_ENV) };
        return Ok(Some(format!("{REEXEC_NOTE}: {}", why.to_string_lossy())));
    }
    let Some(v) = std::env::var_os(MNTNS_ENV) else {
        return Ok(None);
    };
    // SAFETY: single-threaded at this point; nothing else reads the env.
    unsafe { std::env::remove_var(MNTNS_ENV) };
    let raw: i32 = v
        .to_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("{MNTNS_ENV}: not an fd number"))?;
    // SAFETY: the fd was opened by our previous image for exactly this and
    // passed across exec; nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // setns resets the working directory to the namespace's root: keep it.
    let cwd = std::env::current_dir().context("getcwd")?;
    crate::sys::setns(fd.as_fd(), libc::CLONE_NEWNS)
        .context("returning to the original mount namespace")?;
    std::env::set_current_dir(&cwd).with_context(|| format!("chdir back to {}", cwd.display()))?;
    Ok(Some(FALLBACK_NOTE.to_string()))
}

/// What the image re-executed from the clone logs (with --debug), before
/// the reason.
pub const REEXEC_NOTE: &str =
    "re-executed from a read-only clone of the binary: switching to it in place failed";

/// What the fallback's re-executed image logs (with --debug).
pub const FALLBACK_NOTE: &str = "open_tree or mount_setattr missing (kernel before 5.12): \
     re-executed through a read-only bind mount made in a private mount namespace";

/// Run from a read-only mount of the binary unless already on one: move
/// onto it in place, else re-exec from it. Returns once the exe is
/// read-only (at once when it was, or needs not be), or on error; the
/// re-exec does not return.
pub fn ensure_read_only_exe() -> Result<()> {
    // An unprivileged user may not make the mount namespace, and needs
    // none: its containers' roots hold no capability in the runtime's user
    // namespace, where the init's non-dumpable exe link is checked.
    if !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    if exe_is_read_only() {
        return Ok(());
    }
    let exe = match read_only_clone() {
        Ok(exe) => exe,
        Err(Errno::ENOSYS) => return reexec_in_private_ns(&exec_args()?, exec_env()?),
        Err(e) => {
            return Err(anyhow!(
                "cloning a read-only mount of /proc/self/exe: {}",
                e.desc()
            ))
        }
    };
    let why = match switch_in_place(&exe) {
        Ok(()) => return Ok(()),
        Err(why) => why,
    };
    let mut env = exec_env()?;
    env.push(CString::new(format!("{REEXEC_ENV}={why}"))?);
    let e = nix::unistd::execveat(
        Some(exe.as_raw_fd()),
        c"",
        &exec_args()?,
        &env,
        nix::fcntl::AtFlags::AT_EMPTY_PATH,
    )
    .unwrap_err();
    Err(anyhow!(
        "re-executing from a read-only clone of /proc/self/exe: {}",
        e.desc()
    ))
}

/// `run`: `ensure_read_only_exe`, unless no process of the container can
/// reach a runtime process's exe link while that is the runtime's binary
/// (`container_reaches_init`). It is called once the config is read,
/// before anything of the container exists, so that the re-exec, where it
/// is needed, starts the command over with nothing to undo.
pub fn ensure_read_only_exe_for_run(spec: &Spec) -> Result<()> {
    if container_reaches_init(spec) {
        ensure_read_only_exe()
    } else {
        Ok(())
    }
}

/// Whether, in `run`, a process of the container could open the exe link
/// of a runtime process while it is the runtime's binary.
///
/// Opening /proc/PID/exe takes the same access check as /proc/PID/root
/// (ptrace read access to the process). So against a process whose root
/// is the host's (the runtime, and the init until pivot_root) the exe
/// link gives nothing the root link does not already: the host's files,
/// the binary among them. What matters is the init between pivot_root
/// and its execve, rooted in the container yet running the runtime's
/// binary. It is seen only from its own pid namespace and the ones above
/// it. Above are the runtime's: a process there that passes the check
/// passes it for the runtime itself, whose root is the host's. Its own is
/// new, so it holds nothing but the init and what the init forks: the
/// createContainer and startContainer hooks, the second a program of the
/// container's own files. Nothing else joins it in time: `run` returns,
/// and the container's pid becomes known, only once the init has exec'd
/// (`start` waits for that). `create` is not so: between `create` and
/// `start` another container may be given the init's pid namespace, as
/// `security::a_runtime_binary_not_writable_via_proc_exe` does.
fn container_reaches_init(spec: &Spec) -> bool {
    let own_pid_ns = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| {
            ns.iter()
                .any(|n| n.typ() == LinuxNamespaceType::Pid && n.path().is_none())
        });
    let hooks_inside = spec.hooks().as_ref().is_some_and(|h| {
        [h.create_container(), h.start_container()]
            .into_iter()
            .any(|v| v.as_ref().is_some_and(|v| !v.is_empty()))
    });
    !own_pid_ns || hooks_inside
}

/// This process's arguments, for its re-exec.
fn exec_args() -> Result<Vec<CString>> {
    Ok(std::env::args_os()
        .map(|a| CString::new(a.as_encoded_bytes()))
        .collect::<Result<_, _>>()?)
}

/// This process's environment, for its re-exec.
fn exec_env() -> Result<Vec<CString>> {
    Ok(std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k.into_encoded_bytes();
            kv.push(b'=');
            kv.extend_from_slice(v.as_encoded_bytes());
            CString::new(kv)
        })
        .collect::<Result<_, _>>()?)
}

/// Make the clone this process's exe without an exec (module comment).
fn switch_in_place(clone: &OwnedFd) -> Result<(), String> {
    // The clone's fd is an O_PATH one, which prctl does not take: open the
    // file it is, through the magic link, which keeps it on the clone.
    let file = std::fs::File::open(crate::rootfs::safepath::fd_path(clone))
        .map_err(|e| format!("opening the clone: {e}"))?;
    crate::sys::exe::switch_exe(&file).map_err(|e| e.desc().to_string())
}

/// A detached, read-only bind mount of the running binary. ENOSYS when the
/// kernel lacks either syscall.
fn read_only_clone() -> nix::Result<OwnedFd> {
    let exe = crate::sys::open_tree_clone(c"/proc/self/exe", false)?;
    crate::sys::mount_setattr(exe.as_fd(), "", false, libc::MOUNT_ATTR_RDONLY, 0)?;
    Ok(exe)
}

/// The fallback: bind the binary read-only over itself in a private mount
/// namespace, exec it there, and let the new image return to the original
/// namespace (after_reexec).
fn reexec_in_private_ns(args: &[CString], mut env: Vec<CString>) -> Result<()> {
    let exe = std::fs::read_link("/proc/self/exe").context("reading /proc/self/exe")?;
    // Not close-on-exec: the new image uses it to come back.
    let ns = nix::fcntl::open(
        "/proc/self/ns/mnt",
        nix::fcntl::OFlag::O_RDONLY,
        nix::sys::stat::Mode::empty(),
    )
    .context("opening /proc/self/ns/mnt")?;
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).context("unshare(CLONE_NEWNS)")?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .context("making / a slave")?;
    mount(
        Some(&exe),
        &exe,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .with_context(|| format!("bind mounting {}", exe.display()))?;
    mount(
        None::<&str>,
        &exe,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
        None::<&str>,
    )
    .with_context(|| format!("making {} read-only", exe.display()))?;
    let path = CString::new(exe.as_os_str().as_encoded_bytes())?;
    env.push(CString::new(format!("{MNTNS_ENV}={ns}"))?);
    let e = nix::unistd::execve(&path, args, &env).unwrap_err();
    Err(anyhow!(
        "re-executing {} read-only: {}",
        exe.display(),
        e.desc()
    ))
}

#[cfg(test)]
mod tests {
    use super::container_reaches_init;

    fn spec(namespaces: serde_json::Value, hooks: serde_json::Value) -> oci_spec::runtime::Spec {
        serde_json::from_value(serde_json::json!({
            "ociVersion": "1.2.0",
            "root": {"path": "rootfs"},
            "linux": {"namespaces": namespaces},
            "hooks": hooks,
        }))
        .unwrap()
    }

    #[test]
    fn only_a_pid_namespace_of_its_own_without_inner_hooks_keeps_the_init_out_of_reach() {
        let own = serde_json::json!([{"type": "mount"}, {"type": "pid"}]);
        let hook = serde_json::json!([{"path": "/bin/true"}]);
        assert!(!container_reaches_init(&spec(
            own.clone(),
            serde_json::json!({})
        )));
        // hooks run in the runtime's namespaces do not count, nor empty lists
        assert!(!container_reaches_init(&spec(
            own.clone(),
            serde_json::json!({"prestart": hook, "createRuntime": hook, "poststart": hook,
                               "createContainer": [], "startContainer": []})
        )));
        for inner in ["createContainer", "startContainer"] {
            let h = serde_json::json!({ inner: hook });
            assert!(container_reaches_init(&spec(own.clone(), h)), "{inner}");
        }
        let joined =
            serde_json::json!([{"type": "mount"}, {"type": "pid", "path": "/proc/1/ns/pid"}]);
        assert!(container_reaches_init(&spec(joined, serde_json::json!({}))));
        let none = serde_json::json!([{"type": "mount"}]);
        assert!(container_reaches_init(&spec(none, serde_json::json!({}))));
    }
}
