//! Building the container's root filesystem in its mount namespace, then
//! switching into it.
//!
//! Everything that touches paths from the image or config.json happens
//! before the switch, resolved inside the rootfs through an fd (safepath),
//! while /proc is still the host's procfs that no container mount can cover.

pub mod dev;
pub mod mounts;
pub mod safepath;
pub mod template;

use crate::kernel::Kernel;
use anyhow::{anyhow, Context, Result};
use mounts::CgroupView;
use nix::mount::{umount2, MntFlags, MsFlags};
use oci_spec::runtime::{Mount, Spec};
use safepath::fd_path;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

/// A rootfs that an image store made, for `run IMAGE`.
#[derive(Clone, Debug)]
pub enum ImageRootfs {
    /// An overlay the store mounted on the host, nosuid,nodev there: the
    /// container's own mount of it (in its mount namespace only) gets
    /// setuid files and device nodes back.
    HostOverlay,
    /// A rootless store's layers: the init mounts the overlay itself, in
    /// the container's user and mount namespaces.
    Layers(rcontain_image::store::RootfsOverlay),
}

/// Whose mount namespace the container's mounts are made in.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MountNs {
    /// The container's own (created or joined).
    Own,
    /// The runtime's (a config without a mount namespace). Then nothing
    /// may touch the host's mount tree: the rootfs gets a private bind
    /// mount of its own, everything is mounted below it, the switch is a
    /// chroot, and delete unmounts it all (`unmount_host_mounts`).
    Host,
}

/// What `prepare` builds the rootfs from.
pub struct Setup<'a> {
    pub spec: &'a Spec,
    pub rootfs: &'a Path,
    pub bundle: &'a Path,
    pub cgroups: &'a CgroupView,
    /// How /dev's nodes are made (bound from the host in a user namespace).
    pub nodes: dev::Nodes,
    pub mount_ns: MountNs,
    /// The rootfs is an image store's (see `ImageRootfs`); given only
    /// when the container has a mount namespace of its own.
    pub image: Option<&'a ImageRootfs>,
    /// The host's procfs, for the mount table (see CgroupView::read).
    pub proc: BorrowedFd<'a>,
}

/// Set propagation, make the rootfs a mount point and mount everything in
/// it: the config's mounts, /dev's nodes, the masked and read-only paths.
/// Returns an fd of the rootfs mount.
pub fn prepare(k: &dyn Kernel, s: &Setup) -> Result<OwnedFd> {
    if s.mount_ns == MountNs::Own {
        isolate_from_host(k, s.spec, s.rootfs, s.proc)?;
    }
    let root = bind_rootfs(k, s)?;
    let ms = s.spec.mounts().as_deref().unwrap_or(&[]);
    let made = mount_all(k, root.as_fd(), ms, s.bundle, s.cgroups)?;
    if !dev_from_host(ms) {
        let linux = s.spec.linux().as_ref();
        let devs = linux.and_then(|l| l.devices().as_deref()).unwrap_or(&[]);
        let dev_mount = made.dev.as_ref().map(|d| d.as_fd());
        dev::create_all(k, root.as_fd(), dev_mount, devs, s.nodes)?;
        dev::create_links(root.as_fd(), dev_mount)?;
    }
    if let Some(l) = s.spec.linux() {
        let pseudo: Vec<(&Path, BorrowedFd)> =
            made.pseudo.iter().map(|(d, m)| (*d, m.as_fd())).collect();
        for p in l.readonly_paths().iter().flatten() {
            readonly_path(k, root.as_fd(), p, &pseudo)
                .with_context(|| format!("linux.readonlyPaths: {p}"))?;
        }
        for p in l.masked_paths().iter().flatten() {
            mask_path(k, root.as_fd(), p, &pseudo)
                .with_context(|| format!("linux.maskedPaths: {p}"))?;
        }
    }
    Ok(root)
}

