//! The container's mount namespace without a copy of the host's mount
//! table.
//!
//! `unshare(CLONE_NEWNS)` copies every mount of the runtime's namespace,
//! the recursive propagation change walks them all again and pivot_root's
//! old root takes them all down: on a node with thousands of mounts that is
//! most of a start. Instead, where nothing needs the host's tree inside the
//! container's namespace, the init
//!
//! 1. clones, while still in the host's namespace, every host path the
//!    rootfs setup binds from (the rootfs, bind mount sources, the
//!    container's cgroup directories; in a user namespace, the device
//!    nodes, bound from the host's there, and /sys, which a sysfs mount
//!    needs visible there and falls back to) as a detached tree
//!    (`open_tree(OPEN_TREE_CLONE)`; recursive where the bind is): the same
//!    mounts, in the same peer groups, a copy of the host's table would
//!    have had at those paths;
//! 2. joins the *template*, a mount namespace that holds only a read-only
//!    empty tmpfs as its root and a bind of the host's /proc, and unshares
//!    from it: a copy of two mounts;
//! 3. mounts a tmpfs of its own on the template's `/h`, moves the /proc
//!    bind into it and makes it the namespace's root (pivot_root, the
//!    template's root detached), then attaches each tree at its host path
//!    there.
//!
//! `rootfs::prepare` then runs as always, on the same paths (mountinfo
//! reads as before), and pivot_root takes that tmpfs, /proc and the trees
//! away. The propagation change of `/` reaches the attached trees exactly
//! as it reached their copies, so bind mounts end up in the same peer
//! groups, as slaves or private, as before.
//!
//! The template is made, under a lock, by the first init of a state root
//! that needs it (one copy of the host's table then) and kept by a bind
//! mount of its nsfs file on `ROOT/@template/mnt` (`@` is never in a
//! container id) while containers exist there: `release`, called when a
//! container's state is removed, unpins it once the root holds none, so
//! nothing of it outlives the containers. A lone container in an empty
//! root therefore makes it and drops it again, which costs about what the
//! copy does; a node running containers keeps one.
//! Joining it needs CAP_SYS_ADMIN in the runtime's user namespace, so a
//! container with a user namespace, an unprivileged runtime, a config whose
//! hooks or mounts need the host's tree in the container's namespace
//! (createContainer hooks run there, prestart and createRuntime hooks may
//! look at it through /proc/PID/root, a typed mount's source or options
//! may name a host path), a shared rootfs propagation or no pivot_root get
//! the copy of the host's table, as before. So does any failure here, and
//! a table small enough that copying it is the cheaper way (under
//! TEMPLATE_MIN_MOUNTS mounts, counted with listmount where the kernel
//! has it; `RCONTAIN_TEMPLATE_MIN_MOUNTS` sets another threshold, 0 none).

use super::dev::Nodes;
use super::mounts::{bind_source, parse_options, CgroupView};
use super::{ImageRootfs, Setup, Switch};
use crate::logging;
use anyhow::{anyhow, bail, Context, Result};
use nix::fcntl::OFlag;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use oci_spec::runtime::Spec;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

/// Where the template is pinned, in the state root.
const DIR: &str = "@template";
/// The template's directory where each start mounts the tmpfs that
/// becomes its namespace's root.
const NEW_ROOT: &str = "/h";

/// Below this many mounts in the runtime's namespace the copy is taken:
/// copying a small table costs less than joining the template (a mount,
/// a move, a pivot_root and a detach of their own), let alone making it
/// and dropping it again for a lone container (0.5 to 2 ms of CPU time
/// more than the copy of this host's 22 mounts, docs/benchmarks.md). Copying costs
/// about 3 µs a mount, so the two meet at a few hundred.
const TEMPLATE_MIN_MOUNTS: usize = 256;
/// Overrides TEMPLATE_MIN_MOUNTS (0: the template whatever the table's
/// size, as the tests of the template use it).
const MIN_MOUNTS_ENV: &str = "RCONTAIN_TEMPLATE_MIN_MOUNTS";

