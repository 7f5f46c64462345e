//! Control groups: detection of the host's layout (v1, hybrid, v2) and one
//! `Manager` that creates, configures, freezes, signals, measures and
//! removes a container's cgroup(s) on any of them.
//!
//! In hybrid mode resources go to the v1 controllers (as runc does); the
//! matching directory in the unified hierarchy is created and joined too,
//! as runc 1.1 does, so that cgroup.kill and v2-only tools (systemd, BPF
//! programs keyed on cgroup2 paths) see the container as one unit.

pub mod devices;
mod fsutil;
pub mod oom;
pub mod stats;
pub mod systemd;
pub mod translate;
mod v1;
mod v2;

use anyhow::{bail, Context, Result};
use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC, TMPFS_MAGIC};
use oci_spec::runtime::{LinuxDevice, LinuxResources};
use serde::{Deserialize, Serialize};
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

/// A process's way into the container's v1 cgroups, opened by the
/// runtime (`Manager::v1_self_join`), used by that process itself.
///
/// Moving a process by its pid (cgroup.procs, or `tasks` with another
/// thread's id) takes the kernel's global cgroup_threadgroup_rwsem for
/// writing, and the first writer after a quiet spell waits for an RCU
/// grace period: 5 to 20 ms of every lone start here (sampled: a write
/// of cgroup.procs after 0.2 s of quiet, `run` after 0.5 s). The one
/// migration that skips that lock is a thread moving itself: "0" written
/// to `tasks`. The files are opened by the runtime, whose credentials the
/// kernel checks (those of the open), so the process may already be in
/// the container's user namespace when it writes.
pub struct SelfJoin {
    files: Vec<(PathBuf, std::fs::File)>,
}

impl SelfJoin {
    /// Move the calling thread into every cgroup opened. A `tasks` write
    /// moves one thread: the caller must be its process's only one.
    pub fn join(&self) -> Result<()> {
        use std::io::Write;
        for (path, f) in &self.files {
            (&*f).write_all(b"0").with_context(|| {
                format!(
                    "joining the container's cgroup: write \"0\" to {}",
                    path.display()
                )
            })?;
        }
        Ok(())
    }
}

/// Where cgroup hierarchies are mounted.
pub const ROOT: &str = "/sys/fs/cgroup";
/// Parent of containers that have no linux.cgroupsPath.
pub const DEFAULT_PARENT: &str = "rcontain";
/// How long `destroy` keeps killing and retrying a busy cgroup.
const DESTROY_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether [`Manager::create`] failed because this user may not create
/// the cgroup at all (EACCES, EPERM or EROFS making a directory): an
/// unprivileged user to whom nothing was delegated.
pub fn is_not_permitted(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<std::io::Error>())
        .any(|io| {
            matches!(
                io.raw_os_error(),
                Some(libc::EACCES | libc::EPERM | libc::EROFS)
            )
        })
}

/// The variant names are persisted (see `Manager`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    #[serde(rename = "V1")]
    V1,
    #[serde(rename = "Hybrid")]
    Hybrid,
    #[serde(rename = "V2")]
    V2,
}

/// Whether resources go to a cgroup being created or to a live one: at
/// create, device rules are always written and written whole; on update
/// only when given, and checks against the current usage apply.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Stage {
    Create,
    Update,
}

/// Host layout from the filesystem magic of /sys/fs/cgroup (and of
/// /sys/fs/cgroup/unified when the former is a tmpfs of v1 mounts).
pub fn detect() -> Result<Mode> {
    let fs = statfs(ROOT).with_context(|| format!("statfs {ROOT}"))?;
    if fs.filesystem_type() == CGROUP2_SUPER_MAGIC {
        return Ok(Mode::V2);
    }
    if fs.filesystem_type() != TMPFS_MAGIC {
        bail!("{ROOT} is neither cgroup2 nor a tmpfs of cgroup v1 mounts");
    }
    let unified = Path::new(ROOT).join("unified");
    match statfs(&unified) {
        Ok(u) if u.filesystem_type() == CGROUP2_SUPER_MAGIC => Ok(Mode::Hybrid),
        _ => Ok(Mode::V1),
    }
}

/// The cgroup part of the `features` document: both cgroup versions, the
/// systemd driver (the system's and, rootless, the user's) and rdma limits.
pub fn features() -> oci_spec::runtime::Cgroup {
    let mut c = oci_spec::runtime::Cgroup::default();
    c.set_v1(Some(true));
    c.set_v2(Some(true));
    c.set_systemd(Some(true));
    c.set_systemd_user(Some(true));
    c.set_rdma(Some(true));
    c
}

/// A mounted v1 hierarchy and the controllers bound to it
/// ("name=systemd" for named hierarchies).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hierarchy {
    #[serde(rename = "mount")]
    pub mount: PathBuf,
    #[serde(rename = "controllers")]
    pub controllers: Vec<String>,
}

