//! Reading and writing cgroupfs files with errors that name the resource
//! and the file, and creating/removing cgroup directories.

use anyhow::{anyhow, bail, Context, Result};
use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Write one value with a single write(2), as cgroupfs expects.
/// `what` names the spec field ("memory.limit") for the error message.
pub fn write(dir: &Path, file: &str, value: &str, what: &str) -> Result<()> {
    write_on(&mut OpenOptions::new(), dir, file, value, what).map(drop)
}

/// `write`, then read the number back through the same fd (one pread, no
/// second open): for values the kernel may silently adjust.
pub fn write_read_back_u64(dir: &Path, file: &str, value: &str, what: &str) -> Result<u64> {
    let f = write_on(OpenOptions::new().read(true), dir, file, value, what)?;
    let path = dir.join(file);
    let mut buf = [0u8; 32];
    let n = f
        .read_at(&mut buf, 0)
        .with_context(|| format!("read {}", path.display()))?;
    parse_u64(&String::from_utf8_lossy(&buf[..n]))
        .with_context(|| format!("parse {}", path.display()))
}

fn write_on(
    opts: &mut OpenOptions,
    dir: &Path,
    file: &str,
    value: &str,
    what: &str,
) -> Result<std::fs::File> {
    let mut f = Opened::open(opts, dir, file, what)?;
    f.write(value, what)?;
    Ok(f.file)
}

/// A cgroup file open for writing, for several writes of one value each
/// (devices.allow takes one rule a write).
pub struct Opened {
    file: std::fs::File,
    path: std::path::PathBuf,
}

impl Opened {
    pub fn for_writing(dir: &Path, file: &str, what: &str) -> Result<Opened> {
        Opened::open(&mut OpenOptions::new(), dir, file, what)
    }

    fn open(opts: &mut OpenOptions, dir: &Path, file: &str, what: &str) -> Result<Opened> {
        let path = dir.join(file);
        let file = opts.write(true).open(&path).map_err(|e| {
            if e.kind() == ErrorKind::NotFound {
                anyhow!(
                    "cannot set {what}: {} does not exist (not offered by this kernel or controller not enabled)",
                    path.display()
                )
            } else {
                anyhow!("cannot set {what}: open {}: {e}", path.display())
            }
        })?;
        Ok(Opened { file, path })
    }

    /// One write of `value`.
    pub fn write(&mut self, value: &str, what: &str) -> Result<()> {
        self.file.write_all(value.as_bytes()).with_context(|| {
            format!(
                "cannot set {what}: write {value:?} to {}",
                self.path.display()
            )
        })
    }
}

pub fn read(dir: &Path, file: &str) -> Result<String> {
    let path = dir.join(file);
    rcontain_sys::read_proc(&path).with_context(|| format!("read {}", path.display()))
}

/// Read a file that may legitimately be absent on this kernel.
pub fn read_opt(dir: &Path, file: &str) -> Result<Option<String>> {
    match rcontain_sys::read_proc(dir.join(file)) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("read {}", dir.join(file).display())),
    }
}

pub fn read_u64(dir: &Path, file: &str) -> Result<u64> {
    let s = read(dir, file)?;
    parse_u64(&s).with_context(|| format!("parse {}", dir.join(file).display()))
}

/// Parse a cgroup number; "max" (v2) maps to u64::MAX.
pub fn parse_u64(s: &str) -> Result<u64> {
    let s = s.trim();
    if s == "max" {
        return Ok(u64::MAX);
    }
    s.parse().with_context(|| format!("not a number: {s:?}"))
}

/// mkdir -p of `rel` under `root`; returns the directories it created,
/// outermost first. On failure, what it created is removed again.
pub fn mkdir_all(root: &Path, rel: &Path) -> Result<Vec<PathBuf>> {
    // The parents are usually there already (every container shares
    // them): the cgroup itself first, each level only if that fails.
    let leaf = root.join(rel.strip_prefix("/").unwrap_or(rel));
    if leaf != root {
        match std::fs::create_dir(&leaf) {
            Ok(()) => return Ok(vec![leaf]),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(Vec::new()),
            Err(_) => {}
        }
    }
    let mut attempts = 0;
    'again: loop {
        let mut created = Vec::new();
        let mut dir = root.to_path_buf();
        for comp in rel.components().skip(1) {
            dir.push(comp);
            match std::fs::create_dir(&dir) {
                Ok(()) => created.push(dir.clone()),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                // a shared parent removed by a concurrent destroy: start over
                Err(e) if e.kind() == ErrorKind::NotFound && attempts < 5 => {
                    attempts += 1;
                    remove_created(&created);
                    continue 'again;
                }
                Err(e) => {
                    remove_created(&created);
                    // the io::Error stays the source: see is_not_permitted
                    return Err(anyhow::Error::new(e).context(format!("mkdir {}", dir.display())));
                }
            }
        }
        return Ok(created);
    }
}

/// rmdir, innermost first, directories `mkdir_all` created.
pub fn remove_created(created: &[PathBuf]) {
    for d in created.iter().rev() {
        // best effort: this is already an error path
        let _ = std::fs::remove_dir(d);
    }
}

/// Remove a cgroup and any child cgroups inside it (children first).
/// Missing = done. EBUSY is retried until `deadline`, calling `nudge`
/// (which kills what is left) before each retry.
pub fn remove_tree(
    dir: &Path,
    deadline: Instant,
    nudge: &mut dyn FnMut() -> Result<()>,
) -> Result<()> {
    // A container's cgroup seldom has children: try it alone first, which
    // spares listing its control files (in every hierarchy, at every stop).
    match std::fs::remove_dir(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(_) => {}
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("read {}", dir.display())),
    };
    for e in entries {
        let e = e.with_context(|| format!("read {}", dir.display()))?;
        if e.file_type()?.is_dir() {
            remove_tree(&e.path(), deadline, nudge)?;
        }
    }
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                nudge()?;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                let procs = read_opt(dir, "cgroup.procs")?.unwrap_or_default();
                let procs: Vec<&str> = procs.split_whitespace().collect();
                bail!(
                    "cannot remove cgroup {}: {e} (processes still inside: {})",
                    dir.display(),
                    if procs.is_empty() {
                        "none".into()
                    } else {
                        procs.join(" ")
                    }
                );
            }
        }
    }
}

/// Every pid in cgroup.procs of `dir` and of its child cgroups.
pub fn pids_recursive(dir: &Path, out: &mut Vec<i32>) -> Result<()> {
    let Some(procs) = read_opt(dir, "cgroup.procs")? else {
        return Ok(());
    };
    for p in procs.split_whitespace() {
        out.push(
            p.parse()
                .with_context(|| format!("bad pid {p:?} in {}", dir.display()))?,
        );
    }
    for e in std::fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))? {
        let e = e?;
        if e.file_type()?.is_dir() {
            pids_recursive(&e.path(), out)?;
        }
    }
    Ok(())
}
