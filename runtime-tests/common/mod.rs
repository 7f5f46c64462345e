//! Shared harness for the integration tests: a runtime under test, throwaway
//! bundles built from the busybox rootfs of `bundles/make-bundle.sh`, a
//! private `--root` per test, and checks that nothing was left behind.
//!
//! The runtime is `$RCONTAIN_BIN` when set (point it at runc or crun to
//! validate the tests themselves), else the `rcontain` binary cargo built.
#![allow(dead_code)] // each test binary uses a different subset

pub mod host;

use serde_json::{json, Value};
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::thread::sleep;
use std::time::{Duration, Instant};

/// Upper bound for any single runtime invocation, so a hung runtime fails
/// its test instead of hanging the whole suite. Not an assertion on speed.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(60);

const TEMPLATE: &str = include_str!("../../bundles/config.template.json");
const MAKE_BUNDLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/bundles/make-bundle.sh");

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A runtime binary plus the global flags and environment it always gets.
#[derive(Clone, Debug)]
pub struct Runtime {
    pub bin: PathBuf,
    pub global: Vec<String>,
    /// set on each command, never on the test process, whose environment
    /// other test threads read as they spawn
    pub env: Vec<(String, String)>,
}

impl Runtime {
    /// The runtime under test.
    pub fn under_test() -> Runtime {
        let bin = match std::env::var_os("RCONTAIN_BIN") {
            Some(p) => PathBuf::from(p),
            None => PathBuf::from(env!("CARGO_BIN_EXE_rcontain")),
        };
        Runtime::with_wrapper(bin)
    }

    /// The reference runtime for differential tests (`$RUNC_BIN`, default runc).
    pub fn reference() -> Runtime {
        let bin = std::env::var_os("RUNC_BIN").map_or_else(|| which("runc"), PathBuf::from);
        Runtime::with_wrapper(bin)
    }

    fn with_wrapper(bin: PathBuf) -> Runtime {
        let bin = if bin.is_relative() && bin.components().count() == 1 {
            which(bin.to_str().unwrap())
        } else {
            bin
        };
        // $RCONTAIN_GLOBAL_FLAGS lets e.g. crun get --cgroup-manager=disabled.
        let global = std::env::var("RCONTAIN_GLOBAL_FLAGS")
            .ok()
            .filter(|_| bin.file_name().is_some_and(|n| n != "runc"))
            .map(|s| s.split_whitespace().map(String::from).collect())
            .unwrap_or_default();
        Runtime {
            bin,
            global,
            env: Vec::new(),
        }
    }

    pub fn name(&self) -> String {
        self.bin.file_name().unwrap().to_string_lossy().into_owned()
    }

    pub fn is_rcontain(&self) -> bool {
        self.name().contains("rcontain")
    }
}

pub fn which(name: &str) -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    for dir in ["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"] {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("{name} not found in PATH");
}

/// Output of a finished command, stdout/stderr captured through files so
/// that a container inheriting them (create, run -d) cannot block us.
#[derive(Debug)]
pub struct Out {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn code(&self) -> i32 {
        use std::os::unix::process::ExitStatusExt;
        self.status
            .code()
            .unwrap_or_else(|| 128 + self.status.signal().unwrap_or(0))
    }

    pub fn ok(&self) -> bool {
        self.status.success()
    }

    /// Panics with the full output unless the command succeeded.
    #[track_caller]
    pub fn expect_ok(&self, what: &str) -> &Out {
        assert!(self.ok(), "{what} failed: {self:#?}");
        self
    }
}

/// Wait for `child` up to CMD_TIMEOUT; kill it (and fail) when it hangs.
pub fn wait_child(mut child: Child, what: &str) -> ExitStatus {
    let deadline = Instant::now() + CMD_TIMEOUT;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {CMD_TIMEOUT:?}, killed");
        }
        sleep(Duration::from_millis(5));
    }
}

