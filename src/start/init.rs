//! The container's init: the child that the runtime cloned, from the
//! moment it exists until it execve()s the user's program.
//!
//! It runs the runtime's binary image (a fork, not an exec: its
//! /proc/self/exe is the read-only clone `process::selfexe` moved the
//! runtime onto, wherever the container could reach the init before it
//! execs), is made non-dumpable at once so that nothing in the
//! container can open its /proc/PID/exe or fds (CVE-2019-5736 class), and
//! talks to the parent only through the sync channel until `Ready`.
//! After that the parent is gone: it blocks opening exec.fifo for writing
//! until `start` opens it for reading.

use crate::container::hooks;
use crate::kernel::{Host, Kernel};
use crate::namespaces::Namespaces;
use crate::process::capabilities::CapSets;
use crate::process::{attrs as process, seccomp};
use crate::rootfs::mounts::CgroupView;
use crate::rootfs::safepath::Procfs;
use crate::start::channel::{ChildEnd, ExecSteps, InitSteps};
use crate::{rootfs, sys, terminal};
use anyhow::{anyhow, bail, Context, Result};
use nix::sched::CloneFlags;
use oci_spec::runtime::{Linux, LinuxNamespaceType, Process, Spec};
use std::convert::Infallible;
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

/// Everything the init needs; it lives in the parent's memory and the
/// child gets its copy through fork semantics.
pub struct InitConfig<'a> {
    pub spec: &'a Spec,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub ns: &'a Namespaces,
    /// O_PATH fd of the state dir, to open exec.fifo after pivot_root.
    pub state_dir: &'a OwnedFd,
    /// The state root, where the mount namespace template is pinned.
    pub state_root: &'a Path,
    /// The container's v1 cgroups, which the init joins itself once
    /// non-dumpable, before its first wait (see cgroups::SelfJoin); the
    /// runtime places it in the rest.
    pub cgroup_v1: Option<&'a crate::cgroups::SelfJoin>,
    /// The host's procfs (safepath::host_proc), opened before any
    /// namespace is joined: the init reads its own mountinfo and cgroup
    /// there, not in the /proc of a mount namespace joined by path.
    pub host_proc: &'a OwnedFd,
    /// Connected console socket, when process.terminal is set.
    pub console: Option<&'a OwnedFd>,
    pub no_pivot: bool,
    /// See CreateOpts::image_rootfs.
    pub image_rootfs: Option<&'a rootfs::ImageRootfs>,
    pub preserve_fds: u32,
    /// Name of the new session keyring, unless --no-new-keyring.
    pub keyring: Option<&'a str>,
    pub seccomp: Option<&'a seccomp::Filter>,
    pub caps: &'a CapSets,
    /// State JSON (without pid) for hooks the init runs itself.
    pub hook_state: &'a dyn Fn(i32, &str) -> Vec<u8>,
    /// Who runs the runtime (read before the clone).
    pub who: crate::namespaces::Invoker,
}

/// Which of its namespaces the init still has to join or create itself.
pub enum Namespacing {
    /// Cloned by the runtime itself: the init joins the namespaces given
    /// by path (all but user, pid and time, which the clone settled), and
    /// once root in a new user namespace unshares `unshare` (CLONE_NEW*
    /// flags: the namespaces that must belong to that root; see spawn).
    Direct { unshare: u64 },
    /// Forked by the intermediate process, which joined and created
    /// everything already.
    FromIntermediate,
}

/// Entry point in the child. Never returns.
pub fn run(cfg: &InitConfig, chan: ChildEnd, ns: Namespacing) -> ! {
    // Taken (and closed) once the init reports Ready: the runtime is gone
    // then, and the container's process must not inherit the socket.
    let mut chan = Some(chan);
    let mut fifo = None;
    let err = match setup(cfg, &mut chan, ns, &mut fifo) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let msg = format!("{err:#}");
    let ready = chan.is_none();
    if let Some(chan) = chan {
        if chan.fail(&msg).is_err() {
            eprintln!("rcontain: {msg}");
        }
    } else if !fifo.is_some_and(|f| report_to_start(&f, &msg)) {
        // After Ready `create` has gone, and `start` is not listening
        // (yet, or any more): the container's stderr is the only place
        // left to report to.
        eprintln!("rcontain: {msg}");
    }
    std::process::exit(if ready { 127 } else { 1 })
}