/// Mounted v1 hierarchies from /proc/self/mountinfo, read only until
/// every hierarchy this process is in (/proc/self/cgroup: all of them) has
/// its mount: they come early in the table (mounted at boot), and reading
/// all of a node's thousands of mounts would cost milliseconds per start.
pub fn v1_hierarchies() -> Result<Vec<Hierarchy>> {
    let known = rcontain_sys::read_proc("/proc/cgroups").context("read /proc/cgroups")?;
    let own = rcontain_sys::read_proc("/proc/self/cgroup").context("read /proc/self/cgroup")?;
    let mut v1 = V1Mounts::new(&known, Some(&own));
    rcontain_sys::mountinfo::scan(|e| v1.add(e)).context("read /proc/self/mountinfo")?;
    Ok(v1.found)
}

/// The v1 hierarchies of mountinfo entries, as they are read.
struct V1Mounts<'a> {
    known: Vec<&'a str>,
    /// Controller sets (sorted) still without a mount; `None`: not known.
    missing: Option<Vec<Vec<String>>>,
    found: Vec<Hierarchy>,
}

impl<'a> V1Mounts<'a> {
    /// `proc_cgroups`: /proc/cgroups; `own`: /proc/self/cgroup, whose v1
    /// lines say which hierarchies exist.
    fn new(proc_cgroups: &'a str, own: Option<&str>) -> V1Mounts<'a> {
        let known = proc_cgroups
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        let missing = own.map(|own| {
            own.lines()
                .filter_map(|l| l.split(':').nth(1))
                .filter(|c| !c.is_empty())
                .map(|c| {
                    let mut v: Vec<String> = c.split(',').map(String::from).collect();
                    v.sort();
                    v
                })
                .collect()
        });
        V1Mounts {
            known,
            missing,
            found: Vec::new(),
        }
    }

    /// Takes one entry; true once every hierarchy has its mount.
    fn add(&mut self, e: rcontain_sys::mountinfo::Entry) -> bool {
        if e.fstype == "cgroup" {
            let controllers: Vec<String> = e
                .super_options
                .split(',')
                .filter(|o| o.starts_with("name=") || self.known.contains(o))
                .map(String::from)
                .collect();
            // the same hierarchy can be mounted twice: keep the first
            if !controllers.is_empty() && !self.found.iter().any(|h| h.controllers == controllers) {
                let mut sorted = controllers.clone();
                sorted.sort();
                if let Some(m) = &mut self.missing {
                    m.retain(|c| *c != sorted);
                }
                self.found.push(Hierarchy {
                    mount: PathBuf::from(e.mount_point),
                    controllers,
                });
            }
        }
        self.missing.as_ref().is_some_and(|m| m.is_empty())
    }
}

#[cfg(test)]
fn parse_v1_mounts(mountinfo: &str, proc_cgroups: &str) -> Vec<Hierarchy> {
    let mut v1 = V1Mounts::new(proc_cgroups, None);
    for e in rcontain_sys::mountinfo::parse(mountinfo) {
        v1.add(e);
    }
    v1.found
}

/// The files a container's cgroup gets on this host, over every hierarchy
/// (v1 controllers, the cgroup2 one): many (blkio.weight, cpu.max.burst,
/// memory.swap.max, ...) exist only below a hierarchy's root and only
/// with some kernel builds, so an empty cgroup is made below each root
/// under a name of its own (`tag`), listed and removed again.
pub fn probe_files(tag: &str) -> Result<std::collections::BTreeSet<String>> {
    let mode = detect()?;
    let mut roots: Vec<PathBuf> = Vec::new();
    if mode != Mode::V2 {
        roots.extend(v1_hierarchies()?.into_iter().map(|h| h.mount));
    }
    match mode {
        Mode::V2 => roots.push(PathBuf::from(ROOT)),
        Mode::Hybrid => roots.push(Path::new(ROOT).join("unified")),
        Mode::V1 => {}
    }
    let mut files = std::collections::BTreeSet::new();
    for root in roots {
        let probe = root.join(format!("{tag}-{}", std::process::id()));
        std::fs::create_dir(&probe)
            .with_context(|| format!("making the probe cgroup {}", probe.display()))?;
        let listed = std::fs::read_dir(&probe).map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
        });
        let _ = std::fs::remove_dir(&probe);
        files.extend(listed.with_context(|| format!("listing {}", probe.display()))?);
    }
    Ok(files)
}

/// Where runc puts a rootless container without `linux.cgroupsPath` on
/// cgroup v2: `<parent of the caller's own cgroup>/<id>` (the caller's own
/// cgroup holds processes, so it cannot enable controllers for a child;
/// its parent is what a delegation such as systemd's `user@.service`, or
/// a subtree chowned to the user, covers). None on v1 and hybrid hosts.
pub fn rootless_default_path(id: &str) -> Option<PathBuf> {
    if detect().ok()? != Mode::V2 {
        return None;
    }
    let own = rcontain_sys::read_proc("/proc/self/cgroup").ok()?;
    let own = own.lines().find_map(|l| l.strip_prefix("0::"))?;
    Some(Path::new(own).parent().unwrap_or(Path::new("/")).join(id))
}