/// The count of the runtime's mounts when it is below the threshold, so
/// that the copy is cheaper than the template. None where the kernel
/// cannot count them cheaply (listmount, Linux 6.8): the template then, as
/// reading mountinfo to count would cost what the copy does.
fn small_table() -> Option<usize> {
    let min = std::env::var(MIN_MOUNTS_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(TEMPLATE_MIN_MOUNTS);
    if min == 0 {
        return None;
    }
    crate::sys::count_mounts(min).ok().filter(|&n| n < min)
}

/// Filesystems whose mount reads no path of the host (source and options
/// are names and values): nothing of the host's tree is needed to mount
/// them.
const PATHLESS_FS: [&str; 7] = [
    "proc", "sysfs", "tmpfs", "devpts", "mqueue", "cgroup", "cgroup2",
];

/// Creates the init's new mount namespace: from the template where the
/// config allows it, else as a copy of the host's. Either way the host
/// paths the rootfs setup uses lead to the same mounts. Called in the
/// host's mount namespace, as root of the host's user namespace. `s` is
/// the rootfs setup that follows, into the new root by `switch`: with
/// nodes bound from the host (the runtime is in a user namespace, as root
/// of rootless podman's) the device nodes are bound from the host's, and
/// sysfs, mountable there only where the host's is visible, may be a bind
/// of /sys.
pub fn new_mount_ns(state_root: &Path, s: &Setup, switch: Switch) -> Result<()> {
    let copy = |why: &str| -> Result<()> {
        logging::debug(&format!("mount namespace: a copy of the host's ({why})"));
        nix::sched::unshare(CloneFlags::CLONE_NEWNS).context("creating the mount namespace")
    };
    // --no-pivot, or an image's layers the init mounts from host paths
    let host_tree = switch == Switch::Move || matches!(s.image, Some(ImageRootfs::Layers(_)));
    if let Some(why) = needs_host_tree(s.spec, host_tree) {
        return copy(why);
    }
    if let Some(n) = small_table() {
        return copy(&format!("{n} mounts, below the template's threshold"));
    }
    let Some(sources) = sources(s.spec, s.rootfs, s.bundle, s.cgroups, s.nodes) else {
        return copy("a bind source path that cannot be attached at its own path");
    };
    // Cloned in the host's namespace: open_tree clones only mounts of the
    // caller's own. A source that cannot be cloned (missing, unbindable)
    // takes the old path, which reports it as it always did.
    let mut trees = Vec::with_capacity(sources.len());
    for (p, recursive) in &sources {
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes())
            .map_err(|_| anyhow!("a NUL byte in {}", p.display()))?;
        match crate::sys::open_tree_clone(&c, *recursive) {
            Ok(t) => trees.push((p.as_path(), t)),
            Err(e) => return copy(&format!("cloning {}: {}", p.display(), e.desc())),
        }
    }
    let host = crate::sys::open(
        "/proc/self/ns/mnt",
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .context("opening /proc/self/ns/mnt")?;
    let tpl = match template(&state_root.join(DIR)) {
        Ok(t) => t,
        Err(e) => return copy(&format!("no template: {e:#}")),
    };
    if let Err(e) = enter(&tpl, trees) {
        // Whatever was made of the new namespace goes with it.
        crate::sys::setns(host.as_fd(), libc::CLONE_NEWNS)
            .context("returning to the host's mount namespace")?;
        return copy(&format!("from the template failed: {e:#}"));
    }
    logging::debug("mount namespace: from the template (no copy of the host's table)");
    Ok(())
}

/// Why this config needs the host's tree in the container's namespace
/// (see the module comment), if it does.
fn needs_host_tree(spec: &Spec, host_tree: bool) -> Option<&'static str> {
    if host_tree {
        return Some("--no-pivot, or an image's layers mounted by the init");
    }
    if let Some(h) = spec.hooks() {
        let any = |v: &Option<Vec<_>>| v.as_ref().is_some_and(|v| !v.is_empty());
        if any(h.prestart()) || any(h.create_runtime()) || any(h.create_container()) {
            return Some("prestart, createRuntime or createContainer hooks");
        }
    }
    let prop = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().as_deref());
    if prop.is_some_and(|p| p.contains("shared")) {
        return Some("a shared rootfsPropagation");
    }
    for m in spec.mounts().iter().flatten() {
        let o = parse_options(m.options().as_deref().unwrap_or(&[]));
        let typ = m.typ().as_deref().unwrap_or("");
        if !(o.bind || typ == "bind" || PATHLESS_FS.contains(&typ)) {
            return Some("a mount of a filesystem that may read host paths");
        }
    }
    None
}

