//! The container lifecycle of the runtime spec (runtime.md): create,
//! start, state, kill, delete, plus `run` (create + start + wait + delete)
//! and `list`. This is the library API the CLI calls.

pub mod foreground;
pub mod hooks;
pub mod state;

use crate::cgroups;
use crate::logging;
use crate::namespaces::Namespaces;
use crate::oci::spec::Bundle;
use crate::process::{capabilities, seccomp};
use crate::start::init::InitConfig;
use crate::start::spawn::{self, Parent};
use anyhow::{anyhow, bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use oci_spec::runtime::Spec;
use state::{State, StateRoot, Status};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct Runtime {
    pub states: StateRoot,
    /// `--rootless`: a container whose cgroups this user may not create
    /// runs without them (when it asks for no limits), as with runc.
    rootless_cgroups: bool,
    /// `--systemd-cgroup`: the cgroup is a systemd scope.
    systemd_cgroup: bool,
    who: crate::namespaces::Invoker,
}

#[derive(Default, Clone)]
pub struct CreateOpts {
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    /// The rootfs is an image store's (`run IMAGE`).
    pub image_rootfs: Option<crate::rootfs::ImageRootfs>,
}

/// Undoes a half-made create on drop: kills the init, removes the state dir.
struct Undo<'a> {
    states: &'a StateRoot,
    id: String,
    pid: Option<i32>,
    /// owned here so that it is the one the init's start completed
    /// (a user's systemd scope learns its path then)
    cgroup: Option<cgroups::Manager>,
    /// rootfs whose mounts live in the host's mount namespace
    host_mounts: Option<&'a Path>,
    armed: bool,
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(p) = self.pid {
            let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
            wait_gone(p, None);
        }
        if let Some(r) = self.host_mounts {
            if let Err(e) = crate::rootfs::unmount_host_mounts(r) {
                logging::warn(&format!(
                    "unmounting the rootfs of failed container {:?}: {e:#}",
                    self.id
                ));
            }
        }
        if let Some(cg) = &self.cgroup {
            if let Err(e) = cg.destroy() {
                logging::warn(&format!(
                    "removing the cgroup of failed container {:?}: {e:#}",
                    self.id
                ));
            }
        }
        let _ = self.states.remove(&self.id);
    }
}

/// The parent's part in spawning (spawn kills the init itself on error).
/// The scope properties the spec's org.systemd.property.* annotations
/// ask for (`--systemd-cgroup` only, as runc).
fn systemd_annotations(spec: &Spec) -> Result<Vec<(String, cgroups::systemd::Value)>> {
    let sorted: std::collections::BTreeMap<String, String> = spec
        .annotations()
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    cgroups::systemd::annotation_properties(&sorted)
}

struct CreateParent<'a> {
    id: &'a str,
    spec: &'a Spec,
    cgroup: Option<&'a mut cgroups::Manager>,
    /// the init joins its v1 cgroups itself (InitConfig::cgroup_v1)
    v1_joined: bool,
    hook_state: &'a dyn Fn(i32, &str) -> Vec<u8>,
}

impl Parent for CreateParent<'_> {
    fn seccomp_fd(&mut self, pid: i32, fd: OwnedFd) -> Result<()> {
        let linux = self.spec.linux().as_ref().expect("validated");
        send_seccomp_fd(linux, &(self.hook_state)(pid, "creating"), pid, &fd)
    }

    fn init_created(&mut self, pid: i32, in_cgroup2: bool) -> Result<()> {
        // Before the init runs any container code (it waits for Continue).
        if let Some(cg) = self.cgroup.as_deref_mut() {
            let linux = self.spec.linux().as_ref().expect("validated");
            let extra = match cg.systemd_unit() {
                Some(_) => systemd_annotations(self.spec)?,
                None => Vec::new(),
            };
            cg.add_init(
                pid,
                in_cgroup2,
                self.v1_joined,
                self.id,
                linux.resources().as_ref(),
                &extra,
            )?;
        }
        if let Some(adj) = self.spec.process().as_ref().and_then(|p| p.oom_score_adj()) {
            std::fs::write(format!("/proc/{pid}/oom_score_adj"), adj.to_string())
                .map_err(|e| anyhow!("process.oomScoreAdj: writing {adj}: {e}"))?;
        }
        Ok(())
    }

    fn run_hooks(&mut self, pid: i32) -> Result<()> {
        if let Some(h) = self.spec.hooks() {
            // The environment exists (lifecycle step 2 is over): the spec's
            // "created", as crun and runtime-tools say; runc says "creating".
            let st = (self.hook_state)(pid, "created");
            hooks::run_all("prestart", h.prestart().as_ref(), &st)?;
            hooks::run_all("createRuntime", h.create_runtime().as_ref(), &st)?;
        }
        Ok(())
    }
}