/// The container's cgroup relative to every hierarchy root, "/a/b".
/// Relative and absolute cgroupsPath both land under the hierarchy root:
/// rcontain never nests containers inside the caller's own cgroup, which it
/// did not create. `..` is refused rather than resolved.
pub fn cgroup_path(cgroups_path: Option<&Path>, id: &str) -> Result<PathBuf> {
    let given = match cgroups_path {
        Some(p) => p.to_path_buf(),
        None => {
            if id.is_empty() || id.contains('/') || id == "." || id == ".." {
                bail!("container id {id:?} cannot name a cgroup");
            }
            Path::new(DEFAULT_PARENT).join(id)
        }
    };
    let mut out = PathBuf::from("/");
    for c in given.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir => {}
            _ => bail!("linux.cgroupsPath {:?}: \"..\" is not allowed", given),
        }
    }
    if out == Path::new("/") {
        bail!("linux.cgroupsPath {:?} names the root cgroup", given);
    }
    Ok(out)
}

/// Where a container's cgroups are. It is saved in the container's state
/// (state.json "cgroup") and read back by every later command, possibly
/// of a newer rcontain: the serialized names below (and in `Hierarchy`,
/// `Mode` and `devices::Rule`) are a persisted format, spelled out so that
/// renaming a field cannot change it. `reads_the_first_release_record`
/// reads one written by the first release.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manager {
    #[serde(rename = "mode")]
    mode: Mode,
    /// relative to each hierarchy root, starting with "/"; empty for the
    /// scope of a user's systemd (rootless) until it exists (`add_init`):
    /// where that manager's cgroup is, only its scope's init can tell
    #[serde(rename = "path")]
    path: PathBuf,
    /// v1 hierarchies in use (V1, Hybrid); empty on V2
    #[serde(rename = "hierarchies")]
    hierarchies: Vec<Hierarchy>,
    /// cgroup2 mount: /sys/fs/cgroup (V2) or /sys/fs/cgroup/unified (Hybrid)
    #[serde(rename = "unified")]
    unified: Option<PathBuf>,
    /// allow rules for linux.devices, applied after the spec's rules
    #[serde(rename = "device_nodes")]
    device_nodes: Vec<devices::Rule>,
    /// Made by an unprivileged user in a delegated subtree (`--rootless`):
    /// the device rules, an eBPF program on v2 that needs CAP_BPF or
    /// CAP_SYS_ADMIN, are skipped when refused, as runc skips them.
    #[serde(
        rename = "rootless",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    rootless: bool,
    /// The scope unit systemd owns the cgroup through (`--systemd-cgroup`);
    /// absent in the states of containers made without it (and of every
    /// release before it).
    #[serde(rename = "systemd", default, skip_serializing_if = "Option::is_none")]
    systemd: Option<systemd::Unit>,
}

impl Manager {
    /// Pure computation: where the container's cgroups will be. Nothing is created.
    pub fn new(cgroups_path: Option<&Path>, id: &str) -> Result<Manager> {
        Manager::at(cgroup_path(cgroups_path, id)?, None)
    }

    /// `--systemd-cgroup`: the container's cgroup is the scope unit that
    /// cgroupsPath ("slice:prefix:name") names; systemd makes it when the
    /// init exists (`add_init`). With `user` (rootless) the user's own
    /// systemd owns it, below its user@UID.service, as with runc. Pure
    /// computation but for the checks that this host runs systemd and,
    /// with `user`, that the user's bus answers.
    pub fn new_systemd(cgroups_path: Option<&Path>, id: &str, user: bool) -> Result<Manager> {
        let (unit, path) = systemd::Unit::parse(cgroups_path, id, user)?;
        if !systemd::booted() {
            bail!("--systemd-cgroup: systemd is not running on this host (no /run/systemd/system), so it cannot own the container's cgroup");
        }
        if !user {
            return Manager::at(path, Some(unit));
        }
        // runc's rule: the user's systemd delegates cgroup v2 subtrees only
        if detect()? != Mode::V2 {
            bail!("--systemd-cgroup: rootless needs cgroup v2 (the user's systemd cannot own a container's cgroups on a cgroup v1 or hybrid host)");
        }
        systemd::check_user_bus(
            std::env::var_os("DBUS_SESSION_BUS_ADDRESS"),
            std::env::var_os("XDG_RUNTIME_DIR"),
        )?;
        Manager::at(PathBuf::new(), Some(unit))
    }

    /// Whether the container's cgroup path is known (see `path`).
    fn placed(&self) -> bool {
        !self.path.as_os_str().is_empty()
    }

    fn at(path: PathBuf, systemd: Option<systemd::Unit>) -> Result<Manager> {
        let mode = detect()?;
        let (hierarchies, unified) = match mode {
            Mode::V2 => (Vec::new(), Some(PathBuf::from(ROOT))),
            Mode::Hybrid => (v1_hierarchies()?, Some(Path::new(ROOT).join("unified"))),
            Mode::V1 => (v1_hierarchies()?, None),
        };
        Ok(Manager {
            mode,
            path,
            hierarchies,
            unified,
            device_nodes: Vec::new(),
            rootless: false,
            systemd,
        })
    }

