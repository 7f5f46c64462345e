//! The `mounts` of config.json: option parsing and mounting each entry at
//! its destination resolved inside the rootfs (see safepath).

use crate::kernel::Kernel;
use crate::rootfs::safepath::{self, fd_path};
use anyhow::{anyhow, bail, Context, Result};
use nix::mount::MsFlags;
use oci_spec::runtime::Mount;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// The parsed form of a mount's `options`.
#[derive(Debug, PartialEq, Eq)]
pub struct Options {
    pub flags: MsFlags,
    /// Flags an option turned off (rw, suid, …): matters on bind remounts.
    pub cleared: MsFlags,
    pub propagation: Vec<MsFlags>,
    pub data: Vec<String>,
    /// mount_setattr(AT_RECURSIVE) attributes from rro, rnosuid, …
    pub rec_set: u64,
    pub rec_clear: u64,
    pub bind: bool,
    pub recursive_bind: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            flags: MsFlags::empty(),
            cleared: MsFlags::empty(),
            propagation: Vec::new(),
            data: Vec::new(),
            rec_set: 0,
            rec_clear: 0,
            bind: false,
            recursive_bind: false,
        }
    }
}

pub fn parse_options(opts: &[String]) -> Options {
    let mut o = Options::default();
    for opt in opts {
        let (set, clear): (MsFlags, MsFlags) = match opt.as_str() {
            "defaults" => (MsFlags::empty(), MsFlags::empty()),
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
            "lazytime" => (MsFlags::MS_LAZYTIME, MsFlags::empty()),
            "nolazytime" => (MsFlags::empty(), MsFlags::MS_LAZYTIME),
            "silent" => (MsFlags::MS_SILENT, MsFlags::empty()),
            "loud" => (MsFlags::empty(), MsFlags::MS_SILENT),
            "bind" => {
                o.bind = true;
                continue;
            }
            "rbind" => {
                o.bind = true;
                o.recursive_bind = true;
                continue;
            }
            p @ ("private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave"
            | "unbindable" | "runbindable") => {
                o.propagation.push(propagation_flag(p).unwrap());
                continue;
            }
            r if r.starts_with('r') && recursive_attr(&r[1..]).is_some() => {
                let (attr, on) = recursive_attr(&r[1..]).unwrap();
                if on {
                    o.rec_set |= attr;
                } else {
                    o.rec_clear |= attr;
                }
                continue;
            }
            // Only meaningful to other runtimes' tmpfs handling; the data
            // string must not carry it to the kernel.
            "tmpcopyup" => continue,
            other => {
                o.data.push(other.to_string());
                continue;
            }
        };
        o.flags.insert(set);
        o.flags.remove(clear);
        o.cleared.insert(clear);
        o.cleared.remove(set);
    }
    o
}

pub fn propagation_flag(p: &str) -> Option<MsFlags> {
    Some(match p {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    })
}

/// "ro" -> (MOUNT_ATTR_RDONLY, set), "rw" -> (MOUNT_ATTR_RDONLY, clear), …
fn recursive_attr(o: &str) -> Option<(u64, bool)> {
    Some(match o {
        "ro" => (libc::MOUNT_ATTR_RDONLY, true),
        "rw" => (libc::MOUNT_ATTR_RDONLY, false),
        "nosuid" => (libc::MOUNT_ATTR_NOSUID, true),
        "suid" => (libc::MOUNT_ATTR_NOSUID, false),
        "nodev" => (libc::MOUNT_ATTR_NODEV, true),
        "dev" => (libc::MOUNT_ATTR_NODEV, false),
        "noexec" => (libc::MOUNT_ATTR_NOEXEC, true),
        "exec" => (libc::MOUNT_ATTR_NOEXEC, false),
        "noatime" => (libc::MOUNT_ATTR_NOATIME, true),
        "nodiratime" => (libc::MOUNT_ATTR_NODIRATIME, true),
        "relatime" => (libc::MOUNT_ATTR_RELATIME, true),
        "strictatime" => (libc::MOUNT_ATTR_STRICTATIME, true),
        _ => return None,
    })
}

/// Where the container's cgroups are on the host, read from /proc/self/cgroup
/// by the init after it was placed in its cgroup and before it unshared a
/// cgroup namespace: the sources for cgroup bind mounts.
#[derive(Debug, Default, Clone)]
pub struct CgroupView {
    /// (host mount point, path of the container's cgroup in it, controllers)
    pub hierarchies: Vec<(PathBuf, String, String)>,
    pub pure_v2: bool,
    pub own_ns: bool,
}

