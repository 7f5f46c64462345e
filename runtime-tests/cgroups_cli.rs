//! The cgroup commands end to end with real containers (run as root):
//! limits from config.json land in the container's cgroup, `ps`, `pause`,
//! `resume`, `update`, `events`, `kill --all` and `delete --force` behave
//! and print as runc's do, and nothing is left behind. Each test has its
//! own --root and container ids; guards delete the containers on failure.

mod common;

use common::host::{self, Skips};
use common::start_detached;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The binary under test: $RCONTAIN_BIN (as `make test` and the VM script
/// set it), else the one cargo built with these tests.
fn bin() -> PathBuf {
    std::env::var_os("RCONTAIN_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_rcontain")),
        PathBuf::from,
    )
}

struct Env {
    base: PathBuf,
    id: String,
}

impl Env {
    /// A busybox bundle running `args` with `resources`, and a state root.
    fn new(name: &str, args: &[&str], resources: Value) -> Env {
        common::require_root();
        let base =
            std::env::temp_dir().join(format!("rcontain-cgcli-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let bin = base.join("bundle/rootfs/bin");
        std::fs::create_dir_all(&bin).unwrap();
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("busybox");
        std::fs::copy(busybox, bin.join("busybox")).unwrap();
        for applet in ["sh", "sleep", "tail", "cat"] {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
        }
        let env = Env {
            base,
            id: format!("cgcli-{}-{name}", std::process::id()),
        };
        let out = env.rc(&["spec", "--bundle", env.bundle().to_str().unwrap()]);
        assert!(out.status.success(), "spec: {}", stderr(&out));
        let path = env.bundle().join("config.json");
        let mut cfg: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        cfg["process"]["args"] = json!(args);
        cfg["process"]["terminal"] = json!(false);
        cfg["linux"]["cgroupsPath"] =
            json!(format!("/rcontain-cgcli-{}-{name}", std::process::id()));
        cfg["linux"]["resources"] = resources;
        std::fs::write(&path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
        env
    }

    fn bundle(&self) -> PathBuf {
        self.base.join("bundle")
    }

    fn rc(&self, args: &[&str]) -> Output {
        Command::new(bin())
            .arg("--root")
            .arg(self.base.join("state"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.rc(args);
        assert!(out.status.success(), "rcontain {args:?}: {}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    }

    /// `run -d` with stdio on files, so no pipe stays open in the container.
    fn run_detached(&self) {
        self.start_with("run", &["-d"]);
    }

    /// `create`, stdio on files as for `run -d`.
    fn create(&self) {
        self.start_with("create", &[]);
    }

    fn start_with(&self, cmd: &str, flags: &[&str]) {
        start_detached(
            Command::new(bin())
                .arg("--root")
                .arg(self.base.join("state"))
                .arg(cmd)
                .args(flags)
                .arg("--bundle")
                .arg(self.bundle())
                .arg(&self.id),
            &self.base.join("run.err"),
            cmd,
        );
    }

    fn status(&self) -> String {
        let v: Value = serde_json::from_str(&self.ok(&["state", &self.id])).unwrap();
        v["status"].as_str().unwrap().to_string()
    }

    fn cgroup_file(&self, v1_controller: &str, file: &str) -> String {
        let rel = format!("rcontain-cgcli-{}", self.id.trim_start_matches("cgcli-"));
        let p = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            Path::new("/sys/fs/cgroup").join(&rel).join(file)
        } else {
            Path::new("/sys/fs/cgroup")
                .join(v1_controller)
                .join(&rel)
                .join(file)
        };
        std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .trim()
            .to_string()
    }

    fn cgroup_exists(&self) -> bool {
        let rel = format!("rcontain-cgcli-{}", self.id.trim_start_matches("cgcli-"));
        ["", "pids", "memory", "freezer", "unified"]
            .iter()
            .any(|c| Path::new("/sys/fs/cgroup").join(c).join(&rel).exists())
    }

    /// Neither the container's cgroup nor its state is left; `what` says
    /// which step failed to clean up.
    #[track_caller]
    fn assert_gone(&self, what: &str) {
        assert!(!self.cgroup_exists(), "{what}: cgroup left behind");
        assert!(
            !self.rc(&["state", &self.id]).status.success(),
            "{what}: state left behind"
        );
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = self.rc(&["delete", "--force", &self.id]);
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

#[test]
fn limits_ps_pause_update_events_delete() {
    let e = Env::new(
        "life",
        &["sh", "-c", "sleep 1000 & sleep 1000; true"],
        json!({
            "devices": [{"allow": false, "access": "rwm"}],
            "memory": {"limit": 67108864},
            "cpu": {"shares": 512},
            "pids": {"limit": 50},
        }),
    );
    e.run_detached();
    assert_eq!(e.cgroup_file("pids", "pids.max"), "50");
    if v2() {
        assert_eq!(e.cgroup_file("", "memory.max"), "67108864");
        assert_eq!(e.cgroup_file("", "cpu.weight"), "20");
    } else {
        assert_eq!(e.cgroup_file("memory", "memory.limit_in_bytes"), "67108864");
        assert_eq!(e.cgroup_file("cpu", "cpu.shares"), "512");
    }

    // ps: json is the pids; the table keeps ps's header and those lines
    let deadline = Instant::now() + Duration::from_secs(10);
    let pids: Vec<i32> = loop {
        let p: Vec<i32> = serde_json::from_str(&e.ok(&["ps", "-f", "json", &e.id])).unwrap();
        if p.len() == 3 || Instant::now() > deadline {
            break p;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(pids.len(), 3, "sh and its two sleeps: {pids:?}");
    let table = e.ok(&["ps", &e.id]);
    let mut lines = table.lines();
    assert!(lines.next().unwrap().contains("PID"));
    assert_eq!(lines.clone().count(), 3, "{table}");
    assert_eq!(
        lines.filter(|l| l.ends_with(" sleep 1000")).count(),
        2,
        "{table}"
    );
    let custom = e.ok(&["ps", &e.id, "--", "-o", "pid,comm"]);
    assert!(
        custom.lines().next().unwrap().contains("COMMAND"),
        "{custom}"
    );

    // pause / resume
    e.ok(&["pause", &e.id]);
    assert_eq!(e.status(), "paused");
    assert!(!e.rc(&["pause", &e.id]).status.success());
    e.ok(&["resume", &e.id]);
    assert_eq!(e.status(), "running");
    assert!(!e.rc(&["resume", &e.id]).status.success());

    // update: flags, then a resources file; both kept in the config
    e.ok(&["update", "--memory", "96m", "--pids-limit", "20", &e.id]);
    assert_eq!(e.cgroup_file("pids", "pids.max"), "20");
    let mem_file = if v2() {
        ("", "memory.max")
    } else {
        ("memory", "memory.limit_in_bytes")
    };
    assert_eq!(
        e.cgroup_file(mem_file.0, mem_file.1),
        (96 << 20).to_string()
    );
    let r = e.base.join("r.json");
    std::fs::write(&r, r#"{"pids": {"limit": 30}}"#).unwrap();
    e.ok(&["update", "-r", r.to_str().unwrap(), &e.id]);
    assert_eq!(e.cgroup_file("pids", "pids.max"), "30");
    assert!(!e
        .rc(&["update", "--memory", "lots", &e.id])
        .status
        .success());
    let saved = e.base.join("state").join(&e.id).join("config.json");
    let saved: Value = serde_json::from_slice(&std::fs::read(saved).unwrap()).unwrap();
    let saved = &saved["linux"]["resources"];
    assert_eq!(
        saved["memory"]["limit"],
        json!(96 << 20),
        "update not saved"
    );
    assert_eq!(saved["pids"]["limit"], json!(30));
    assert_eq!(saved["cpu"]["shares"], json!(512), "untouched value lost");

    // events --stats: one runc-shaped stats event
    let ev: Value = serde_json::from_str(&e.ok(&["events", "--stats", &e.id])).unwrap();
    assert_eq!(ev["type"], "stats");
    assert_eq!(ev["id"], e.id.as_str());
    assert_eq!(ev["data"]["pids"]["current"], 3);
    assert_eq!(ev["data"]["pids"]["limit"], 30);
    assert_eq!(ev["data"]["memory"]["usage"]["limit"], 96 << 20);

    // kill --all reaches the sleeps too; delete leaves no cgroup
    e.ok(&["kill", "--all", &e.id, "KILL"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while e.status() != "stopped" {
        assert!(Instant::now() < deadline, "container still {}", e.status());
        std::thread::sleep(Duration::from_millis(20));
    }
    e.ok(&["delete", &e.id]);
    assert!(!e.cgroup_exists());
}

#[test]
fn delete_force_of_a_paused_container() {
    let e = Env::new("paused", &["sleep", "1000"], json!({"pids": {"limit": 10}}));
    e.run_detached();
    e.ok(&["pause", &e.id]);
    e.ok(&["delete", "--force", &e.id]);
    e.assert_gone("delete --force");
}

#[test]
fn a_paused_created_container_is_paused_until_resumed() {
    let e = Env::new(
        "pausecreated",
        &["sleep", "1000"],
        json!({"pids": {"limit": 10}}),
    );
    e.create();
    e.ok(&["pause", &e.id]);
    assert_eq!(e.status(), "paused");
    let out = e.rc(&["start", &e.id]);
    assert!(
        !out.status.success(),
        "start of a paused container succeeded"
    );
    e.ok(&["resume", &e.id]);
    assert_eq!(e.status(), "created");
    e.ok(&["start", &e.id]);
    assert_eq!(e.status(), "running");
}

#[test]
fn events_reports_an_oom() {
    let mut memory = json!({"limit": 16777216});
    let (swap_file, swap) = host::swap_file();
    if swap {
        memory["swap"] = json!(16777216);
    } else if host::swap_active() {
        // nothing would keep the memory hog out of the host's swap
        Skips::default().lack(format!(
            "{swap_file} (swap accounting) while swap is on: an OOM"
        ));
        return;
    }
    let e = Env::new(
        "oom",
        &["sh", "-c", "sleep 1; tail /dev/zero"],
        json!({ "memory": memory }),
    );
    e.run_detached();
    let mut child = Command::new(bin())
        .arg("--root")
        .arg(e.base.join("state"))
        .args(["events", "--interval", "1s", &e.id])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut types = Vec::new();
        for line in std::io::BufReader::new(stdout).lines() {
            let v: Value = serde_json::from_str(&line.unwrap()).unwrap();
            types.push(v["type"].as_str().unwrap().to_string());
            if types.iter().any(|t| t == "oom") {
                break;
            }
        }
        types
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while !reader.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    let types = reader.join().unwrap();
    assert!(types.iter().any(|t| t == "oom"), "no oom event: {types:?}");
}

#[test]
fn a_limit_the_host_cannot_honour_fails_create_cleanly() {
    let e = Env::new(
        "bad",
        &["sleep", "1000"],
        json!({"memory": {"swappiness": 500}}),
    );
    let out = e.rc(&["create", "--bundle", e.bundle().to_str().unwrap(), &e.id]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("swappiness"), "{}", stderr(&out));
    e.assert_gone("failed create");
}

/// blockIO.weight needs BFQ (or io.cost on v2): where the host has a
/// weight file the value lands there; where not, create fails naming the
/// field and leaves no cgroup and no state, as runc's create fails too.
#[test]
fn a_blockio_weight_follows_what_the_host_offers() {
    let e = Env::new(
        "weight",
        &["sleep", "1000"],
        json!({"blockIO": {"weight": 300}}),
    );
    let weights = host::blkio_weight_files();
    if let Some(file) = weights.first() {
        e.create();
        let v1 = if file.starts_with("io.") { "" } else { "blkio" };
        let got = e.cgroup_file(v1, file);
        // io.weight has its own range; the others take blkio's
        let want = if *file == "io.weight" {
            rcontain::cgroups::translate::blkio_weight_to_io_weight(300)
        } else {
            300
        };
        assert!(
            got.split_whitespace().any(|w| w == want.to_string()),
            "{file}: {got}, want {want}"
        );
        e.ok(&["delete", "--force", &e.id]);
        e.assert_gone("delete --force");
        return;
    }
    let out = e.rc(&["create", "--bundle", e.bundle().to_str().unwrap(), &e.id]);
    assert!(!out.status.success(), "create with blockIO.weight worked");
    let err = stderr(&out);
    assert!(
        err.contains("blockIO.weight") && err.trim().lines().count() == 1,
        "{err}"
    );
    e.assert_gone("failed create");
    // runc cannot honour it either (never worse than runc)
    let runc_state = e.base.join("runc-state");
    let runc = Command::new("runc")
        .arg("--root")
        .arg(&runc_state)
        .args(["create", "--bundle", e.bundle().to_str().unwrap()])
        .arg(format!("{}-runc", e.id))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    let _ = Command::new("runc")
        .arg("--root")
        .arg(&runc_state)
        .args(["delete", "--force", &format!("{}-runc", e.id)])
        .output();
    assert!(
        !runc.success(),
        "runc honoured blockIO.weight where rcontain failed"
    );
    Skips::default().lack(match host::cgroup_mode() {
        rcontain::cgroups::Mode::V2 => "io.weight and io.bfq.weight: blockIO.weight applied",
        _ => "blkio.weight and blkio.bfq.weight (no BFQ): blockIO.weight applied",
    });
}

/// The same bundle under runc: the cgroup commands print alike.
#[test]
fn output_formats_match_runc() {
    let e = Env::new(
        "vsrunc",
        &["sh", "-c", "sleep 1000 & sleep 1000; true"],
        json!({"pids": {"limit": 20}, "memory": {"limit": 67108864}}),
    );
    e.run_detached();
    // runc gets its own cgroup and state root, the same config otherwise
    let runc_bundle = e.base.join("runc-bundle");
    std::fs::create_dir_all(&runc_bundle).unwrap();
    let mut cfg: Value =
        serde_json::from_slice(&std::fs::read(e.bundle().join("config.json")).unwrap()).unwrap();
    cfg["root"]["path"] = json!(e.bundle().join("rootfs"));
    cfg["linux"]["cgroupsPath"] = json!(format!(
        "/rcontain-cgcli-{}-vsrunc-runc",
        std::process::id()
    ));
    std::fs::write(
        runc_bundle.join("config.json"),
        serde_json::to_vec(&cfg).unwrap(),
    )
    .unwrap();
    struct Runc(PathBuf, String);
    impl Runc {
        fn cmd(&self, args: &[&str]) -> Output {
            Command::new("runc")
                .arg("--root")
                .arg(&self.0)
                .args(args)
                .arg(&self.1)
                .stdin(Stdio::null())
                .output()
                .unwrap()
        }
    }
    impl Drop for Runc {
        fn drop(&mut self) {
            let _ = self.cmd(&["delete", "-f"]);
        }
    }
    let runc = Runc(e.base.join("runc-state"), format!("{}-runc", e.id));
    start_detached(
        Command::new("runc")
            .arg("--root")
            .arg(&runc.0)
            .args(["run", "-d", "--bundle"])
            .arg(&runc_bundle)
            .arg(&runc.1),
        &e.base.join("runc.err"),
        "runc run",
    );

    let theirs_ok = |args: &[&str]| {
        let o = runc.cmd(args);
        assert!(o.status.success(), "runc {args:?}: {}", stderr(&o));
        String::from_utf8(o.stdout).unwrap()
    };
    let count = |s: &str| serde_json::from_str::<Vec<i32>>(s).unwrap().len();
    let deadline = Instant::now() + Duration::from_secs(10);
    while count(&e.ok(&["ps", "-f", "json", &e.id])) != 3
        || count(&theirs_ok(&["ps", "-f", "json"])) != 3
    {
        assert!(
            Instant::now() < deadline,
            "the containers never had 3 processes each"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // table: the same header and as many lines
    let ours = e.ok(&["ps", &e.id]);
    let theirs = theirs_ok(&["ps"]);
    assert_eq!(ours.lines().next(), theirs.lines().next());
    assert_eq!(
        ours.lines().count(),
        theirs.lines().count(),
        "{ours}\n{theirs}"
    );

    // events --stats: same event fields, same data sections
    let ours: Value = serde_json::from_str(&e.ok(&["events", "--stats", &e.id])).unwrap();
    let theirs: Value = serde_json::from_str(&theirs_ok(&["events", "--stats"])).unwrap();
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&ours), keys(&theirs));
    assert_eq!(keys(&ours["data"]), keys(&theirs["data"]));
    assert_eq!(ours["data"]["pids"], theirs["data"]["pids"]);

    // pause: both report "paused"; both refuse a second pause
    e.ok(&["pause", &e.id]);
    theirs_ok(&["pause"]);
    let theirs_state: Value = serde_json::from_str(&theirs_ok(&["state"])).unwrap();
    assert_eq!(e.status(), theirs_state["status"].as_str().unwrap());
    assert!(!runc.cmd(&["pause"]).status.success());
    assert!(!e.rc(&["pause", &e.id]).status.success());
    e.ok(&["resume", &e.id]);
    theirs_ok(&["resume"]);
}

/// How `create` is started for the placement tests.
#[derive(Default, Clone, Copy)]
struct Spawn<'a> {
    /// clone3 fails with this errno, as on kernels before 5.7 (ENOSYS,
    /// E2BIG) or under seccomp profiles that deny it (ENOSYS, EPERM)
    clone3_errno: Option<i32>,
    /// the runtime itself runs in this cgroup2 directory
    runtime_cgroup: Option<&'a Path>,
}

impl Env {
    fn edit_config(&self, f: impl FnOnce(&mut Value)) {
        let path = self.bundle().join("config.json");
        let mut cfg: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        f(&mut cfg);
        std::fs::write(&path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    }

    /// New namespaces of these types; "user" maps ids 0.. to 100000..
    fn add_namespaces(&self, types: &[&str]) {
        self.edit_config(|cfg| {
            for t in types {
                cfg["linux"]["namespaces"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({ "type": t }));
            }
            if types.contains(&"user") {
                let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
                cfg["linux"]["uidMappings"] = map.clone();
                cfg["linux"]["gidMappings"] = map;
            }
        });
        if types.contains(&"user") {
            // the container's root makes the mount points
            let rootfs = self.bundle().join("rootfs");
            let mut todo = vec![rootfs];
            while let Some(p) = todo.pop() {
                std::os::unix::fs::lchown(&p, Some(100000), Some(100000)).unwrap();
                if p.is_dir() && !p.is_symlink() {
                    todo.extend(std::fs::read_dir(&p).unwrap().map(|d| d.unwrap().path()));
                }
            }
        }
    }

    /// `--debug create`: whether it succeeded, its debug log, its stderr.
    fn create_debug(&self, how: Spawn) -> (bool, String, String) {
        let log = self.base.join("debug.log");
        let err = self.base.join("create.err");
        let _ = std::fs::remove_file(&log);
        let mut cmd = Command::new(bin());
        cmd.arg("--root")
            .arg(self.base.join("state"))
            .arg("--debug")
            .arg("--log")
            .arg(&log)
            .args(["create", "--bundle"])
            .arg(self.bundle())
            .arg(&self.id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // a file: the init keeps create's stderr open
            .stderr(std::fs::File::create(&err).unwrap());
        let procs = how.runtime_cgroup.map(|d| {
            use std::os::unix::ffi::OsStrExt;
            std::ffi::CString::new(d.join("cgroup.procs").as_os_str().as_bytes()).unwrap()
        });
        let errno = how.clone3_errno;
        // SAFETY: the closure runs between fork and exec in a multi-threaded
        // test process; it only makes syscalls on data prepared before the
        // fork and allocates nothing.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(move || {
                if let Some(p) = &procs {
                    join_cgroup(p)?;
                }
                if let Some(e) = errno {
                    deny_clone3(e)?;
                }
                Ok(())
            });
        }
        let ok = cmd.status().unwrap().success();
        (
            ok,
            std::fs::read_to_string(&log).unwrap_or_default(),
            std::fs::read_to_string(&err).unwrap_or_default(),
        )
    }

    fn pid(&self) -> i32 {
        let v: Value = serde_json::from_str(&self.ok(&["state", &self.id])).unwrap();
        v["pid"].as_i64().unwrap() as i32
    }

    /// `pid` is in the container's cgroup in every hierarchy.
    fn assert_in_cgroup(&self, pid: i32) {
        let want = format!("/rcontain-{}", self.id);
        let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        for line in own.lines() {
            assert_eq!(line.splitn(3, ':').nth(2), Some(want.as_str()), "{own}");
        }
    }

    /// In the container's cgroup namespace its cgroup is the root, for the
    /// init and for an exec'd process; the exec'd one was cloned into it
    /// where the host lets a process be born in its cgroup.
    fn assert_cgroup_ns_root(&self) {
        let out = self.rc(&[
            "--debug",
            "exec",
            &self.id,
            "cat",
            "/proc/1/cgroup",
            "/proc/self/cgroup",
        ]);
        assert!(out.status.success(), "exec: {}", stderr(&out));
        let seen = String::from_utf8_lossy(&out.stdout);
        assert!(!seen.is_empty());
        for line in seen.lines() {
            assert!(line.ends_with(":/"), "not the namespace's root: {seen}");
        }
        if born_in_cgroup() {
            assert!(
                stderr(&out).contains("exec process ")
                    && stderr(&out).contains("cloned into its cgroup"),
                "{}",
                stderr(&out)
            );
        }
    }
}

/// Whether a process can be born in its cgroup here: a cgroup2 hierarchy
/// (v2, hybrid) and clone3 with CLONE_INTO_CGROUP (Linux 5.7).
fn born_in_cgroup() -> bool {
    host::has_cgroup2() && host::has_clone_into_cgroup()
}

/// Notes in `skips` why no process can be born in its cgroup here.
fn note_born_in_cgroup(skips: &mut Skips) {
    if !host::has_cgroup2() {
        skips.lack("a cgroup2 hierarchy: an init born in its cgroup");
    } else if !host::has_clone_into_cgroup() {
        skips.lack("clone3 CLONE_INTO_CGROUP: an init born in its cgroup");
    }
}

/// Where the host lacks a namespace type among `types`, `create` must fail
/// naming it and leave nothing: checks that and returns true (noted in
/// `skips`); false when the host has them all.
fn lacking_namespace_fails(
    e: &Env,
    types: &[&str],
    (ok, err): (bool, &str),
    skips: &mut Skips,
) -> bool {
    let lacking = types.iter().find(|t| match **t {
        "user" => !host::has_user_namespaces(),
        t => !host::has_namespace(t),
    });
    let Some(t) = lacking else { return false };
    assert!(!ok, "create with a {t} namespace worked on a host without");
    assert!(
        err.contains(&format!("{t} namespace")) && err.contains("linux.namespaces"),
        "{err}"
    );
    e.assert_gone(&format!("failed create ({t} namespace)"));
    skips.lack(format!("{t} namespaces"));
    true
}

/// Join the cgroup2 directory whose cgroup.procs is `procs`, from pre_exec:
/// only syscalls, no allocation.
fn join_cgroup(procs: &std::ffi::CStr) -> std::io::Result<()> {
    use nix::fcntl::{open, OFlag};
    let fd = open(
        procs,
        OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    let r = nix::unistd::write(
        // SAFETY: `fd` was just opened and is closed right after.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
        b"0",
    );
    let _ = nix::unistd::close(fd);
    r.map(drop).map_err(Into::into)
}

/// A seccomp filter on this process and its children: clone3 fails with
/// `errno`, everything else is allowed. From pre_exec: no allocation.
fn deny_clone3(errno: i32) -> std::io::Result<()> {
    let insn = |code: u32, jt: u8, jf: u8, k: u32| libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    let filter = [
        // seccomp_data.nr; clone3 has the same number on every architecture
        insn(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0, 0, 0),
        insn(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            0,
            1,
            libc::SYS_clone3 as u32,
        ),
        insn(
            libc::BPF_RET | libc::BPF_K,
            0,
            0,
            libc::SECCOMP_RET_ERRNO | errno as u32,
        ),
        insn(libc::BPF_RET | libc::BPF_K, 0, 0, libc::SECCOMP_RET_ALLOW),
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr().cast_mut(),
    };
    // SAFETY: `prog` describes `filter`, both alive for the call; the kernel
    // copies the program. Root has CAP_SYS_ADMIN, so no no_new_privs needed.
    let r = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &prog as *const libc::sock_fprog,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The init is cloned into its cgroup (clone3 CLONE_INTO_CGROUP into the
/// cgroup2 directory, which hybrid hosts have too), and a cgroup namespace
/// made after that shows the container its own cgroup as root. The same
/// when an intermediate process forks the init (a time namespace); in a
/// user namespace that process cannot, and the runtime moves the init.
#[test]
fn the_init_is_born_in_its_cgroup() {
    let mut skips = Skips::default();
    note_born_in_cgroup(&mut skips);
    for (name, extra, born_line) in [
        ("born", &["cgroup"][..], true),
        ("bornmid", &["cgroup", "time"][..], true),
        ("bornuserns", &["cgroup", "time", "user"][..], false),
    ] {
        let e = Env::new(name, &["sleep", "1000"], json!({"pids": {"limit": 10}}));
        e.add_namespaces(extra);
        let (ok, log, err) = e.create_debug(Spawn::default());
        if lacking_namespace_fails(&e, extra, (ok, &err), &mut skips) {
            continue;
        }
        assert!(ok, "{name}: create: {err}");
        let pid = e.pid();
        // without a cgroup2 hierarchy there is nothing to be born in, and
        // no line about it
        let line = if !host::has_cgroup2() {
            None
        } else if !born_line {
            Some("in a user namespace: init cloned outside, then moved into its cgroup".into())
        } else if born_in_cgroup() {
            Some(format!(
                "init {pid} cloned into its cgroup (clone3 CLONE_INTO_CGROUP)"
            ))
        } else {
            Some("clone3 CLONE_INTO_CGROUP refused (".into())
        };
        if let Some(line) = line {
            assert!(log.contains(&line), "{name}: {log}");
        }
        e.assert_in_cgroup(pid);
        e.assert_cgroup_ns_root();
        e.ok(&["start", &e.id]);
        assert_eq!(e.status(), "running");
        e.ok(&["delete", "--force", &e.id]);
        assert!(!e.cgroup_exists(), "{name}: cgroup left behind");

        // an init that fails after it was cloned into its cgroup leaves nothing
        e.edit_config(|c| c["process"]["args"] = json!(["/no/such/program"]));
        let (ok, _, err) = e.create_debug(Spawn::default());
        assert!(!ok, "{name}: create of a missing program succeeded");
        assert!(err.contains("/no/such/program"), "{name}: {err}");
        e.assert_gone(name);
    }
}

/// Where clone3 is refused, the init is cloned as before and moved into
/// its cgroup before it runs container code: the container works the same.
#[test]
fn without_clone3_the_init_is_moved_into_its_cgroup() {
    let mut skips = Skips::default();
    for (errno, name) in [
        (libc::ENOSYS, "noclone3"),
        (libc::E2BIG, "oldclone3"),
        (libc::EPERM, "deniedclone3"),
    ] {
        let e = Env::new(name, &["sleep", "1000"], json!({"pids": {"limit": 10}}));
        e.add_namespaces(&["cgroup"]);
        let (ok, log, err) = e.create_debug(Spawn {
            clone3_errno: Some(errno),
            ..Spawn::default()
        });
        assert!(ok, "{name}: create: {err}");
        let refused = format!(
            "clone3 CLONE_INTO_CGROUP refused ({}): init cloned outside, then moved into its cgroup",
            nix::errno::Errno::from_raw(errno)
        );
        // no cgroup2 directory: clone3 is never tried
        if skips.need(
            host::has_cgroup2(),
            "a cgroup2 hierarchy: the clone3 CLONE_INTO_CGROUP fallback",
        ) {
            assert!(log.contains(&refused), "{name}: {log}");
        }
        e.assert_in_cgroup(e.pid());
        e.assert_cgroup_ns_root();
        e.ok(&["start", &e.id]);
        assert_eq!(e.status(), "running");
        e.ok(&["delete", "--force", &e.id]);
        assert!(!e.cgroup_exists(), "{name}: cgroup left behind");
    }
}

/// The kernel's own evidence on cgroup v2 that the init never ran in the
/// runtime's cgroup: `create` runs in a cgroup whose pids.max leaves no
/// room for another process (the intermediate process, when there is one,
/// excepted). Cloned into its own cgroup, the init is not counted there;
/// forced to be cloned outside (no clone3), the same create fails with
/// EAGAIN and leaves nothing behind.
#[test]
fn on_v2_the_init_never_counts_in_the_runtimes_cgroup() {
    let root = Path::new("/sys/fs/cgroup");
    let delegated =
        std::fs::read_to_string(root.join("cgroup.subtree_control")).unwrap_or_default();
    let mut skips = Skips::default();
    if !v2() || !delegated.split_whitespace().any(|c| c == "pids") {
        skips.lack(format!(
            "cgroup v2 with the pids controller in {}",
            root.display()
        ));
        return;
    }
    if !born_in_cgroup() {
        note_born_in_cgroup(&mut skips);
        return;
    }
    struct Cgroup(PathBuf);
    impl Drop for Cgroup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    for (name, extra, room) in [("nursery", &[][..], 1), ("nurserymid", &["time"][..], 2)] {
        if extra.contains(&"time") && !skips.need(host::has_namespace("time"), "time namespaces") {
            continue;
        }
        let e = Env::new(name, &["sleep", "1000"], json!({"pids": {"limit": 10}}));
        e.add_namespaces(extra);
        let runtime = Cgroup(root.join(format!("rcontain-{}-runtime", e.id)));
        std::fs::create_dir(&runtime.0).unwrap();
        std::fs::write(runtime.0.join("pids.max"), room.to_string()).unwrap();
        let in_runtime_cgroup = Spawn {
            runtime_cgroup: Some(&runtime.0),
            ..Spawn::default()
        };

        let (ok, log, err) = e.create_debug(in_runtime_cgroup);
        assert!(ok, "{name}: create: {err}{log}");
        e.assert_in_cgroup(e.pid());
        e.ok(&["delete", "--force", &e.id]);

        let (ok, log, err) = e.create_debug(Spawn {
            clone3_errno: Some(libc::ENOSYS),
            ..in_runtime_cgroup
        });
        assert!(
            !ok,
            "{name}: cloned outside, the init fit in pids.max {room}: {log}"
        );
        assert!(err.contains("EAGAIN"), "{name}: {err}");
        e.assert_gone(name);
    }
}

/// On v2 an exec'd process is born in the container's cgroup too, so a
/// full pids.max refuses it, where a fork outside and a move into the
/// cgroup would have exceeded the limit.
#[test]
fn on_v2_exec_is_held_to_pids_max() {
    if !v2() {
        Skips::default().lack("cgroup v2: exec born in a full cgroup");
        return;
    }
    if !born_in_cgroup() {
        note_born_in_cgroup(&mut Skips::default());
        return;
    }
    let e = Env::new(
        "execpids",
        &["sleep", "1000"],
        json!({"pids": {"limit": 1}}),
    );
    e.run_detached();
    let out = e.rc(&["exec", &e.id, "true"]);
    assert!(!out.status.success(), "exec beyond pids.max 1 succeeded");
    assert!(stderr(&out).contains("EAGAIN"), "{}", stderr(&out));
    assert_eq!(e.cgroup_file("pids", "pids.current"), "1");
}
