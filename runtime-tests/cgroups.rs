//! Integration tests of the cgroup manager on the real host (run as root).
//! They create cgroups only under names of their own ("/rcontain-it-..."),
//! put a plain `sleep` in them, read the values back from cgroupfs and
//! compare with what runc writes for the same linux.resources. Every
//! cgroup, process and runc container is removed by Drop guards, also
//! when an assertion fails. The same binary runs inside the pure cgroup-v2
//! VM (runtime-tests/vm-cgroups.sh).

mod common;

use common::host::{self, Skips};
use common::start_detached;
use oci_spec::runtime::LinuxResources;
use rcontain::cgroups::{self, Manager, Mode};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

fn root_required() {
    common::require_root();
}

/// crun and runc need hugetlb as a v1 controller on hybrid hosts; mount
/// it (only if it is mounted nowhere yet: this adds a hierarchy and
/// leaves the host's existing ones alone).
fn setup() -> Mode {
    static ONCE: Once = Once::new();
    root_required();
    let mode = cgroups::detect().unwrap();
    ONCE.call_once(|| {
        if mode == Mode::V2 {
            return;
        }
        let mounted = cgroups::v1_hierarchies()
            .unwrap()
            .iter()
            .any(|h| h.controllers.iter().any(|c| c == "hugetlb"));
        let in_v2 = std::fs::read_to_string("/sys/fs/cgroup/unified/cgroup.subtree_control")
            .unwrap_or_default()
            .contains("hugetlb");
        if !mounted && !in_v2 {
            std::fs::create_dir_all("/sys/fs/cgroup/hugetlb").unwrap();
            let st = Command::new("mount")
                .args([
                    "-t",
                    "cgroup",
                    "-o",
                    "hugetlb",
                    "cgroup",
                    "/sys/fs/cgroup/hugetlb",
                ])
                .status()
                .unwrap();
            assert!(st.success(), "mount of the v1 hugetlb hierarchy failed");
        }
    });
    mode
}

/// A unique single-component cgroup path for one test.
fn test_path(name: &str) -> PathBuf {
    PathBuf::from(format!("/rcontain-it-{}-{name}", std::process::id()))
}

/// Destroys the manager's cgroups and kills the test's processes on drop.
struct Guard {
    m: Manager,
    path: PathBuf,
    children: Vec<Child>,
}

impl Guard {
    fn new(name: &str) -> Guard {
        let path = test_path(name);
        let m = Manager::new(Some(&path), name).unwrap();
        Guard {
            m,
            path,
            children: Vec::new(),
        }
    }

    /// Start `sleep` (or `args`) in the cgroup: it joins the v1
    /// hierarchies itself between fork and exec (cgroups::SelfJoin, as the
    /// init does), the runtime moves it into the rest.
    fn spawn(&mut self, args: &[&str]) -> i32 {
        use std::os::unix::process::CommandExt;
        let join = self.m.v1_self_join().unwrap();
        let mut cmd = Command::new(args[0]);
        cmd.args(&args[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let joined = join.is_some();
        if let Some(j) = join {
            // SAFETY: in the forked child, which has one thread; `join`
            // only writes to fds open already (it allocates only to report
            // a failure).
            unsafe {
                cmd.pre_exec(move || j.join().map_err(std::io::Error::other));
            }
        }
        let child = cmd.spawn().unwrap();
        let pid = child.id() as i32;
        self.children.push(child);
        self.m.add_pid(pid, false, joined).unwrap();
        // in the container's cgroup in every hierarchy, v1 or not
        let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        let want = self.path.to_str().unwrap();
        for line in own.lines() {
            assert!(line.ends_with(want), "{own}");
        }
        pid
    }

    /// Start `sh -c script` in the cgroup: the shell stops itself first and
    /// is moved in while stopped, so everything after the `kill -STOP`
    /// happens inside. `out` gives its stdout and stderr. Returns its pid.
    fn spawn_inside(&mut self, script: &str, out: fn() -> Stdio) -> i32 {
        let child = Command::new("sh")
            .args(["-c", &format!("kill -STOP $$; {script}")])
            .stdout(out())
            .stderr(out())
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        self.children.push(child);
        let stat = format!("/proc/{pid}/stat");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !std::fs::read_to_string(&stat).unwrap().contains(") T ") {
            assert!(Instant::now() < deadline, "the shell never stopped");
            std::thread::sleep(Duration::from_millis(5));
        }
        self.m.add_pid(pid, false, false).unwrap();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGCONT,
        )
        .unwrap();
        pid
    }

    /// Wait (bounded) for child `i` to exit; its exit status or None.
    fn wait_exit(&mut self, i: usize) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(st) = self.children[i].try_wait().unwrap() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Err(e) = self.m.destroy() {
            eprintln!("cleanup: {e:#}");
        }
    }
}

