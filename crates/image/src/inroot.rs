//! Path containment for writing into a rootfs. Every lookup goes through
//! openat2(2) relative to a directory fd of the rootfs with RESOLVE_IN_ROOT:
//! symlinks on the way resolve as they would in the container, with the
//! rootfs as `/` (an absolute symlink, or `..` climbing above the top, stays
//! inside), as umoci and containerd resolve them. The kernel does this
//! confinement, so no check-then-use race exists. The last component of a
//! name is always handled with *at() calls that do not follow it.

use std::collections::VecDeque;
use std::ffi::{CStr, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::{openat, openat2, readlinkat, AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, fstatat, mkdirat, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};

/// A tar member name reduced to plain components, relative to the rootfs
/// root. Empty means the root itself.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelPath(PathBuf);

impl RelPath {
    /// Lexically cleans a member name: drops `.` and empty components and
    /// resolves `..` against earlier components. Absolute names and names
    /// whose `..` climb above the root are rejected: a well-formed layer
    /// never has them, so they are treated as an attack rather than
    /// silently re-rooted.
    pub fn clean(name: &[u8]) -> Result<RelPath> {
        let shown = String::from_utf8_lossy(name);
        if name.first() == Some(&b'/') {
            bail!("member {shown:?} has an absolute name");
        }
        let mut parts: Vec<&[u8]> = Vec::new();
        for c in name.split(|&b| b == b'/') {
            match c {
                b"" | b"." => {}
                b".." => {
                    if parts.pop().is_none() {
                        bail!("member {shown:?} climbs out of the rootfs with \"..\"");
                    }
                }
                _ => parts.push(c),
            }
        }
        if parts.iter().any(|c| c.contains(&0)) {
            bail!("member {shown:?} contains a NUL byte");
        }
        Ok(RelPath(PathBuf::from(OsString::from_vec(
            parts.join(&b'/'),
        ))))
    }

    pub fn is_root(&self) -> bool {
        self.0.as_os_str().is_empty()
    }

    /// Parent and last component; `None` for the root.
    pub fn split(&self) -> Option<(RelPath, &OsStr)> {
        let name = self.0.file_name()?;
        let parent = self.0.parent().unwrap_or(Path::new(""));
        Some((RelPath(parent.to_path_buf()), name))
    }

    pub fn join(&self, name: &OsStr) -> RelPath {
        RelPath(self.0.join(name))
    }

    fn for_syscall(&self) -> &Path {
        if self.is_root() {
            Path::new(".")
        } else {
            &self.0
        }
    }
}

impl std::fmt::Display for RelPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "/{}", self.0.display())
    }
}

/// An open rootfs directory that all writes are confined to.
pub struct Rootfs {
    fd: OwnedFd,
}

fn owned(fd: RawFd) -> OwnedFd {
    // SAFETY: `fd` was just returned by a successful open call and is owned
    // by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// openat2 with RESOLVE_IN_ROOT, retrying the EAGAIN the kernel returns
/// when a concurrent rename could have affected the lookup.
pub(crate) fn open_in_root(dir: RawFd, path: &Path, flags: OFlag) -> nix::Result<OwnedFd> {
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let mut tries = 0;
    loop {
        match openat2(dir, path, how) {
            Err(Errno::EAGAIN) if tries < 16 => tries += 1,
            r => return r.map(owned),
        }
    }
}

fn explain(rel: &RelPath, e: Errno) -> io::Error {
    match e {
        Errno::ELOOP => io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{rel}: too many levels of symlinks"),
        ),
        e => io::Error::new(io::Error::from(e).kind(), format!("{rel}: {}", e.desc())),
    }
}