/// In the container's own mount namespace: host mount events must not
/// propagate in, and ours never out: slave by default, or what
/// linux.rootfsPropagation asks for.
fn isolate_from_host(k: &dyn Kernel, spec: &Spec, rootfs: &Path, proc: BorrowedFd) -> Result<()> {
    let prop = match spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().as_deref())
    {
        Some(p) => {
            let f = mounts::propagation_flag(p)
                .ok_or_else(|| anyhow!("linux.rootfsPropagation: unknown value {p:?}"))?;
            // An unbindable tree could not be bind mounted as the rootfs
            // below: keep it private (what unbindable implies) until
            // finalize makes the new / unbindable.
            if f.contains(MsFlags::MS_UNBINDABLE) {
                MsFlags::MS_PRIVATE | MsFlags::MS_REC
            } else {
                f | MsFlags::MS_REC
            }
        }
        None => MsFlags::MS_SLAVE | MsFlags::MS_REC,
    };
    k.mount(None, Path::new("/"), None, prop, None)
        .context("setting propagation of /")?;
    // pivot_root needs the new root to be a mount point whose parent
    // mount is not shared. After the recursive change every mount is
    // shared if `prop` is, and none otherwise.
    if prop.contains(MsFlags::MS_SHARED) {
        make_parent_private(k, rootfs, proc)?;
    }
    Ok(())
}

/// The rootfs bound onto itself (after the image's overlay is mounted
/// there, if any); the returned fd names that new mount from here on, for
/// every later step, whatever the path comes to name.
fn bind_rootfs(k: &dyn Kernel, s: &Setup) -> Result<OwnedFd> {
    let rootfs = s.rootfs;
    if let Some(ImageRootfs::Layers(o)) = s.image {
        // Here, in the container's user and mount namespaces only: the
        // host never sees this overlay (propagation is set before).
        o.mount_at(rootfs)?;
    }
    let open = || {
        crate::sys::open(
            rootfs,
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
    };
    let dir = open().with_context(|| format!("opening rootfs {}", rootfs.display()))?;
    let root = mounts::bind_fd(k, dir.as_fd(), dir.as_fd(), true, || {
        open().map_err(|e| anyhow!("{}", e.desc()))
    })
    .with_context(|| format!("bind mounting rootfs {}", rootfs.display()))?;
    if s.mount_ns == MountNs::Host {
        k.mount(
            None,
            Path::new(&fd_path(&root)),
            None,
            MsFlags::MS_PRIVATE | MsFlags::MS_REC,
            None,
        )
        .with_context(|| format!("making rootfs {} private", rootfs.display()))?;
    }
    if matches!(s.image, Some(ImageRootfs::HostOverlay)) {
        // The bind above is this namespace's own mount of the overlay: the
        // image's setuid binaries and device nodes work in the container
        // (devices still as the device rules allow), never on the host.
        k.mount_setattr(
            root.as_fd(),
            "",
            false,
            0,
            libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV,
        )
        .map_err(|e| {
            anyhow!(
                "allowing setuid and devices on the image rootfs: {}",
                e.desc()
            )
        })?;
    }
    Ok(root)
}

/// The mounts that later steps go into, through their fds: their
/// destinations looked up again could lead elsewhere by now.
struct Made<'a> {
    /// the one at /dev (the last one there), for the device nodes
    dev: Option<OwnedFd>,
    /// procfs and sysfs, for the masked and read-only paths
    pseudo: Vec<(&'a Path, OwnedFd)>,
}

/// Every config.json mount, in order, into the rootfs behind `root`.
fn mount_all<'a>(
    k: &dyn Kernel,
    root: BorrowedFd,
    ms: &'a [Mount],
    bundle: &Path,
    cg: &CgroupView,
) -> Result<Made<'a>> {
    let pseudo_at = pseudo_mounts(ms);
    let mut made = Made {
        dev: None,
        pseudo: Vec::new(),
    };
    for (i, m) in ms.iter().enumerate() {
        let new = mounts::mount_entry(k, root, m, i, bundle, cg)?;
        if pseudo_at.contains(&i) {
            made.pseudo.push((m.destination().as_path(), new));
        } else if m.destination() == Path::new("/dev") {
            made.dev = Some(new);
        }
    }
    Ok(made)
}