    /// Allow the container's linux.devices nodes (after the spec's device
    /// rules, as runc does) whenever device rules are written.
    pub fn with_devices(mut self, nodes: &[LinuxDevice]) -> Manager {
        self.device_nodes = devices::node_rules(nodes);
        self
    }

    /// See the `rootless` field.
    pub fn with_rootless(mut self, rootless: bool) -> Manager {
        self.rootless = rootless;
        self
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The cgroup path relative to the hierarchy roots ("/rcontain/<id>").
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The container's directory in the v1 hierarchy holding `controller`.
    fn v1_dir(&self, controller: &str) -> Option<PathBuf> {
        self.hierarchies
            .iter()
            .filter(|_| self.placed())
            .find(|h| h.controllers.iter().any(|c| c == controller))
            .map(|h| join(&h.mount, &self.path))
    }

    /// The container's directory in the cgroup2 hierarchy, if any.
    fn v2_dir(&self) -> Option<PathBuf> {
        let u = self.unified.as_ref().filter(|_| self.placed())?;
        Some(join(u, &self.path))
    }

    /// Every directory of the container, one per hierarchy.
    fn all_dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = self
            .hierarchies
            .iter()
            .filter(|_| self.placed())
            .map(|h| join(&h.mount, &self.path))
            .collect();
        dirs.extend(self.v2_dir());
        dirs
    }

    fn rules(&self, r: Option<&LinuxResources>) -> Result<Vec<devices::Rule>> {
        let mut rules = devices::effective_rules(r.and_then(|r| r.devices().as_deref()), None)?;
        rules.extend(self.device_nodes.iter().cloned());
        Ok(rules)
    }

    /// Check `r` against what this host offers, without touching anything.
    pub fn validate(&self, r: &LinuxResources) -> Result<()> {
        self.rules(Some(r))?;
        match self.mode {
            Mode::V2 => v2::validate(self.unified.as_deref().unwrap_or(Path::new(ROOT)), r),
            _ => v1::validate(&self.hierarchies, r),
        }
    }

    /// The systemd unit owning the cgroup, with `--systemd-cgroup`.
    pub fn systemd_unit(&self) -> Option<&str> {
        self.systemd.as_ref().map(|u| u.name.as_str())
    }

    /// Create the cgroup(s) and write `r`. On error nothing created is left.
    /// With systemd only `r` is checked: the scope needs the init's pid,
    /// and is made by `add_init`.
    pub fn create(&self, r: Option<&LinuxResources>) -> Result<()> {
        let default = LinuxResources::default();
        let r = r.unwrap_or(&default);
        self.validate(r)?;
        if self.systemd.is_some() {
            return Ok(());
        }
        let mut created: Vec<PathBuf> = Vec::new();
        let res = self.create_inner(r, &mut created);
        if res.is_err() {
            fsutil::remove_created(&created);
        }
        res
    }

    fn create_inner(&self, r: &LinuxResources, created: &mut Vec<PathBuf>) -> Result<()> {
        let rules = self.rules(Some(r))?;
        if self.mode == Mode::V2 {
            let root = self.unified.as_deref().unwrap_or(Path::new(ROOT));
            let new = fsutil::mkdir_all(root, &self.path)?;
            created.extend(new.iter().cloned());
            let dir = join(root, &self.path);
            v2::enable_in_ancestors(root, &dir, &new);
            v2::enable_controllers(&dir, &new)?;
            if self.systemd.as_ref().is_some_and(|u| u.user) {
                // what the user's systemd delegated: a missing controller
                // is named with the field, before a limit file is missed
                v2::validate_delegated(&dir, r)?;
            }
            v2::apply(&dir, r, &rules, Stage::Create, self.rootless)?;
            return Ok(());
        }
        for h in &self.hierarchies {
            let new = fsutil::mkdir_all(&h.mount, &self.path)?;
            created.extend(new.iter().cloned());
            if h.controllers.iter().any(|c| c == "cpuset") {
                v1::init_cpuset(&h.mount, &self.path)?;
            }
        }
        if let Some(u) = &self.unified {
            created.extend(fsutil::mkdir_all(u, &self.path)?);
        }
        v1::apply(self, r, &rules, Stage::Create)
    }