/// Tells `start`, reading exec.fifo, why the user's program will not run.
fn report_to_start(fifo: &OwnedFd, msg: &str) -> bool {
    // Should `start` have gone, the write fails with EPIPE: SIGPIPE (no
    // longer ignored once the signals are reset for execve) must not
    // turn that into a death by signal instead of exit status 127.
    let _ = nix::sys::signal::SigSet::from(nix::sys::signal::Signal::SIGPIPE).thread_block();
    nix::unistd::write(fifo, msg.as_bytes()).is_ok_and(|n| n == msg.len())
}

/// The init's phases, in order: namespaces, cgroup namespace, mount
/// namespace and rootfs, hooks, console, the switch to the new root, the
/// container's kernel settings, then ready, the wait for `start`, and exec.
fn setup(
    cfg: &InitConfig,
    chan_slot: &mut Option<ChildEnd>,
    ns: Namespacing,
    fifo_out: &mut Option<OwnedFd>,
) -> Result<Infallible> {
    let k = &Host;
    let chan = chan_slot.as_ref().expect("the channel is open until Ready");
    let spec = cfg.spec;
    let process = spec.process().as_ref().expect("validated");
    let linux = spec.linux().as_ref().expect("validated");

    let steps = placed(cfg, chan, &ns)?;
    let entered = enter_namespaces(k, cfg, &ns)?;
    join_keyring(cfg.keyring)?;
    let cg = cgroup_namespace(k, cfg)?;
    let host_pid = host_pid(cfg.host_proc.as_fd())?;
    let (root, switch) = build_rootfs(k, cfg, &entered, &cg)?;

    if hooks::has_runtime_hooks(spec) {
        steps.run_hooks()?;
    }
    if let Some(h) = spec.hooks() {
        hooks::run_all(
            "createContainer",
            h.create_container().as_ref(),
            &(cfg.hook_state)(host_pid, "created"),
        )?;
    }
    let pty = console(cfg, process, &root)?;

    rootfs::switch_root(k, &root, switch)?;
    drop(root);
    rootfs::finalize(k, spec)?;
    kernel_settings(spec, linux)?;

    let env: Vec<String> = process.env().clone().unwrap_or_default();
    let args = process.args().as_ref().expect("validated");
    // Resolved inside the new root; nothing the runtime holds is reachable.
    let exe = find_executable(&args[0], &env, process.cwd())?;

    // The pty replaces the caller's stdio now, not after `start`: engines
    // (containerd's shim) read `create`'s stdout/stderr to EOF before they
    // call `start`, so the init must not keep those pipes open meanwhile.
    if let Some(slave) = pty {
        terminal::become_controlling(slave)?;
    }

    let filter = load_notify_filter(cfg.seccomp, &steps)?;

    // Setup is done: from here on the runtime will not be waiting for us.
    steps.ready()?;
    *chan_slot = None;

    // Kept open until execve closes it: `start` waits for that EOF, and
    // reads why if the init fails before.
    let keep: &OwnedFd = fifo_out.insert(wait_for_start(cfg.state_dir)?);
    if let Some(h) = spec.hooks() {
        hooks::run_all(
            "startContainer",
            h.start_container().as_ref(),
            // The user's program has not run yet (runc says the same).
            &(cfg.hook_state)(host_pid, "created"),
        )?;
    }
    let target = ProcessTarget {
        process,
        linux,
        filter,
        caps: cfg.caps,
        preserve_fds: cfg.preserve_fds,
    };
    exec_process(&target, &exe, None, keep.as_fd())
}

