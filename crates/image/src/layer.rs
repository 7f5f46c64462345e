//! Applying one tar layer onto a rootfs, per the image-spec's layer rules:
//! entries replace what lower layers left at the same path (a directory
//! stays a directory and only takes the new metadata), `.wh.NAME` removes
//! NAME from lower layers, `.wh..wh..opq` hides everything lower layers put
//! in its directory. The tar is streamed entry by entry; small files are
//! created and written by writer threads (see `Writers`), larger ones go
//! straight from the stream to the file.

use std::collections::{HashMap, HashSet};
use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::mkdirat;
use nix::sys::stat::{
    fchmod, fchmodat, fstat, fstatat, futimens, makedev, mknodat, utimensat, FchmodatFlags, Mode,
    SFlag, UtimensatFlags,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, linkat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};
use tar::EntryType;

use super::inroot::{list_dir, remove_all_at, RelPath, Rootfs};

const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";

/// A member's base name that is a marker, not content.
enum Marker<'a> {
    /// `.wh..wh..opq`: hide what lower layers put in the directory.
    Opaque,
    /// `.wh.NAME`: remove NAME of lower layers.
    Whiteout(&'a [u8]),
    /// Other AUFS metadata (`.wh..wh.plnk`, ...).
    Aufs,
}

impl Marker<'_> {
    fn of(base: &[u8]) -> Result<Option<Marker<'_>>> {
        if base == OPAQUE_MARKER {
            return Ok(Some(Marker::Opaque));
        }
        let Some(hidden) = base.strip_prefix(WHITEOUT_PREFIX) else {
            return Ok(None);
        };
        if hidden.starts_with(WHITEOUT_PREFIX) {
            return Ok(Some(Marker::Aufs));
        }
        if hidden.is_empty() || hidden == b"." || hidden == b".." {
            bail!("malformed whiteout");
        }
        Ok(Some(Marker::Whiteout(hidden)))
    }
}

/// Where a member goes: the name `base` in the directory `pfd`.
#[derive(Clone, Copy)]
struct At<'a> {
    pfd: RawFd,
    base: &'a OsStr,
}

/// What make_room leaves in place.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Keep {
    Nothing,
    /// an existing directory (a directory member only takes its metadata)
    Directory,
}

/// What make_room found and left.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kept {
    Nothing,
    Directory,
}

/// When a node's times are set: directories' once the whole layer is in
/// (creating their children changes them).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Times {
    Now,
    Deferred,
}

/// A node set up by path: Linux cannot chmod a symlink.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Node {
    Symlink,
    Other,
}

/// Whether a copy writes blocks of zeros or leaves them holes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Zeros {
    Written,
    Holes,
}

/// Metadata of one member, gathered from its header and PAX records.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: TimeSpec,
    atime: TimeSpec,
    xattrs: Vec<(CString, Vec<u8>)>,
}

fn pax_time(v: &[u8]) -> Option<TimeSpec> {
    let s = std::str::from_utf8(v).ok()?;
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().ok()?;
    let mut nanos: i64 = 0;
    for (i, c) in frac.bytes().take(9).enumerate() {
        if !c.is_ascii_digit() {
            return None;
        }
        nanos += i64::from(c - b'0') * 10i64.pow(8 - i as u32);
    }
    if secs < 0 && nanos > 0 {
        // "-1.5" means 1.5 s before the epoch.
        return Some(TimeSpec::new(secs - 1, 1_000_000_000 - nanos));
    }
    Some(TimeSpec::new(secs, nanos))
}

impl Meta {
    fn read<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Meta> {
        let h = entry.header();
        let id = |v: u64, what: &str| {
            u32::try_from(v).map_err(|_| anyhow!("{what} {v} does not fit in 32 bits"))
        };
        let mtime = TimeSpec::new(h.mtime().unwrap_or(0) as i64, 0);
        let mut meta = Meta {
            mode: h.mode()? & 0o7777,
            uid: id(h.uid()?, "uid")?,
            gid: id(h.gid()?, "gid")?,
            mtime,
            atime: mtime,
            xattrs: Vec::new(),
        };
        let mut atime = None;
        if let Some(pax) = entry.pax_extensions()? {
            for ext in pax {
                let ext = ext?;
                let key = ext.key_bytes();
                if key == b"mtime" {
                    meta.mtime = pax_time(ext.value_bytes()).unwrap_or(meta.mtime);
                } else if key == b"atime" {
                    atime = pax_time(ext.value_bytes());
                } else if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                    let name =
                        CString::new(name).map_err(|_| anyhow!("xattr name with a NUL byte"))?;
                    meta.xattrs.retain(|(n, _)| *n != name);
                    meta.xattrs.push((name, ext.value_bytes().to_vec()));
                } else if let Some(name) = key.strip_prefix(b"LIBARCHIVE.xattr.") {
                    // bsdtar's form: URL-encoded name, base64 value. bsdtar
                    // writes SCHILY too; that one wins when both are there.
                    let bad = || anyhow!("malformed {}", String::from_utf8_lossy(key));
                    let name = CString::new(percent_decode(name).ok_or_else(bad)?)
                        .map_err(|_| anyhow!("xattr name with a NUL byte"))?;
                    if !meta.xattrs.iter().any(|(n, _)| *n == name) {
                        let value = base64_decode(ext.value_bytes()).ok_or_else(bad)?;
                        meta.xattrs.push((name, value));
                    }
                }
            }
        }
        meta.atime = atime.unwrap_or(meta.mtime);
        Ok(meta)
    }
}

fn percent_decode(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            let hex = std::str::from_utf8(s.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Standard base64, padding optional.
fn base64_decode(s: &[u8]) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
    };
    let s: Vec<u8> = s.iter().copied().filter(|&c| c != b'=').collect();
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.chunks(4) {
        if chunk.len() == 1 {
            return None;
        }
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= val(c)? << (18 - 6 * i);
        }
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    Some(out)
}