/// The container's directory holding `file` (by its controller prefix).
fn dir_of(mode: Mode, path: &Path, file: &str) -> PathBuf {
    let rel = path.strip_prefix("/").unwrap();
    if mode == Mode::V2 {
        return Path::new(cgroups::ROOT).join(rel);
    }
    let controller = match file.split('.').next().unwrap() {
        "cgroup" => "name=systemd",
        c => c,
    };
    let h = cgroups::v1_hierarchies().unwrap();
    let h = h
        .iter()
        .find(|h| h.controllers.iter().any(|c| c == controller))
        .unwrap_or_else(|| panic!("no v1 hierarchy for {file}"));
    h.mount.join(rel)
}

/// Every `(file, value)` pair as the cgroup's file reads back.
fn assert_files(mode: Mode, path: &Path, want: &[(&str, &str)]) {
    for (file, value) in want {
        assert_eq!(read(mode, path, file), *value, "{file}");
    }
}

fn read(mode: Mode, path: &Path, file: &str) -> String {
    let p = dir_of(mode, path, file).join(file);
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_string()
}

/// A block device of this machine (major, minor, BFQ is its scheduler),
/// a disk rather than a loop or zram device when there is one.
fn block_device() -> Option<(i64, i64, bool)> {
    let mut devs: Vec<(String, String, bool)> = std::fs::read_dir("/sys/block")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let dev = std::fs::read_to_string(e.path().join("dev")).ok()?;
            let sched =
                std::fs::read_to_string(e.path().join("queue/scheduler")).unwrap_or_default();
            Some((
                e.file_name().to_string_lossy().into_owned(),
                dev.trim().to_string(),
                sched.contains("[bfq]"),
            ))
        })
        .collect();
    devs.sort_by_key(|(name, _, _)| {
        !["vd", "sd", "nvme", "xvd"]
            .iter()
            .any(|p| name.starts_with(p))
    });
    let (_, dev, bfq) = devs.into_iter().next()?;
    let (a, b) = dev.split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?, bfq))
}

fn has_hugetlb(mode: Mode) -> bool {
    let sizes = cgroups::hugepage_sizes().unwrap();
    let controller = match mode {
        Mode::V2 => std::fs::read_to_string("/sys/fs/cgroup/cgroup.subtree_control")
            .unwrap_or_default()
            .contains("hugetlb"),
        _ => cgroups::v1_hierarchies()
            .unwrap()
            .iter()
            .any(|h| h.controllers.iter().any(|c| c == "hugetlb")),
    };
    controller && sizes.iter().any(|s| s == "2MB")
}

/// How this layout names what blockIO.weight needs, for `Skips`.
fn weight_lack(mode: Mode) -> &'static str {
    match mode {
        Mode::V2 => "io.weight and io.bfq.weight (neither BFQ nor io.cost): blockIO.weight",
        _ => "blkio.weight and blkio.bfq.weight (no BFQ I/O scheduler): blockIO.weight",
    }
}

/// linux.resources that runc 1.1 also applies on this kind of host: the
/// values whose cgroup file this host lacks are left out (and noted).
fn common_resources(mode: Mode, skips: &mut Skips) -> Value {
    let mut r = json!({
        "devices": [{"allow": false, "access": "rwm"}],
        "memory": {"limit": 67108864, "reservation": 33554432},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 42},
    });
    let (swap_file, swap) = host::swap_file();
    if skips.need(swap, format!("{swap_file} (swap accounting): memory.swap")) {
        r["memory"]["swap"] = json!(134217728);
    }
    if mode != Mode::V2 {
        r["memory"]["swappiness"] = json!(10);
    }
    if let Some((major, minor, bfq)) = block_device() {
        let dev = |rate: u64| json!([{"major": major, "minor": minor, "rate": rate}]);
        let throttle = throttle_file(mode);
        if skips.need(
            host::cgroup_has(throttle),
            format!("{throttle} (block I/O throttling): blockIO throttles"),
        ) {
            r["blockIO"] = json!({
                "throttleReadBpsDevice": dev(1048576),
                "throttleWriteBpsDevice": dev(2097152),
                "throttleReadIOPSDevice": dev(1000),
                "throttleWriteIOPSDevice": dev(2000),
            });
        }
        if skips.need(!host::blkio_weight_files().is_empty(), weight_lack(mode)) {
            r["blockIO"]["weight"] = json!(300);
        }
        // per-device weights need BFQ active on the device (runc fails alike)
        if bfq {
            r["blockIO"]["weightDevice"] = json!([{"major": major, "minor": minor, "weight": 400}]);
        }
    } else {
        skips.lack("a block device: blockIO");
    }
    if skips.need(
        has_hugetlb(mode),
        "the hugetlb controller with 2MB pages: hugepageLimits",
    ) {
        r["hugepageLimits"] = json!([{"pageSize": "2MB", "limit": 4194304}]);
    }
    r
}

/// The file that shows block I/O throttling is there.
fn throttle_file(mode: Mode) -> &'static str {
    match mode {
        Mode::V2 => "io.max",
        _ => "blkio.throttle.read_bps_device",
    }
}

fn resources(v: &Value) -> LinuxResources {
    serde_json::from_value(v.clone()).unwrap()
}