/// The host paths `prepare` binds from (with nodes bound from the host,
/// as in a user namespace: the device nodes, and /sys, recursively, for a
/// sysfs mount, too), each once (recursive if any bind of it is), or `None` when they cannot all be attached at their paths on
/// the new root: a path with `..`, one inside another (creating the inner
/// one's mount point would write into the outer tree, a host filesystem),
/// or /proc or one below it (the init's /proc is there).
fn sources(
    spec: &Spec,
    rootfs: &Path,
    bundle: &Path,
    cg: &CgroupView,
    nodes: Nodes,
) -> Option<Vec<(PathBuf, bool)>> {
    let mut out: Vec<(PathBuf, bool)> = vec![(rootfs.to_path_buf(), true)];
    if nodes == Nodes::FromHost {
        let devices = spec.linux().as_ref().and_then(|l| l.devices().as_deref());
        out.extend(super::dev::paths(devices.unwrap_or(&[])).map(|p| (p.to_path_buf(), false)));
        let sysfs = |m: &oci_spec::runtime::Mount| m.typ().as_deref() == Some("sysfs");
        if spec.mounts().iter().flatten().any(sysfs) {
            out.push((PathBuf::from("/sys"), true));
        }
    }
    let mut cgroup = false;
    for m in spec.mounts().iter().flatten() {
        let o = parse_options(m.options().as_deref().unwrap_or(&[]));
        let typ = m.typ().as_deref().unwrap_or("");
        if o.bind || typ == "bind" {
            // No source: prepare reports it, on the old path.
            out.push((bind_source(m.source().as_ref()?, bundle), o.recursive_bind));
        } else if typ == "cgroup" || typ == "cgroup2" {
            cgroup = true;
        }
    }
    if cgroup && !(cg.pure_v2 && cg.own_ns) {
        for (mp, p, _) in &cg.hierarchies {
            out.push((mp.join(p.trim_start_matches('/')), false));
        }
    }
    let mut merged: Vec<(PathBuf, bool)> = Vec::new();
    for (p, rec) in out {
        if !p.is_absolute() || p.components().any(|c| c == Component::ParentDir) {
            return None;
        }
        let p: PathBuf = p.components().collect();
        match merged.iter_mut().find(|(q, _)| *q == p) {
            Some(e) => e.1 |= rec,
            None => merged.push((p, rec)),
        }
    }
    for (p, _) in &merged {
        if p.starts_with("/proc")
            || Path::new("/proc").starts_with(p)
            || merged.iter().any(|(q, _)| q != p && p.starts_with(q))
        {
            return None;
        }
    }
    Some(merged)
}