/// What `delete` does with a container that is still running or paused
/// (`delete --force` kills it).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum IfRunning {
    Refuse,
    Kill,
}

impl Runtime {
    /// `who`: the caller's Invoker::current(), read once per command.
    pub fn new(root: &Path, who: crate::namespaces::Invoker) -> Runtime {
        Runtime {
            states: StateRoot::new(root),
            rootless_cgroups: false,
            systemd_cgroup: false,
            who,
        }
    }

    /// Sets `--systemd-cgroup` (see the field).
    pub fn systemd_cgroup(self, on: bool) -> Runtime {
        Runtime {
            systemd_cgroup: on,
            ..self
        }
    }

    /// Sets `--rootless` (see the field).
    pub fn rootless_cgroups(self, on: bool) -> Runtime {
        Runtime {
            rootless_cgroups: on,
            ..self
        }
    }

    /// Spawns the init (spawn::spawn) with what create made; returns its pid.
    fn spawn_init(
        &self,
        o: &CreateOpts,
        bundle: &Bundle,
        checked: &Checked,
        state_dir: &OwnedFd,
        cg: Option<&mut cgroups::Manager>,
        st: &State,
    ) -> Result<i32> {
        let spec = &bundle.spec;
        let linux = spec.linux().as_ref().expect("validated");
        let cgroup_dir = cg
            .as_deref()
            .map(|c| c.unified_dir_fd())
            .transpose()?
            .flatten();
        let v1_join = cg
            .as_deref()
            .map(|c| c.v1_self_join())
            .transpose()?
            .flatten();
        let hook_state = |pid: i32, status: &str| hook_state_json(st, pid, status);
        let keyring = format!("_ses.{}", o.id);
        let host_proc = crate::rootfs::safepath::host_proc()?;
        let cfg = InitConfig {
            spec,
            bundle: &bundle.dir,
            rootfs: &bundle.rootfs,
            ns: &checked.ns,
            state_dir,
            state_root: self.states.root(),
            cgroup_v1: v1_join.as_ref(),
            host_proc: &host_proc,
            console: checked.console.as_ref(),
            no_pivot: o.no_pivot,
            image_rootfs: o.image_rootfs.as_ref(),
            preserve_fds: o.preserve_fds,
            keyring: (!o.no_new_keyring).then_some(keyring.as_str()),
            seccomp: checked.filter.as_ref(),
            caps: &checked.caps,
            hook_state: &hook_state,
            who: self.who,
        };
        spawn::spawn(
            &cfg,
            linux,
            cgroup_dir.as_ref().map(|d| d.as_fd()),
            &mut CreateParent {
                id: &o.id,
                spec,
                cgroup: cg,
                v1_joined: v1_join.is_some(),
                hook_state: &hook_state,
            },
        )
    }

    /// `create`: the init is set up and waits for `start`. `console` is
    /// an already connected console socket (run's own terminal proxy), if
    /// the caller made one instead of passing --console-socket.
    pub fn create(&self, o: &CreateOpts, console: Option<OwnedFd>) -> Result<State> {
        self.create_from(o, &load_bundle(o)?, console)
    }