/// The cgroup files that the common resources set, for reading back.
fn resource_files(mode: Mode, r: &Value) -> Vec<&'static str> {
    let mut f = match mode {
        Mode::V2 => vec![
            "cpu.weight",
            "cpu.max",
            "cpuset.cpus",
            "cpuset.mems",
            "memory.max",
            "memory.low",
            "pids.max",
        ],
        _ => vec![
            "cpu.shares",
            "cpu.cfs_period_us",
            "cpu.cfs_quota_us",
            "cpuset.cpus",
            "cpuset.mems",
            "memory.limit_in_bytes",
            "memory.soft_limit_in_bytes",
            "memory.swappiness",
            "pids.max",
            "devices.list",
        ],
    };
    if r["memory"].get("swap").is_some() {
        f.push(host::swap_file().0);
    }
    if r["blockIO"].get("throttleReadBpsDevice").is_some() {
        match mode {
            Mode::V2 => f.extend(["io.max"]),
            _ => f.extend([
                "blkio.throttle.read_bps_device",
                "blkio.throttle.write_bps_device",
                "blkio.throttle.read_iops_device",
                "blkio.throttle.write_iops_device",
            ]),
        }
    }
    if r.get("hugepageLimits").is_some() {
        f.push(if mode == Mode::V2 {
            "hugetlb.2MB.max"
        } else {
            "hugetlb.2MB.limit_in_bytes"
        });
    }
    f
}

/// The weight files differ by I/O scheduler; whichever exists is compared.
fn weight_files(mode: Mode, path: &Path) -> Vec<&'static str> {
    let candidates: &[&'static str] = match mode {
        Mode::V2 => &["io.bfq.weight", "io.weight"],
        _ => &[
            "blkio.bfq.weight",
            "blkio.weight",
            "blkio.bfq.weight_device",
            "blkio.weight_device",
        ],
    };
    candidates
        .iter()
        .copied()
        .filter(|f| dir_of(mode, path, f).join(f).exists())
        .collect()
}

#[test]
fn lifecycle_with_every_resource() {
    let mode = setup();
    let mut skips = Skips::default();
    let mut g = Guard::new("life");
    let path = g.m.path().to_path_buf();
    let mut rv = common_resources(mode, &mut skips);
    let swap = rv["memory"].get("swap").is_some();
    // (file, value) pairs the cgroup must read back; the optional ones
    // only where this host has the file (`limits_the_host_lacks_...`
    // checks that create fails cleanly elsewhere)
    let mut want: Vec<(&str, &str)>;
    if mode == Mode::V2 {
        rv["unified"] = json!({"memory.high": "62914560"});
        want = vec![
            ("cpu.weight", "20"),
            ("cpu.max", "50000 100000"),
            ("memory.max", "67108864"),
            ("memory.low", "33554432"),
            ("memory.high", "62914560"),
        ];
        if swap {
            want.push(("memory.swap.max", "67108864"));
        }
    } else {
        rv["memory"]["disableOOMKiller"] = json!(true);
        want = vec![
            ("cpu.shares", "512"),
            ("cpu.cfs_quota_us", "50000"),
            ("memory.limit_in_bytes", "67108864"),
            ("memory.swappiness", "10"),
        ];
        if swap {
            want.push(("memory.memsw.limit_in_bytes", "134217728"));
        }
        if skips.need(
            host::cgroup_has("memory.kmem.tcp.limit_in_bytes"),
            "memory.kmem.tcp.limit_in_bytes: memory.kernelTCP",
        ) {
            rv["memory"]["kernelTCP"] = json!(16777216);
            want.push(("memory.kmem.tcp.limit_in_bytes", "16777216"));
        }
        if skips.need(
            host::cgroup_has("cpu.rt_runtime_us"),
            "cpu.rt_runtime_us (realtime group scheduling): cpu.realtimeRuntime",
        ) {
            rv["cpu"]["realtimePeriod"] = json!(1000000);
            rv["cpu"]["realtimeRuntime"] = json!(10000);
            want.push(("cpu.rt_runtime_us", "10000"));
        }
    }
    let burst = burst_file(mode);
    if skips.need(host::cgroup_has(burst), format!("{burst}: cpu.burst")) {
        rv["cpu"]["burst"] = json!(10000);
        want.push((burst, "10000"));
    }
    let r = resources(&rv);
    g.m.validate(&r).unwrap();
    g.m.create(Some(&r)).unwrap();
    let pid = g.spawn(&["sleep", "1000"]);

    let rd = |f: &str| read(mode, &path, f);
    assert_files(mode, &path, &want);
    if mode != Mode::V2 {
        assert!(rd("memory.oom_control").contains("oom_kill_disable 1"));
        assert!(rd("devices.list").contains("c 1:3 rwm"));
        assert!(!rd("devices.list").contains("a *:* rwm"));
        if mode == Mode::Hybrid {
            // joined in the unified hierarchy too, as runc does
            let procs = std::fs::read_to_string(
                Path::new("/sys/fs/cgroup/unified")
                    .join(path.strip_prefix("/").unwrap())
                    .join("cgroup.procs"),
            )
            .unwrap();
            assert!(procs.split_whitespace().any(|p| p == pid.to_string()));
        }
    }
    assert_files(mode, &path, &[("pids.max", "42"), ("cpuset.cpus", "0")]);
    assert_eq!(g.m.pids().unwrap(), vec![pid]);

    // update: new values land, untouched ones stay
    let mut up = json!({"memory": {"limit": 100663296}, "cpu": {"shares": 1024, "period": 200000}, "pids": {"limit": 7}});
    let mut want = if mode == Mode::V2 {
        vec![
            ("pids.max", "7"),
            ("memory.max", "100663296"),
            ("cpu.weight", "39"),
            ("cpu.max", "50000 200000"),
            ("memory.low", "33554432"),
        ]
    } else {
        vec![
            ("pids.max", "7"),
            ("memory.limit_in_bytes", "100663296"),
            ("cpu.shares", "1024"),
            ("cpu.cfs_period_us", "200000"),
            ("cpu.cfs_quota_us", "50000"),
            ("memory.soft_limit_in_bytes", "33554432"),
        ]
    };
    if swap {
        up["memory"]["swap"] = json!(201326592);
        want.push(match mode {
            Mode::V2 => ("memory.swap.max", "100663296"),
            _ => ("memory.memsw.limit_in_bytes", "201326592"),
        });
    }
    g.m.update(&resources(&up)).unwrap();
    assert_files(mode, &path, &want);

    // freeze / thaw
    assert!(!g.m.is_frozen().unwrap());
    g.m.freeze().unwrap();
    assert!(g.m.is_frozen().unwrap());
    g.m.thaw().unwrap();
    assert!(!g.m.is_frozen().unwrap());

    // stats in runc's shape
    let st = g.m.stats().unwrap();
    for key in [
        "cpu",
        "cpuset",
        "memory",
        "pids",
        "blkio",
        "hugetlb",
        "intel_rdt",
        "network_interfaces",
    ] {
        assert!(st.get(key).is_some(), "stats lack {key}: {st}");
    }
    assert_eq!(st["pids"]["current"], 1);
    assert_eq!(st["pids"]["limit"], 7);
    assert_eq!(st["memory"]["usage"]["limit"], 100663296);
    if mode != Mode::V2 {
        assert_eq!(st["cpuset"]["cpus"], json!([0]));
    }

    // kill --all with a catchable signal
    g.m.kill_all(libc::SIGTERM).unwrap();
    let status = g.wait_exit(0).expect("sleep survived kill_all(SIGTERM)");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGTERM));
    assert!(g.m.pids().unwrap().is_empty());

    g.m.destroy().unwrap();
    for f in resource_files(mode, &rv) {
        assert!(
            !dir_of(mode, &path, f).exists(),
            "{} left behind",
            dir_of(mode, &path, f).display()
        );
    }
    g.m.destroy().unwrap(); // idempotent
}