/// With process.terminal: a pty whose master goes to the console
/// socket, its slave bound onto the rootfs's /dev/console; the slave.
fn console(cfg: &InitConfig, process: &Process, root: &OwnedFd) -> Result<Option<OwnedFd>> {
    match (process.terminal().unwrap_or(false), cfg.console) {
        (true, Some(sock)) => {
            let slave = terminal::open_pty(root, process.console_size().as_ref(), sock)?;
            terminal::bind_console(root, &slave)?;
            Ok(Some(slave))
        }
        _ => Ok(None),
    }
}

/// A filter with notify rules must be loaded while the runtime is still
/// here to pass its fd to the seccomp agent; it then also covers the rest
/// of the init, as with runc. Returns the filter still to load, if any.
fn load_notify_filter<'a>(
    filter: Option<&'a seccomp::Filter>,
    steps: &InitSteps,
) -> Result<Option<&'a seccomp::Filter>> {
    match filter {
        Some(f) if f.uses_notify() => {
            if let Some(fd) = f.load()? {
                steps.seccomp_fd(fd)?;
            }
            Ok(None)
        }
        f => Ok(f),
    }
}

/// Non-dumpable, in the v1 cgroups we join ourselves, then told by the
/// parent that we are placed (the other cgroups, id maps): the next steps.
fn placed<'a>(cfg: &InitConfig, chan: &'a ChildEnd, ns: &Namespacing) -> Result<InitSteps<'a>> {
    // An unprivileged runtime writes our id maps (itself or through
    // newuidmap) in /proc/PID, whose files the kernel gives to root while
    // we are non-dumpable: stay dumpable until they are written. Nothing of
    // the container runs yet, and only the user, who owns this process
    // anyway, could trace it meanwhile.
    let maps_pending = matches!(ns, Namespacing::Direct { .. })
        && cfg.ns.creates(LinuxNamespaceType::User)
        && cfg.who.unprivileged;
    if !maps_pending {
        sys::prctl(libc::PR_SET_DUMPABLE, 0).context("prctl(PR_SET_DUMPABLE)")?;
    }
    if let Some(j) = cfg.cgroup_v1 {
        j.join()?;
    }
    let steps = chan.init_placed()?;
    if maps_pending {
        sys::prctl(libc::PR_SET_DUMPABLE, 0).context("prctl(PR_SET_DUMPABLE)")?;
    }
    Ok(steps)
}

/// Where the namespaces phase leaves the init.
struct Entered {
    /// in a user namespace of the container's (created or joined)
    userns: bool,
    /// the mount namespace is still to be made, at the rootfs phase
    mount_ns_later: bool,
}

/// Becomes root of the container's user namespace, creates and joins the
/// namespaces the clone left to the init.
fn enter_namespaces(k: &dyn Kernel, cfg: &InitConfig, ns: &Namespacing) -> Result<Entered> {
    let unshare_flags = match *ns {
        Namespacing::Direct { unshare } => unshare,
        Namespacing::FromIntermediate => 0,
    };
    let userns = cfg.ns.creates(LinuxNamespaceType::User) || cfg.ns.joins(LinuxNamespaceType::User);
    if userns {
        // Become root of the user namespace: mounts and mknod checks are
        // made against these credentials.
        k.become_userns_root()?;
    }
    // Without a user namespace, the clone left the new mount namespace to
    // us: it is made where the rootfs setup begins, from the template when
    // the config allows (rootfs::template).
    let newns = libc::CLONE_NEWNS as u64;
    let mount_ns_later = !userns && unshare_flags & newns != 0;
    let unshare_now = if mount_ns_later {
        unshare_flags & !newns
    } else {
        unshare_flags
    };
    if unshare_now != 0 {
        k.unshare(CloneFlags::from_bits_retain(unshare_now as i32))
            .context("creating namespaces")?;
    }
    if let Namespacing::Direct { .. } = ns {
        cfg.ns.enter(k, |t| {
            !matches!(
                t,
                LinuxNamespaceType::User | LinuxNamespaceType::Pid | LinuxNamespaceType::Time
            )
        })?;
    }
    Ok(Entered {
        userns,
        mount_ns_later,
    })
}