    /// `create` from the bundle [`load_bundle`] returned, for a caller that
    /// looks at the config first (`run` needs to know about the terminal).
    /// Phases: check (nothing exists yet when one fails), reserve the state
    /// dir and create the cgroup, spawn the init, record the container.
    pub fn create_from(
        &self,
        o: &CreateOpts,
        bundle: &Bundle,
        console: Option<OwnedFd>,
    ) -> Result<State> {
        let (checked, manager) = self.check(o, bundle, console)?;
        let linux = bundle.spec.linux().as_ref().expect("validated");
        let dir = self.states.reserve(&o.id)?;
        let mut undo = Undo {
            states: &self.states,
            id: o.id.clone(),
            pid: None,
            cgroup: None,
            host_mounts: shares_host_mounts(&bundle.spec).then_some(bundle.rootfs.as_path()),
            armed: true,
        };
        undo.cgroup = self.create_cgroup(manager, linux)?;
        let state_dir = make_start_fifo(&dir, linux)?;
        let mut st = new_state(o, bundle, undo.cgroup.as_ref())?;
        let pid = self.spawn_init(o, bundle, &checked, &state_dir, undo.cgroup.as_mut(), &st)?;
        undo.pid = Some(pid);
        st.pid = pid;
        // as the init's start left it
        st.cgroup = undo.cgroup.as_ref().map(serde_json::to_value).transpose()?;
        st.init_start_time = state::proc_stat(pid)
            .map(|s| s.1)
            .ok_or_else(|| anyhow!("container init {pid} exited during create"))?;
        self.record(o, bundle, &dir, &st)?;
        undo.armed = false;
        Ok(st)
    }

    /// Everything that can fail before the container has a state dir; the
    /// cgroup manager comes back apart, as create_cgroup consumes it.
    fn check(
        &self,
        o: &CreateOpts,
        bundle: &Bundle,
        console: Option<OwnedFd>,
    ) -> Result<(Checked, cgroups::Manager)> {
        let spec = &bundle.spec;
        let process = spec.process().as_ref().expect("validated");
        let linux = spec.linux().as_ref().expect("validated");
        let ns = Namespaces::from_spec(linux)?;
        if !nix::unistd::geteuid().is_root() {
            check_rootless(spec, &ns)?;
        }
        let (filter, caps) = prepare_process(process, linux)?;
        // Rootless without linux.cgroupsPath: where runc looks on cgroup v2
        // (beside the caller's cgroup), where a delegation may reach; as
        // for root otherwise. Either way no cgroup is fine without limits.
        let rootless_default = (self.rootless_cgroups && linux.cgroups_path().is_none())
            .then(|| cgroups::rootless_default_path(&o.id))
            .flatten();
        let manager = if self.systemd_cgroup {
            // checked before anything is made; used when the scope starts
            systemd_annotations(spec)?;
            // rootless: the user's own systemd, as runc decides it
            cgroups::Manager::new_systemd(
                linux.cgroups_path().as_deref(),
                &o.id,
                self.rootless_cgroups,
            )?
        } else {
            cgroups::Manager::new(
                linux
                    .cgroups_path()
                    .as_deref()
                    .or(rootless_default.as_deref()),
                &o.id,
            )?
        }
        .with_devices(linux.devices().as_deref().unwrap_or(&[]))
        .with_rootless(self.rootless_cgroups);
        if let Some(r) = linux.resources() {
            manager.validate(r)?;
        }
        let terminal = process.terminal().unwrap_or(false);
        let console = match (terminal, console, &o.console_socket) {
            (true, Some(c), _) => Some(c),
            (true, None, Some(path)) => Some(connect(path)?),
            (true, None, None) => bail!("process.terminal is true: --console-socket is required when the runtime does not attach the terminal itself"),
            (false, _, Some(path)) => bail!("--console-socket {}: process.terminal is false, so there is no terminal to send", path.display()),
            (false, _, None) => None,
        };
        let checked = Checked {
            ns,
            filter,
            caps,
            console,
        };
        Ok((checked, manager))
    }