/// A container's cgroup that gained a child cgroup (a nested runtime or a
/// systemd inside makes them) with one of its processes in it: destroy
/// removes the child, then the cgroup, in every hierarchy, and kills that
/// process.
#[test]
fn destroy_removes_child_cgroups_and_what_runs_in_them() {
    let mode = setup();
    let mut g = Guard::new("nested");
    g.m.create(None).unwrap();
    let pid = g.spawn(&["sleep", "1000"]);
    // (hierarchy, whether it is a v1 one)
    let mut mounts: Vec<(PathBuf, bool)> = match mode {
        Mode::V2 => vec![(PathBuf::from(cgroups::ROOT), false)],
        Mode::Hybrid => vec![(PathBuf::from("/sys/fs/cgroup/unified"), false)],
        Mode::V1 => vec![],
    };
    if mode != Mode::V2 {
        mounts.extend(
            cgroups::v1_hierarchies()
                .unwrap()
                .into_iter()
                .map(|h| (h.mount, true)),
        );
    }
    let rel = g.m.path().strip_prefix("/").unwrap();
    let dirs: Vec<(PathBuf, bool)> = mounts
        .into_iter()
        .map(|(m, v1)| (m.join(rel), v1))
        .filter(|(d, _)| d.is_dir())
        .collect();
    assert!(!dirs.is_empty(), "the cgroup is in no hierarchy");
    for (d, v1) in &dirs {
        let child = d.join("child");
        std::fs::create_dir(&child).unwrap();
        // a new v1 cpuset cgroup has no cpus or memory nodes to run on (a
        // v2 one inherits them, and has the files only where the parent
        // enabled the controller)
        for f in ["cpuset.cpus", "cpuset.mems"] {
            if *v1 && std::fs::read_to_string(child.join(f)).is_ok_and(|v| v.trim().is_empty()) {
                let v = std::fs::read_to_string(d.join(f)).unwrap();
                std::fs::write(child.join(f), v.trim()).unwrap();
            }
        }
        std::fs::write(child.join("cgroup.procs"), pid.to_string())
            .unwrap_or_else(|e| panic!("moving {pid} into {}: {e}", child.display()));
    }
    g.m.destroy().unwrap();
    for (d, _) in &dirs {
        assert!(!d.exists(), "{} left behind", d.display());
    }
    assert!(
        g.wait_exit(0).is_some(),
        "the process in the child cgroup survived"
    );
}