/// A new session keyring named `name`, if asked for.
fn join_keyring(name: Option<&str>) -> Result<()> {
    let Some(name) = name else { return Ok(()) };
    // Kernels or seccomp profiles that deny keyctl just keep the old
    // keyring, as with runc.
    match sys::join_session_keyring(name) {
        Err(e) if e != nix::errno::Errno::ENOSYS && e != nix::errno::Errno::EPERM => {
            Err(anyhow!("joining a new session keyring: {}", e.desc()))
        }
        _ => Ok(()),
    }
}

/// The parent has placed us in our cgroup; read where that is before a
/// cgroup namespace hides it, then create the namespace so its root is
/// the container's cgroup.
fn cgroup_namespace(k: &dyn Kernel, cfg: &InitConfig) -> Result<CgroupView> {
    let needs_cgroup_view = cfg
        .spec
        .mounts()
        .iter()
        .flatten()
        .any(|m| matches!(m.typ().as_deref(), Some("cgroup" | "cgroup2")));
    let own_cgroupns = cfg.ns.creates(LinuxNamespaceType::Cgroup);
    let cg = if needs_cgroup_view {
        CgroupView::read(own_cgroupns, cfg.host_proc.as_fd())?
    } else {
        CgroupView::default()
    };
    if own_cgroupns {
        k.unshare(CloneFlags::CLONE_NEWCGROUP)
            .context("creating the cgroup namespace")?;
    }
    Ok(cg)
}

/// The mount namespace (when it is left to this phase) and the rootfs in
/// it: an fd of the rootfs mount, and how to switch into it.
fn build_rootfs(
    k: &dyn Kernel,
    cfg: &InitConfig,
    entered: &Entered,
    cg: &CgroupView,
) -> Result<(OwnedFd, rootfs::Switch)> {
    let own_mnt =
        cfg.ns.creates(LinuxNamespaceType::Mount) || cfg.ns.joins(LinuxNamespaceType::Mount);
    let image = match cfg.image_rootfs {
        _ if cfg.ns.creates(LinuxNamespaceType::Mount) => cfg.image_rootfs,
        Some(rootfs::ImageRootfs::Layers(_)) => {
            bail!("an image's rootfs without root needs a mount namespace of the container's own")
        }
        _ => None,
    };
    // Also when the runtime itself runs in a user namespace (as root of
    // rootless podman's): mknod is refused there too.
    let in_userns = entered.userns || cfg.who.in_userns;
    let setup = rootfs::Setup {
        spec: cfg.spec,
        rootfs: cfg.rootfs,
        bundle: cfg.bundle,
        cgroups: cg,
        nodes: if in_userns {
            rootfs::dev::Nodes::FromHost
        } else {
            rootfs::dev::Nodes::Made
        },
        mount_ns: if own_mnt {
            rootfs::MountNs::Own
        } else {
            rootfs::MountNs::Host
        },
        image,
        proc: cfg.host_proc.as_fd(),
    };
    let switch = match (own_mnt, cfg.no_pivot) {
        (false, _) => rootfs::Switch::Chroot,
        (true, true) => rootfs::Switch::Move,
        (true, false) => rootfs::Switch::Pivot,
    };
    if entered.mount_ns_later {
        rootfs::template::new_mount_ns(cfg.state_root, &setup, switch)?;
    }
    Ok((rootfs::prepare(k, &setup)?, switch))
}

/// After the switch: linux.sysctl, hostname and domainname.
fn kernel_settings(spec: &Spec, linux: &Linux) -> Result<()> {
    if let Some(sysctl) = linux.sysctl().as_ref().filter(|s| !s.is_empty()) {
        let proc = Procfs::new()?;
        for (k, v) in sysctl {
            proc.write(&format!("sys/{}", k.replace('.', "/")), v)
                .with_context(|| format!("linux.sysctl: {k}"))?;
        }
    }
    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        nix::unistd::sethostname(h).context("hostname: sethostname")?;
    }
    if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        sys::setdomainname(d).context("domainname: setdomainname")?;
    }
    Ok(())
}