/// Join the template, unshare from it, make a tmpfs the new namespace's
/// root (with the /proc bind) and attach each tree at its path there.
fn enter(tpl: &OwnedFd, trees: Vec<(&Path, OwnedFd)>) -> Result<()> {
    let err = |what: &'static str| move |e: nix::errno::Errno| anyhow!("{what}: {}", e.desc());
    crate::sys::setns(tpl.as_fd(), libc::CLONE_NEWNS).map_err(err("joining the template"))?;
    nix::sched::unshare(CloneFlags::CLONE_NEWNS).map_err(err("unsharing from the template"))?;
    mount(
        Some("tmpfs"),
        NEW_ROOT,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=755"),
    )
    .map_err(err("mounting the new root's tmpfs"))?;
    let proc = format!("{NEW_ROOT}/proc");
    nix::unistd::mkdir(proc.as_str(), Mode::from_bits_truncate(0o555))
        .map_err(err("creating /proc on the new root"))?;
    mount(
        Some("/proc"),
        proc.as_str(),
        None::<&str>,
        MsFlags::MS_MOVE,
        None::<&str>,
    )
    .map_err(err("moving /proc"))?;
    // The template's root goes: the host paths below are the same as the
    // host's, and nothing of the template is left once the container's
    // own pivot_root detaches this root.
    nix::unistd::chdir(NEW_ROOT).map_err(err("chdir to the new root"))?;
    nix::unistd::pivot_root(".", ".").map_err(err("pivot_root to the new root"))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(err("detaching the template's root"))?;
    nix::unistd::chdir("/").map_err(err("chdir /"))?;
    for (p, tree) in trees {
        let is_dir = nix::sys::stat::fstat(std::os::fd::AsRawFd::as_raw_fd(&tree))
            .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
            .map_err(|e| anyhow!("stat of the clone of {}: {}", p.display(), e.desc()))?;
        // Only directories of our own tmpfs: no path is inside another.
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| anyhow!("creating {}: {e}", parent.display()))?;
        }
        if is_dir {
            std::fs::create_dir(p)
        } else {
            std::fs::File::create(p).map(drop)
        }
        .map_err(|e| anyhow!("creating {}: {e}", p.display()))?;
        crate::sys::attach_mount(tree.as_fd(), p)
            .map_err(|e| anyhow!("attaching the clone of {}: {}", p.display(), e.desc()))?;
    }
    Ok(())
}

/// The template pinned in `path`, made first if it is not there.
fn template(path: &Path) -> Result<OwnedFd> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().mode(0o700).create(path) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            bail!("creating {}: {e}", path.display())
        }
        _ => {}
    }
    let dir = crate::sys::open(
        path,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| anyhow!("opening {}: {}", path.display(), e.desc()))?;
    let st = nix::sys::stat::fstat(std::os::fd::AsRawFd::as_raw_fd(&dir))
        .map_err(|e| anyhow!("stat {}: {}", path.display(), e.desc()))?;
    // Whoever can write here could pin a namespace of their own making.
    if st.st_uid != 0 || st.st_mode & 0o022 != 0 {
        bail!(
            "{} is not a directory only root can write to",
            path.display()
        );
    }
    if let Some(t) = open_pin(&dir) {
        return Ok(t);
    }
    let _lock = lock(&dir, OFlag::O_CREAT)?;
    // Another init may have made it while we waited.
    if let Some(t) = open_pin(&dir) {
        return Ok(t);
    }
    let pin = at(&dir, "mnt", OFlag::O_RDONLY | OFlag::O_CREAT)?;
    match nix::sys::stat::mkdirat(
        Some(std::os::fd::AsRawFd::as_raw_fd(&dir)),
        "root",
        Mode::from_bits_truncate(0o700),
    ) {
        Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
        Err(e) => bail!("creating {}/root: {}", path.display(), e.desc()),
    }
    let host = crate::sys::open(
        "/proc/self/ns/mnt",
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .context("opening /proc/self/ns/mnt")?;
    nix::sched::unshare(CloneFlags::CLONE_NEWNS).context("unshare")?;
    let made = make_template(&path.join("root"));
    crate::sys::setns(host.as_fd(), libc::CLONE_NEWNS)
        .context("returning to the host's mount namespace")?;
    let tpl = made?;
    mount(
        Some(super::safepath::fd_path(&tpl).as_str()),
        super::safepath::fd_path(&pin).as_str(),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| {
        anyhow!(
            "pinning the template on {}/mnt: {}",
            path.display(),
            e.desc()
        )
    })?;
    logging::debug(&format!(
        "mount namespace template made, pinned on {}/mnt",
        path.display()
    ));
    Ok(tpl)
}