/// The file cpu.burst goes to.
fn burst_file(mode: Mode) -> &'static str {
    match mode {
        Mode::V2 => "cpu.max.burst",
        _ => "cpu.cfs_burst_us",
    }
}

/// Each limit that needs a cgroup file only some kernels offer: where the
/// host has the file, the value lands in it; where it lacks it, validate
/// or create fails with an error naming the config field, and no cgroup
/// directory is left in any hierarchy (runc fails these configs alike).
#[test]
fn limits_the_host_lacks_fail_cleanly() {
    let mode = setup();
    let mut skips = Skips::default();
    let weights = host::blkio_weight_files();
    let (swap_file, swap) = host::swap_file();
    let burst = burst_file(mode);
    let io_weight = rcontain::cgroups::translate::blkio_weight_to_io_weight(300).to_string();
    // (test name, resources, field the error names, host has it,
    //  file and value read back where it does)
    type Case<'a> = (&'a str, Value, &'a str, bool, Option<(&'a str, String)>);
    let mut cases: Vec<Case> = vec![
        (
            "weight",
            json!({"blockIO": {"weight": 300}}),
            "blockIO.weight",
            !weights.is_empty(),
            weights.first().map(|f| {
                let v = if *f == "io.weight" {
                    io_weight
                } else {
                    "300".into()
                };
                (*f, v)
            }),
        ),
        (
            "swap",
            json!({"memory": {"limit": 67108864, "swap": 134217728}}),
            "memory.swap",
            swap,
            Some((
                swap_file,
                if mode == Mode::V2 {
                    "67108864"
                } else {
                    "134217728"
                }
                .into(),
            )),
        ),
        (
            "burst",
            json!({"cpu": {"quota": 50000, "period": 100000, "burst": 10000}}),
            "cpu.burst",
            host::cgroup_has(burst),
            Some((burst, "10000".into())),
        ),
        (
            "hugetlb",
            json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]}),
            "hugepageLimits",
            has_hugetlb(mode),
            Some((
                if mode == Mode::V2 {
                    "hugetlb.2MB.max"
                } else {
                    "hugetlb.2MB.limit_in_bytes"
                },
                "4194304".into(),
            )),
        ),
    ];
    if mode != Mode::V2 {
        cases.push((
            "kmemtcp",
            json!({"memory": {"kernelTCP": 16777216}}),
            "memory.kernelTCP",
            host::cgroup_has("memory.kmem.tcp.limit_in_bytes"),
            Some(("memory.kmem.tcp.limit_in_bytes", "16777216".into())),
        ));
        cases.push((
            "rt",
            json!({"cpu": {"realtimePeriod": 1000000, "realtimeRuntime": 10000}}),
            "cpu.realtime",
            host::cgroup_has("cpu.rt_runtime_us"),
            Some(("cpu.rt_runtime_us", "10000".into())),
        ));
    }
    // an RDMA limit needs a device to land on: only its absence is checked
    let rdma = match mode {
        Mode::V2 => std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
            .unwrap_or_default()
            .split_whitespace()
            .any(|c| c == "rdma"),
        _ => cgroups::v1_hierarchies()
            .unwrap()
            .iter()
            .any(|h| h.controllers.iter().any(|c| c == "rdma")),
    };
    cases.push((
        "rdma",
        json!({"rdma": {"mlx5_0": {"hcaHandles": 3}}}),
        "rdma",
        rdma,
        None,
    ));
    for (name, rv, field, has, readback) in cases {
        let g = Guard::new(&format!("lack{name}"));
        let r = resources(&rv);
        if has {
            let Some((file, value)) = readback else {
                skips.lack(format!("an RDMA device for {field} to land on"));
                continue;
            };
            g.m.create(Some(&r))
                .unwrap_or_else(|e| panic!("{name}: the host has {file}: {e:#}"));
            let got = read(mode, g.m.path(), file);
            assert!(
                got.split_whitespace().any(|w| w == value),
                "{name}: {file} reads {got:?}, want {value}"
            );
            continue;
        }
        let err =
            g.m.validate(&r)
                .and_then(|()| g.m.create(Some(&r)))
                .expect_err(&format!("{name}: the host lacks it, yet create worked"));
        let msg = format!("{err:#}");
        assert!(msg.contains(field), "{name}: {msg:?} does not name {field}");
        eprintln!("{name}: {msg}");
        skips.lack(format!("what {field} needs"));
        let left = common::cgroups_named(&g.m.path().to_string_lossy()[1..]);
        assert!(left.is_empty(), "{name}: left behind {left:?}");
    }
}

