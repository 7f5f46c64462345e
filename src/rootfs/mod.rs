//! Building the container's root filesystem in its mount namespace, then
//! switching into it.
//!
//! Everything that touches paths from the image or config.json happens
//! before the switch, resolved inside the rootfs through an fd (safepath),
//! while /proc is still the host's procfs that no container mount can cover.

pub mod dev;
pub mod mounts;
pub mod safepath;

use anyhow::{anyhow, bail, Context, Result};
use mounts::{CgroupView, MountTable};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::statfs::FsType;
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

/// Set propagation, make the rootfs a mount point and mount everything in
/// it. Returns an fd of the rootfs mount.
/// `host_mnt`: the container shares the runtime's mount namespace (config
/// without a mount namespace). Then nothing may touch the host's mount
/// tree: the rootfs gets a private bind mount of its own, everything is
/// mounted below it, and delete unmounts it all (`unmount_host_mounts`).
/// `image`: the rootfs is an image store's (see `ImageRootfs`); given only
/// when the container has a mount namespace of its own.
#[allow(clippy::too_many_arguments)]
pub fn prepare(
    spec: &Spec,
    rootfs: &Path,
    bundle: &Path,
    cg: &CgroupView,
    mount_table: &MountTable,
    userns: bool,
    host_mnt: bool,
    image: Option<&ImageRootfs>,
) -> Result<OwnedFd> {
    let linux = spec.linux().as_ref();
    if !host_mnt {
        // Host mount events must not propagate in, and ours never out:
        // slave by default, or what linux.rootfsPropagation asks for.
        let prop = match linux.and_then(|l| l.rootfs_propagation().as_deref()) {
            Some(p) => {
                let f = mounts::propagation_flag(p)
                    .ok_or_else(|| anyhow!("linux.rootfsPropagation: unknown value {p:?}"))?;
                // An unbindable tree could not be bind mounted as the
                // rootfs below: keep it private (what unbindable implies)
                // until finalize makes the new / unbindable.
                if f.contains(MsFlags::MS_UNBINDABLE) {
                    MsFlags::MS_PRIVATE | MsFlags::MS_REC
                } else {
                    f | MsFlags::MS_REC
                }
            }
            None => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        };
        mount(None::<&str>, "/", None::<&str>, prop, None::<&str>)
            .context("setting propagation of /")?;
        // pivot_root needs the new root to be a mount point whose parent
        // mount is not shared. After the recursive change every mount is
        // shared if `prop` is, and none otherwise.
        if prop.contains(MsFlags::MS_SHARED) {
            make_parent_private(rootfs, mount_table)?;
        }
    }
    if let Some(ImageRootfs::Layers(o)) = image {
        // Here, in the container's user and mount namespaces only: the
        // host never sees this overlay (propagation is set just above).
        o.mount_at(rootfs)?;
    }
    // The rootfs bound onto itself; `root` names that new mount from here
    // on, for every later step, whatever the path comes to name.
    let dir = crate::sys::open(
        rootfs,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .with_context(|| format!("opening rootfs {}", rootfs.display()))?;
    let root = mounts::bind(Path::new(&fd_path(&dir)), dir.as_fd(), true, || {
        crate::sys::open(
            rootfs,
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| anyhow!("{}", e.desc()))
    })
    .with_context(|| format!("bind mounting rootfs {}", rootfs.display()))?;
    if host_mnt {
        mount(
            None::<&str>,
            fd_path(&root).as_str(),
            None::<&str>,
            MsFlags::MS_PRIVATE | MsFlags::MS_REC,
            None::<&str>,
        )
        .with_context(|| format!("making rootfs {} private", rootfs.display()))?;
    }
    if matches!(image, Some(ImageRootfs::HostOverlay)) {
        // The bind above is this namespace's own mount of the overlay: the
        // image's setuid binaries and device nodes work in the container
        // (devices still as the device rules allow), never on the host.
        crate::sys::mount_setattr(
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

    let ms = spec.mounts().as_deref().unwrap_or(&[]);
    for (i, m) in ms.iter().enumerate() {
        mounts::mount_entry(root.as_fd(), m, i, bundle, cg)?;
    }
    let dev_from_host = ms.iter().any(|m| {
        m.destination() == Path::new("/dev")
            && (m.typ().as_deref() == Some("bind")
                || m.options()
                    .iter()
                    .flatten()
                    .any(|o| o == "bind" || o == "rbind"))
    });
    if !dev_from_host {
        let devs = linux.and_then(|l| l.devices().as_deref()).unwrap_or(&[]);
        dev::create_all(root.as_fd(), devs, userns)?;
        dev::create_links(root.as_fd())?;
    }
    if let Some(l) = linux {
        let pseudo = pseudo_mounts(ms);
        for p in l.readonly_paths().iter().flatten() {
            readonly_path(root.as_fd(), p, &pseudo)
                .with_context(|| format!("linux.readonlyPaths: {p}"))?;
        }
        for p in l.masked_paths().iter().flatten() {
            mask_path(root.as_fd(), p, &pseudo)
                .with_context(|| format!("linux.maskedPaths: {p}"))?;
        }
    }
    Ok(root)
}

/// Where the mounts put procfs or sysfs (the last mount at a destination
/// is what is there), with the filesystem's magic.
fn pseudo_mounts(ms: &[Mount]) -> Vec<(&Path, FsType)> {
    let mut out: Vec<(&Path, FsType)> = Vec::new();
    for m in ms {
        out.retain(|(d, _)| *d != m.destination().as_path());
        if let Some(magic) = mounts::pseudo_fs_magic(m) {
            out.push((m.destination(), magic));
        }
    }
    out
}

/// Resolves a masked or read-only path; `None` when it does not exist,
/// which is skipped, as runc does (a kernel without /proc/acpi, …).
/// Below a procfs or sysfs the mounts created, that mount is first checked
/// to still be there, reached without a symlink, and the path is then
/// resolved beneath it: a /proc swapped or gone since the mount is an
/// error, never a path silently left unmasked; only an entry the kernel
/// does not have inside the verified mount is skipped.
fn resolve_protected(
    root: BorrowedFd,
    p: &str,
    pseudo: &[(&Path, FsType)],
) -> Result<Option<OwnedFd>> {
    let below = pseudo
        .iter()
        .filter(|(d, _)| Path::new(p).starts_with(d))
        .max_by_key(|(d, _)| d.as_os_str().len());
    let (fd, what) = match below {
        None => (safepath::open_in_root(root, p, libc::O_PATH), "rootfs"),
        Some((d, magic)) => {
            let base = safepath::open_no_symlinks(
                root,
                &d.to_string_lossy(),
                libc::O_PATH | libc::O_DIRECTORY,
            )
            .map_err(|e| anyhow!("{} is no longer a directory: {}", d.display(), e.desc()))?;
            let st = nix::sys::statfs::fstatfs(&base)
                .map_err(|e| anyhow!("statfs {}: {}", d.display(), e.desc()))?;
            if st.filesystem_type() != *magic {
                bail!(
                    "{} is no longer the filesystem mounted there; refusing to leave it unprotected",
                    d.display()
                );
            }
            let rest = Path::new(p).strip_prefix(d).unwrap_or(Path::new(""));
            (
                safepath::open_beneath(base.as_fd(), &rest.to_string_lossy(), libc::O_PATH),
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

/// Make the mount containing `rootfs`'s parent private.
fn make_parent_private(rootfs: &Path, mount_table: &MountTable) -> Result<()> {
    let parent = rootfs.parent().unwrap_or(Path::new("/"));
    if let Some(mp) = crate::sys::mountinfo::mount_point_of(mount_table.text()?, parent) {
        mount(
            None::<&str>,
            mp.as_str(),
            None::<&str>,
            MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .with_context(|| format!("making {mp} private"))?;
    }
    Ok(())
}

fn readonly_path(root: BorrowedFd, p: &str, pseudo: &[(&Path, FsType)]) -> Result<()> {
    let Some(fd) = resolve_protected(root, p, pseudo)? else {
        return Ok(());
    };
    let m = mounts::bind(Path::new(&fd_path(&fd)), fd.as_fd(), true, || {
        resolve_protected(root, p, pseudo)?.ok_or_else(|| anyhow!("vanished after the bind mount"))
    })
    .context("bind")?;
    crate::sys::mount_setattr(m.as_fd(), "", true, libc::MOUNT_ATTR_RDONLY, 0)
        .map_err(|e| anyhow!("making it read-only: {}", e.desc()))
}

fn mask_path(root: BorrowedFd, p: &str, pseudo: &[(&Path, FsType)]) -> Result<()> {
    let Some(fd) = resolve_protected(root, p, pseudo)? else {
        return Ok(());
    };
    let st = nix::sys::stat::fstat(std::os::fd::AsRawFd::as_raw_fd(&fd))
        .map_err(|e| anyhow!("{}", e.desc()))?;
    let r = if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        mount(
            Some("tmpfs"),
            fd_path(&fd).as_str(),
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            None::<&str>,
        )
    } else {
        let null = dev_null(root)?;
        mount(
            Some(fd_path(&null).as_str()),
            fd_path(&fd).as_str(),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
    };
    r.map_err(|e| anyhow!("{}", e.desc()))
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

/// Switch the process's root to the prepared rootfs. pivot_root(".", ".")
/// stacks the old root on top of the new one; detaching it leaves nothing
/// of the host reachable. With `no_pivot`, MS_MOVE + chroot (for ramfs
/// roots, where pivot_root is impossible).
pub fn switch_root(root: &OwnedFd, no_pivot: bool, host_mnt: bool) -> Result<()> {
    nix::unistd::fchdir(std::os::fd::AsRawFd::as_raw_fd(root)).context("chdir to rootfs")?;
    if host_mnt {
        // Sharing the host's mount namespace: neither pivot_root nor
        // MS_MOVE may rearrange the host's tree.
        nix::unistd::chroot(".").context("chroot")?;
    } else if no_pivot {
        mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
            .context("moving rootfs to /")?;
        nix::unistd::chroot(".").context("chroot")?;
    } else {
        nix::unistd::pivot_root(".", ".").context("pivot_root")?;
        mount(
            None::<&str>,
            ".",
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        )
        .context("making the old root a slave")?;
        umount2(".", MntFlags::MNT_DETACH).context("detaching the old root")?;
    }
    nix::unistd::chdir("/").context("chdir /")?;
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
pub fn finalize(spec: &Spec) -> Result<()> {
    if let Some(p) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().as_deref())
    {
        let f = mounts::propagation_flag(p)
            .ok_or_else(|| anyhow!("linux.rootfsPropagation: unknown value {p:?}"))?;
        mount(None::<&str>, "/", None::<&str>, f, None::<&str>)
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
        mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
            .context("root.readonly: remounting / read-only")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::statfs::PROC_SUPER_MAGIC;

    fn open_dir(p: &Path) -> OwnedFd {
        crate::sys::open(
            p,
            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY,
            nix::sys::stat::Mode::empty(),
        )
        .unwrap()
    }

    fn resolve(root: &OwnedFd, p: &str, pseudo: &[(&Path, FsType)]) -> Result<bool, String> {
        resolve_protected(root.as_fd(), p, pseudo)
            .map(|fd| fd.is_some())
            .map_err(|e| format!("{e:#}"))
    }

    #[test]
    fn protected_paths_below_procfs_are_checked() {
        let proc = [(Path::new("/proc"), PROC_SUPER_MAGIC)];
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
        // procfs was mounted at /proc but is gone: an error, not a skip.
        let e = resolve(&rootfd, "/proc/kcore", &proc).unwrap_err();
        assert!(e.starts_with("/proc is no longer a directory"), "{e}");
        // ... or replaced by a symlink, or by a directory of another fs.
        std::os::unix::fs::symlink("fakeproc", root.join("proc")).unwrap();
        let e = resolve(&rootfd, "/proc/kcore", &proc).unwrap_err();
        assert!(e.starts_with("/proc is no longer a directory"), "{e}");
        std::fs::remove_file(root.join("proc")).unwrap();
        std::fs::create_dir(root.join("proc")).unwrap();
        let e = resolve(&rootfd, "/proc/kcore", &proc).unwrap_err();
        assert!(e.starts_with("/proc is no longer the filesystem"), "{e}");
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn last_mount_at_a_destination_decides() {
        let m = |dest: &str, typ: &str| -> Mount {
            serde_json::from_value(serde_json::json!({"destination": dest, "type": typ})).unwrap()
        };
        let ms = [m("/proc", "proc"), m("/sys", "sysfs"), m("/sys", "tmpfs")];
        let p = pseudo_mounts(&ms);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].0, Path::new("/proc"));
    }
}