/// Counts of what a layer did, for progress and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LayerStats {
    pub entries: u64,
    pub bytes: u64,
    pub whiteouts: u64,
    /// Character and block devices left out: applied in a user namespace,
    /// which may not create them (see `rootless`).
    pub skipped_devices: u64,
}

impl LayerStats {
    /// Adds another layer's counts.
    pub(crate) fn add(&mut self, s: &LayerStats) {
        self.entries += s.entries;
        self.bytes += s.bytes;
        self.whiteouts += s.whiteouts;
        self.skipped_devices += s.skipped_devices;
    }
}

struct Applier<'a> {
    root: &'a Rootfs,
    cap: &'a SizeCap,
    /// Paths created or updated by this layer. Whiteouts and opaque
    /// markers only act on what lower layers left, never on these.
    seen: HashSet<RelPath>,
    /// Directory mtimes are set once the layer is done, as adding entries
    /// below a directory changes its mtime.
    dir_times: Vec<(RelPath, TimeSpec, TimeSpec)>,
    /// The parent directory of the previous member: tar layers list
    /// siblings together, so this spares most path lookups. Dropped
    /// whenever anything is removed, as that may have replaced it.
    parent_cache: Option<Parent>,
    buf: Vec<u8>,
    stats: LayerStats,
    /// Small regular files go to the writers (see `Writers`).
    writers: Writers,
}

struct Parent {
    rel: RelPath,
    fd: Arc<OwnedFd>,
    /// st_dev and st_ino: with the name, what `Writers` keys files by.
    id: (u64, u64),
}

/// A name in a directory, by the directory's identity rather than a path,
/// so two spellings of one place (through a symlink) are one key.
type Key = (u64, u64, OsString);

/// Regular files up to this size are read into memory and created and
/// written by a writer thread; larger ones by the applier itself.
const SMALL_FILE: u64 = 256 * 1024;
/// Writer threads, and how many files may wait for one. Together these
/// bound the memory held in file contents to about
/// (QUEUE + WRITERS + 1) * SMALL_FILE.
const WRITERS: usize = 2;
const QUEUE: usize = 16;

/// A small regular file for a writer to create in `dir`, which exists.
struct Job {
    dir: Arc<OwnedFd>,
    key: Key,
    data: Vec<u8>,
    meta: Meta,
    member: Vec<u8>,
}

struct Done {
    key: Key,
    result: Result<()>,
    /// The job's buffer, back for reuse.
    data: Vec<u8>,
}

/// Creating an inode is most of a small file's cost on a disk filesystem
/// and is done in the kernel by the creating thread, so files are created
/// by a few threads at once. The tar order still rules: before the
/// applier does anything at a name it waits for a writer holding that
/// name (`wait_for`), and before removing a directory tree (which could
/// hold files still being written) or setting directory times it waits
/// for all of them (`barrier`). Writers only ever create a new name in a
/// directory that exists; whatever was at the name was removed first, by
/// the applier, in order.
struct Writers {
    queue: Option<SyncSender<Job>>,
    done: Receiver<Done>,
    in_flight: HashMap<Key, usize>,
    pending: usize,
    spare: Vec<Vec<u8>>,
    failed: Option<anyhow::Error>,
}

impl Writers {
    fn submit(&mut self, job: Job) -> Result<()> {
        *self.in_flight.entry(job.key.clone()).or_default() += 1;
        self.pending += 1;
        let queue = self.queue.as_ref().expect("open while applying");
        if queue.send(job).is_err() {
            bail!("file writer threads stopped");
        }
        Ok(())
    }

    fn complete(&mut self, d: Done) {
        if let Some(n) = self.in_flight.get_mut(&d.key) {
            *n -= 1;
            if *n == 0 {
                self.in_flight.remove(&d.key);
            }
        }
        self.pending -= 1;
        self.spare.push(d.data);
        if let Err(e) = d.result {
            self.failed.get_or_insert(e);
        }
    }

    fn recv(&mut self) -> Result<()> {
        let d = self
            .done
            .recv()
            .map_err(|_| anyhow!("file writer threads stopped"))?;
        self.complete(d);
        Ok(())
    }

    /// Collects finished files; the first writer error, if any.
    fn check(&mut self) -> Result<()> {
        while let Ok(d) = self.done.try_recv() {
            self.complete(d);
        }
        self.failed.take().map_or(Ok(()), Err)
    }

    fn wait_for(&mut self, key: &Key) -> Result<()> {
        while self.in_flight.contains_key(key) {
            self.recv()?;
        }
        self.check()
    }

    fn barrier(&mut self) -> Result<()> {
        while self.pending > 0 {
            self.recv()?;
        }
        self.check()
    }
}

fn writer(jobs: &Mutex<Receiver<Job>>, done: Sender<Done>) {
    loop {
        let job = match jobs.lock().map(|rx| rx.recv()) {
            Ok(Ok(job)) => job,
            _ => return,
        };
        let result = write_small_file(&job)
            .with_context(|| format!("applying member {:?}", String::from_utf8_lossy(&job.member)));
        let d = Done {
            key: job.key,
            result,
            data: job.data,
        };
        if done.send(d).is_err() {
            return;
        }
    }
}

fn write_small_file(job: &Job) -> Result<()> {
    let fd = rcontain_sys::openat(
        Some(job.dir.as_raw_fd()),
        job.key.2.as_os_str(),
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )?;
    let mut file = File::from(fd);
    file.write_all(&job.data).context("writing file")?;
    apply_meta_fd(&file, &job.meta, Times::Now)
}

/// How much a layer may expand to: the sizes of its regular files added
/// up (a sparse file counts with its holes), and what to say when it is
/// more.
pub struct SizeCap {
    pub bytes: u64,
    /// e.g. "the layer expands beyond 16 GiB (--max-layer-size)".
    pub what: String,
}