/// Unpins the template of `state_root` and removes its directory if
/// `idle` (no container left there) still holds under the lock that makes
/// it. An init that opened it before keeps its namespace through its fd;
/// one waiting for the lock finds the directory gone and takes the copy.
pub fn release(state_root: &Path, idle: impl FnOnce() -> bool) {
    let path = state_root.join(DIR);
    let Ok(dir) = crate::sys::open(
        &path,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) else {
        return; // never made here (rootless, or no config that uses it)
    };
    let Ok(_lock) = lock(&dir, OFlag::empty()) else {
        return;
    };
    if !idle() {
        return;
    }
    let mnt = path.join("mnt");
    if open_pin(&dir).is_some() {
        if let Err(e) = umount2(&mnt, MntFlags::MNT_DETACH) {
            logging::warn(&format!(
                "unpinning the mount namespace template {}: {}",
                mnt.display(),
                e.desc()
            ));
            return;
        }
    }
    let _ = std::fs::remove_file(&mnt);
    let _ = std::fs::remove_dir(path.join("root"));
    let _ = std::fs::remove_file(path.join("lock"));
    let _ = std::fs::remove_dir(&path);
}

/// The template's lock, held until dropped: making and unpinning it are
/// serialised.
fn lock(dir: &OwnedFd, create: OFlag) -> Result<OwnedFd> {
    let lock = at(dir, "lock", OFlag::O_RDWR | create)?;
    crate::sys::flock(lock.as_fd(), libc::LOCK_EX).context("locking the template")?;
    Ok(lock)
}

fn at(dir: &OwnedFd, name: &str, flags: OFlag) -> Result<OwnedFd> {
    crate::sys::openat(
        Some(std::os::fd::AsRawFd::as_raw_fd(dir)),
        name,
        flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )
    .map_err(|e| anyhow!("opening {DIR}/{name} in the state root: {}", e.desc()))
}

/// The template, if `mnt` in `dir` is a mount namespace's nsfs file (and
/// not the empty file it is bound on, left alone after an unmount, nor
/// another kind of namespace someone bound there).
fn open_pin(dir: &OwnedFd) -> Option<OwnedFd> {
    let fd = at(dir, "mnt", OFlag::O_RDONLY).ok()?;
    let st = nix::sys::statfs::fstatfs(&fd).ok()?;
    (st.filesystem_type() == nix::sys::statfs::NSFS_MAGIC
        && crate::sys::ns_type(fd.as_fd()) == Ok(libc::CLONE_NEWNS))
    .then_some(fd)
}