/// /dev is a bind mount (of the host's, say): no nodes are made in it.
fn dev_from_host(ms: &[Mount]) -> bool {
    ms.iter().any(|m| {
        m.destination() == Path::new("/dev")
            && (m.typ().as_deref() == Some("bind")
                || m.options()
                    .iter()
                    .flatten()
                    .any(|o| o == "bind" || o == "rbind"))
    })
}

/// The entries that put procfs or sysfs at their destination for good
/// (the last mount at a destination is what is there): their indices.
fn pseudo_mounts(ms: &[Mount]) -> Vec<usize> {
    let mut out: Vec<usize> = Vec::new();
    for (i, m) in ms.iter().enumerate() {
        out.retain(|&j| ms[j].destination() != m.destination());
        if mounts::pseudo_fs_magic(m).is_some() {
            out.push(i);
        }
    }
    out
}

/// Resolves a masked or read-only path; `None` when it does not exist,
/// which is skipped, as runc does (a kernel without /proc/acpi, …).
/// Below a procfs or sysfs the mounts created (`pseudo`: destination and
/// the fd of that mount), the path is resolved beneath that very mount,
/// never crossing out of it: whatever its destination's path leads to by
/// now, the masks land on the procfs or sysfs the container got.
fn resolve_protected(
    root: BorrowedFd,
    p: &str,
    pseudo: &[(&Path, BorrowedFd)],
) -> Result<Option<OwnedFd>> {
    let below = pseudo
        .iter()
        .filter(|(d, _)| Path::new(p).starts_with(d))
        .max_by_key(|(d, _)| d.as_os_str().len());
    let (fd, what) = match below {
        None => (safepath::open_in_root(root, p, libc::O_PATH), "rootfs"),
        Some((d, base)) => {
            let rest = Path::new(p).strip_prefix(d).unwrap_or(Path::new(""));
            (
                safepath::open_beneath(*base, &rest.to_string_lossy(), libc::O_PATH),
                "mount",
            )
        }
    };
    match fd {
        Ok(fd) => Ok(Some(fd)),
        Err(nix::errno::Errno::ENOENT) => Ok(None),
        Err(e) => Err(anyhow!("resolving it in the {what}: {}", e.desc())),
    }
}

/// Make the mount containing `rootfs`'s parent private. The one read of
/// the whole mount table left in a start (the topmost mount on a path may
/// come anywhere in it), and only for a shared rootfsPropagation.
fn make_parent_private(k: &dyn Kernel, rootfs: &Path, proc: BorrowedFd) -> Result<()> {
    let parent = rootfs.parent().unwrap_or(Path::new("/"));
    let table =
        crate::sys::read_proc_at(proc, "self/mountinfo").context("reading /proc/self/mountinfo")?;
    if let Some(mp) = crate::sys::mountinfo::mount_point_of(&table, parent) {
        k.mount(None, Path::new(&mp), None, MsFlags::MS_PRIVATE, None)
            .with_context(|| format!("making {mp} private"))?;
    }
    Ok(())
}

fn readonly_path(
    k: &dyn Kernel,
    root: BorrowedFd,
    p: &str,
    pseudo: &[(&Path, BorrowedFd)],
) -> Result<()> {
    let Some(fd) = resolve_protected(root, p, pseudo)? else {
        return Ok(());
    };
    let m = mounts::bind_fd(k, fd.as_fd(), fd.as_fd(), true, || {
        resolve_protected(root, p, pseudo)?.ok_or_else(|| anyhow!("vanished after the bind mount"))
    })
    .context("bind")?;
    k.mount_setattr(m.as_fd(), "", true, libc::MOUNT_ATTR_RDONLY, 0)
        .map_err(|e| anyhow!("making it read-only: {}", e.desc()))
}