    /// Put the container's init `pid` in its cgroup: with systemd, start
    /// the scope with it (runc's properties, then `extra`: those of the
    /// org.systemd.property.* annotations), set `r` as unit properties,
    /// then write `r` to the cgroup files, as runc does, so the values read
    /// back are runc's; otherwise `add_pid`. On error the unit is stopped.
    /// The user's systemd (rootless) puts the scope below its own cgroup,
    /// which the init's /proc/PID/cgroup then tells: that is the path.
    pub fn add_init(
        &mut self,
        pid: i32,
        in_unified: bool,
        v1_joined: bool,
        id: &str,
        r: Option<&LinuxResources>,
        extra: &[(String, systemd::Value)],
    ) -> Result<()> {
        let Some(unit) = self.systemd.clone() else {
            return self.add_pid(pid, in_unified, v1_joined);
        };
        let default = LinuxResources::default();
        let r = r.unwrap_or(&default);
        let bus = systemd::Bus::connect(unit.user)?;
        bus.start_unit(
            &unit.name,
            &systemd::start_properties(&unit, id, pid, self.mode),
            extra,
        )?;
        if unit.user {
            match scope_of(pid, &unit.name) {
                Ok(path) => self.path = path,
                Err(e) => {
                    let _ = bus.stop_unit(&unit.name);
                    return Err(e);
                }
            }
        }
        let res = self.systemd_apply(&bus, r, Stage::Create).and_then(|()| {
            // systemd put the init in its own hierarchies; the others
            // (v1 controllers it does not manage) are joined here.
            self.add_pid(pid, false, false)
        });
        if res.is_err() {
            let _ = bus.stop_unit(&unit.name);
            let _ = self.remove_dirs();
        }
        res
    }

    /// `r` as unit properties, then in the cgroup files (creating the
    /// scope's directory in the hierarchies systemd does not manage).
    fn systemd_apply(&self, bus: &systemd::Bus, r: &LinuxResources, stage: Stage) -> Result<()> {
        let unit = self.systemd.as_ref().expect("systemd manager");
        let version = bus.version()?;
        let mut props = systemd::resource_properties(r, self.mode, version)?;
        // the device rules as the fs code writes them: always at create,
        // on update only when given
        if stage == Stage::Create || r.devices().is_some() {
            props.extend(systemd::device_properties(
                &self.rules(Some(r))?,
                version,
                || std::fs::read_to_string("/proc/devices").context("reading /proc/devices"),
                |p| Path::new(p).exists(),
            )?);
        }
        bus.set_properties(&unit.name, &props)?;
        if stage == Stage::Create {
            let mut created = Vec::new();
            let res = self.create_inner(r, &mut created);
            if res.is_err() {
                fsutil::remove_created(&created);
            }
            res
        } else {
            self.apply(r)
        }
    }

    /// Move `pid` into the container's cgroup in every hierarchy but the
    /// cgroup2 one if it was born there (`in_unified`, see `unified_dir_fd`)
    /// and the v1 ones if it joined those itself (`v1_joined`, see
    /// `v1_self_join`).
    pub fn add_pid(&self, pid: i32, in_unified: bool, v1_joined: bool) -> Result<()> {
        let unified = self.v2_dir().filter(|_| !in_unified);
        let v1 = self
            .hierarchies
            .iter()
            .filter(|_| !v1_joined)
            .map(|h| join(&h.mount, &self.path));
        for dir in v1.chain(unified) {
            fsutil::write(
                &dir,
                "cgroup.procs",
                &pid.to_string(),
                "the container's cgroup",
            )
            .with_context(|| format!("add pid {pid} to cgroup {}", dir.display()))?;
        }
        Ok(())
    }

    /// The `tasks` files of the container's cgroup in every v1 hierarchy,
    /// open for writing, for the process that is to live there to move
    /// itself in (`SelfJoin::join`) before `add_pid(.., v1_joined: true)`.
    /// None with systemd, which places the process itself, nor without v1
    /// hierarchies.
    pub fn v1_self_join(&self) -> Result<Option<SelfJoin>> {
        if self.systemd.is_some() || self.hierarchies.is_empty() {
            return Ok(None);
        }
        let files = self
            .hierarchies
            .iter()
            .map(|h| {
                let path = join(&h.mount, &self.path).join("tasks");
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map(|f| (path.clone(), f))
                    .with_context(|| format!("opening {}", path.display()))
            })
            .collect::<Result<_>>()?;
        Ok(Some(SelfJoin { files }))
    }