impl Rootfs {
    pub fn open(path: &Path) -> Result<Rootfs> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("opening rootfs {}", path.display()))?;
        Ok(Rootfs { fd: owned(fd) })
    }

    /// A rootfs whose root is the directory (or detached mount) `fd`.
    pub fn from_fd(fd: OwnedFd) -> Rootfs {
        Rootfs { fd }
    }

    /// An O_PATH fd of the existing directory `rel`, resolved inside the
    /// root.
    pub fn dir(&self, rel: &RelPath) -> io::Result<OwnedFd> {
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY;
        open_in_root(self.fd.as_raw_fd(), rel.for_syscall(), flags).map_err(|e| explain(rel, e))
    }

    /// `dir`, but missing directories are made (mode 0755, owned by the
    /// caller), as tar layers may omit parent entries.
    pub fn make_dir(&self, rel: &RelPath) -> io::Result<OwnedFd> {
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY;
        match open_in_root(self.fd.as_raw_fd(), rel.for_syscall(), flags) {
            Ok(fd) => Ok(fd),
            Err(Errno::ENOENT) => self.make_dirs(rel),
            Err(e) => Err(explain(rel, e)),
        }
    }

    /// The slow path of `make_dir`: walks `rel` a component at a time, making
    /// missing directories (mode 0755) and expanding symlinks itself, so a
    /// symlink to a directory that does not exist yet gets it made where
    /// the link points, as umoci and containerd do. `..` and absolute
    /// targets act on the chain of directories walked, never above its
    /// bottom, the root; each step opens one name with O_NOFOLLOW.
    ///
    /// A layer can make that chain thousands of directories long (symlinks
    /// each reaching the bottom of the previous step), so it holds one
    /// directory fd, not one per level (which ran out of descriptors under
    /// the usual soft limit of 1024): only the identity (device, inode) of
    /// each directory above is kept, and `..` opens the parent and checks
    /// it is the very directory the walk came down from.
    fn make_dirs(&self, rel: &RelPath) -> io::Result<OwnedFd> {
        let err = |e: Errno| explain(rel, e);
        let id = |fd: &OwnedFd| fstat(fd.as_raw_fd()).map(|st| (st.st_dev, st.st_ino));
        let root = || {
            self.fd
                .try_clone()
                .map_err(|e| io::Error::new(e.kind(), format!("{rel}: {e}")))
        };
        let mut cur = root()?;
        let mut cur_id = id(&cur).map_err(err)?;
        // The identities of the directories above `cur`, the root first.
        let mut above = Vec::new();
        let mut todo: VecDeque<OsString> = rel.0.iter().map(OsStr::to_os_string).collect();
        let mut links = 0;
        let open = |at: &OwnedFd, name: &OsStr| {
            rcontain_sys::openat(
                Some(at.as_raw_fd()),
                name,
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
        };
        while let Some(comp) = todo.pop_front() {
            match comp.as_bytes() {
                b"" | b"." => continue,
                b".." => {
                    // At the root, `..` stays there.
                    if let Some(parent_id) = above.pop() {
                        let parent = open(&cur, OsStr::new("..")).map_err(err)?;
                        if id(&parent).map_err(err)? != parent_id {
                            return Err(io::Error::other(format!(
                                "{rel}: a directory on the way was moved during the walk"
                            )));
                        }
                        cur = parent;
                        cur_id = parent_id;
                    }
                    continue;
                }
                _ => {}
            }
            let at = Some(cur.as_raw_fd());
            match fstatat(at, comp.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
                Err(Errno::ENOENT) => {
                    match mkdirat(at, comp.as_os_str(), Mode::from_bits_truncate(0o755)) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => return Err(err(e)),
                    }
                }
                Ok(st)
                    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK =>
                {
                    links += 1;
                    if links > 40 {
                        return Err(err(Errno::ELOOP));
                    }
                    let target = readlinkat(at, comp.as_os_str()).map_err(err)?;
                    let target = target.as_bytes();
                    if target.starts_with(b"/") {
                        if let Some(&root_id) = above.first() {
                            cur = root()?;
                            cur_id = root_id;
                            above.clear();
                        }
                    }
                    for c in target.split(|&b| b == b'/').rev() {
                        todo.push_front(OsStr::from_bytes(c).to_os_string());
                    }
                    continue;
                }
                Ok(_) => {}
                Err(e) => return Err(err(e)),
            }
            let child = open(&cur, comp.as_os_str()).map_err(err)?;
            above.push(cur_id);
            cur_id = id(&child).map_err(err)?;
            cur = child;
        }
        Ok(cur)
    }

    /// Opens `rel` for reading the way the container would see it: symlinks
    /// (absolute ones too) resolve with the rootfs as `/`. Only regular
    /// files are returned, so a fifo or device planted at e.g. /etc/passwd
    /// can neither block nor feed us endless data.
    pub fn open_file_in_root(&self, rel: &Path) -> io::Result<File> {
        let how = OpenHow::new()
            .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK | OFlag::O_NOCTTY)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        let fd = openat2(self.fd.as_raw_fd(), rel, how)?;
        let f = File::from(owned(fd));
        if !f.metadata()?.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("/{} is not a regular file", rel.display()),
            ));
        }
        Ok(f)
    }
}