fn mask_path(
    k: &dyn Kernel,
    root: BorrowedFd,
    p: &str,
    pseudo: &[(&Path, BorrowedFd)],
) -> Result<()> {
    let Some(fd) = resolve_protected(root, p, pseudo)? else {
        return Ok(());
    };
    let st = nix::sys::stat::fstat(std::os::fd::AsRawFd::as_raw_fd(&fd))
        .map_err(|e| anyhow!("{}", e.desc()))?;
    // Onto the fd, not through its /proc/self/fd link (see mounts::bind_fd).
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        mounts::new_fs(k, "tmpfs", "tmpfs", MsFlags::MS_RDONLY, &[], fd.as_fd())
            .map(drop)
            .map_err(|e| anyhow!("{}", e.desc()))
    } else {
        let null = dev_null(root)?;
        mounts::bind_fd(k, null.as_fd(), fd.as_fd(), false, || {
            resolve_protected(root, p, pseudo)?
                .ok_or_else(|| anyhow!("vanished after the bind mount"))
        })
        .map(drop)
    }
}

/// The container's /dev/null, checked to really be the null device: a
/// rootfs that replaced it (by a symlink to a procfs file, say) would turn
/// every masked path into a path to that file (CVE-2025-31133 class).
fn dev_null(root: BorrowedFd) -> Result<OwnedFd> {
    let fd = safepath::open_in_root(root, "/dev/null", libc::O_PATH | libc::O_NOFOLLOW)
        .map_err(|e| anyhow!("/dev/null: {}", e.desc()))?;
    let st = nix::sys::stat::fstat(std::os::fd::AsRawFd::as_raw_fd(&fd))
        .map_err(|e| anyhow!("/dev/null: {}", e.desc()))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR || st.st_rdev != nix::sys::stat::makedev(1, 3) {
        anyhow::bail!(
            "/dev/null in the container is not the null device; refusing to use it to mask paths"
        );
    }
    Ok(fd)
}

/// How the process's root becomes the prepared rootfs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Switch {
    /// pivot_root(".", ".") stacks the old root on top of the new one;
    /// detaching it leaves nothing of the host reachable.
    Pivot,
    /// MS_MOVE onto / and chroot (--no-pivot: for ramfs roots, where
    /// pivot_root is impossible).
    Move,
    /// chroot only: sharing the host's mount namespace, neither
    /// pivot_root nor MS_MOVE may rearrange the host's tree.
    Chroot,
}

/// Switch the process's root to the prepared rootfs `root`.
pub fn switch_root(k: &dyn Kernel, root: &OwnedFd, how: Switch) -> Result<()> {
    k.fchdir(root.as_fd()).context("chdir to rootfs")?;
    let here = Path::new(".");
    match how {
        Switch::Chroot => k.chroot(here).context("chroot")?,
        Switch::Move => {
            k.mount(Some(here), Path::new("/"), None, MsFlags::MS_MOVE, None)
                .context("moving rootfs to /")?;
            k.chroot(here).context("chroot")?;
        }
        Switch::Pivot => {
            k.pivot_root_here().context("pivot_root")?;
            k.mount(None, here, None, MsFlags::MS_SLAVE | MsFlags::MS_REC, None)
                .context("making the old root a slave")?;
            k.umount_detach(here).context("detaching the old root")?;
        }
    }
    k.chdir(Path::new("/")).context("chdir /")?;
    Ok(())
}

/// Unmount everything a container without its own mount namespace left
/// on the host below its rootfs (deepest first).
pub fn unmount_host_mounts(rootfs: &Path) -> Result<()> {
    let info = crate::sys::mountinfo::read().context("reading /proc/self/mountinfo")?;
    let mut points: Vec<String> = crate::sys::mountinfo::parse(&info)
        .map(|e| e.mount_point)
        .filter(|mp| Path::new(mp).starts_with(rootfs))
        .collect();
    points.reverse();
    for mp in points {
        match umount2(mp.as_str(), MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => return Err(anyhow!("unmounting {mp}: {}", e.desc())),
        }
    }
    Ok(())
}