    /// The container's cgroup, or none where `--rootless` lets it go
    /// without (see without_cgroup).
    fn create_cgroup(
        &self,
        manager: cgroups::Manager,
        linux: &oci_spec::runtime::Linux,
    ) -> Result<Option<cgroups::Manager>> {
        let resources = linux.resources().as_ref();
        match manager.create(resources) {
            Ok(()) => Ok(Some(manager)),
            Err(e)
                if self.rootless_cgroups
                    && linux.cgroups_path().is_none()
                    && cgroups::is_not_permitted(&e) =>
            {
                without_cgroup(resources, &e)?;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Saves what `start`, `state` and `delete` read: the config as it was
    /// validated, the state, and the pid file.
    fn record(&self, o: &CreateOpts, bundle: &Bundle, dir: &Path, st: &State) -> Result<()> {
        // 0600 whatever the umask: a config's env may hold secrets.
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dir.join(state::CONFIG))
            .and_then(|mut f| f.write_all(bundle.text.as_bytes()))
            .context("saving config.json in the state dir")?;
        self.states.save(st)?;
        if let Some(pf) = &o.pid_file {
            state::write_atomic(&absolute(pf)?, st.pid.to_string().as_bytes())
                .with_context(|| format!("--pid-file {}", pf.display()))?;
        }
        Ok(())
    }

    /// Status of a loaded container (derived, never stored).
    pub fn status(&self, st: &State) -> Status {
        if !state::process_alive(st.pid, st.init_start_time) {
            return Status::Stopped;
        }
        // A paused created container is paused (as runc reports it): a
        // frozen init could not take `start`.
        if let Ok(Some(cg)) = cgroup_of(st) {
            if cg.is_frozen().unwrap_or(false) {
                return Status::Paused;
            }
        }
        if self.states.dir(&st.id).join(state::FIFO).exists() {
            return Status::Created;
        }
        Status::Running
    }

    pub fn load(&self, id: &str) -> Result<(State, Status)> {
        let st = self.states.load(id)?;
        let status = self.status(&st);
        Ok((st, status))
    }

    /// `start`: let the init exec the user's program.
    pub fn start(&self, id: &str) -> Result<()> {
        self.start_with(id, None)
    }

    /// `start` with the container's config already in hand (`run`, which
    /// loaded it for create), so it is not read again for the hooks.
    pub fn start_with(&self, id: &str, spec: Option<&Spec>) -> Result<()> {
        let (st, status) = self.load(id)?;
        if status != Status::Created {
            bail!("cannot start container {id:?}: it is {status}, not created");
        }
        let fifo = self.states.dir(id).join(state::FIFO);
        let f = crate::sys::open(
            &fifo,
            nix::fcntl::OFlag::O_RDONLY
                | nix::fcntl::OFlag::O_NONBLOCK
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .with_context(|| format!("opening {}", fifo.display()))?;
        let failure = await_exec(&f, &st, id)?;
        if !failure.is_empty() {
            // The init exits right after reporting: wait for that, so the
            // container is stopped once `start` has failed.
            wait_gone(st.pid, Some(st.init_start_time));
            bail!(
                "cannot start container {id:?}: {}",
                String::from_utf8_lossy(&failure).trim_end()
            );
        }
        std::fs::remove_file(&fifo).with_context(|| format!("removing {}", fifo.display()))?;
        let saved;
        let spec = match spec {
            Some(s) => s,
            None => {
                saved = self.saved_spec(id)?;
                &saved
            }
        };
        if let Some(h) = spec.hooks() {
            hooks::run_all_warning(
                "poststart",
                h.poststart().as_ref(),
                &hook_state_json(&st, st.pid, "running"),
            );
        }
        Ok(())
    }

    /// The runtime-spec state JSON.
    pub fn state_json(&self, id: &str) -> Result<String> {
        let (st, status) = self.load(id)?;
        Ok(serde_json::to_string_pretty(&report(&st, status))?)
    }

    pub fn list(&self) -> Result<Vec<(State, Status)>> {
        let mut v = Vec::new();
        for id in self.states.ids()? {
            // A container deleted while we list is simply not listed.
            if let Ok(x) = self.load(&id) {
                v.push(x);
            }
        }
        Ok(v)
    }

    pub fn kill(&self, id: &str, sig: i32, all: bool) -> Result<()> {
        let (st, status) = self.load(id)?;
        if status == Status::Stopped {
            // containerd's shim recognises exactly "container not running"
            // (a kill racing the exit is then not an error for it).
            return Err(state::LifecycleError::NotRunning {
                id: id.into(),
                action: "kill",
            }
            .into());
        }
        if all {
            if let Some(cg) = cgroup_of(&st)? {
                return cg
                    .kill_all(sig)
                    .with_context(|| format!("signalling every process of container {id:?}"));
            }
        }
        let targets = if all {
            container_pids(st.pid)
        } else {
            vec![st.pid]
        };
        for p in targets {
            let r = crate::sys::kill(p, sig);
            // Processes may exit while we signal them; only the init matters.
            if p == st.pid {
                r.map_err(|e| anyhow!("sending signal {sig} to container {id:?}: {}", e.desc()))?;
            }
        }
        Ok(())
    }

    pub fn delete(&self, id: &str, running: IfRunning) -> Result<()> {
        self.delete_with(id, running, None)
    }

    /// `delete` with the container's config already in hand (see
    /// `start_with`).
    pub fn delete_with(&self, id: &str, running: IfRunning, spec: Option<&Spec>) -> Result<()> {
        let (st, status) = self.load(id)?;
        let cg = cgroup_of(&st)?;
        match status {
            Status::Stopped => {}
            Status::Created => self.kill_everything(&st, cg.as_ref()),
            _ if running == IfRunning::Kill => self.kill_everything(&st, cg.as_ref()),
            s => bail!("cannot delete container {id:?}: it is {s} (stop it first, or use --force)"),
        }
        // Whatever still runs in the cgroup (children of an init without
        // its own pid namespace) is killed and waited for by destroy.
        if let Some(cg) = &cg {
            cg.destroy()
                .with_context(|| format!("deleting container {id:?}"))?;
        }
        let saved;
        let spec = match spec {
            Some(s) => Some(s),
            None => {
                saved = self.saved_spec(id).ok();
                saved.as_ref()
            }
        };
        if spec.is_some_and(shares_host_mounts) {
            crate::rootfs::unmount_host_mounts(&st.rootfs)
                .with_context(|| format!("deleting container {id:?}"))?;
        }
        if let Some(h) = spec.and_then(|s| s.hooks().as_ref()) {
            hooks::run_all_warning(
                "poststop",
                h.poststop().as_ref(),
                &hook_state_json(&st, 0, "stopped"),
            );
        }
        self.states.remove(id)
    }

    fn kill_everything(&self, st: &State, cg: Option<&cgroups::Manager>) {
        if let Some(cg) = cg {
            // Also thaws a paused container, so SIGKILL takes effect.
            let _ = cg.kill_all(libc::SIGKILL);
        }
        let _ = kill(Pid::from_raw(st.pid), Signal::SIGKILL);
        wait_gone(st.pid, Some(st.init_start_time));
    }

    /// The config.json a container was created from (kept in its state dir).
    pub fn saved_spec(&self, id: &str) -> Result<Spec> {
        state::validate_id(id)?;
        let p = self.states.dir(id).join(state::CONFIG);
        if !p.exists() {
            return Err(state::LifecycleError::NotFound { id: id.into() }.into());
        }
        let text = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
        serde_json::from_slice(&text).map_err(|e| anyhow!("{}: {e}", p.display()))
    }
}

/// What `create` checks first, in this order: the id, then the bundle and
/// its config.json.
pub fn load_bundle(o: &CreateOpts) -> Result<Bundle> {
    state::validate_id(&o.id)?;
    Bundle::load(&o.bundle)
}

/// Every process of the container: all processes in its own pid
/// namespace. A container sharing the runtime's pid namespace has only
/// its init here (its other processes are found through its cgroup).
pub fn container_pids(init: i32) -> Vec<i32> {
    let ns = |p: i32| std::fs::read_link(format!("/proc/{p}/ns/pid")).ok();
    let Some(theirs) = ns(init) else {
        return vec![];
    };
    if ns(std::process::id() as i32).as_ref() == Some(&theirs) {
        return vec![init];
    }
    let mut pids: Vec<i32> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|p| ns(*p).as_ref() == Some(&theirs))
        .collect();
    pids.sort();
    pids
}

pub fn report(st: &State, status: Status) -> state::Report<'_> {
    state::Report {
        oci_version: &st.oci_version,
        id: &st.id,
        pid: if status == Status::Stopped { 0 } else { st.pid },
        status: status.to_string(),
        bundle: &st.bundle,
        rootfs: &st.rootfs,
        created: &st.created,
        annotations: &st.annotations,
        owner: &st.owner,
    }
}

/// The state document hooks receive on stdin (runtime-spec state).
pub(crate) fn hook_state_json(st: &State, pid: i32, status: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "ociVersion": st.oci_version,
        "id": st.id,
        "status": status,
        "pid": pid,
        "bundle": st.bundle,
        "annotations": st.annotations,
    }))
    .unwrap_or_default()
}