/// Removes `name` in `dir` and, if it is a directory, everything below it,
/// never following symlinks. Missing `name` is not an error.
///
/// A layer can build a tree many thousands of directories deep (each
/// symlink in a chain reaching the bottom of the previous one), so this
/// neither recurses nor holds a descriptor per level: it keeps one open
/// directory and the names still to visit, and climbs back through "..".
/// That is sound for the trees it is used on, the runtime's private
/// staging, store and rootfs-being-built directories, where no container
/// process runs to move a directory while it is being emptied.
pub fn remove_all_at(dir: RawFd, name: &OsStr) -> io::Result<()> {
    match unlinkat(Some(dir), name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => return Ok(()),
        Err(Errno::EISDIR) => {}
        Err(e) => return Err(e.into()),
    }
    let open = |at: RawFd, n: &OsStr| {
        openat(
            Some(at),
            n,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map(owned)
    };
    let mut cur = open(dir, name)?;
    // Per level below `name`: its name in its parent; per level from
    // `name` down: the subdirectories still to remove.
    let mut names: Vec<OsString> = Vec::new();
    let mut subdirs: Vec<Vec<OsString>> = Vec::new();
    loop {
        let mut subs = Vec::new();
        for child in list_dir(cur.as_raw_fd())? {
            match unlinkat(
                Some(cur.as_raw_fd()),
                child.as_os_str(),
                UnlinkatFlags::NoRemoveDir,
            ) {
                Ok(()) | Err(Errno::ENOENT) => {}
                Err(Errno::EISDIR) => subs.push(child),
                Err(e) => return Err(e.into()),
            }
        }
        subdirs.push(subs);
        // Down into the next subdirectory left, or up out of each
        // directory that is now empty.
        loop {
            if let Some(child) = subdirs.last_mut().and_then(Vec::pop) {
                cur = open(cur.as_raw_fd(), &child)?;
                names.push(child);
                break;
            }
            subdirs.pop();
            let Some(child) = names.pop() else {
                drop(cur);
                return match unlinkat(Some(dir), name, UnlinkatFlags::RemoveDir) {
                    Ok(()) | Err(Errno::ENOENT) => Ok(()),
                    Err(e) => Err(e.into()),
                };
            };
            let parent = open(cur.as_raw_fd(), OsStr::new(".."))?;
            match unlinkat(
                Some(parent.as_raw_fd()),
                child.as_os_str(),
                UnlinkatFlags::RemoveDir,
            ) {
                Ok(()) | Err(Errno::ENOENT) => {}
                Err(e) => return Err(e.into()),
            }
            cur = parent;
        }
    }
}

/// `remove_all_at` by path: removes `path` and everything below it (the
/// standard library's remove_dir_all recurses once per level).
pub fn remove_tree(path: &Path) -> io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no final component"))?;
    let dir = nix::fcntl::open(
        parent,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let dir = owned(dir);
    remove_all_at(dir.as_raw_fd(), name)
}

/// Names in directory `dir` (an fd usable with openat), without . and ..
pub fn list_dir(dir: RawFd) -> io::Result<Vec<OsString>> {
    let fd = openat(
        Some(dir),
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let d = nix::dir::Dir::from_fd(fd)?;
    let mut out = Vec::new();
    for e in d {
        let e = e?;
        let n: &CStr = e.file_name();
        let b = n.to_bytes();
        if b != b"." && b != b".." {
            out.push(OsStr::from_bytes(b).to_os_string());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn rp(s: &str) -> String {
        RelPath::clean(s.as_bytes())
            .unwrap()
            .0
            .display()
            .to_string()
    }

    #[test]
    fn clean_normalizes_and_rejects_escapes() {
        assert_eq!(rp("./a/b/"), "a/b");
        assert_eq!(rp("a//./b"), "a/b");
        assert_eq!(rp("a/../b"), "b");
        assert_eq!(rp("./"), "");
        assert!(RelPath::clean(b"./").unwrap().is_root());
        for bad in ["../x", "a/../../x", "/etc/passwd", "./../x", "a/b/../../.."] {
            let e = RelPath::clean(bad.as_bytes()).unwrap_err().to_string();
            assert!(
                e.contains("absolute") || e.contains("climbs out"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn split_gives_parent_and_name() {
        let r = RelPath::clean(b"a/b/c").unwrap();
        let (p, n) = r.split().unwrap();
        assert_eq!(p.0, Path::new("a/b"));
        assert_eq!(n, "c");
        assert!(RelPath::clean(b".").unwrap().split().is_none());
    }

    #[test]
    fn dir_resolves_symlinks_inside_the_root() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("usr/lib")).unwrap();
        std::fs::create_dir(t.path().join("outside")).unwrap();
        symlink("/", root.join("abs")).unwrap();
        symlink("../outside", root.join("up")).unwrap();
        symlink("usr/lib", root.join("lib")).unwrap();
        symlink("/usr/../../../var/run", root.join("run")).unwrap();
        symlink("../../opt/x", root.join("usr/lib/back")).unwrap();
        let r = Rootfs::open(&root).unwrap();
        let made = |p: &str| {
            r.make_dir(&RelPath::clean(p.as_bytes()).unwrap())
                .unwrap_or_else(|e| panic!("{p}: {e}"));
        };
        made("abs/tmp");
        made("up/x");
        made("lib/new/deep");
        made("run/lock");
        made("abs/abs/up/y");
        // `..` climbs the directories walked (lib is usr/lib), not the link.
        made("lib/back/z");
        assert!(root.join("tmp").is_dir());
        assert!(root.join("outside/x").is_dir() && root.join("outside/y").is_dir());
        assert!(root.join("usr/lib/new/deep").is_dir());
        assert!(root.join("var/run/lock").is_dir());
        assert!(root.join("opt/x/z").is_dir());
        assert_eq!(names(&t.path().join("outside")), Vec::<String>::new());
        symlink("loop", root.join("loop")).unwrap();
        let e = r.make_dir(&RelPath::clean(b"loop/x").unwrap()).unwrap_err();
        assert!(e.to_string().contains("levels of symlinks"), "{e}");
        std::fs::write(root.join("file"), "").unwrap();
        assert!(r.make_dir(&RelPath::clean(b"file/x").unwrap()).is_err());
    }

    fn names(d: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn open_file_in_root_resolves_absolute_symlinks_inside() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(root.join("data")).unwrap();
        std::fs::write(root.join("data/passwd"), "inside").unwrap();
        std::fs::write(t.path().join("passwd"), "outside").unwrap();
        symlink("/data/passwd", root.join("etc/passwd")).unwrap();
        symlink("../../../../passwd", root.join("etc/up")).unwrap();
        let r = Rootfs::open(&root).unwrap();
        let s = std::io::read_to_string(r.open_file_in_root(Path::new("etc/passwd")).unwrap());
        assert_eq!(s.unwrap(), "inside");
        // ".." at the root stays at the root, so this is /passwd inside: absent.
        assert!(r.open_file_in_root(Path::new("etc/up")).is_err());
        nix::unistd::mkfifo(&root.join("etc/group"), Mode::from_bits_truncate(0o644)).unwrap();
        assert!(r.open_file_in_root(Path::new("etc/group")).is_err());
    }

    #[test]
    fn remove_all_at_does_not_follow_symlinks() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("victim")).unwrap();
        std::fs::write(t.path().join("victim/keep"), "x").unwrap();
        std::fs::create_dir_all(t.path().join("d/e")).unwrap();
        symlink(t.path().join("victim"), t.path().join("d/e/link")).unwrap();
        let dir = File::open(t.path()).unwrap();
        remove_all_at(dir.as_raw_fd(), OsStr::new("d")).unwrap();
        assert!(!t.path().join("d").exists());
        assert!(t.path().join("victim/keep").exists());
        remove_all_at(dir.as_raw_fd(), OsStr::new("absent")).unwrap();
    }
}