/// After the switch: propagation of the new / and a read-only root.
pub fn finalize(k: &dyn Kernel, spec: &Spec) -> Result<()> {
    if let Some(p) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().as_deref())
    {
        let f = mounts::propagation_flag(p)
            .ok_or_else(|| anyhow!("linux.rootfsPropagation: unknown value {p:?}"))?;
        k.mount(None, Path::new("/"), None, f, None)
            .with_context(|| format!("linux.rootfsPropagation: setting {p}"))?;
    }
    if spec
        .root()
        .as_ref()
        .is_some_and(|r| r.readonly() == Some(true))
    {
        let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        if let Ok(st) = nix::sys::statvfs::statvfs("/") {
            use nix::sys::statvfs::FsFlags;
            for (s, m) in [
                (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
                (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
                (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
            ] {
                if st.flags().contains(s) {
                    flags |= m;
                }
            }
        }
        k.mount(None, Path::new("/"), None, flags, None)
            .context("root.readonly: remounting / read-only")?;
    }
    Ok(())
}

#[cfg(test)]
mod seam_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn open_dir(p: &Path) -> OwnedFd {
        crate::sys::open(
            p,
            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY,
            nix::sys::stat::Mode::empty(),
        )
        .unwrap()
    }

    fn resolve(root: &OwnedFd, p: &str, pseudo: &[(&Path, BorrowedFd)]) -> Result<bool, String> {
        resolve_protected(root.as_fd(), p, pseudo)
            .map(|fd| fd.is_some())
            .map_err(|e| format!("{e:#}"))
    }

    #[test]
    fn protected_paths_below_procfs_go_through_its_mount() {
        let procfs = open_dir(Path::new("/proc"));
        let proc = [(Path::new("/proc"), procfs.as_fd())];
        // The host's own root and procfs: present entries resolve, entries
        // the kernel lacks are skipped.
        let host = open_dir(Path::new("/"));
        assert_eq!(resolve(&host, "/proc/self/status", &proc), Ok(true));
        assert_eq!(resolve(&host, "/proc/no-such-entry", &proc), Ok(false));

        let base = std::env::temp_dir().join(format!("rcontain-protected-{}", std::process::id()));
        let root = base.join("root");
        std::fs::create_dir_all(root.join("fakeproc")).unwrap();
        let rootfd = open_dir(&root);
        // Nothing expected at /proc: a missing path is skipped.
        assert_eq!(resolve(&rootfd, "/proc/kcore", &[]), Ok(false));
        // /proc in the rootfs gone, or a symlink elsewhere, since procfs
        // was mounted: the path is still resolved in that procfs.
        assert_eq!(resolve(&rootfd, "/proc/self/status", &proc), Ok(true));
        std::os::unix::fs::symlink("fakeproc", root.join("proc")).unwrap();
        assert_eq!(resolve(&rootfd, "/proc/self/status", &proc), Ok(true));
        // Never out of the mount.
        let e = resolve(&rootfd, "/proc/../etc", &proc).unwrap_err();
        assert!(e.contains("resolving it in the mount"), "{e}");
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn last_mount_at_a_destination_decides() {
        let m = |dest: &str, typ: &str| -> Mount {
            serde_json::from_value(serde_json::json!({"destination": dest, "type": typ})).unwrap()
        };
        let ms = [
            m("/proc", "proc"),
            m("/sys", "sysfs"),
            m("/sys", "tmpfs"),
            m("/p2", "tmpfs"),
            m("/p2", "proc"),
        ];
        assert_eq!(pseudo_mounts(&ms), [0, 4]);
    }
}