/// Run `cmd`, a detached `run -d` or a `create`, with stdin and stdout on
/// /dev/null and stderr in the file `log`: the container inherits them, so
/// a pipe would stay open and reading it would wait for the container to
/// exit. Panics with `what` and the log unless it succeeded.
#[track_caller]
pub fn start_detached(cmd: &mut Command, log: &Path, what: &str) {
    let status = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(log).unwrap())
        .status()
        .unwrap();
    assert!(
        status.success(),
        "{what}: {}",
        fs::read_to_string(log).unwrap_or_default()
    );
}

/// One test's sandbox: a temp dir holding its bundles and its private
/// `--root`, and the ids it created. Dropping it force-deletes containers,
/// kills stragglers, detaches leaked mounts and removes the dir.
pub struct TestEnv {
    pub dir: PathBuf,
    pub root: PathBuf,
    pub rt: Runtime,
    ids: std::sync::Mutex<Vec<String>>,
    seq: AtomicUsize,
}

impl TestEnv {
    pub fn new(name: &str) -> TestEnv {
        Self::with_runtime(name, Runtime::under_test())
    }

    pub fn with_runtime(name: &str, rt: Runtime) -> TestEnv {
        require_root();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!(
            "rct-{}-{}-{}-{}",
            rt.name(),
            name,
            std::process::id(),
            n
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let root = dir.join("state");
        TestEnv {
            dir,
            root,
            rt,
            ids: Default::default(),
            seq: AtomicUsize::new(0),
        }
    }

    /// A fresh container id, unique across tests and runs, registered for
    /// cleanup.
    pub fn id(&self, tag: &str) -> String {
        let id = format!(
            "rct{}{}{}",
            tag,
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        self.ids.lock().unwrap().push(id.clone());
        id
    }

    /// Register an id the runtime chose itself (e.g. `run ./bundle`).
    pub fn adopt_id(&self, id: &str) {
        self.ids.lock().unwrap().push(id.to_string());
    }

    /// A new bundle dir with a copy of the busybox rootfs and the template
    /// config, process.args set to `args`. Edit `.config`, then `.save()`.
    pub fn bundle(&self, args: &[&str]) -> Bundle {
        let n = self.seq.fetch_add(1, Ordering::SeqCst);
        let dir = self.dir.join(format!("bundle{n}"));
        fs::create_dir_all(&dir).unwrap();
        copy_tree(&base_rootfs(), &dir.join("rootfs"));
        let mut config: Value = serde_json::from_str(TEMPLATE).unwrap();
        config["process"]["args"] = json!(args);
        let b = Bundle { dir, config };
        b.save();
        b
    }

    /// The runtime with its global flags, `--root` and `args`; stdin null.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.rt.bin);
        c.envs(self.rt.env.iter().map(|(k, v)| (k, v)))
            .args(&self.rt.global)
            .arg("--root")
            .arg(&self.root)
            .args(args)
            .stdin(Stdio::null());
        c
    }

    /// Start a runtime command and return the child (stdio to files in the
    /// test dir, see `finish`).
    pub fn spawn_rt(&self, args: &[&str]) -> (Child, PathBuf, PathBuf) {
        let n = self.seq.fetch_add(1, Ordering::SeqCst);
        let so = self.dir.join(format!("out{n}"));
        let se = self.dir.join(format!("err{n}"));
        let mut child = self.command(args);
        child
            .stdout(fs::File::create(&so).unwrap())
            .stderr(fs::File::create(&se).unwrap());
        let child = spawn(&mut child)
            .unwrap_or_else(|e| panic!("cannot execute {}: {e}", self.rt.bin.display()));
        (child, so, se)
    }

    /// Run the runtime with `--root` and `args`, wait for it and capture output.
    pub fn rt(&self, args: &[&str]) -> Out {
        let (child, so, se) = self.spawn_rt(args);
        let status = wait_child(child, &format!("{} {}", self.rt.name(), args.join(" ")));
        Out {
            status,
            stdout: fs::read_to_string(so).unwrap_or_default(),
            stderr: fs::read_to_string(se).unwrap_or_default(),
        }
    }

    /// `state ID` parsed; panics when the command fails.
    #[track_caller]
    pub fn state(&self, id: &str) -> Value {
        let out = self.rt(&["state", id]);
        out.expect_ok("state");
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("state output is not JSON ({e}): {}", out.stdout))
    }