    /// The container's directory in the cgroup2 hierarchy (v2, and hybrid,
    /// where it is joined too), for clone3(CLONE_INTO_CGROUP); None before
    /// systemd made it.
    pub fn unified_dir_fd(&self) -> Result<Option<OwnedFd>> {
        let Some(dir) = self.v2_dir() else {
            return Ok(None);
        };
        // systemd makes the scope only once the init exists (add_init)
        if self.systemd.is_some() && !dir.exists() {
            return Ok(None);
        }
        let fd = rcontain_sys::open(
            &dir,
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .with_context(|| format!("open {}", dir.display()))?;
        Ok(Some(fd))
    }

    /// Change the resources of a live container; fields absent in `r` keep
    /// their values.
    pub fn update(&self, r: &LinuxResources) -> Result<()> {
        self.validate(r)?;
        if let Some(unit) = &self.systemd {
            return self.systemd_apply(&systemd::Bus::connect(unit.user)?, r, Stage::Update);
        }
        self.apply(r)
    }

    fn apply(&self, r: &LinuxResources) -> Result<()> {
        let rules = self.rules(Some(r))?;
        match self.mode {
            Mode::V2 => v2::apply(
                &self.v2_dir().expect("v2 dir"),
                r,
                &rules,
                Stage::Update,
                self.rootless,
            ),
            _ => v1::apply(self, r, &rules, Stage::Update),
        }
    }

    /// The directory whose freezer this container uses and whether it is v2.
    fn freezer(&self) -> Result<(PathBuf, bool)> {
        if self.mode != Mode::V2 {
            if let Some(d) = self.v1_dir("freezer") {
                return Ok((d, false));
            }
        }
        match self.v2_dir() {
            Some(d) => Ok((d, true)),
            None => bail!("no freezer: the v1 freezer controller is not mounted"),
        }
    }

    /// Freeze every process of the container and wait until they are.
    pub fn freeze(&self) -> Result<()> {
        let (dir, v2) = self.freezer()?;
        if v2 {
            v2::freeze(&dir, true)
        } else {
            v1::freeze(&dir, true)
        }
    }

    pub fn thaw(&self) -> Result<()> {
        let (dir, v2) = self.freezer()?;
        if v2 {
            v2::freeze(&dir, false)
        } else {
            v1::freeze(&dir, false)
        }
    }

    pub fn is_frozen(&self) -> Result<bool> {
        let (dir, v2) = self.freezer()?;
        if v2 {
            v2::is_frozen(&dir)
        } else {
            v1::is_frozen(&dir)
        }
    }

    /// The directory listing the container's processes.
    fn procs_dir(&self) -> Result<PathBuf> {
        if self.mode == Mode::V1 {
            for c in ["freezer", "pids", "memory", "cpu", "devices"] {
                if let Some(d) = self.v1_dir(c) {
                    return Ok(d);
                }
            }
            return self
                .hierarchies
                .first()
                .map(|h| join(&h.mount, &self.path))
                .context("no cgroup v1 hierarchy is mounted");
        }
        self.v2_dir()
            .context("the container's cgroup is not known (its systemd scope was never started)")
    }

    /// Pids of all processes in the container's cgroup and its children.
    pub fn pids(&self) -> Result<Vec<i32>> {
        let mut out = Vec::new();
        fsutil::pids_recursive(&self.procs_dir()?, &mut out)?;
        Ok(out)
    }

    /// Send `sig` to every process of the container. SIGKILL uses
    /// cgroup.kill when the kernel has it; otherwise the cgroup is frozen
    /// while signalling, so no process can fork a child that escapes.
    pub fn kill_all(&self, sig: i32) -> Result<()> {
        if !(1..=libc::SIGRTMAX()).contains(&sig) {
            bail!("invalid signal {sig}");
        }
        if sig == libc::SIGKILL {
            if let Some(dir) = self.v2_dir().filter(|d| d.join("cgroup.kill").exists()) {
                fsutil::write(&dir, "cgroup.kill", "1", "kill --all")?;
                // a v1-frozen process only dies once thawed
                if self.mode == Mode::Hybrid && self.v1_dir("freezer").is_some() {
                    self.thaw()?;
                }
                return Ok(());
            }
        }
        let frozen = self.is_frozen().unwrap_or(false);
        let can_freeze = self.freezer().is_ok();
        if can_freeze && !frozen {
            self.freeze()?;
        }
        let result = self.pids().and_then(|pids| {
            for pid in pids {
                match rcontain_sys::kill(pid, sig) {
                    Ok(_) | Err(nix::errno::Errno::ESRCH) => {}
                    Err(e) => bail!("kill({pid}, {sig}): {e}"),
                }
            }
            Ok(())
        });
        // SIGKILL must reach processes even of a paused container
        if can_freeze && (!frozen || sig == libc::SIGKILL) {
            self.thaw()?;
        }
        result
    }

    /// runc's `events --stats` "data" object.
    pub fn stats(&self) -> Result<serde_json::Value> {
        match self.mode {
            Mode::V2 => stats::collect_v2(&self.v2_dir().expect("v2 dir")),
            _ => stats::collect_v1(&|c| self.v1_dir(c)),
        }
    }

    /// A notifier that becomes readable when the container hits an OOM.
    pub fn oom_events(&self) -> Result<oom::OomNotifier> {
        match self.mode {
            Mode::V2 => oom::OomNotifier::v2(&self.v2_dir().expect("v2 dir")),
            _ => {
                let dir = self
                    .v1_dir("memory")
                    .context("the memory controller is not mounted")?;
                oom::OomNotifier::v1(&dir)
            }
        }
    }

    /// Remove the container's cgroups everywhere, killing what is still
    /// inside. Already gone is fine. With systemd the scope is stopped
    /// (after the kill, so systemd has nothing to wait for) and reset.
    pub fn destroy(&self) -> Result<()> {
        let Some(unit) = &self.systemd else {
            return self.remove_dirs();
        };
        if self.pids().is_ok_and(|p| !p.is_empty()) {
            let _ = self.kill_all(libc::SIGKILL);
        }
        match systemd::Bus::connect(unit.user) {
            Ok(bus) => bus.stop_unit(&unit.name)?,
            // never started (no bus at create): nothing in systemd to undo
            Err(_) if !self.all_dirs().iter().any(|d| d.exists()) => {}
            Err(e) => return Err(e),
        }
        self.remove_dirs()
    }

    fn remove_dirs(&self) -> Result<()> {
        let deadline = Instant::now() + DESTROY_TIMEOUT;
        let mut killed = false;
        let mut nudge = || -> Result<()> {
            if !killed {
                // later retries only wait for the dying to be reaped
                killed = true;
                self.kill_all(libc::SIGKILL)
            } else {
                Ok(())
            }
        };
        let mut first_err = None;
        for dir in self.all_dirs() {
            if let Err(e) = fsutil::remove_tree(&dir, deadline, &mut nudge) {
                first_err.get_or_insert(e);
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        // The shared "rcontain" parent stays, as runc's and crun's parents
        // do: removing and re-creating it in every hierarchy doubled the
        // cgroup cost of a container's start and stop.
        Ok(())
    }
}

/// The cgroup of the systemd scope `unit` that `pid` was just started in,
/// from /proc/PID/cgroup (the init waits, so it cannot have moved).
fn scope_of(pid: i32, unit: &str) -> Result<PathBuf> {
    let file = format!("/proc/{pid}/cgroup");
    let text = std::fs::read_to_string(&file).with_context(|| format!("reading {file}"))?;
    let path = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(PathBuf::from)
        .with_context(|| format!("{file} has no cgroup v2 line"))?;
    if !path.ends_with(unit) || cgroup_path(Some(&path), "").ok().as_ref() != Some(&path) {
        bail!(
            "systemd put the container's init in {}, not in its scope {unit}",
            path.display()
        );
    }
    Ok(path)
}

/// Checks of spec values that hold whatever the cgroup version.
fn check_values(r: &LinuxResources) -> Result<()> {
    if let Some(m) = r.memory() {
        if let Some(s) = m.swappiness().filter(|&s| s > 100) {
            bail!("invalid memory.swappiness {s}: must be 0..=100");
        }
        if let (Some(l), Some(s)) = (m.limit(), m.swap()) {
            if l > 0 && s > 0 && s < l {
                bail!("invalid memory.swap {s}: memory+swap must be >= memory.limit {l}");
            }
        }
    }
    if let Some(b) = r.block_io() {
        let weights = b
            .weight()
            .iter()
            .chain(b.leaf_weight().iter())
            .copied()
            .chain(
                b.weight_device()
                    .iter()
                    .flatten()
                    .flat_map(|w| w.weight().into_iter().chain(w.leaf_weight())),
            )
            .collect::<Vec<u16>>();
        if let Some(w) = weights
            .iter()
            .find(|&&w| w != 0 && !(10..=1000).contains(&w))
        {
            bail!("invalid blockIO weight {w}: must be 10..=1000");
        }
    }
    let limits = r.hugepage_limits().as_deref().unwrap_or_default();
    if !limits.is_empty() {
        let sizes = hugepage_sizes()?;
        for l in limits {
            if !sizes.iter().any(|s| s == l.page_size()) {
                bail!(
                    "invalid hugepageLimits pageSize {:?}: this host offers {}",
                    l.page_size(),
                    if sizes.is_empty() {
                        "none".into()
                    } else {
                        sizes.join(", ")
                    }
                );
            }
        }
    }
    Ok(())
}

/// Huge page sizes of this host in the spec's notation ("2MB", "1GB").
pub fn hugepage_sizes() -> Result<Vec<String>> {
    let dir = "/sys/kernel/mm/hugepages";
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("read {dir}")),
    };
    let mut sizes = Vec::new();
    for e in entries {
        let e = e.with_context(|| format!("read {dir}"))?;
        sizes.extend(translate::hugepage_size_name(
            &e.file_name().to_string_lossy(),
        ));
    }
    sizes.sort();
    Ok(sizes)
}

/// root + "/a/b" (Path::join would discard root for an absolute path).
fn join(root: &Path, rel: &Path) -> PathBuf {
    root.join(rel.strip_prefix("/").unwrap_or(rel))
}

#[cfg(test)]
mod fixture_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_self_join_names_the_file() {
        // a file the write fails on (open for reading only): EBADF
        let path = std::env::temp_dir().join(format!("selfjoin-{}", std::process::id()));
        std::fs::write(&path, "").unwrap();
        let j = SelfJoin {
            files: vec![(path.clone(), std::fs::File::open(&path).unwrap())],
        };
        let e = format!("{:#}", j.join().unwrap_err());
        std::fs::remove_file(&path).unwrap();
        assert!(
            e.contains(&format!("write \"0\" to {}", path.display())),
            "{e}"
        );
    }