impl CgroupView {
    /// `proc`: the host's procfs (safepath::host_proc), where the init
    /// finds its own cgroup and mount table whatever a mount namespace
    /// joined by path has at /proc.
    pub fn read(own_ns: bool, proc: BorrowedFd) -> Result<CgroupView> {
        let pure_v2 = nix::sys::statfs::statfs("/sys/fs/cgroup")
            .map(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
            .unwrap_or(false);
        let own =
            crate::sys::read_proc_at(proc, "self/cgroup").context("reading /proc/self/cgroup")?;
        // (controllers, path of our cgroup) per hierarchy to bind
        let wanted: Vec<(&str, &str)> = own
            .lines()
            .filter_map(|line| {
                let mut f = line.splitn(3, ':');
                let (_, ctrls, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or("/"));
                // On v1 and hybrid hosts the container gets the v1
                // hierarchies (as with runc), not the hybrid cgroup2 one.
                (pure_v2 || !ctrls.is_empty()).then_some((ctrls, path))
            })
            .collect();
        // The first mount of each hierarchy at its root, with its position
        // in mountinfo, read only until all are found.
        let mut hits: Vec<Option<(usize, PathBuf)>> = vec![None; wanted.len()];
        let mut pos = 0;
        crate::sys::mountinfo::scan_at(proc, |e| {
            for (hit, (ctrls, _)) in hits.iter_mut().zip(&wanted) {
                if hit.is_none() && is_cgroup_mount_of(&e, ctrls) {
                    *hit = Some((pos, PathBuf::from(&e.mount_point)));
                }
            }
            pos += 1;
            hits.iter().all(Option::is_some)
        })
        .context("reading /proc/self/mountinfo")?;
        let mut hierarchies: Vec<_> = hits
            .into_iter()
            .zip(&wanted)
            .filter_map(|(hit, (ctrls, path))| {
                hit.map(|(pos, mp)| (pos, mp, path.to_string(), ctrls.to_string()))
            })
            .collect();
        // In the host's mount order, so the container's mount table reads
        // like the host's.
        hierarchies.sort_by_key(|h| h.0);
        let hierarchies = hierarchies
            .into_iter()
            .map(|(_, mp, p, c)| (mp, p, c))
            .collect();
        Ok(CgroupView {
            hierarchies,
            pure_v2,
            own_ns,
        })
    }
}

/// Whether `e` is a mount, at its root, of the hierarchy with exactly these
/// controllers ("" = cgroup2).
fn is_cgroup_mount_of(e: &crate::sys::mountinfo::Entry, ctrls: &str) -> bool {
    if e.root != "/" {
        return false;
    }
    match e.fstype.as_str() {
        "cgroup2" => ctrls.is_empty(),
        "cgroup" => {
            let want: Vec<&str> = ctrls.split(',').collect();
            let have: Vec<&str> = e
                .super_options
                .split(',')
                .filter(|o| want.contains(o) || o.starts_with("name="))
                .collect();
            !ctrls.is_empty() && have.len() == want.len() && want.iter().all(|w| have.contains(w))
        }
        _ => false,
    }
}

/// Files below /proc that may be mounted over, as runc allows: what lxcfs
/// emulates. Any other mount inside procfs is refused.
const PROC_OVERRIDES: [&str; 13] = [
    "/proc/cpuinfo",
    "/proc/diskstats",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/swaps",
    "/proc/uptime",
    "/proc/loadavg",
    "/proc/slabinfo",
    "/proc/pressure/cpu",
    "/proc/pressure/io",
    "/proc/pressure/memory",
    "/proc/net/dev",
    "/proc/sys/kernel/ns_last_pid",
];

/// The filesystem a mount entry puts at its destination, when it is one
/// that masked and read-only paths below it rely on (procfs, sysfs).
pub fn pseudo_fs_magic(m: &Mount) -> Option<nix::sys::statfs::FsType> {
    let bind = m.typ().as_deref() == Some("bind")
        || m.options()
            .iter()
            .flatten()
            .any(|o| o == "bind" || o == "rbind");
    match m.typ().as_deref() {
        _ if bind => None,
        Some("proc") => Some(nix::sys::statfs::PROC_SUPER_MAGIC),
        Some("sysfs") => Some(nix::sys::statfs::SYSFS_MAGIC),
        _ => None,
    }
}

/// `dest` is /proc or below it, component-wise.
fn in_proc(dest: &str) -> bool {
    Path::new(dest).starts_with("/proc")
}

/// What a mount entry puts on its mount point.
#[derive(Clone, Copy)]
enum Mounted {
    /// A new filesystem: its mount point is a directory.
    NewFs,
    /// A bind of a host path: a directory or not, on a procfs or not.
    Bind { dir: bool, procfs: bool },
}

/// Where a mount entry goes, as an O_PATH fd of the (created) mount point.
/// procfs and sysfs, and anything at or below /proc, only on a path without
/// a single symlink, and over /proc only procfs itself or the lxcfs files
/// (CVE-2019-19921, CVE-2023-27561, as runc): a symlink in the image would
/// otherwise put /proc somewhere else, or a mount over procfs files. Any
/// other destination that resolves into a procfs is refused as well.
fn mount_point(root: BorrowedFd, m: &Mount, dest: &str, what: Mounted) -> Result<OwnedFd> {
    let (is_dir, src_is_procfs) = match what {
        Mounted::NewFs => (true, false),
        Mounted::Bind { dir, procfs } => (dir, procfs),
    };
    let typ = m.typ().as_deref().unwrap_or("");
    let strict = pseudo_fs_magic(m).is_some() || in_proc(dest);
    if in_proc(dest) {
        if Path::new(dest) == Path::new("/proc") {
            if !(typ == "proc" && pseudo_fs_magic(m).is_some() || src_is_procfs) {
                bail!("only procfs may be mounted on /proc, not {typ:?}");
            }
        } else if !PROC_OVERRIDES
            .iter()
            .any(|p| Path::new(p) == Path::new(dest))
        {
            bail!(
                "{dest} is inside /proc: only {} may be mounted there",
                PROC_OVERRIDES.join(", ")
            );
        }
    }
    let fd = match (strict, is_dir) {
        (true, true) => safepath::mkdir_all_no_symlinks(root, dest, 0o755),
        (true, false) => safepath::create_file_no_symlinks(root, dest),
        (false, true) => safepath::mkdir_all_in_root(root, dest, 0o755),
        (false, false) => safepath::create_file_in_root(root, dest),
    }
    .map_err(|e| match e {
        nix::errno::Errno::ELOOP | nix::errno::Errno::ENOTDIR if strict => anyhow!(
            "creating the mount point: {dest} is a symlink, is reached through one or is not a \
             directory in the rootfs; refusing to mount {typ} there"
        ),
        e => anyhow!("creating the mount point: {}", e.desc()),
    })?;
    if !strict && on_procfs(&fd)? {
        bail!("{dest} resolves into a procfs (through a symlink in the rootfs); refusing to mount over it");
    }
    Ok(fd)
}

fn on_procfs(fd: &OwnedFd) -> Result<bool> {
    let st = nix::sys::statfs::fstatfs(fd)
        .map_err(|e| anyhow!("statfs of the mount point: {}", e.desc()))?;
    Ok(st.filesystem_type() == nix::sys::statfs::PROC_SUPER_MAGIC)
}

/// Mount one config.json entry inside the rootfs behind `root`; returns
/// the new mount (what is at its destination now), for what goes inside.
pub fn mount_entry(
    k: &dyn Kernel,
    root: BorrowedFd,
    m: &Mount,
    index: usize,
    bundle: &Path,
    cg: &CgroupView,
) -> Result<OwnedFd> {
    let dest = m.destination().to_string_lossy().into_owned();
    let field = || format!("mounts[{index}] ({dest})");
    let opts = parse_options(m.options().as_deref().unwrap_or(&[]));
    let typ = m.typ().as_deref().unwrap_or("");
    if m.options()
        .iter()
        .flatten()
        .any(|o| o == "idmap" || o == "ridmap")
        || m.uid_mappings().is_some()
    {
        bail!("{}: id-mapped mounts are not supported", field());
    }
    if opts.bind || typ == "bind" {
        return mount_bind(k, root, m, &dest, &opts, bundle, &field);
    }
    let target = mount_point(root, m, &dest, Mounted::NewFs).with_context(field)?;
    let m = if typ == "cgroup" || typ == "cgroup2" {
        mount_cgroup(k, root, &dest, target, &opts, cg).with_context(field)?
    } else {
        let src = m
            .source()
            .as_ref()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| typ.to_string());
        match new_fs(k, typ, &src, opts.flags, &opts.data, target.as_fd()) {
            Ok(Some(m)) => m,
            Ok(None) => reopen(root, &dest)
                .context("reopening the mount point")
                .with_context(field)?,
            // In a user namespace sysfs cannot be mounted without owning the
            // network namespace; a read-only bind of the host's is what runc
            // does.
            Err(nix::errno::Errno::EPERM) if typ == "sysfs" => {
                let m = bind(k, Path::new("/sys"), target.as_fd(), true, || {
                    reopen(root, &dest)
                })
                .with_context(|| format!("{}: bind mounting /sys", field()))?;
                finish_bind(k, m.as_fd(), &opts).with_context(field)?;
                m
            }
            Err(e) => bail!(
                "{}: mounting {typ} (options {:?}): {}",
                field(),
                m.options().as_deref().unwrap_or(&[]),
                e.desc()
            ),
        }
    };
    set_propagation_and_attrs(k, m.as_fd(), &opts).with_context(field)?;
    Ok(m)
}