/// memory.swap equal to memory.limit leaves no room for swap on every
/// layout: v1's memsw limit is the memory limit, v2's memory.swap.max is 0
/// (runc writes the same). Without swap accounting v1 cannot honour it
/// (create fails naming memory.swap, as runc's does), and v2 leaves it
/// alone, as runc does.
#[test]
fn swap_equal_to_the_memory_limit_means_no_swap() {
    let mode = setup();
    let g = Guard::new("noswap");
    let r = resources(&json!({"memory": {"limit": 33554432, "swap": 33554432}}));
    let (file, has) = host::swap_file();
    if has {
        g.m.create(Some(&r)).unwrap();
        let want = if mode == Mode::V2 { "0" } else { "33554432" };
        assert_eq!(read(mode, g.m.path(), file), want, "{file}");
        return;
    }
    Skips::default().lack(format!("{file} (swap accounting): a swap limit"));
    if mode == Mode::V2 {
        g.m.create(Some(&r)).unwrap();
        assert_eq!(read(mode, g.m.path(), "memory.max"), "33554432");
    } else {
        let e = g.m.create(Some(&r)).unwrap_err();
        assert!(format!("{e:#}").contains("memory.swap"), "{e:#}");
        let left = common::cgroups_named(&g.m.path().to_string_lossy()[1..]);
        assert!(left.is_empty(), "left behind {left:?}");
    }
}

#[test]
fn destroy_kills_what_is_left_even_when_paused() {
    let mode = setup();
    let mut g = Guard::new("destroy");
    g.m.create(None).unwrap();
    g.spawn(&["sleep", "1000"]);
    g.spawn(&["sleep", "1000"]);
    assert_eq!(g.m.pids().unwrap().len(), 2);
    g.m.freeze().unwrap();
    g.m.destroy().unwrap();
    assert!(
        g.wait_exit(0).is_some() && g.wait_exit(1).is_some(),
        "processes survived destroy"
    );
    assert!(!dir_of(mode, g.m.path(), "pids.max").exists());
}

#[test]
fn kill_all_sigkill_reaches_a_paused_container() {
    setup();
    let mut g = Guard::new("killpaused");
    g.m.create(None).unwrap();
    g.spawn(&["sleep", "1000"]);
    g.m.freeze().unwrap();
    g.m.kill_all(libc::SIGKILL).unwrap();
    assert!(
        g.wait_exit(0).is_some(),
        "SIGKILL did not reach the paused process"
    );
}

#[test]
fn invalid_values_fail_before_anything_exists() {
    let mode = setup();
    let g = Guard::new("invalid");
    let path = g.m.path().to_path_buf();
    let cases: Vec<(Value, &str)> = vec![
        (json!({"memory": {"swappiness": 200}}), "swappiness"),
        (
            json!({"memory": {"limit": 1000000, "swap": 10}}),
            "memory.swap",
        ),
        (
            json!({"hugepageLimits": [{"pageSize": "3MB", "limit": 1}]}),
            "pageSize",
        ),
        (json!({"blockIO": {"weight": 5}}), "weight"),
        (
            json!({"devices": [{"allow": true, "access": "rwx"}]}),
            "access",
        ),
    ];
    let mut cases = cases;
    if mode == Mode::V2 {
        cases.push((json!({"network": {"classID": 5}}), "net_cls"));
        cases.push((json!({"cpu": {"realtimeRuntime": 1000}}), "realtime"));
        cases.push((json!({"unified": {"nosuch.file": "1"}}), "nosuch"));
    } else {
        cases.push((json!({"unified": {"memory.high": "1"}}), "unified"));
    }
    let net_cls_mounted = cgroups::v1_hierarchies()
        .unwrap()
        .iter()
        .any(|h| h.controllers.iter().any(|c| c == "net_cls"));
    if mode != Mode::V2 && !net_cls_mounted {
        cases.push((json!({"network": {"classID": 5}}), "net_cls"));
    }
    for (rv, word) in cases {
        let r = resources(&rv);
        let err = g.m.validate(&r).expect_err(&rv.to_string());
        assert!(
            format!("{err:#}").contains(word),
            "{rv}: error {err:#} does not name {word}"
        );
        let err = g.m.create(Some(&r)).expect_err(&rv.to_string());
        assert!(format!("{err:#}").contains(word));
        assert!(
            !dir_of(mode, &path, "pids.max").exists(),
            "{rv}: a cgroup was left behind"
        );
    }
}

#[test]
fn failed_create_removes_what_it_made() {
    let mode = setup();
    let g = Guard::new("failcreate");
    // passes validation, but no such CPU exists: the kernel refuses it
    let r = resources(&json!({"memory": {"limit": 67108864}, "cpu": {"cpus": "4095"}}));
    let err = g.m.create(Some(&r)).unwrap_err();
    assert!(format!("{err:#}").contains("cpuset.cpus"), "{err:#}");
    for f in ["memory.max", "cpuset.cpus", "pids.max", "cgroup.procs"] {
        assert!(!dir_of(mode, g.m.path(), f).exists(), "{f}: left behind");
    }
}