/// Hands the seccomp notify fd of process `pid` to
/// `linux.seccomp.listenerPath`, with `container` (the runtime-spec state)
/// in the container process state the spec prescribes.
pub(crate) fn send_seccomp_fd(
    linux: &oci_spec::runtime::Linux,
    container: &[u8],
    pid: i32,
    fd: &OwnedFd,
) -> Result<()> {
    let sc = linux.seccomp().as_ref().expect("a filter was loaded");
    let Some(path) = sc.listener_path() else {
        bail!("linux.seccomp.listenerPath: required when a rule uses SCMP_ACT_NOTIFY");
    };
    let st: oci_spec::runtime::State = serde_json::from_slice(container)?;
    let msg = seccomp::listener_state(&st, pid, sc.listener_metadata().as_deref())?;
    seccomp::send_to_listener(path, std::os::fd::AsFd::as_fd(fd), &msg)
}

/// What create's checks made: all the init needs besides the state dir
/// and the cgroup.
struct Checked {
    ns: Namespaces,
    filter: Option<seccomp::Filter>,
    caps: capabilities::CapSets,
    /// the terminal's console socket, when process.terminal is set
    console: Option<OwnedFd>,
}

/// Creates exec.fifo in the state dir `dir` (what `start` opens to let
/// the init exec) and returns an O_PATH fd of the dir, through which the
/// init opens the fifo from inside the container.
fn make_start_fifo(dir: &Path, linux: &oci_spec::runtime::Linux) -> Result<OwnedFd> {
    let fifo = dir.join(state::FIFO);
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o622))
        .with_context(|| format!("creating {}", fifo.display()))?;
    if let Some((uid, gid)) =
        container_root_on_host(linux).filter(|_| nix::unistd::geteuid().is_root())
    {
        // The init opens the fifo as the container's root, which may be
        // an unprivileged user on the host. (An unprivileged runtime
        // cannot give it away; the init opens it through the state dir's
        // fd, and mode 0622 lets any uid write.)
        nix::unistd::chown(&fifo, Some(uid.into()), Some(gid.into()))
            .with_context(|| format!("chown {}", fifo.display()))?;
    }
    crate::sys::open(
        dir,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .with_context(|| format!("opening {}", dir.display()))
}