/// A bind mount's source: relative to the bundle unless absolute (the
/// template resolves it as `mount_bind` does).
pub(super) fn bind_source(src: &Path, bundle: &Path) -> PathBuf {
    if src.is_absolute() {
        src.to_path_buf()
    } else {
        bundle.join(src)
    }
}

/// A bind mount entry (`field()` names it in errors): the source, relative
/// to the bundle unless absolute, onto its mount point, then its flags,
/// propagation and recursive attributes.
fn mount_bind(
    k: &dyn Kernel,
    root: BorrowedFd,
    m: &Mount,
    dest: &str,
    opts: &Options,
    bundle: &Path,
    field: &dyn Fn() -> String,
) -> Result<OwnedFd> {
    let src = m
        .source()
        .as_ref()
        .ok_or_else(|| anyhow!("{}: source is required for a bind mount", field()))?;
    let src = bind_source(src, bundle);
    let meta = std::fs::metadata(&src)
        .map_err(|e| anyhow!("{}: source {}: {e}", field(), src.display()))?;
    let what = Mounted::Bind {
        dir: meta.is_dir(),
        procfs: nix::sys::statfs::statfs(&src)
            .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::PROC_SUPER_MAGIC),
    };
    let target = mount_point(root, m, dest, what).with_context(field)?;
    let m = bind(k, &src, target.as_fd(), opts.recursive_bind, || {
        reopen(root, dest)
    })
    .with_context(|| format!("{}: bind mounting {}", field(), src.display()))?;
    finish_bind(k, m.as_fd(), opts).with_context(field)?;
    set_propagation_and_attrs(k, m.as_fd(), opts).with_context(field)?;
    Ok(m)
}

