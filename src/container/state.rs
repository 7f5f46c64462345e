//! The on-disk state store: one directory per container under the root
//! directory (default /run/rcontain, a tmpfs, so nothing survives a reboot).
//!
//! ```text
//! <root>/<id>/state.json   what `state` reports, plus what later commands need
//! <root>/<id>/config.json  the config.json the container was created from
//! <root>/<id>/exec.fifo    exists from create until start: the init blocks
//!                          opening it for writing; `start` reads one byte
//! ```
//!
//! The status is never stored: it is derived from the init process
//! (alive? same start time, so a recycled pid is not mistaken for it), the
//! fifo (still there = created) and the freezer (paused).

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

pub const FIFO: &str = "exec.fifo";
pub const STATE: &str = "state.json";
pub const CONFIG: &str = "config.json";
/// The version of state.json's format this runtime writes. It reads every
/// version up to this one, so a newer rcontain can still stop and delete a
/// container an older one created; version 0 (no "stateVersion") is the
/// first release's. Bump it when a field changes meaning or shape, and
/// keep reading the old one.
pub const STATE_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// Errors whose words engines match: containerd's runc shim looks for
/// "does not exist" and "container not running" in the runtime's stderr
/// (and so decides, e.g., that a delete of a gone container succeeded).
/// The text lives here once; callers can also match the variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LifecycleError {
    NotFound { id: String },
    NotRunning { id: String, action: &'static str },
}

impl fmt::Display for LifecycleError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            LifecycleError::NotFound { id } => write!(f, "container {id:?} does not exist"),
            LifecycleError::NotRunning { id, action } => {
                write!(f, "cannot {action} container {id:?}: container not running")
            }
        }
    }
}

impl std::error::Error for LifecycleError {}

/// What is persisted in state.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    /// STATE_VERSION when written; 0 when absent (the first release).
    #[serde(rename = "stateVersion", default)]
    pub version: u32,
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// starttime of the init (field 22 of /proc/PID/stat), to detect pid reuse.
    #[serde(rename = "initStartTime")]
    pub init_start_time: u64,
    /// Serialized cgroup manager, so later commands find the same cgroups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<serde_json::Value>,
}

/// The runtime-spec state document (`rcontain state`), in runc's layout.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    #[serde(rename = "ociVersion")]
    pub oci_version: &'a str,
    pub id: &'a str,
    pub pid: i32,
    pub status: String,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub created: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: &'a BTreeMap<String, String>,
    pub owner: &'a str,
}

/// Container ids become directory names: allow what runc allows.
pub fn validate_id(id: &str) -> Result<()> {
    if id.is_empty() {
        bail!("invalid container id: must not be empty");
    }
    if id == "."
        || id == ".."
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c))
    {
        bail!("invalid container id {id:?}: only letters, digits and _ + - . are allowed");
    }
    if id.len() > 1024 {
        bail!("invalid container id: longer than 1024 characters");
    }
    Ok(())
}

/// The state root when `--root` is not given, as runc chooses its own:
/// /run/rcontain for root; for anyone else `$XDG_RUNTIME_DIR/rcontain`
/// (the per-user tmpfs systemd-logind provides), since /run is root's; so
/// also for uid 0 of a user namespace, as rootless podman runs the runtime
/// (see `namespaces::Invoker::rootless`).
/// Without XDG_RUNTIME_DIR (a `su` or `sudo -u` shell, a cron job), a
/// private directory `/tmp/rcontain-UID`: /tmp is shared, so it is used
/// only if it is a directory of our own that no one else can write to.
pub fn default_root(who: &crate::namespaces::Invoker) -> Result<PathBuf> {
    let uid = nix::unistd::geteuid();
    if !who.rootless() {
        return Ok(PathBuf::from("/run/rcontain"));
    }
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        return Ok(Path::new(&dir).join("rcontain"));
    }
    let dir = std::env::temp_dir().join(format!("rcontain-{uid}"));
    private_dir(&dir, uid.as_raw()).with_context(|| {
        format!(
            "XDG_RUNTIME_DIR is not set, and the fallback state root {} is not usable \
             (set XDG_RUNTIME_DIR or pass --root)",
            dir.display()
        )
    })?;
    Ok(dir)
}

/// Makes sure `dir` is a directory owned by `uid`, writable by it alone
/// (created with mode 0700 if missing; never through a symlink).
fn private_dir(dir: &Path, uid: u32) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e.into()),
        _ => {}
    }
    let m = std::fs::symlink_metadata(dir)?;
    if !m.is_dir() || m.uid() != uid || m.mode() & 0o022 != 0 {
        bail!("not a directory of uid {uid} that only it can write to");
    }
    Ok(())
}

/// The state root (`--root`): one directory per container below it.
pub struct StateRoot {
    root: PathBuf,
}