/// The state of a container being created: no init yet (pid 0).
fn new_state(o: &CreateOpts, bundle: &Bundle, cg: Option<&cgroups::Manager>) -> Result<State> {
    let spec = &bundle.spec;
    let annotations = spec
        .annotations()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    Ok(State {
        version: state::STATE_VERSION,
        oci_version: spec.version().clone(),
        id: o.id.clone(),
        pid: 0,
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        created: state::rfc3339_now(),
        owner: owner_name(),
        annotations,
        init_start_time: 0,
        cgroup: cg.map(serde_json::to_value).transpose()?,
    })
}

/// What a config needs to run without root, checked before anything is
/// made so the error names the field rather than a refused syscall: a user
/// namespace (created or joined), and mount options `uid=`/`gid=` only
/// for ids that namespace maps (the kernel refuses others with EINVAL).
fn check_rootless(spec: &Spec, ns: &Namespaces) -> Result<()> {
    use oci_spec::runtime::LinuxNamespaceType::User;
    if !ns.creates(User) && !ns.joins(User) {
        bail!(
            "linux.namespaces: running without root needs a user namespace \
             (add {{\"type\": \"user\"}} and linux.uidMappings/gidMappings; \
             `rcontain spec --rootless` writes such a config)"
        );
    }
    if !ns.creates(User) {
        return Ok(());
    }
    let linux = spec.linux().as_ref().expect("validated");
    let mapped = |maps: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>, id: u32| {
        maps.iter().flatten().any(|m| {
            id >= m.container_id()
                && u64::from(id) < u64::from(m.container_id()) + u64::from(m.size())
        })
    };
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        for o in m.options().iter().flatten() {
            let (maps, field, id) = if let Some(v) = o.strip_prefix("uid=") {
                (linux.uid_mappings(), "uidMappings", v)
            } else if let Some(v) = o.strip_prefix("gid=") {
                (linux.gid_mappings(), "gidMappings", v)
            } else {
                continue;
            };
            if id.parse().is_ok_and(|id| !mapped(maps, id)) {
                bail!(
                    "mounts[{i}] ({}): option {o}: the id is not mapped by linux.{field}, \
                     and a rootless container can use no other",
                    m.destination().display()
                );
            }
        }
    }
    Ok(())
}