/// Blocks opening exec.fifo (in the state dir `dir`) for writing until
/// `start` opens it for reading, and writes the byte `start` waits for.
fn wait_for_start(dir: &OwnedFd) -> Result<OwnedFd> {
    let fifo = loop {
        match sys::openat(
            Some(dir.as_raw_fd()),
            crate::container::state::FIFO,
            nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        ) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => break r.context("opening exec.fifo")?,
        }
    };
    nix::unistd::write(&fifo, b"0").context("writing exec.fifo")?;
    Ok(fifo)
}

/// What the container's process becomes, for the init and for `exec`.
#[derive(Clone, Copy)]
pub struct ProcessTarget<'a> {
    pub process: &'a Process,
    pub linux: &'a Linux,
    pub filter: Option<&'a seccomp::Filter>,
    pub caps: &'a CapSets,
    /// fds 3..3+N the caller passed on purpose
    pub preserve_fds: u32,
}

/// The last steps shared by the init and `exec`: from cwd to execve,
/// ordered so that each step still has the privileges it needs and the
/// seccomp filter constrains as little of the runtime as possible.
/// A filter with notify rules sends its fd over `chan` and waits until the
/// runtime has delivered it to the seccomp agent, so no user code runs
/// unwatched (or at all, when delivery fails); only `exec` passes such a
/// filter (with its channel), the init loaded its own while the runtime
/// was still there.
///
/// At execve only stdio, the `preserve_fds` and `handshake` (exec.fifo for
/// the init, the channel for `exec`; close-on-exec, so it is gone in the
/// new program, and neither a directory nor executable) are open: every
/// other fd is closed, not merely marked close-on-exec, so that `exe`
/// (already checked to be inside the root) cannot be redirected through
/// one while execve resolves it.
pub fn exec_process(
    target: &ProcessTarget,
    exe: &CString,
    chan: Option<&ExecSteps>,
    handshake: BorrowedFd,
) -> Result<Infallible> {
    let process = target.process;
    let env = with_home(
        process.env().as_deref().unwrap_or(&[]),
        process.user().uid(),
    );
    enter_cwd(process.cwd())?;
    close_runtime_fds(target.preserve_fds, handshake)?;
    set_attributes(process, target.linux)?;
    // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: load it
    // while we still have it. With it, as late as possible, so the filter
    // constrains nothing of the runtime's own setup.
    let nnp = process.no_new_privileges().unwrap_or(false);
    if !nnp {
        load_filter(target.filter, chan)?;
    }
    process::set_identity(process.user(), target.caps)?;
    if nnp {
        load_filter(target.filter, chan)?;
    }
    sys::reset_signals();
    execve(exe, process.args().as_ref().expect("validated"), &env)
}

fn enter_cwd(cwd: &Path) -> Result<()> {
    nix::unistd::chdir(cwd).with_context(|| format!("process.cwd: chdir to {}", cwd.display()))?;
    // A cwd reached through a leaked fd of the host would make getcwd
    // report an unreachable path (CVE-2024-21626): refuse to run there.
    let real = nix::unistd::getcwd().context("process.cwd: getcwd")?;
    if !real.starts_with("/") {
        bail!(
            "process.cwd: {} is outside the container's root",
            cwd.display()
        );
    }
    Ok(())
}

/// Closes every fd but stdio, fds 3..3+`preserve_fds` and `handshake`.
fn close_runtime_fds(preserve_fds: u32, handshake: BorrowedFd) -> Result<()> {
    // The runtime's fds (state dir, cgroup directory, namespaces, console
    // socket, log file, ...) are not used past this point.
    sys::close_from(3 + preserve_fds, &[handshake.as_raw_fd()])
        .context("closing the runtime's fds")?;
    // The caller hands these over on purpose: they must survive execve even
    // if they were opened close-on-exec.
    for fd in 3..3 + preserve_fds as i32 {
        nix::fcntl::fcntl(
            fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
        )
        .with_context(|| format!("--preserve-fds: fd {fd}"))?;
    }
    Ok(())
}