/// Applies the tar stream `tar` onto `root`. Errors name the member.
pub fn apply_layer(root: &Rootfs, tar: impl Read, cap: &SizeCap) -> Result<LayerStats> {
    let (queue, jobs) = sync_channel::<Job>(QUEUE);
    let (done_tx, done) = channel::<Done>();
    let jobs = Mutex::new(jobs);
    std::thread::scope(|s| {
        for _ in 0..WRITERS {
            let done_tx = done_tx.clone();
            let jobs = &jobs;
            s.spawn(move || writer(jobs, done_tx));
        }
        drop(done_tx);
        let mut a = Applier {
            root,
            cap,
            seen: HashSet::new(),
            dir_times: Vec::new(),
            parent_cache: None,
            buf: vec![0; 256 * 1024],
            stats: LayerStats::default(),
            writers: Writers {
                queue: Some(queue),
                done,
                in_flight: HashMap::new(),
                pending: 0,
                spare: Vec::new(),
                failed: None,
            },
        };
        let r = a.apply(tar);
        // Closing the queue ends the writers once it is empty; the scope
        // joins them before anything (the staging dir) is cleaned up.
        a.writers.queue = None;
        r
    })
}

impl Applier<'_> {
    fn apply(&mut self, tar: impl Read) -> Result<LayerStats> {
        let mut archive = tar::Archive::new(tar);
        for entry in archive.entries().context("reading tar stream")? {
            let mut entry = entry.context("reading tar stream")?;
            let sparse = PaxSparse::read(&mut entry).context("reading tar stream")?;
            let name = match sparse.as_ref().and_then(|s| s.name.clone()) {
                Some(n) => n,
                None => entry.path_bytes().into_owned(),
            };
            self.entry(&mut entry, &name, sparse)
                .with_context(|| format!("applying member {:?}", String::from_utf8_lossy(&name)))?;
            self.stats.entries += 1;
        }
        self.writers.barrier()?;
        self.parent_cache = None;
        for (rel, atime, mtime) in std::mem::take(&mut self.dir_times) {
            self.set_times(&rel, &atime, &mtime)
                .with_context(|| format!("setting times of directory {rel}"))?;
        }
        Ok(self.stats)
    }

    fn parent(&mut self, rel: &RelPath) -> Result<RawFd> {
        let hit = matches!(&self.parent_cache, Some(p) if p.rel == *rel);
        if !hit {
            let fd = self.root.make_dir(rel)?;
            let st = fstat(fd.as_raw_fd())?;
            self.parent_cache = Some(Parent {
                rel: rel.clone(),
                fd: Arc::new(fd),
                id: (st.st_dev, st.st_ino),
            });
        }
        Ok(self.parent_cache.as_ref().expect("just set").fd.as_raw_fd())
    }

    /// The key of `name` in the cached parent.
    fn key(&self, name: &OsStr) -> Key {
        let (dev, ino) = self.parent_cache.as_ref().expect("parent looked up").id;
        (dev, ino, name.to_os_string())
    }

    fn removed_something(&mut self) {
        self.parent_cache = None;
    }

    /// Counts `size` more bytes of files against the cap.
    fn expand(&mut self, size: u64) -> Result<()> {
        match self.stats.bytes.checked_add(size) {
            Some(n) if n <= self.cap.bytes => {
                self.stats.bytes = n;
                Ok(())
            }
            _ => bail!("{}", self.cap.what),
        }
    }

    /// One member: a marker (whiteout, opaque directory), the root
    /// directory's metadata, or a node that replaces what is at its path.
    fn entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        name: &[u8],
        sparse: Option<PaxSparse>,
    ) -> Result<()> {
        let kind = entry.header().entry_type();
        if kind == EntryType::XGlobalHeader {
            return Ok(());
        }
        let rel = RelPath::clean(name)?;
        let Some((parent, base)) = rel.split() else {
            // "./": the root directory itself takes the metadata.
            return self.root_dir(entry, kind, rel);
        };
        let base = base.to_os_string();
        match Marker::of(base.as_bytes())? {
            Some(Marker::Opaque) => {
                self.stats.whiteouts += 1;
                return self.opaque(&parent);
            }
            Some(Marker::Whiteout(hidden)) => {
                self.stats.whiteouts += 1;
                return self.whiteout(&parent.join(OsStr::from_bytes(hidden)));
            }
            Some(Marker::Aufs) => return Ok(()),
            None => {}
        }
        let meta = Meta::read(entry)?;
        let pfd = self.parent(&parent)?;
        let key = self.key(&base);
        self.writers.wait_for(&key)?;
        let at = At { pfd, base: &base };
        match kind {
            EntryType::Regular | EntryType::Continuous
                if sparse.is_none() && entry.size() <= SMALL_FILE =>
            {
                self.small_file(entry, at, key, meta, name)?
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.large_file(entry, at, sparse, &meta)?
            }
            EntryType::Directory => self.directory(at, &rel, &meta)?,
            EntryType::Symlink => self.symlink(entry, at, &meta)?,
            EntryType::Link => self.hardlink(entry, at, &rel)?,
            EntryType::Char | EntryType::Block | EntryType::Fifo => self.node(entry, at, &meta)?,
            other => bail!("unsupported tar entry type {other:?}"),
        }
        self.seen.insert(rel);
        Ok(())
    }

    /// "./": the rootfs root takes the member's metadata.
    fn root_dir<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        kind: EntryType,
        rel: RelPath,
    ) -> Result<()> {
        if kind != EntryType::Directory {
            bail!("the rootfs root can only be a directory, not {kind:?}");
        }
        let meta = Meta::read(entry)?;
        let fd = self.root.dir(&rel)?;
        let dir = reopen_dir(fd.as_raw_fd(), OsStr::new("."))?;
        apply_meta_fd(&dir, &meta, Times::Deferred)?;
        self.dir_times.push((rel, meta.atime, meta.mtime));
        Ok(())
    }

    /// A small regular file: read whole here, created and written by a
    /// writer thread.
    fn small_file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        at: At,
        key: Key,
        meta: Meta,
        member: &[u8],
    ) -> Result<()> {
        match fstatat(Some(at.pfd), at.base, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Err(Errno::ENOENT) => {}
            Ok(_) => {
                self.make_room(at, Keep::Nothing)?;
            }
            Err(e) => return Err(e.into()),
        }
        let size = entry.size();
        self.expand(size)?;
        let mut data = self.writers.spare.pop().unwrap_or_default();
        data.clear();
        data.reserve_exact(size as usize);
        (&mut *entry)
            .take(size)
            .read_to_end(&mut data)
            .context("reading member content")?;
        if data.len() as u64 != size {
            bail!("truncated: {} of {size} content bytes present", data.len());
        }
        let dir = Arc::clone(&self.parent_cache.as_ref().expect("looked up").fd);
        self.writers.submit(Job {
            dir,
            key,
            data,
            meta,
            member: member.to_vec(),
        })
    }

    /// A larger or sparse regular file: streamed straight into the file.
    fn large_file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        at: At,
        sparse: Option<PaxSparse>,
        meta: &Meta,
    ) -> Result<()> {
        // Counted before anything is written: a sparse entry claims its
        // full size in its header.
        let size = sparse.as_ref().map_or(entry.size(), |s| s.real_size);
        self.expand(size)?;
        let file = self.create_file(at)?;
        if let Some(s) = sparse {
            write_pax_sparse(&mut *entry, &file, s, &mut self.buf)?;
        } else {
            // The tar crate expands an old GNU sparse entry's holes into
            // zeros: those stay holes.
            let zeros = if entry.header().entry_type() == EntryType::GNUSparse {
                Zeros::Holes
            } else {
                Zeros::Written
            };
            let n = copy(&mut *entry, &file, &mut self.buf, zeros)?;
            if n != size {
                bail!("truncated: {n} of {size} content bytes present");
            }
        }
        apply_meta_fd(&file, meta, Times::Now)
    }

    /// A directory keeps what lower layers put in it (an existing directory
    /// only takes the new metadata); its times are set once the layer is in.
    fn directory(&mut self, at: At, rel: &RelPath, meta: &Meta) -> Result<()> {
        let mkdir = || mkdirat(Some(at.pfd), at.base, Mode::from_bits_truncate(0o700));
        match mkdir() {
            Ok(()) => {}
            Err(Errno::EEXIST) => {
                if self.make_room(at, Keep::Directory)? == Kept::Nothing {
                    mkdir()?;
                }
            }
            Err(e) => return Err(e.into()),
        }
        let dir = reopen_dir(at.pfd, at.base)?;
        apply_meta_fd(&dir, meta, Times::Deferred)?;
        self.dir_times.push((rel.clone(), meta.atime, meta.mtime));
        Ok(())
    }

    fn symlink<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        at: At,
        meta: &Meta,
    ) -> Result<()> {
        let target = entry
            .link_name_bytes()
            .ok_or_else(|| anyhow!("symlink without a target"))?;
        let target = OsStr::from_bytes(&target).to_os_string();
        self.retry_on_exist(at, |pfd| symlinkat(target.as_os_str(), Some(pfd), at.base))?;
        apply_meta_at(at, meta, Node::Symlink)
    }

    /// A hard link to a member of this or a lower layer, waiting for a
    /// writer thread that may still be creating the target.
    fn hardlink<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        at: At,
        rel: &RelPath,
    ) -> Result<()> {
        let target = entry
            .link_name_bytes()
            .ok_or_else(|| anyhow!("hardlink without a target"))?;
        let target = RelPath::clean(&target).context("hardlink target")?;
        if target == *rel {
            bail!("hardlink to itself");
        }
        let (tparent, tname) = target
            .split()
            .ok_or_else(|| anyhow!("hardlink to the rootfs root"))?;
        let tfd = self
            .root
            .dir(&tparent)
            .with_context(|| format!("hardlink target {target}"))?;
        let tname = tname.to_os_string();
        let st = fstat(tfd.as_raw_fd())?;
        self.writers
            .wait_for(&(st.st_dev, st.st_ino, tname.clone()))?;
        let link = |pfd: RawFd| {
            // No AT_SYMLINK_FOLLOW: a link to a symlink links the symlink
            // itself, never what it points to.
            linkat(
                Some(tfd.as_raw_fd()),
                tname.as_os_str(),
                Some(pfd),
                at.base,
                AtFlags::empty(),
            )
        };
        self.retry_on_exist(at, link)
            .with_context(|| format!("hardlink to {target}"))?;
        Ok(())
    }

    /// A character or block device node or a fifo.
    fn node<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>, at: At, meta: &Meta) -> Result<()> {
        let h = entry.header();
        let kind = h.entry_type();
        let (sflag, dev) = match kind {
            EntryType::Fifo => (SFlag::S_IFIFO, 0),
            _ => {
                let major = h.device_major()?.unwrap_or(0);
                let minor = h.device_minor()?.unwrap_or(0);
                let s = if kind == EntryType::Char {
                    SFlag::S_IFCHR
                } else {
                    SFlag::S_IFBLK
                };
                (s, makedev(major.into(), minor.into()))
            }
        };
        let made = self.retry_on_exist(at, |pfd| {
            mknodat(
                Some(pfd),
                at.base,
                sflag,
                Mode::from_bits_truncate(0o600),
                dev,
            )
        });
        match made {
            Err(e)
                if e.downcast_ref::<Errno>() == Some(&Errno::EPERM)
                    && sflag != SFlag::S_IFIFO
                    && rcontain_sys::in_user_namespace() =>
            {
                // Without root: the node is left out (the container's
                // /dev is the runtime's anyway).
                self.stats.skipped_devices += 1;
                return Ok(());
            }
            Err(e) if e.downcast_ref::<Errno>() == Some(&Errno::EPERM) => bail!(
                "creating {kind:?} node: operation not permitted \
                 (device nodes need CAP_MKNOD in the initial user namespace)"
            ),
            r => r?,
        };
        apply_meta_at(at, meta, Node::Other)
    }

    fn create_file(&mut self, at: At) -> Result<File> {
        let open = |pfd: RawFd| {
            openat(
                Some(pfd),
                at.base,
                OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_WRONLY
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o600),
            )
        };
        let fd = self.retry_on_exist(at, open)?;
        // SAFETY: `fd` was just opened and is owned by nobody else.
        Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Runs `create`; if the name is taken, clears it (see make_room) and
    /// runs it once more. `at.pfd` stays valid: make_room only removes
    /// `at.base` itself, never the parent.
    fn retry_on_exist<T>(&mut self, at: At, create: impl Fn(RawFd) -> nix::Result<T>) -> Result<T> {
        match create(at.pfd) {
            Err(Errno::EEXIST) => {
                self.make_room(at, Keep::Nothing)?;
                Ok(create(at.pfd)?)
            }
            r => Ok(r?),
        }
    }

    /// Removes what is at `at` so a new entry can take its place, except
    /// that an existing directory stays with `Keep::Directory`.
    fn make_room(&mut self, at: At, keep_dir: Keep) -> Result<Kept> {
        let At { pfd, base } = at;
        let st = match fstatat(Some(pfd), base, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Err(Errno::ENOENT) => return Ok(Kept::Nothing),
            r => r?,
        };
        let is_dir = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR;
        if is_dir && keep_dir == Keep::Directory {
            return Ok(Kept::Directory);
        }
        // The cached parent is `pfd` itself, which survives; but a cached
        // fd may also be something below `base`, so drop it.
        let keep = self.parent_cache.take();
        if is_dir {
            // Files of this layer may still be being written below it.
            self.writers.barrier()?;
            remove_all_at(pfd, base)?;
        } else {
            unlinkat(Some(pfd), base, UnlinkatFlags::NoRemoveDir)?;
        }
        if let Some(p) = keep {
            if p.fd.as_raw_fd() == pfd {
                self.parent_cache = Some(p);
            }
        }
        Ok(Kept::Nothing)
    }

    fn whiteout(&mut self, target: &RelPath) -> Result<()> {
        if self.seen.contains(target) {
            return Ok(());
        }
        // What it removes may be a tree with files still being written.
        self.writers.barrier()?;
        let (parent, name) = target.split().expect("whiteout names a child");
        let pfd = match self.root.dir(&parent) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            r => r?,
        };
        self.removed_something();
        remove_all_at(pfd.as_raw_fd(), name)?;
        Ok(())
    }

    fn opaque(&mut self, dir: &RelPath) -> Result<()> {
        self.writers.barrier()?;
        let fd = match self.root.dir(dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            r => r?,
        };
        self.removed_something();
        self.hide_lower(fd.as_raw_fd(), dir)
    }

    /// Removes everything under `dir` that this layer did not create,
    /// descending into the directories it did.
    fn hide_lower(&self, fd: RawFd, dir: &RelPath) -> Result<()> {
        for name in list_dir(fd)? {
            let child = dir.join(&name);
            if !self.seen.contains(&child) {
                remove_all_at(fd, &name)?;
                continue;
            }
            let st = fstatat(Some(fd), name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)?;
            if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR {
                let sub = openat(
                    Some(fd),
                    name.as_os_str(),
                    OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )?;
                // SAFETY: `sub` was just opened and is owned by nobody else.
                let sub = unsafe { OwnedFd::from_raw_fd(sub) };
                self.hide_lower(sub.as_raw_fd(), &child)?;
            }
        }
        Ok(())
    }

    fn set_times(&mut self, rel: &RelPath, atime: &TimeSpec, mtime: &TimeSpec) -> Result<()> {
        let (parent, name) = match rel.split() {
            Some((p, n)) => (p, n.to_os_string()),
            None => (rel.clone(), ".".into()),
        };
        let pfd = match self.root.dir(&parent) {
            // Removed again later in the same layer.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            r => r?,
        };
        match utimensat(
            Some(pfd.as_raw_fd()),
            name.as_os_str(),
            atime,
            mtime,
            UtimensatFlags::NoFollowSymlink,
        ) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

fn reopen_dir(pfd: RawFd, base: &OsStr) -> Result<File> {
    let fd = openat(
        Some(pfd),
        base,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    // SAFETY: `fd` was just opened and is owned by nobody else.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// Owner first (chown clears setuid/setgid and security.capability), then
/// mode, then xattrs, then times (for directories, later: see dir_times).
fn apply_meta_fd(f: &File, m: &Meta, times: Times) -> Result<()> {
    let fd = f.as_raw_fd();
    fchown(fd, Some(Uid::from_raw(m.uid)), Some(Gid::from_raw(m.gid)))
        .with_context(|| format!("chown to {}:{}", m.uid, m.gid))?;
    fchmod(fd, Mode::from_bits_truncate(m.mode)).with_context(|| format!("chmod {:o}", m.mode))?;
    for (name, value) in &m.xattrs {
        rcontain_sys::set_xattr(Some(fd), &CString::default(), name, value)
            .with_context(|| format!("setting xattr {name:?}"))?;
    }
    if times == Times::Now {
        futimens(fd, &m.atime, &m.mtime).context("setting times")?;
    }
    Ok(())
}

fn apply_meta_at(at: At, m: &Meta, node: Node) -> Result<()> {
    let At { pfd, base } = at;
    fchownat(
        Some(pfd),
        base,
        Some(Uid::from_raw(m.uid)),
        Some(Gid::from_raw(m.gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .with_context(|| format!("chown to {}:{}", m.uid, m.gid))?;
    if node != Node::Symlink {
        // The node was created by us a moment ago in our own private
        // directory, so following is moot; Linux cannot chmod a symlink.
        fchmodat(
            Some(pfd),
            base,
            Mode::from_bits_truncate(m.mode),
            FchmodatFlags::FollowSymlink,
        )
        .with_context(|| format!("chmod {:o}", m.mode))?;
    }
    if !m.xattrs.is_empty() {
        // l*xattr on /proc/self/fd/N/NAME: the magic link is our own fd,
        // and NAME itself is not followed.
        let mut p = format!("/proc/self/fd/{pfd}/").into_bytes();
        p.extend_from_slice(base.as_bytes());
        let path = CString::new(p).map_err(|_| anyhow!("NUL in name"))?;
        for (name, value) in &m.xattrs {
            rcontain_sys::set_xattr(None, &path, name, value)
                .with_context(|| format!("setting xattr {name:?}"))?;
        }
    }
    utimensat(
        Some(pfd),
        base,
        &m.atime,
        &m.mtime,
        UtimensatFlags::NoFollowSymlink,
    )
    .context("setting times")?;
    Ok(())
}

/// Copies `from` to the new file `to`; with `Zeros::Holes`, blocks of
/// zeros are skipped (left holes) rather than written. Returns the bytes
/// read.
fn copy(mut from: impl Read, mut to: &File, buf: &mut [u8], zeros: Zeros) -> Result<u64> {
    let holes = zeros == Zeros::Holes;
    let mut n = 0u64;
    loop {
        let k = match from.read(buf) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("reading member content"),
        };
        if holes {
            write_data_blocks(to, &buf[..k], n)?;
        } else {
            to.write_all(&buf[..k]).context("writing file")?;
        }
        n += k as u64;
    }
    if holes {
        // A hole at the end has nothing written after it.
        to.set_len(n).context("setting the file size")?;
    }
    Ok(n)
}

/// Filesystem block size for hole detection: a block all zeros is not
/// written.
const HOLE_BLOCK: u64 = 4096;
static ZEROS: [u8; HOLE_BLOCK as usize] = [0; HOLE_BLOCK as usize];

/// Writes the parts of `data` (file bytes from `off`) that are not whole
/// or partial blocks of zeros.
fn write_data_blocks(to: &File, data: &[u8], off: u64) -> Result<()> {
    let mut i = 0;
    while i < data.len() {
        let pos = off + i as u64;
        let end = data.len().min(i + (HOLE_BLOCK - pos % HOLE_BLOCK) as usize);
        let piece = &data[i..end];
        // A slice comparison is a memcmp: fast, where a padded-out hole of
        // gigabytes is scanned.
        if piece != &ZEROS[..piece.len()] {
            to.write_all_at(piece, pos).context("writing file")?;
        }
        i = end;
    }
    Ok(())
}

/// A regular member in one of GNU tar's PAX sparse formats (0.0, 0.1,
/// 1.0): its data is only the data regions, laid out by a map.
struct PaxSparse {
    /// GNU.sparse.name (0.1, 1.0): the real name; the header's is a
    /// `GNUSparseFile.PID/NAME` stand-in for tars that do not know sparse.
    name: Option<Vec<u8>>,
    real_size: u64,
    /// (offset, length) of each data region in order; None in 1.0, where
    /// the map leads the member's data.
    map: Option<Vec<(u64, u64)>>,
}

/// Most regions a sparse map may list (16 MiB of map in memory).
const MAX_SPARSE_REGIONS: u64 = 1 << 20;

impl PaxSparse {
    fn read<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Option<PaxSparse>> {
        if !matches!(
            entry.header().entry_type(),
            EntryType::Regular | EntryType::Continuous
        ) {
            return Ok(None);
        }
        let Some(pax) = entry.pax_extensions()? else {
            return Ok(None);
        };
        let mut version = (None, None);
        let mut name = None;
        let mut real_size = None;
        let mut map: Option<Vec<(u64, u64)>> = None;
        let mut offset = None;
        for ext in pax {
            let ext = ext?;
            let v = ext.value_bytes();
            let num = || -> Result<u64> {
                std::str::from_utf8(v)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| {
                        anyhow!(
                            "malformed {}: {:?}",
                            String::from_utf8_lossy(ext.key_bytes()),
                            String::from_utf8_lossy(v)
                        )
                    })
            };
            match ext.key_bytes() {
                b"GNU.sparse.major" => version.0 = Some(num()?),
                b"GNU.sparse.minor" => version.1 = Some(num()?),
                b"GNU.sparse.name" => name = Some(v.to_vec()),
                b"GNU.sparse.realsize" | b"GNU.sparse.size" => real_size = Some(num()?),
                b"GNU.sparse.map" => {
                    let nums = v
                        .split(|&b| b == b',')
                        .map(|n| std::str::from_utf8(n).ok().and_then(|s| s.parse().ok()))
                        .collect::<Option<Vec<u64>>>()
                        .filter(|n| n.len() % 2 == 0)
                        .ok_or_else(|| anyhow!("malformed GNU.sparse.map"))?;
                    map = Some(nums.chunks(2).map(|c| (c[0], c[1])).collect());
                }
                b"GNU.sparse.offset" => offset = Some(num()?),
                b"GNU.sparse.numbytes" => {
                    let off = offset
                        .take()
                        .ok_or_else(|| anyhow!("GNU.sparse.numbytes without an offset"))?;
                    map.get_or_insert_with(Vec::new).push((off, num()?));
                }
                _ => {}
            }
        }
        let map = match version {
            (Some(1), Some(0)) => None,
            (None, None) if map.is_some() => map,
            (None, None) => return Ok(None),
            (major, minor) => bail!(
                "unsupported GNU sparse format {}.{}",
                major.map_or("?".into(), |v| v.to_string()),
                minor.map_or("?".into(), |v| v.to_string())
            ),
        };
        let real_size = real_size.ok_or_else(|| anyhow!("sparse member without a real size"))?;
        Ok(Some(PaxSparse {
            name,
            real_size,
            map,
        }))
    }
}

/// Reads one decimal number and its newline from a 1.0 sparse map.
fn map_number(r: &mut impl Read, used: &mut u64) -> Result<u64> {
    let mut n: u64 = 0;
    let mut digits = 0;
    loop {
        let mut b = [0u8];
        r.read_exact(&mut b).context("reading the sparse map")?;
        *used += 1;
        match b[0] {
            b'\n' if digits > 0 => return Ok(n),
            c @ b'0'..=b'9' if digits < 20 => {
                n = n
                    .checked_mul(10)
                    .and_then(|n| n.checked_add(u64::from(c - b'0')))
                    .ok_or_else(|| anyhow!("sparse map number out of range"))?;
                digits += 1;
            }
            _ => bail!("malformed sparse map"),
        }
    }
}

/// Writes a PAX sparse member's data regions where its map says, leaving
/// the rest holes, and gives the file its real size.
fn write_pax_sparse(
    entry: &mut impl Read,
    to: &File,
    sparse: PaxSparse,
    buf: &mut [u8],
) -> Result<()> {
    let mut used = 0u64;
    let map = match sparse.map {
        Some(m) => m,
        None => {
            let n = map_number(entry, &mut used)?;
            if n > MAX_SPARSE_REGIONS {
                bail!("sparse map of {n} regions (at most {MAX_SPARSE_REGIONS})");
            }
            let mut m = Vec::new();
            for _ in 0..n {
                m.push((map_number(entry, &mut used)?, map_number(entry, &mut used)?));
            }
            // The data starts at the next 512-byte block.
            let pad = (512 - used % 512) % 512;
            io::copy(&mut entry.take(pad), &mut io::sink()).context("reading the sparse map")?;
            m
        }
    };
    let mut end = 0u64;
    for (off, len) in map {
        let region_end = off
            .checked_add(len)
            .filter(|&e| off >= end && e <= sparse.real_size)
            .ok_or_else(|| anyhow!("sparse map out of order or beyond the file's size"))?;
        let mut left = len;
        let mut pos = off;
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let k = match entry.read(&mut buf[..want]) {
                Ok(0) => bail!("truncated: sparse data region at {off} ends early"),
                Ok(k) => k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).context("reading member content"),
            };
            to.write_all_at(&buf[..k], pos).context("writing file")?;
            pos += k as u64;
            left -= k as u64;
        }
        end = region_end;
    }
    if entry
        .read(&mut buf[..1])
        .context("reading member content")?
        != 0
    {
        bail!("sparse member has more data than its map lists");
    }
    to.set_len(sparse.real_size)
        .context("setting the file size")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn libarchive_xattr_encodings_decode() {
        assert_eq!(base64_decode(b"aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode(b"aGVsbG8").unwrap(), b"hello");
        assert_eq!(
            base64_decode(b"AQAAAgAgAAA=").unwrap(),
            [1, 0, 0, 2, 0, 0x20, 0, 0]
        );
        assert!(base64_decode(b"a").is_none() && base64_decode(b"a*bc").is_none());
        assert_eq!(percent_decode(b"user.a%3Db").unwrap(), b"user.a=b");
        assert!(percent_decode(b"x%4").is_none());
    }

    #[test]
    fn pax_times_parse() {
        assert_eq!(pax_time(b"12.5"), Some(TimeSpec::new(12, 500_000_000)));
        assert_eq!(pax_time(b"7"), Some(TimeSpec::new(7, 0)));
        assert_eq!(pax_time(b"-1.5"), Some(TimeSpec::new(-2, 500_000_000)));
        assert_eq!(pax_time(b"x"), None);
    }

    /// A tar with entries given as (name, kind, content or link target).
    fn tar(entries: &[(&str, EntryType, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(if *kind == EntryType::Directory {
                0o755
            } else {
                0o644
            });
            h.set_mtime(1_000_000);
            h.set_uid(0);
            h.set_gid(0);
            match kind {
                EntryType::Symlink | EntryType::Link => {
                    h.set_size(0);
                    b.append_link(&mut h, name, data).unwrap();
                }
                _ => {
                    h.set_size(data.len() as u64);
                    b.append_data(&mut h, name, data.as_bytes()).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    fn listing(root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                let md = std::fs::symlink_metadata(&p).unwrap();
                if md.is_dir() {
                    out.push(format!("{rel}/"));
                    stack.push(p);
                } else if md.is_symlink() {
                    out.push(format!(
                        "{rel} -> {}",
                        std::fs::read_link(&p).unwrap().display()
                    ));
                } else {
                    out.push(format!("{rel}={}", std::fs::read_to_string(&p).unwrap()));
                }
            }
        }
        out.sort();
        out
    }

    /// Applying a layer keeps its owners (chown), which needs root: the
    /// tests that do are skipped, saying so, without it.
    fn as_root() -> bool {
        let root = nix::unistd::geteuid().is_root();
        if !root {
            println!("skipped: applying layers keeps their owners, which needs root");
        }
        root
    }

    fn apply_all(layers: &[Vec<u8>]) -> (tempfile::TempDir, Vec<String>) {
        let t = tempfile::tempdir().unwrap();
        let root = Rootfs::open(t.path()).unwrap();
        for l in layers {
            let cap = SizeCap {
                bytes: u64::MAX,
                what: String::new(),
            };
            apply_layer(&root, &l[..], &cap).unwrap();
        }
        let l = listing(t.path());
        (t, l)
    }

    use EntryType::{Directory as D, Link as H, Regular as F, Symlink as S};

    #[test]
    fn whiteouts_remove_lower_files_and_dirs_only() {
        if !as_root() {
            return;
        }
        let l1 = tar(&[
            ("a", D, ""),
            ("a/f", F, "1"),
            ("a/g", F, "1"),
            ("a/d", D, ""),
            ("a/d/x", F, "1"),
        ]);
        // The same layer re-adds g before whiting it out: its own g stays.
        let l2 = tar(&[
            ("a/.wh.f", F, ""),
            ("a/.wh.d", F, ""),
            ("a/g", F, "2"),
            ("a/.wh.g", F, ""),
        ]);
        let (_t, l) = apply_all(&[l1, l2]);
        assert_eq!(l, ["a/", "a/g=2"]);
    }

    #[test]
    fn opaque_dirs_hide_lower_content_in_any_order_and_across_layers() {
        if !as_root() {
            return;
        }
        let l1 = tar(&[
            ("o", D, ""),
            ("o/old", F, "1"),
            ("o/sub", D, ""),
            ("o/sub/deep", F, "1"),
        ]);
        // New entries both before and after the marker survive; lower
        // content of a re-listed subdirectory does not.
        let l2 = tar(&[
            ("o/a", F, "2"),
            ("o/sub", D, ""),
            ("o/.wh..wh..opq", F, ""),
            ("o/z", F, "2"),
        ]);
        let l3 = tar(&[("o/b", F, "3")]);
        let l4 = tar(&[("o/.wh..wh..opq", F, ""), ("o/c", F, "4")]);
        let (_t, l) = apply_all(&[l1.clone(), l2.clone(), l3.clone()]);
        assert_eq!(l, ["o/", "o/a=2", "o/b=3", "o/sub/", "o/z=2"]);
        let (_t, l) = apply_all(&[l1, l2, l3, l4]);
        assert_eq!(l, ["o/", "o/c=4"]);
    }

    #[test]
    fn replacing_types_and_hardlinks_to_lower_layers() {
        if !as_root() {
            return;
        }
        let l1 = tar(&[
            ("x", F, "file"),
            ("y", D, ""),
            ("y/in", F, "1"),
            ("t", F, "target"),
            ("s", S, "t"),
        ]);
        let l2 = tar(&[
            ("x", D, ""),
            ("x/in", F, "2"),
            ("y", F, "now a file"),
            ("h", H, "t"),
            ("s", F, "no longer a link"),
        ]);
        let l3 = tar(&[("x", S, "y")]);
        let (t, l) = apply_all(&[l1, l2, l3]);
        assert_eq!(
            l,
            [
                "h=target",
                "s=no longer a link",
                "t=target",
                "x -> y",
                "y=now a file"
            ]
        );
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            std::fs::metadata(t.path().join("h")).unwrap().ino(),
            std::fs::metadata(t.path().join("t")).unwrap().ino()
        );
    }

    #[test]
    fn whiteout_of_absent_path_is_harmless_and_missing_parents_are_made() {
        if !as_root() {
            return;
        }
        let l1 = tar(&[
            ("p/q/r/file", F, "deep"),
            ("nothere/.wh.x", F, ""),
            (".wh.ghost", F, ""),
        ]);
        let (_t, l) = apply_all(&[l1]);
        assert_eq!(l, ["p/", "p/q/", "p/q/r/", "p/q/r/file=deep"]);
    }

    #[test]
    fn later_members_at_the_same_place_wait_for_earlier_ones() {
        if !as_root() {
            return;
        }
        // Many rounds, so a member overtaking an earlier one still being
        // written (by a writer thread) would show.
        let mut entries: Vec<(String, EntryType, String)> = Vec::new();
        for i in 0..200 {
            let d = format!("d{i}");
            entries.push((d.clone(), D, String::new()));
            entries.push((format!("{d}/twice"), F, "first".into()));
            entries.push((format!("{d}/twice"), F, "second".into()));
            entries.push((format!("{d}/t"), F, "target".into()));
            entries.push((format!("{d}/hl"), H, format!("{d}/t")));
            entries.push((format!("{d}/becomes-dir"), F, "x".into()));
            entries.push((format!("{d}/becomes-dir"), D, String::new()));
            entries.push((format!("{d}/becomes-link"), F, "x".into()));
            entries.push((format!("{d}/becomes-link"), S, "t".into()));
            // The same file by another spelling, through a symlink.
            entries.push((format!("{d}/alias"), S, ".".into()));
            entries.push((format!("{d}/via"), F, "direct".into()));
            entries.push((format!("{d}/alias/via"), F, "aliased".into()));
            // A tree of this layer replaced by a file.
            entries.push((format!("{d}/tree/leaf"), F, "x".into()));
            entries.push((format!("{d}/tree"), F, "flat".into()));
        }
        let borrowed: Vec<(&str, EntryType, &str)> = entries
            .iter()
            .map(|(n, k, d)| (n.as_str(), *k, d.as_str()))
            .collect();
        let (t, l) = apply_all(&[tar(&borrowed)]);
        let mut want = Vec::new();
        for i in 0..200 {
            let d = format!("d{i}");
            want.extend([
                format!("{d}/"),
                format!("{d}/alias -> ."),
                format!("{d}/becomes-dir/"),
                format!("{d}/becomes-link -> t"),
                format!("{d}/hl=target"),
                format!("{d}/t=target"),
                format!("{d}/tree=flat"),
                format!("{d}/twice=second"),
                format!("{d}/via=aliased"),
            ]);
        }
        want.sort();
        assert_eq!(l, want);
        use std::os::unix::fs::MetadataExt;
        let ino = |p: &str| std::fs::metadata(t.path().join(p)).unwrap().ino();
        assert_eq!(ino("d7/hl"), ino("d7/t"));
    }
}