    /// `run` a bundle in the foreground and return its output.
    pub fn run(&self, b: &Bundle) -> Out {
        let id = self.id("r");
        self.rt(&["run", "-b", b.path(), &id])
    }

    /// Run `args` in a container built from `edit`ed template; return stdout
    /// after asserting success.
    #[track_caller]
    pub fn run_ok(&self, args: &[&str], edit: impl FnOnce(&mut Value, &Path)) -> String {
        let mut b = self.bundle(args);
        edit(&mut b.config, &b.dir);
        b.save();
        let out = self.run(&b);
        out.expect_ok("run");
        out.stdout
    }

    /// `kill ID [SIG]`, wait until the container is stopped, `delete ID`;
    /// each step must succeed.
    #[track_caller]
    pub fn kill_and_delete(&self, id: &str, sig: Option<&str>) {
        let kill: Vec<&str> = ["kill", id].into_iter().chain(sig).collect();
        self.rt(&kill).expect_ok(&kill.join(" "));
        self.wait_for("status stopped", || self.state(id)["status"] == "stopped");
        self.rt(&["delete", id]).expect_ok("delete");
    }

    /// Poll `cond` until true or CMD_TIMEOUT passes (panics then).
    #[track_caller]
    pub fn wait_for(&self, what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + CMD_TIMEOUT;
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            sleep(Duration::from_millis(10));
        }
    }

    /// Everything this test could have leaked, as readable strings: state
    /// entries under --root, mounts under the test dir, processes whose
    /// root or cwd lies in the test dir, cgroups named after our ids.
    pub fn leftovers(&self) -> Vec<String> {
        let mut found = Vec::new();
        if let Ok(rd) = fs::read_dir(&self.root) {
            for e in rd.flatten() {
                found.push(format!("state entry {}", e.path().display()));
            }
        }
        for m in mounts_under(&self.dir) {
            found.push(format!("mount {m}"));
        }
        for (pid, why) in procs_in(&self.dir) {
            found.push(format!("process {pid} ({why})"));
        }
        for id in self.ids.lock().unwrap().iter() {
            for cg in cgroups_named(id) {
                found.push(format!("cgroup {}", cg.display()));
            }
        }
        found
    }

    #[track_caller]
    pub fn assert_nothing_left(&self) {
        let left = self.leftovers();
        assert!(left.is_empty(), "left behind: {left:#?}");
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let ids = std::mem::take(&mut *self.ids.lock().unwrap());
        for id in ids {
            let _ = Command::new(&self.rt.bin)
                .args(&self.rt.global)
                .arg("--root")
                .arg(&self.root)
                .args(["delete", "-f", &id])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        kill_procs_in(&self.dir);
        // Deepest first, so nested mounts go before their parents; never
        // let remove_dir_all descend into a leaked (bind) mount.
        let mut ms = mounts_under(&self.dir);
        ms.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in ms {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
        if mounts_under(&self.dir).is_empty() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// A bundle directory with its config (written by `save`).
pub struct Bundle {
    pub dir: PathBuf,
    pub config: Value,
}

impl Bundle {
    pub fn save(&self) {
        let mut f = fs::File::create(self.dir.join("config.json")).unwrap();
        f.write_all(
            serde_json::to_string_pretty(&self.config)
                .unwrap()
                .as_bytes(),
        )
        .unwrap();
    }

    pub fn path(&self) -> &str {
        self.dir.to_str().unwrap()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }
}

/// The suites start real containers: without root the whole test binary
/// is skipped, with one line saying so, rather than every test panicking.
pub fn require_root() {
    if !nix::unistd::geteuid().is_root() {
        // straight to fd 2: libtest captures eprintln! and exit drops it
        let _ = writeln!(
            std::io::stderr(),
            "skipped: runtime-tests start real containers and must run as root"
        );
        std::process::exit(0);
    }
}

/// The busybox rootfs, built once per test binary by bundles/make-bundle.sh
/// under cargo's per-target temp dir.
pub fn base_rootfs() -> PathBuf {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("busybox-bundle");
        let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("busybox-bundle.{}", std::process::id()));
        let st = Command::new("bash")
            .arg(MAKE_BUNDLE)
            .arg(&tmp)
            .status()
            .expect("run bundles/make-bundle.sh");
        assert!(st.success(), "bundles/make-bundle.sh failed");
        let _ = fs::remove_dir_all(&base);
        fs::rename(&tmp, &base).unwrap();
        base.join("rootfs")
    })
    .clone()
}