/// Run `script` in a shell inside the guard's cgroup (`Guard::spawn_inside`).
/// Returns its stdout words.
fn run_inside(g: &mut Guard, script: &str) -> Vec<String> {
    g.spawn_inside(script, Stdio::piped);
    let out = g.children.pop().unwrap().wait_with_output().unwrap();
    eprintln!("{script}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(String::from)
        .collect()
}

#[test]
fn device_rules_are_enforced_and_updated() {
    let mode = setup();
    let mut g = Guard::new("devices");
    let rule = |major: i64, minor: i64| json!({"allow": true, "type": "c", "major": major, "minor": minor, "access": "r"});
    let deny_all = json!({"allow": false, "access": "rwm"});
    let r = resources(&json!({"devices": [deny_all, rule(1, 11)]}));
    g.m.create(Some(&r)).unwrap();
    // a node the default rules do not allow (c 1:4, /dev/port), in the
    // working directory: /tmp is often mounted nodev
    struct TmpDir(PathBuf);
    impl Drop for TmpDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let tmp = TmpDir(
        std::env::current_dir()
            .unwrap()
            .join(format!(".rcontain-it-dev-{}", std::process::id())),
    );
    std::fs::create_dir_all(&tmp.0).unwrap();
    let port = tmp.0.join("port");
    let _ = std::fs::remove_file(&port);
    nix::sys::stat::mknod(
        &port,
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
        nix::sys::stat::makedev(1, 4),
    )
    .unwrap();
    // EPERM is the device cgroup's answer; a kernel without /dev/port
    // (ENXIO) has let the open through
    let port_check = format!(
        "if (true < {}) 2>&1 | grep -q 'not permitted'; then echo port-denied; else echo port-allowed; fi",
        port.display()
    );
    let script = format!(
        "head -c1 /dev/null && echo null-ok; \
        true < /dev/kmsg && echo kmsg-read-ok; \
        echo rcontain-devices-test 2>/dev/null > /dev/kmsg || echo kmsg-write-denied; \
        {port_check}"
    );
    let out = run_inside(&mut g, &script);
    assert_eq!(
        out,
        [
            "null-ok",
            "kmsg-read-ok",
            "kmsg-write-denied",
            "port-denied"
        ]
    );

    // update: port readable, kmsg gone; /dev/null never leaves the list
    g.m.update(&resources(&json!({"devices": [deny_all, rule(1, 4)]})))
        .unwrap();
    if mode != Mode::V2 {
        let list = read(mode, g.m.path(), "devices.list");
        assert!(
            list.contains("c 1:4 r") && list.contains("c 1:3 rwm") && !list.contains("c 1:11"),
            "{list}"
        );
    }
    let script = format!(
        "head -c1 /dev/null && echo null-ok; \
        (true < /dev/kmsg) 2>/dev/null || echo kmsg-denied; \
        {port_check}",
    );
    let out = run_inside(&mut g, &script);
    assert_eq!(out, ["null-ok", "kmsg-denied", "port-allowed"]);
}

#[test]
fn oom_is_reported() {
    let mode = setup();
    let mut rv = json!({"memory": {"limit": 16777216}});
    let (swap_file, swap) = host::swap_file();
    if swap {
        rv["memory"]["swap"] = json!(16777216);
    } else if host::swap_active() {
        // nothing would keep the test's memory hog out of the host's swap
        Skips::default().lack(format!(
            "{swap_file} (swap accounting) while swap is on: an OOM"
        ));
        return;
    }
    let mut g = Guard::new("oom");
    g.m.create(Some(&resources(&rv))).unwrap();
    let mut n = g.m.oom_events().unwrap();
    // `tail` keeps the current line, and /dev/zero has no newline
    g.spawn_inside("exec tail /dev/zero", Stdio::null);
    let mut total = 0;
    // v2 may first report the memory.events change of hitting memory.max
    while total == 0 {
        let new = n.wait_timeout(Duration::from_secs(20)).unwrap();
        total += new.unwrap_or_else(|| panic!("no OOM notification ({mode:?})"));
    }
    assert!(total >= 1);
    assert!(g.wait_exit(0).is_some(), "the OOM victim is still running");
}

// --- comparison with runc ---------------------------------------------

struct Runc {
    state: PathBuf,
    bundle: PathBuf,
    id: String,
}

impl Runc {
    fn run(name: &str, cgroups_path: &Path, r: &Value) -> Runc {
        let base =
            std::env::temp_dir().join(format!("rcontain-it-runc-{}-{name}", std::process::id()));
        let bundle = base.join("bundle");
        let bin = bundle.join("rootfs/bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::copy(busybox(), bin.join("busybox")).unwrap();
        for applet in ["sh", "sleep"] {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
        }
        let out = Command::new("runc")
            .arg("spec")
            .current_dir(&bundle)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "runc spec: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut cfg: Value =
            serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
        cfg["process"]["args"] = json!(["sleep", "1000"]);
        cfg["process"]["terminal"] = json!(false);
        cfg["linux"]["cgroupsPath"] = json!(cgroups_path);
        cfg["linux"]["resources"] = r.clone();
        std::fs::write(
            bundle.join("config.json"),
            serde_json::to_vec_pretty(&cfg).unwrap(),
        )
        .unwrap();
        let rc = Runc {
            state: base.join("state"),
            bundle,
            id: format!("rcontain-it-{}-{name}", std::process::id()),
        };
        start_detached(
            rc.cmd(&["run", "-d", "--bundle"])
                .arg(&rc.bundle)
                .arg(&rc.id),
            &base.join("runc.err"),
            "runc run",
        );
        rc
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("runc");
        c.arg("--root").arg(&self.state).args(args);
        c
    }
}

impl Drop for Runc {
    fn drop(&mut self) {
        let _ = self.cmd(&["delete", "-f", &self.id]).output();
        let _ = std::fs::remove_dir_all(self.bundle.parent().unwrap());
    }
}

fn busybox() -> PathBuf {
    ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("busybox (static) is needed for the runc bundle")
}

#[test]
fn same_cgroup_values_as_runc() {
    let mode = setup();
    let mut skips = Skips::default();
    let rv = common_resources(mode, &mut skips);
    let mut g = Guard::new("vsrunc");
    g.m.create(Some(&resources(&rv))).unwrap();
    g.spawn(&["sleep", "1000"]);
    let runc_path = test_path("vsrunc-runc");
    let runc = Runc::run("vsrunc", &runc_path, &rv);

    let mut files = resource_files(mode, &rv);
    files.extend(weight_files(mode, g.m.path()));
    assert!(files.len() >= 8);
    eprintln!("compared with runc ({mode:?}): {files:?}");
    // devices.list order follows the writes; the set is what counts
    let sorted = |s: String| {
        let mut l: Vec<&str> = s.lines().collect();
        l.sort();
        l.join("\n")
    };
    for f in files {
        let ours = sorted(read(mode, g.m.path(), f));
        let theirs = sorted(read(mode, &runc_path, f));
        assert_eq!(
            ours, theirs,
            "{f}: rcontain wrote {ours:?}, runc {theirs:?}"
        );
    }
    if mode == Mode::Hybrid {
        let unified = Path::new("/sys/fs/cgroup/unified");
        assert!(unified.join(runc_path.strip_prefix("/").unwrap()).exists());
        assert!(unified.join(g.m.path().strip_prefix("/").unwrap()).exists());
    }

    // `events --stats` data: the same keys at the top and in each section
    let out = runc.cmd(&["events", "--stats", &runc.id]).output().unwrap();
    assert!(out.status.success());
    let theirs: Value = serde_json::from_slice(&out.stdout).unwrap();
    let theirs = &theirs["data"];
    let ours = g.m.stats().unwrap();
    let keys = |v: &Value| -> Vec<String> {
        v.as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    };
    assert_eq!(keys(&ours), keys(theirs));
    for section in ["memory", "cpuset", "pids"] {
        let mut a = keys(&ours[section]);
        let mut b = keys(&theirs[section]);
        // raw statistics keys differ only by what happened to be non-zero
        a.retain(|k| k != "cache");
        b.retain(|k| k != "cache");
        assert_eq!(a, b, "stats section {section}");
    }
    assert_eq!(
        ours["memory"]["usage"]["limit"],
        theirs["memory"]["usage"]["limit"]
    );
    assert_eq!(ours["pids"]["limit"], theirs["pids"]["limit"]);
    assert_eq!(keys(&ours["hugetlb"]), keys(&theirs["hugetlb"]));
}

/// The eBPF device filter on this host's kernel too: on a hybrid host the
/// manager uses v1's devices controller, so attach the filter to a cgroup2
/// directory of the test's own in the unified hierarchy.
#[test]
fn bpf_device_filter_on_this_kernel() {
    let mode = setup();
    let unified = match mode {
        Mode::V2 => PathBuf::from(cgroups::ROOT),
        Mode::Hybrid => PathBuf::from("/sys/fs/cgroup/unified"),
        Mode::V1 => return eprintln!("no cgroup2 hierarchy: nothing to attach a BPF filter to"),
    };
    struct Dir(PathBuf, Option<Child>);
    impl Drop for Dir {
        fn drop(&mut self) {
            if let Some(c) = &mut self.1 {
                let _ = c.kill();
                let _ = c.wait();
            }
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    let mut dir = Dir(
        unified.join(format!("rcontain-it-{}-bpf", std::process::id())),
        None,
    );
    std::fs::create_dir(&dir.0).unwrap();
    let deny_all: Vec<oci_spec::runtime::LinuxDeviceCgroup> =
        serde_json::from_value(json!([{"allow": false, "access": "rwm"}])).unwrap();
    let rules = cgroups::devices::effective_rules(Some(&deny_all), None).unwrap();
    let f = std::fs::File::open(&dir.0).unwrap();
    cgroups::devices::apply_v2(std::os::fd::AsFd::as_fd(&f), &rules).unwrap();
    // replacing the filter keeps exactly one attached
    cgroups::devices::apply_v2(std::os::fd::AsFd::as_fd(&f), &rules).unwrap();
    let child = Command::new("sh")
        .args(["-c", "kill -STOP $$; true < /dev/null && echo null-ok; (true < /dev/kmsg) 2>/dev/null || echo kmsg-denied"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    dir.1 = Some(child);
    let stat = format!("/proc/{pid}/stat");
    while !std::fs::read_to_string(&stat).unwrap().contains(") T ") {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::fs::write(dir.0.join("cgroup.procs"), pid.to_string()).unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGCONT,
    )
    .unwrap();
    let out = dir.1.take().unwrap().wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["null-ok", "kmsg-denied"],
        "{out}"
    );
}