/// A new `typ` filesystem from `src` with mount(2)'s `flags` and `data`
/// options, on the mount point `target`. It is made detached (fsopen,
/// fsconfig, fsmount) and attached onto the fd with move_mount, and the
/// returned fd names it for every later step (propagation, attributes,
/// what goes inside it): the destination's path looked up again could
/// meanwhile lead elsewhere (a shared volume another container renames).
/// Where fsopen is missing (ENOSYS: before Linux 5.2, or a seccomp
/// profile on the host) mount(2) onto the fd does it, and `None` says that
/// only the destination looked up again can name the mount.
///
/// What the container sees in mountinfo is what mount(2) gives: mount(2)
/// itself hands the source and each comma-separated data item to the
/// filesystem as these fsconfig calls do, its superblock flags become
/// fsconfig flags and the rest fsmount attributes (`new_fs_flags`).
pub fn new_fs(
    k: &dyn Kernel,
    typ: &str,
    src: &str,
    flags: MsFlags,
    data: &[String],
    target: BorrowedFd,
) -> nix::Result<Option<OwnedFd>> {
    use crate::sys::FsOption;
    let flags = flags & !MsFlags::MS_REMOUNT;
    let (sb, attrs) = new_fs_flags(flags);
    let items: Vec<&str> = data.iter().flat_map(|d| split_data(d)).collect();
    let opts: Vec<FsOption> = std::iter::once(FsOption::String("source", src))
        .chain(sb.into_iter().map(FsOption::Flag))
        .chain(items.iter().filter_map(|i| match i.split_once('=') {
            // mount(2) skips an item without a key.
            Some(("", _)) => None,
            Some((k, v)) => Some(FsOption::String(k, v)),
            None => Some(FsOption::Flag(i)),
        }))
        .collect();
    match k.new_mount(typ, &opts, attrs) {
        Ok(m) => {
            k.attach_mount_at(m.as_fd(), target)?;
            Ok(Some(m))
        }
        Err(nix::errno::Errno::ENOSYS) => {
            let data = data.join(",");
            k.mount(
                Some(Path::new(src)),
                Path::new(&fd_path(target)),
                Some(typ),
                flags,
                (!data.is_empty()).then_some(data.as_str()),
            )?;
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// mount(2)'s flags for a new filesystem as the new mount API takes them:
/// superblock flags as fsconfig keys, the others as fsmount attributes.
/// mount(2) puts MS_RDONLY on both the superblock and the mount, and so
/// does this. Its atime rules: relatime unless noatime, and strictatime
/// overrides both. MS_SILENT only quiets the kernel log while mounting and
/// has no fsconfig key: dropped.
fn new_fs_flags(flags: MsFlags) -> (Vec<&'static str>, u64) {
    let sb = [
        (MsFlags::MS_RDONLY, "ro"),
        (MsFlags::MS_SYNCHRONOUS, "sync"),
        (MsFlags::MS_DIRSYNC, "dirsync"),
        (MsFlags::MS_MANDLOCK, "mand"),
        (MsFlags::MS_LAZYTIME, "lazytime"),
    ]
    .into_iter()
    .filter(|(f, _)| flags.contains(*f))
    .map(|(_, k)| k)
    .collect();
    let mut attrs = [
        (MsFlags::MS_RDONLY, libc::MOUNT_ATTR_RDONLY),
        (MsFlags::MS_NOSUID, libc::MOUNT_ATTR_NOSUID),
        (MsFlags::MS_NODEV, libc::MOUNT_ATTR_NODEV),
        (MsFlags::MS_NOEXEC, libc::MOUNT_ATTR_NOEXEC),
        (MsFlags::MS_NODIRATIME, libc::MOUNT_ATTR_NODIRATIME),
    ]
    .into_iter()
    .filter(|(f, _)| flags.contains(*f))
    .fold(0, |a, (_, attr)| a | attr);
    attrs |= if flags.contains(MsFlags::MS_STRICTATIME) {
        libc::MOUNT_ATTR_STRICTATIME
    } else if flags.contains(MsFlags::MS_NOATIME) {
        libc::MOUNT_ATTR_NOATIME
    } else {
        libc::MOUNT_ATTR_RELATIME
    };
    (sb, attrs)
}

/// The items of a mount(2) data option, as the kernel splits its data
/// string: at commas, except inside double quotes (LSM contexts such as
/// `context="…:c1,c2"`); empty items dropped.
fn split_data(d: &str) -> impl Iterator<Item = &str> {
    let mut quoted = false;
    d.split(move |c| {
        if c == '"' {
            quoted = !quoted;
        }
        c == ',' && !quoted
    })
    .filter(|i| !i.is_empty())
}

/// Bind `src` onto the mount point `target` (recursively: with the mounts
/// below `src`). Returns an fd of the new mount, through which every later
/// step (remount, propagation, attributes) reaches exactly that mount: a
/// path looked up again could meanwhile lead elsewhere (a shared volume
/// another container renames under us). Where open_tree(2) is missing
/// (ENOSYS: before Linux 5.2, or a seccomp profile) a mount(2) bind takes
/// its place and `reopen` (the destination looked up again) names the mount.
pub fn bind(
    k: &dyn Kernel,
    src: &Path,
    target: BorrowedFd,
    recursive: bool,
    reopen: impl FnOnce() -> Result<OwnedFd>,
) -> Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(src.as_os_str().as_bytes())
        .map_err(|_| anyhow!("a NUL byte in the path"))?;
    match k.open_tree_clone(&c, recursive) {
        Ok(m) => {
            k.attach_mount_at(m.as_fd(), target)
                .map_err(|e| anyhow!("{}", e.desc()))?;
            Ok(m)
        }
        Err(nix::errno::Errno::ENOSYS) => {
            let rec = if recursive {
                MsFlags::MS_REC
            } else {
                MsFlags::empty()
            };
            k.mount(
                Some(src),
                Path::new(&fd_path(target)),
                None,
                MsFlags::MS_BIND | rec,
                None::<&str>,
            )
            .map_err(|e| anyhow!("{}", e.desc()))?;
            reopen().context("reopening the mount point")
        }
        Err(e) => Err(anyhow!("{}", e.desc())),
    }
}

/// `bind` of what the fd `src` names: open_tree on the fd itself, so no
/// path is looked up, not even /proc/self/fd/N (after joining a mount
/// namespace by path, /proc is whatever its owner put there).
pub fn bind_fd(
    k: &dyn Kernel,
    src: BorrowedFd,
    target: BorrowedFd,
    recursive: bool,
    reopen: impl FnOnce() -> Result<OwnedFd>,
) -> Result<OwnedFd> {
    match k.open_tree_clone_fd(src, recursive) {
        Ok(m) => {
            k.attach_mount_at(m.as_fd(), target)
                .map_err(|e| anyhow!("{}", e.desc()))?;
            Ok(m)
        }
        // No open_tree (before Linux 5.2, or a seccomp profile): the
        // fd's /proc/self/fd link is the only way to name its object.
        Err(nix::errno::Errno::ENOSYS) => {
            bind(k, Path::new(&fd_path(src)), target, recursive, reopen)
        }
        Err(e) => Err(anyhow!("{}", e.desc())),
    }
}

/// Bind mounts take their flags (ro, nosuid, …) only from a change of the
/// mount `m` made by `bind`: mount_setattr on its fd sets those asked for
/// and clears the others, as a bind remount does. Flags the kernel locked
/// (a bind of a nosuid mount from a user namespace, …) must be kept or
/// the change fails.
fn finish_bind(k: &dyn Kernel, m: BorrowedFd, opts: &Options) -> Result<()> {
    let flags = opts.flags & !(MsFlags::MS_REMOUNT | MsFlags::MS_REC);
    if flags.is_empty() {
        return Ok(());
    }
    let (set, clear) = bind_remount_attrs(flags);
    let setattr = |locked: u64| {
        k.mount_setattr(m, "", false, set | locked, clear & !locked)
            .map_err(|e| anyhow!("remounting with {:?}: {}", flags, e.desc()))
    };
    match k.mount_setattr(m, "", false, set, clear) {
        Err(nix::errno::Errno::EPERM) => {
            return setattr(bind_remount_attrs(locked_flags(m)).0);
        }
        // No mount_setattr (before Linux 5.12, or a seccomp profile): a
        // remount through the mount's /proc/self/fd link.
        Err(nix::errno::Errno::ENOSYS) => {}
        r => return r.map_err(|e| anyhow!("remounting with {:?}: {}", flags, e.desc())),
    }
    let remount = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | flags;
    let at = fd_path(m);
    match k.mount(None, Path::new(&at), None, remount, None) {
        Err(nix::errno::Errno::EPERM) => k
            .mount(None, Path::new(&at), None, remount | locked_flags(m), None)
            .map_err(|e| anyhow!("remounting with {:?}: {}", flags, e.desc())),
        r => r.map_err(|e| anyhow!("remounting with {:?}: {}", flags, e.desc())),
    }
}

/// What a bind remount with `flags` does to a mount, as mount_setattr's
/// (set, clear): each per-mount flag is set if given and cleared if not;
/// the atime mode changes only if one of the atime flags is given
/// (relatime unless noatime, strictatime overriding both).
fn bind_remount_attrs(flags: MsFlags) -> (u64, u64) {
    let mut set = 0;
    let mut clear = 0;
    for (f, a) in [
        (MsFlags::MS_RDONLY, libc::MOUNT_ATTR_RDONLY),
        (MsFlags::MS_NOSUID, libc::MOUNT_ATTR_NOSUID),
        (MsFlags::MS_NODEV, libc::MOUNT_ATTR_NODEV),
        (MsFlags::MS_NOEXEC, libc::MOUNT_ATTR_NOEXEC),
        (MsFlags::MS_NODIRATIME, libc::MOUNT_ATTR_NODIRATIME),
    ] {
        if flags.contains(f) {
            set |= a;
        } else {
            clear |= a;
        }
    }
    let atime = MsFlags::MS_NOATIME
        | MsFlags::MS_NODIRATIME
        | MsFlags::MS_RELATIME
        | MsFlags::MS_STRICTATIME;
    if flags.intersects(atime) {
        clear |= libc::MOUNT_ATTR__ATIME;
        set |= if flags.contains(MsFlags::MS_STRICTATIME) {
            libc::MOUNT_ATTR_STRICTATIME
        } else if flags.contains(MsFlags::MS_NOATIME) {
            libc::MOUNT_ATTR_NOATIME
        } else {
            libc::MOUNT_ATTR_RELATIME
        };
    }
    (set, clear)
}

/// The flags of the mount `m`: a fresh bind has its source's.
fn locked_flags(m: BorrowedFd) -> MsFlags {
    use nix::sys::statvfs::FsFlags;
    let mut f = MsFlags::empty();
    if let Ok(st) = nix::sys::statvfs::fstatvfs(m) {
        let fl = st.flags();
        for (s, m) in [
            (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
            (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
            (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
            (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
        ] {
            if fl.contains(s) {
                f |= m;
            }
        }
    }
    f
}

/// Propagation and recursive attributes (rro, rnosuid, …) of the mount `m`.
fn set_propagation_and_attrs(k: &dyn Kernel, m: BorrowedFd, opts: &Options) -> Result<()> {
    let types =
        MsFlags::MS_SHARED | MsFlags::MS_SLAVE | MsFlags::MS_PRIVATE | MsFlags::MS_UNBINDABLE;
    for p in &opts.propagation {
        let typ = (*p & types).bits();
        match k.set_propagation(m, typ, p.contains(MsFlags::MS_REC)) {
            // No mount_setattr (before Linux 5.12, or a seccomp profile):
            // mount(2) through the mount's /proc/self/fd link.
            Err(nix::errno::Errno::ENOSYS) => {}
            r => {
                r.map_err(|e| anyhow!("setting propagation {:?}: {}", p, e.desc()))?;
                continue;
            }
        }
        k.mount(None, Path::new(&fd_path(m)), None, *p, None)
            .map_err(|e| anyhow!("setting propagation {:?}: {}", p, e.desc()))?;
    }
    if opts.rec_set != 0 || opts.rec_clear != 0 {
        k.mount_setattr(m, "", true, opts.rec_set, opts.rec_clear)
            .map_err(|e| anyhow!("mount_setattr: {}", e.desc()))?;
    }
    Ok(())
}

/// Binds the container's cgroup `path` in the hierarchy mounted at `mp`
/// onto `target` (`dest` in the rootfs behind `root`); returns the new
/// mount, for `finish_bind`.
fn bind_cgroup(
    k: &dyn Kernel,
    mp: &Path,
    path: &str,
    root: BorrowedFd,
    dest: &str,
    target: BorrowedFd,
) -> Result<OwnedFd> {
    let src = mp.join(path.trim_start_matches('/'));
    bind(k, &src, target, false, || reopen(root, dest))
        .with_context(|| format!("bind mounting {}", src.display()))
}

/// The mount now at `dest` in the rootfs behind `root`.
fn reopen(root: BorrowedFd, dest: &str) -> Result<OwnedFd> {
    safepath::open_in_root(root, dest, libc::O_PATH).map_err(|e| anyhow!("{}", e.desc()))
}

/// A cgroup filesystem for the container: on a pure v2 host with a cgroup
/// namespace, a fresh cgroup2 mount (rooted at the namespace's cgroup);
/// otherwise bind mounts of the container's own cgroup directories, so the
/// container never sees the host's tree. Returns the mount at `dest`.
fn mount_cgroup(
    k: &dyn Kernel,
    root: BorrowedFd,
    dest: &str,
    target: OwnedFd,
    opts: &Options,
    cg: &CgroupView,
) -> Result<OwnedFd> {
    let flags = opts.flags & !MsFlags::MS_REMOUNT;
    let reopened = || reopen(root, dest).context("reopening the mount point");
    if cg.pure_v2 && cg.own_ns {
        return match new_fs(k, "cgroup2", "cgroup2", flags, &[], target.as_fd()) {
            Ok(Some(m)) => Ok(m),
            Ok(None) => reopened(),
            Err(e) => Err(anyhow!("mounting cgroup2: {}", e.desc())),
        };
    }
    if cg.pure_v2 {
        let (mp, path, _) = cg
            .hierarchies
            .iter()
            .find(|h| h.2.is_empty())
            .ok_or_else(|| anyhow!("no cgroup2 hierarchy found in /proc/self/cgroup"))?;
        let m = bind_cgroup(k, mp, path, root, dest, target.as_fd())?;
        finish_bind(k, m.as_fd(), opts)?;
        return Ok(m);
    }
    // v1 or hybrid: a tmpfs holding one bind mount per hierarchy, each
    // made inside that tmpfs through its fd.
    let tmpfs_flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let tmpfs = match new_fs(
        k,
        "tmpfs",
        "tmpfs",
        tmpfs_flags,
        &["mode=755".to_string()],
        target.as_fd(),
    ) {
        Ok(Some(m)) => m,
        Ok(None) => reopened()?,
        Err(e) => bail!("mounting tmpfs: {}", e.desc()),
    };
    for (mp, path, ctrls) in &cg.hierarchies {
        let name = mp
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let t = safepath::mkdir_all_in_root(tmpfs.as_fd(), &name, 0o755)
            .map_err(|e| anyhow!("creating {dest}/{name}: {}", e.desc()))?;
        let sub = format!("{}/{}", dest.trim_end_matches('/'), name);
        let m = bind_cgroup(k, mp, path, root, &sub, t.as_fd())?;
        finish_bind(
            k,
            m.as_fd(),
            &Options {
                flags: flags | tmpfs_flags,
                ..Default::default()
            },
        )?;
        // Hierarchies that co-mount controllers ("cpu,cpuacct") are also
        // reachable by each controller's name, as on the host.
        if ctrls.contains(',') {
            for c in ctrls
                .split(',')
                .filter(|c| *c != name && !c.starts_with("name="))
            {
                let _ = nix::unistd::symlinkat(
                    name.as_str(),
                    Some(std::os::fd::AsRawFd::as_raw_fd(&tmpfs)),
                    c,
                );
            }
        }
    }
    Ok(tmpfs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(o: &[&str]) -> Options {
        parse_options(&o.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn flags_and_data() {
        let o = p(&["nosuid", "noexec", "nodev", "mode=755", "size=65536k", "ro"]);
        assert_eq!(
            o.flags,
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV | MsFlags::MS_RDONLY
        );
        assert_eq!(o.data, vec!["mode=755", "size=65536k"]);
        assert!(!o.bind);
    }

    #[test]
    fn later_options_win() {
        let o = p(&["ro", "rw"]);
        assert!(!o.flags.contains(MsFlags::MS_RDONLY));
        assert!(o.cleared.contains(MsFlags::MS_RDONLY));
    }

    #[test]
    fn bind_propagation_recursive() {
        let o = p(&["rbind", "rslave", "rro", "rnosuid", "tmpcopyup"]);
        assert!(o.bind && o.recursive_bind);
        assert_eq!(o.propagation, vec![MsFlags::MS_SLAVE | MsFlags::MS_REC]);
        assert_eq!(o.rec_set, libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NOSUID);
        assert!(o.data.is_empty());
    }

    #[test]
    fn new_filesystem_flags_as_mount_api_takes_them() {
        let f = |o: &[&str]| new_fs_flags(p(o).flags);
        assert_eq!(f(&[]), (vec![], libc::MOUNT_ATTR_RELATIME));
        // ro on the superblock and the mount, as mount(2) does.
        assert_eq!(
            f(&["ro", "nosuid", "nodev", "noexec", "sync", "lazytime"]),
            (
                vec!["ro", "sync", "lazytime"],
                libc::MOUNT_ATTR_RDONLY
                    | libc::MOUNT_ATTR_NOSUID
                    | libc::MOUNT_ATTR_NODEV
                    | libc::MOUNT_ATTR_NOEXEC
            )
        );
        assert_eq!(
            f(&["noatime", "nodiratime"]).1,
            libc::MOUNT_ATTR_NOATIME | libc::MOUNT_ATTR_NODIRATIME
        );
        assert_eq!(
            f(&["noatime", "strictatime"]).1,
            libc::MOUNT_ATTR_STRICTATIME
        );
        assert_eq!(f(&["relatime", "silent", "rw"]), (vec![], 0));
    }

    #[test]
    fn data_items_split_as_the_kernel_does() {
        let items: Vec<&str> = split_data("mode=755,,size=1m").collect();
        assert_eq!(items, ["mode=755", "size=1m"]);
        let items: Vec<&str> = split_data("context=\"u:r:t:s0:c1,c2\",x").collect();
        assert_eq!(items, ["context=\"u:r:t:s0:c1,c2\"", "x"]);
    }

    #[test]
    fn finds_cgroup_mounts() {
        let mi = "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n\
                  40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n\
                  41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n\
                  42 31 0:39 / /sys/fs/cgroup/net_cls,net_prio rw - cgroup cgroup rw,net_cls,net_prio\n\
                  43 31 0:29 /sub /mnt/cpu rw,relatime - cgroup cgroup rw,cpu\n";
        let find = |ctrls: &str| -> Vec<String> {
            crate::sys::mountinfo::parse(mi)
                .filter(|e| is_cgroup_mount_of(e, ctrls))
                .map(|e| e.mount_point)
                .collect()
        };
        assert_eq!(find("cpu"), ["/sys/fs/cgroup/cpu"]);
        assert_eq!(find(""), ["/sys/fs/cgroup/unified"]);
        assert_eq!(find("name=systemd"), ["/sys/fs/cgroup/systemd"]);
        assert_eq!(
            find("net_cls,net_prio"),
            ["/sys/fs/cgroup/net_cls,net_prio"]
        );
        assert!(find("memory").is_empty());
    }
}