/// In a fresh private copy of the host's namespace: put a read-only empty
/// tmpfs with a bind of /proc at its root, take the host's tree away and
/// return an fd of what is left.
fn make_template(root: &Path) -> Result<OwnedFd> {
    let err = |what: &str| {
        let what = what.to_string();
        move |e: nix::errno::Errno| anyhow!("{what}: {}", e.desc())
    };
    // Nothing of what follows may propagate to the host.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(err("making the copy private"))?;
    mount(
        Some("tmpfs"),
        root,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=755,size=16k"),
    )
    .map_err(err("mounting the template's tmpfs"))?;
    for (d, mode) in [("proc", 0o555), (&NEW_ROOT[1..], 0o700)] {
        nix::unistd::mkdir(root.join(d).as_path(), Mode::from_bits_truncate(mode))
            .map_err(err("creating the template's directories"))?;
    }
    // The init's pid, mount points named by /proc/self/fd/N and the
    // hosts's procfs checks before pivot_root all need a /proc.
    mount(
        Some("/proc"),
        root.join("proc").as_path(),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(err("binding /proc"))?;
    nix::unistd::chdir(root).map_err(err("chdir"))?;
    nix::unistd::pivot_root(".", ".").map_err(err("pivot_root"))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(err("detaching the host's tree"))?;
    nix::unistd::chdir("/").map_err(err("chdir /"))?;
    // Every container's copy shares this tmpfs: nothing may write to it.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REMOUNT
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV
            | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(err("making the template read-only"))?;
    crate::sys::open(
        "/proc/self/ns/mnt",
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(err("opening the template's nsfs file"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(mounts: serde_json::Value) -> Spec {
        let mut s = Spec::default();
        s.set_mounts(Some(serde_json::from_value(mounts).unwrap()));
        s.set_hooks(None);
        s
    }

    /// `sources` of the bundle /b with its rootfs at /b/rootfs, on a host
    /// whose cgroups need no source
    fn bundle_sources(s: &Spec, nodes: Nodes) -> Option<Vec<(PathBuf, bool)>> {
        sources(
            s,
            Path::new("/b/rootfs"),
            Path::new("/b"),
            &CgroupView::default(),
            nodes,
        )
    }

    #[test]
    fn sources_are_mirrorable() {
        let s = spec(serde_json::json!([
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/a", "type": "bind", "source": "/srv/a", "options": ["rbind"]},
            {"destination": "/b", "source": "data//b/.", "options": ["bind"]},
            {"destination": "/c", "source": "/srv/a", "options": ["bind"]},
        ]));
        let got = bundle_sources(&s, Nodes::Made).unwrap();
        assert_eq!(
            got,
            [
                (PathBuf::from("/b/rootfs"), true),
                (PathBuf::from("/srv/a"), true),
                (PathBuf::from("/b/data/b"), false)
            ]
        );
        // inside another source, through .., or at /proc
        for src in ["/b/rootfs/x", "/b", "/srv/../etc", "/proc/x", "/"] {
            let s = spec(serde_json::json!([
                {"destination": "/a", "type": "bind", "source": src}
            ]));
            assert!(bundle_sources(&s, Nodes::Made).is_none(), "{src}");
        }
    }

    #[test]
    fn in_a_user_namespace_host_nodes_and_sys_are_sources() {
        let mut s = spec(serde_json::json!([]));
        let mut linux = oci_spec::runtime::Linux::default();
        linux.set_devices(Some(
            serde_json::from_value(serde_json::json!([
                {"path": "/dev/null", "type": "c", "major": 1, "minor": 3},
                {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}
            ]))
            .unwrap(),
        ));
        s.set_linux(Some(linux));
        let got = bundle_sources(&s, Nodes::FromHost).unwrap();
        let got: Vec<_> = got.iter().map(|(p, r)| (p.to_str().unwrap(), *r)).collect();
        assert_eq!(
            got,
            [
                ("/b/rootfs", true),
                ("/dev/zero", false),
                ("/dev/full", false),
                ("/dev/random", false),
                ("/dev/urandom", false),
                ("/dev/tty", false),
                ("/dev/null", false),
                ("/dev/fuse", false)
            ]
        );
        // a volume from the host's /dev holds them: no tree at each path
        s.set_mounts(Some(
            serde_json::from_value(serde_json::json!([
                {"destination": "/hostdev", "type": "bind", "source": "/dev"}
            ]))
            .unwrap(),
        ));
        assert!(bundle_sources(&s, Nodes::FromHost).is_none());
        assert!(bundle_sources(&s, Nodes::Made).is_some());
        // sysfs, which may become a bind of /sys there
        s.set_mounts(Some(
            serde_json::from_value(serde_json::json!([
                {"destination": "/sys", "type": "sysfs", "source": "sysfs"}
            ]))
            .unwrap(),
        ));
        let got = bundle_sources(&s, Nodes::FromHost).unwrap();
        assert_eq!(got.last().unwrap(), &(PathBuf::from("/sys"), true));
        let got = bundle_sources(&s, Nodes::Made).unwrap();
        assert_eq!(got, [(PathBuf::from("/b/rootfs"), true)]);
    }

    #[test]
    fn what_needs_the_host_tree() {
        let s = spec(serde_json::json!([
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/x", "type": "bind", "source": "/x"},
        ]));
        assert_eq!(needs_host_tree(&s, false), None);
        assert!(needs_host_tree(&s, true).is_some());
        let s = spec(serde_json::json!([
            {"destination": "/x", "type": "overlay", "source": "overlay", "options": ["lowerdir=/l"]}
        ]));
        assert!(needs_host_tree(&s, false).is_some());
    }
}