/// `--rootless` and the cgroups could not be created (`err`): like runc,
/// go on without a cgroup unless the config asks for a limit, which could
/// then not be enforced. Device rules are the exception runc makes too:
/// an unprivileged container cannot open what the user cannot anyway.
fn without_cgroup(
    resources: Option<&oci_spec::runtime::LinuxResources>,
    err: &anyhow::Error,
) -> Result<()> {
    let asked = resources
        .map(serde_json::to_value)
        .transpose()?
        .and_then(|v| match v {
            serde_json::Value::Object(fields) => fields
                .into_iter()
                .find(|(k, v)| k != "devices" && !is_empty_value(v))
                .map(|(k, _)| k),
            _ => None,
        });
    if let Some(field) = asked {
        bail!(
            "linux.resources.{field}: cannot set the limit: rootless, and the container could not \
             create a cgroup of its own ({err:#})"
        );
    }
    logging::debug(&format!(
        "rootless: running without a cgroup of its own ({err:#})"
    ));
    Ok(())
}

/// null, {} or [] (also nested: `{"memory": {}}` sets nothing).
fn is_empty_value(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Null => true,
        serde_json::Value::Object(o) => o.values().all(is_empty_value),
        serde_json::Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// A config without a mount namespace mounts in the runtime's own.
fn shares_host_mounts(spec: &Spec) -> bool {
    let t = oci_spec::runtime::LinuxNamespaceType::Mount;
    !spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == t))
}

/// The container's cgroup manager, as saved at create.
pub fn cgroup_of(st: &State) -> Result<Option<cgroups::Manager>> {
    st.cgroup
        .clone()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| anyhow!("state of container {:?}: cgroup: {e}", st.id))
}

/// Checks `process` against the container's `linux` section and compiles
/// its seccomp filter and capability sets, in the runtime so bad input
/// fails before anything is forked; warns about what the kernel or
/// libseccomp did not know and was left out.
pub(crate) fn prepare_process(
    process: &oci_spec::runtime::Process,
    linux: &oci_spec::runtime::Linux,
) -> Result<(Option<seccomp::Filter>, capabilities::CapSets)> {
    crate::process::attrs::validate(process, Some(linux))?;
    if !nix::unistd::geteuid().is_root() {
        crate::process::attrs::keep_user_groups();
    }
    let filter = linux.seccomp().as_ref().map(seccomp::compile).transpose()?;
    // No capabilities object means none at all; decided here, where the
    // kernel is asked, not in the container.
    let caps = match process.capabilities() {
        Some(c) => capabilities::parse(c)?,
        None => capabilities::none(),
    };
    if let Some(names) = filter
        .as_ref()
        .map(|f| f.skipped_syscalls())
        .filter(|n| !n.is_empty())
    {
        logging::warn(&format!(
            "linux.seccomp: syscalls unknown to this kernel were ignored: {}",
            names.join(", ")
        ));
    }
    for w in caps.warnings() {
        logging::warn(w);
    }
    Ok((filter, caps))
}

/// The user creating the container, by name as runc reports it. Like
/// runc, from /etc/passwd itself rather than through NSS: the binary is
/// linked statically, where NSS would dlopen the host's shared glibc.
fn owner_name() -> String {
    let uid = nix::unistd::getuid().as_raw();
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|text| crate::sys::passwd::name(&text, uid))
        .unwrap_or_else(|| uid.to_string())
}

fn connect(path: &Path) -> Result<OwnedFd> {
    let s = std::os::unix::net::UnixStream::connect(path)
        .with_context(|| format!("--console-socket {}", path.display()))?;
    Ok(OwnedFd::from(s))
}