    #[test]
    fn reads_the_first_release_record() {
        // As rcontain 0.1.0 (state.json without a version) saved it.
        let v0 = r#"{"device_nodes":[{"access":"rwm","allow":true,"kind":"c","major":10,"minor":229}],
            "hierarchies":[{"controllers":["cpu"],"mount":"/sys/fs/cgroup/cpu"},
                           {"controllers":["name=systemd"],"mount":"/sys/fs/cgroup/systemd"}],
            "mode":"Hybrid","path":"/rcontain/c1","unified":"/sys/fs/cgroup/unified"}"#;
        let m: Manager = serde_json::from_str(v0).unwrap();
        assert_eq!(
            m,
            Manager {
                mode: Mode::Hybrid,
                path: "/rcontain/c1".into(),
                hierarchies: vec![
                    Hierarchy {
                        mount: "/sys/fs/cgroup/cpu".into(),
                        controllers: vec!["cpu".into()],
                    },
                    Hierarchy {
                        mount: "/sys/fs/cgroup/systemd".into(),
                        controllers: vec!["name=systemd".into()],
                    },
                ],
                unified: Some("/sys/fs/cgroup/unified".into()),
                device_nodes: vec![devices::Rule {
                    allow: true,
                    kind: 'c',
                    major: Some(10),
                    minor: Some(229),
                    access: "rwm".into(),
                }],
                rootless: false,
                systemd: None,
            }
        );
        // and writes it back in the same words
        let back: serde_json::Value = serde_json::to_value(&m).unwrap();
        assert_eq!(back, serde_json::from_str::<serde_json::Value>(v0).unwrap());
        // A rootless manager says so, and reads back as one.
        let r = m.with_rootless(true);
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains(r#""rootless":true"#), "{text}");
        assert_eq!(serde_json::from_str::<Manager>(&text).unwrap(), r);
    }