/// The process's own settings that need no privilege it is about to lose
/// (or that must be in place before the identity switch).
fn set_attributes(process: &Process, linux: &Linux) -> Result<()> {
    process::set_rlimits(process.rlimits().as_deref().unwrap_or(&[]))?;
    if process.no_new_privileges().unwrap_or(false) {
        process::set_no_new_privs()?;
    }
    if let Some(p) = linux.personality() {
        process::set_personality(p)?;
    }
    if let Some(p) = process.io_priority() {
        process::set_io_priority(p)?;
    }
    if let Some(s) = process.scheduler() {
        process::set_scheduler(s)?;
    }
    Ok(())
}

/// Loads the seccomp filter, if any; a notify fd goes to the runtime over
/// `chan`, and the process waits until it was delivered.
fn load_filter(filter: Option<&seccomp::Filter>, chan: Option<&ExecSteps>) -> Result<()> {
    let Some(fd) = filter.map(|f| f.load()).transpose()?.flatten() else {
        return Ok(());
    };
    chan.context("seccomp: a notify fd but no runtime to hand it to")?
        .seccomp_fd(fd)
}

fn execve(exe: &CString, args: &[String], env: &[String]) -> Result<Infallible> {
    let argv: Vec<CString> = args
        .iter()
        .map(|a| CString::new(a.as_str()))
        .collect::<Result<_, _>>()
        .context("process.args: contains a NUL byte")?;
    let envp: Vec<CString> = env
        .iter()
        .map(|a| CString::new(a.as_str()))
        .collect::<Result<_, _>>()
        .context("process.env: contains a NUL byte")?;
    let e = nix::unistd::execve(exe, &argv, &envp).unwrap_err();
    Err(anyhow!("exec {:?}: {}", args[0], e.desc()))
}

/// process.env with HOME added when it is unset or empty: the user's home
/// from the container's /etc/passwd, else "/", as runc does (images and
/// engines rely on it; docker and containerd do not set HOME themselves).
/// Called inside the container's root, before the identity switch.
fn with_home(env: &[String], uid: u32) -> Vec<String> {
    let mut env: Vec<String> = env.to_vec();
    let set = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("HOME="))
        .is_some_and(|h| !h.is_empty());
    if !set {
        env.retain(|e| !e.starts_with("HOME="));
        let home = read_small_regular("/etc/passwd")
            .and_then(|text| crate::sys::passwd::home(&text, uid))
            .unwrap_or_else(|| "/".to_string());
        env.push(format!("HOME={home}"));
    }
    env
}

/// A file the container controls: read only a regular file (a fifo or a
/// device there must not block or feed the init) and at most 1 MiB of it.
fn read_small_regular(path: &str) -> Option<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .ok()?;
    if !f.metadata().ok()?.is_file() {
        return None;
    }
    let mut text = String::new();
    f.take(1 << 20).read_to_string(&mut text).ok()?;
    Some(text)
}

/// Our pid as the host sees it (for hook state): `self` in the host's
/// procfs, whatever is mounted at /proc in a joined mount namespace.
fn host_pid(proc: BorrowedFd) -> Result<i32> {
    let l = nix::fcntl::readlinkat(Some(proc.as_raw_fd()), "self").context("reading /proc/self")?;
    l.to_string_lossy()
        .parse()
        .map_err(|_| anyhow!("unexpected /proc/self link {l:?}"))
}