/// Host uid/gid of the container's root, when a new user namespace maps it.
fn container_root_on_host(linux: &oci_spec::runtime::Linux) -> Option<(u32, u32)> {
    let find = |maps: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| {
        maps.as_ref()?
            .iter()
            .find(|m| m.container_id() == 0)
            .map(|m| m.host_id())
    };
    Some((find(linux.uid_mappings())?, find(linux.gid_mappings())?))
}

fn absolute(p: &Path) -> Result<PathBuf> {
    Ok(if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()?.join(p)
    })
}
/// Waits on the exec fifo `f` until the init of `st` has exec'd the
/// user's program or failed.
///
/// The init writes one byte once it has opened the fifo, and keeps
/// its end open (close-on-exec) until it execs the user's program:
/// EOF after the byte means the program runs, so a signal sent right
/// after `start` reaches it rather than the runtime's init code.
/// Anything after the byte is why the init failed before execve
/// (a startContainer hook, capabilities, ...): `start` must fail
/// then, not the container's stderr alone tell. If the init died
/// before writing, no byte ever comes: check it is alive meanwhile.
/// Returns what followed the byte: empty when the program runs.
fn await_exec(f: &OwnedFd, st: &State, id: &str) -> Result<Vec<u8>> {
    let mut started = false;
    let mut failure = Vec::new();
    loop {
        let mut pfd = [nix::poll::PollFd::new(
            f.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let n = nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(100u16)).or_else(|e| {
            if e == nix::errno::Errno::EINTR {
                Ok(0)
            } else {
                Err(e)
            }
        })?;
        if n > 0 {
            let mut buf = [0u8; 4096];
            match nix::unistd::read(f.as_raw_fd(), &mut buf) {
                Ok(0) if started => break,
                Ok(k) if k > 0 => {
                    let skip = usize::from(!started);
                    started = true;
                    failure.extend_from_slice(&buf[skip..k]);
                    continue;
                }
                _ => {}
            }
        }
        if !state::process_alive(st.pid, st.init_start_time) {
            if started {
                break;
            }
            bail!("cannot start container {id:?}: its init process has exited");
        }
    }
    Ok(failure)
}

/// Wait (bounded) until `pid` is gone, reaping it if it is our child.
pub fn wait_gone(pid: i32, start_time: Option<u64>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut pause = Duration::from_micros(100);
    while Instant::now() < deadline {
        let _ = nix::sys::wait::waitpid(
            Pid::from_raw(pid),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG),
        );
        let alive = match start_time {
            Some(t) => state::process_alive(pid, t),
            None => state::proc_stat(pid).is_some_and(|(s, _)| s != 'Z' && s != 'X'),
        };
        if !alive {
            return;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rootless_checks() {
        use super::{check_rootless, is_empty_value, Namespaces};
        assert!(is_empty_value(
            &serde_json::json!({"memory": {}, "devices": []})
        ));
        assert!(!is_empty_value(&serde_json::json!({"limit": 0})));
        let spec = |ns: serde_json::Value, opts: &[&str]| -> oci_spec::runtime::Spec {
            serde_json::from_value(serde_json::json!({
                "ociVersion": "1.0.2",
                "root": {"path": "rootfs"},
                "mounts": [{"destination": "/dev/pts", "type": "devpts", "options": opts}],
                "linux": {
                    "namespaces": ns,
                    "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
                    "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
                },
            }))
            .unwrap()
        };
        let check = |s: &oci_spec::runtime::Spec| {
            let ns = Namespaces::from_spec(s.linux().as_ref().unwrap()).unwrap();
            check_rootless(s, &ns).map_err(|e| e.to_string())
        };
        let user = serde_json::json!([{"type": "user"}, {"type": "mount"}]);
        check(&spec(user.clone(), &["gid=0", "mode=0620"])).unwrap();
        let e = check(&spec(user, &["gid=5"])).unwrap_err();
        assert!(e.contains("mounts[0] (/dev/pts): option gid=5"), "{e}");
        let e = check(&spec(serde_json::json!([{"type": "mount"}]), &[])).unwrap_err();
        assert!(e.starts_with("linux.namespaces: "), "{e}");
    }
}