impl StateRoot {
    pub fn new(root: &Path) -> StateRoot {
        StateRoot {
            root: root.to_path_buf(),
        }
    }

    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// Reserve `id`: mkdir is atomic, so two concurrent creates cannot both win.
    pub fn reserve(&self, id: &str) -> Result<PathBuf> {
        validate_id(id)?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(&self.root)
            .with_context(|| format!("creating root directory {}", self.root.display()))?;
        let dir = self.dir(id);
        match std::fs::DirBuilder::new().mode(0o711).create(&dir) {
            Ok(()) => Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                bail!("container {id:?} already exists")
            }
            Err(e) => Err(e).with_context(|| format!("creating {}", dir.display())),
        }
    }

    pub fn load(&self, id: &str) -> Result<State> {
        validate_id(id)?;
        let path = self.dir(id).join(STATE);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(LifecycleError::NotFound { id: id.into() }.into())
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let st: State =
            serde_json::from_slice(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?;
        if st.version > STATE_VERSION {
            bail!(
                "{}: state format {} is newer than this rcontain reads ({STATE_VERSION}): \
                 use the rcontain that created container {id:?}",
                path.display(),
                st.version
            );
        }
        Ok(st)
    }

    /// Write state.json atomically (temp file + rename), so a reader never
    /// sees a half-written document.
    pub fn save(&self, st: &State) -> Result<()> {
        write_atomic(&self.dir(&st.id).join(STATE), &serde_json::to_vec(st)?)
    }

    pub fn remove(&self, id: &str) -> Result<()> {
        let dir = self.dir(id);
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("removing {}", dir.display()))
            }
            _ => {}
        }
        // The mount namespace template lives as long as the containers.
        crate::rootfs::template::release(&self.root, || !self.holds_containers());
        Ok(())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether any container, even one still being created, has a
    /// directory here (validate_id keeps ids apart from the template's).
    fn holds_containers(&self) -> bool {
        std::fs::read_dir(&self.root).is_ok_and(|mut rd| {
            rd.any(|e| e.is_ok_and(|e| validate_id(&e.file_name().to_string_lossy()).is_ok()))
        })
    }

    /// Ids of all containers, sorted.
    pub fn ids(&self) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        let rd = match std::fs::read_dir(&self.root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ids),
            Err(e) => return Err(e).with_context(|| format!("reading {}", self.root.display())),
        };
        for e in rd.flatten() {
            if e.path().join(STATE).exists() {
                ids.push(e.file_name().to_string_lossy().into_owned());
            }
        }
        ids.sort();
        Ok(ids)
    }
}

/// Replace `path` with a file holding `data`: a new file in the same
/// directory, renamed over it. The directory may be writable by others
/// (a `--pid-file` in a shared directory): the temp file gets a name they
/// cannot guess and is created with O_EXCL|O_NOFOLLOW, so nothing planted
/// there redirects the write, and rename(2) replaces a symlink at `path`
/// instead of following it.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("{}: not a file name", path.display()))?;
    let mut attempts = 0;
    let (tmp, mut f) = loop {
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".{:016x}.tmp", unguessable()));
        let tmp = path.with_file_name(tmp_name);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
        {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempts < 8 => {
                attempts += 1
            }
            Err(e) => return Err(anyhow!("creating {}: {e}", tmp.display())),
        }
    };
    let r = f
        .write_all(data)
        .with_context(|| format!("writing {}", tmp.display()))
        .and_then(|()| {
            std::fs::rename(&tmp, path)
                .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
        });
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

/// 64 bits an observer cannot predict: std seeds each RandomState's keys
/// from the OS's random source.
fn unguessable() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(std::process::id())
}

/// Whether `pid` is a live (non-zombie) process started at `start_time`.
pub fn process_alive(pid: i32, start_time: u64) -> bool {
    pid > 0
        && matches!(proc_stat(pid), Some((state, st)) if st == start_time && state != 'Z' && state != 'X')
}

/// (state, starttime) from /proc/PID/stat.
pub fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let s = crate::sys::read_proc(format!("/proc/{pid}/stat")).ok()?;
    // comm may contain spaces and parentheses: fields start after the last ')'.
    let rest = &s[s.rfind(')')? + 2..];
    let mut f = rest.split(' ');
    let state = f.next()?.chars().next()?;
    let start = f.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// RFC 3339 UTC timestamp with nanoseconds, as runc writes `created`.
pub fn rfc3339_now() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(d.as_secs() as i64, d.subsec_nanos())
}

pub fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86400);
    let sod = secs.rem_euclid(86400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for ok in ["a", "abc-1.2_3+x", "A"] {
            validate_id(ok).unwrap();
        }
        for bad in ["", ".", "..", "a/b", "/", "a b", "é"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn private_state_root() {
        let base = std::env::temp_dir().join(format!("rcontain-private-{}", std::process::id()));
        let me = nix::unistd::geteuid().as_raw();
        let dir = base.join("root");
        std::fs::create_dir_all(&base).unwrap();
        private_dir(&dir, me).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        private_dir(&dir, me).unwrap();
        // Writable by others, owned by someone else, or a symlink: refused.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(private_dir(&dir, me).is_err());
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(private_dir(&dir, me + 1).is_err());
        let link = base.join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        assert!(private_dir(&link, me).is_err());
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            rfc3339(951782400 + 86399, 5),
            "2000-02-29T23:59:59.000000005Z"
        );
        assert_eq!(rfc3339(1795000000, 1), "2026-11-18T11:06:40.000000001Z");
    }

    #[test]
    fn own_process_is_alive() {
        let me = std::process::id() as i32;
        let (state, start) = proc_stat(me).unwrap();
        assert_ne!(state, 'Z');
        assert!(process_alive(me, start));
        assert!(!process_alive(me, start + 1));
        assert!(!process_alive(0, 0));
    }
}