    #[test]
    fn systemd_record() {
        // A systemd manager saves its unit in these words and reads back.
        let (unit, path) =
            systemd::Unit::parse(Some(Path::new("a-b.slice:p:n")), "c", false).unwrap();
        let m = Manager {
            mode: Mode::V2,
            path,
            hierarchies: vec![],
            unified: Some(ROOT.into()),
            device_nodes: vec![],
            rootless: false,
            systemd: Some(unit),
        };
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(
            v["systemd"],
            serde_json::json!({"unit": "p-n.scope", "slice": "a-b.slice"})
        );
        assert_eq!(v["path"], "/a.slice/a-b.slice/p-n.scope");
        assert_eq!(serde_json::from_value::<Manager>(v).unwrap(), m);
        assert_eq!(m.systemd_unit(), Some("p-n.scope"));
    }

    #[test]
    fn paths() {
        let p = |s: Option<&str>, id| cgroup_path(s.map(Path::new), id);
        assert_eq!(p(None, "c1").unwrap(), Path::new("/rcontain/c1"));
        assert_eq!(p(Some("/a/b"), "c1").unwrap(), Path::new("/a/b"));
        assert_eq!(p(Some("a/./b/"), "c1").unwrap(), Path::new("/a/b"));
        assert_eq!(p(Some("//x"), "c1").unwrap(), Path::new("/x"));
        assert!(p(Some("/a/../b"), "c1").is_err());
        assert!(p(Some("/"), "c1").is_err());
        assert!(p(None, "a/b").is_err());
        assert!(p(None, "..").is_err());
        assert_eq!(
            join(Path::new("/sys/fs/cgroup/cpu"), Path::new("/a/b")),
            Path::new("/sys/fs/cgroup/cpu/a/b")
        );
    }

    #[test]
    fn v1_mounts_from_mountinfo() {
        let mi = "\
25 30 0:23 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs ro,mode=755
26 25 0:24 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,nsdelegate
27 25 0:25 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
28 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
29 25 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
30 25 0:27 / /mnt/again rw - cgroup cgroup rw,memory
31 25 0:28 / /proc rw - proc proc rw";
        let pc = "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t2\t1\t1\ncpuacct\t2\t1\t1\nmemory\t3\t1\t1\n";
        let h = parse_v1_mounts(mi, pc);
        assert_eq!(h.len(), 3);
        assert_eq!(h[0].controllers, vec!["name=systemd"]);
        assert_eq!(h[1].mount, Path::new("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(h[1].controllers, vec!["cpu", "cpuacct"]);
        assert_eq!(h[2].mount, Path::new("/sys/fs/cgroup/memory"));
        // Stops once /proc/self/cgroup's hierarchies all have a mount.
        let own = "3:memory:/a\n2:cpuacct,cpu:/a\n1:name=systemd:/a\n0::/a\n";
        let mut v1 = V1Mounts::new(pc, Some(own));
        let lines: Vec<_> = rcontain_sys::mountinfo::parse(mi).collect();
        let stop = lines.into_iter().position(|e| v1.add(e));
        assert_eq!(stop, Some(4));
        assert_eq!(v1.found.len(), 3);
    }
}