/// Resolve the program as execvp would, with the container's PATH, so a
/// missing binary fails `create` rather than `start`. Each candidate is
/// resolved inside the process's root (RESOLVE_IN_ROOT, magic links not
/// followed): an args[0] or a PATH entry through /proc/self/fd/N (or
/// /proc/PID/root, ...) names nothing, so no fd the process holds can lead
/// the lookup to a binary outside the container. The path returned is
/// walked again by execve, once every fd but stdio, the preserved ones and
/// the handshake is closed (see exec_process).
pub fn find_executable(arg0: &str, env: &[String], cwd: &Path) -> Result<CString> {
    let root = sys::open(
        "/",
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .context("opening /")?;
    let executable = |p: &Path| -> nix::Result<CString> {
        let c = p.to_str().ok_or(nix::errno::Errno::EINVAL)?;
        let fd = crate::rootfs::safepath::open_in_root(root.as_fd(), c, libc::O_PATH)?;
        let st = nix::sys::stat::fstat(fd.as_raw_fd())?;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG || st.st_mode & 0o111 == 0 {
            return Err(nix::errno::Errno::EACCES);
        }
        CString::new(c).map_err(|_| nix::errno::Errno::EINVAL)
    };
    if arg0.contains('/') {
        return executable(&cwd.join(arg0)).map_err(|e| match e {
            nix::errno::Errno::ELOOP | nix::errno::Errno::EXDEV => anyhow!(
                "exec: {arg0:?}: not resolvable inside the container's root \
                 (magic links such as /proc/self/fd/N are not followed)"
            ),
            nix::errno::Errno::EACCES => anyhow!("exec: {arg0:?}: not an executable file"),
            _ => anyhow!("exec: {arg0:?}: no such executable file in the container"),
        });
    }
    let path = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    path.split(':')
        .find_map(|d| executable(&cwd.join(if d.is_empty() { "." } else { d }).join(arg0)).ok())
        .ok_or_else(|| anyhow!("exec: {arg0:?}: executable file not found in $PATH"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_from_passwd_when_unset() {
        let kept = with_home(&["HOME=/x".into(), "A=b".into()], 0);
        assert_eq!(kept, ["HOME=/x", "A=b"]);
        // Unset or empty: one HOME is added (from this host's passwd or "/").
        for env in [vec!["A=b".to_string()], vec!["HOME=".into(), "A=b".into()]] {
            let e = with_home(&env, 4242424);
            assert_eq!(
                e.iter().filter(|v| v.starts_with("HOME=")).count(),
                1,
                "{e:?}"
            );
            assert_eq!(e.last().map(String::as_str), Some("HOME=/"));
        }
        assert!(read_small_regular("/dev/null").is_none());
    }

    #[test]
    fn executable_lookup() {
        let env = vec!["PATH=/nonexistent:/bin".to_string()];
        assert_eq!(
            find_executable("sh", &env, Path::new("/"))
                .unwrap()
                .to_str()
                .unwrap(),
            "/bin/sh"
        );
        assert_eq!(
            find_executable("/bin/sh", &[], Path::new("/"))
                .unwrap()
                .to_str()
                .unwrap(),
            "/bin/sh"
        );
        let e = find_executable("no-such-prog", &env, Path::new("/"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not found in $PATH"), "{e}");
        assert!(find_executable("./nope", &env, Path::new("/")).is_err());
    }

    /// A directory reachable only through an open fd: neither args[0] nor
    /// a PATH entry may go through /proc/self/fd/N to it.
    #[test]
    fn executable_lookup_ignores_fd_links() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let prog = dir.path().join("prog");
        std::fs::write(&prog, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
        let fd = std::fs::File::open(dir.path()).unwrap();
        let via_fd = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let direct = vec![format!("PATH={}", dir.path().display())];
        assert!(find_executable("prog", &direct, Path::new("/")).is_ok());
        let env = vec![format!(
            "PATH={via_fd}:{via_fd}/../{}",
            dir.path().display()
        )];
        let e = find_executable("prog", &env, Path::new("/")).unwrap_err();
        assert!(e.to_string().contains("not found in $PATH"), "{e}");
        let e = find_executable(&format!("{via_fd}/prog"), &[], Path::new("/")).unwrap_err();
        assert!(e.to_string().contains("inside the container's root"), "{e}");
        let e = find_executable(&via_fd, &[], Path::new("/")).unwrap_err();
        assert!(e.to_string().contains("inside the container's root"), "{e}");
        let e = find_executable(dir.path().to_str().unwrap(), &[], Path::new("/")).unwrap_err();
        assert!(e.to_string().contains("not an executable file"), "{e}");
    }
}