/// `cp -a`, which keeps symlinks, modes and ownership.
pub fn copy_tree(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success(), "cp -a {} {}", from.display(), to.display());
}

/// Mount points (as seen in our mount namespace) at or below `dir`.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = dir.to_str().unwrap();
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    rcontain::sys::mountinfo::parse(&info)
        .map(|e| e.mount_point)
        .filter(|mp| mp == prefix || mp.starts_with(&format!("{prefix}/")))
        .collect()
}

/// SIGKILL every process whose root or cwd lies in `dir` (cleanup).
pub fn kill_procs_in(dir: &Path) {
    for (pid, _) in procs_in(dir) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// Processes whose root or cwd is inside `dir` (a container's, or one the
/// runtime leaked), except ourselves.
pub fn procs_in(dir: &Path) -> Vec<(i32, String)> {
    let me = std::process::id() as i32;
    let mut found = Vec::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return found;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        for what in ["root", "cwd"] {
            if let Ok(t) = fs::read_link(e.path().join(what)) {
                if t.starts_with(dir) {
                    found.push((pid, format!("{what} {}", t.display())));
                    break;
                }
            }
        }
    }
    found
}

/// Cgroup directories whose name contains `id`, up to 4 levels below each
/// hierarchy in /sys/fs/cgroup (v1 controllers and the unified one).
pub fn cgroups_named(id: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, id: &str, depth: u32, found: &mut Vec<PathBuf>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if !ft.is_dir() {
                continue;
            }
            if e.file_name().to_string_lossy().contains(id) {
                found.push(e.path());
            } else if depth > 0 {
                walk(&e.path(), id, depth - 1, found);
            }
        }
    }
    let mut found = Vec::new();
    walk(Path::new("/sys/fs/cgroup"), id, 4, &mut found);
    found
}

/// Adds a new namespace of type `typ` to `config`'s linux.namespaces.
pub fn add_namespace(config: &mut Value, typ: &str) {
    config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "type": typ }));
}

/// Write an executable shell script (for hooks) and return its path.
pub fn script(path: &Path, body: &str) -> PathBuf {
    fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
    path.to_path_buf()
}

/// `cmd.spawn()`, retried while the program is busy: a binary a test has
/// just copied (a private runtime, a control program) stays open for
/// writing in any child another test thread forked meanwhile, until that
/// child execs, and exec of it fails with ETXTBSY until then.
pub fn spawn(cmd: &mut Command) -> std::io::Result<Child> {
    let deadline = Instant::now() + CMD_TIMEOUT;
    loop {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && Instant::now() < deadline => {
                sleep(Duration::from_millis(10))
            }
            r => return r,
        }
    }
}

/// Parse `Name:\tvalue` lines as in /proc/PID/status.
pub fn status_field(status: &str, name: &str) -> Option<String> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .map(|v| v.trim().to_string())
}

/// The parent pid of `pid`, while it exists.
pub fn ppid(pid: u32) -> Option<u32> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status_field(&s, "PPid")?.parse().ok()
}

/// Descendants of `top` (by PPid), as of now.
pub fn descendants(top: u32) -> Vec<u32> {
    let pids: Vec<u32> = fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    let mut all = vec![top];
    let mut i = 0;
    while i < all.len() {
        let p = all[i];
        all.extend(pids.iter().filter(|c| ppid(**c) == Some(p)));
        i += 1;
    }
    all.remove(0);
    all
}

/// Wait until `path` exists (e.g. a pid file or a marker a container writes).
pub fn wait_path(path: &Path) {
    let deadline = Instant::now() + CMD_TIMEOUT;
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        sleep(Duration::from_millis(10));
    }
}
