//! The v1 and v2 writers against directories of plain files standing in
//! for cgroupfs: what each resource turns into, file by file, and the
//! errors for files a host does not offer, without root or a kernel.
//! (A plain file is not truncated by a later, shorter write as a cgroupfs
//! file is: each test writes a file once, or with values of one length.)

use super::*;
use oci_spec::runtime::LinuxResources;
use std::fs;

/// A cgroup directory holding empty `files`.
fn fixture(dir: &Path, files: &[&str]) {
    fs::create_dir_all(dir).unwrap();
    for f in files {
        fs::write(dir.join(f), "").unwrap();
    }
}

fn resources(json: serde_json::Value) -> LinuxResources {
    serde_json::from_value(json).unwrap()
}

fn read(dir: &Path, f: &str) -> String {
    fs::read_to_string(dir.join(f)).unwrap()
}

const V2_FILES: &[&str] = &[
    "cpu.weight",
    "cpu.max",
    "cpu.max.burst",
    "cpuset.cpus",
    "cpuset.mems",
    "memory.max",
    "memory.low",
    "memory.swap.max",
    "pids.max",
    "io.weight",
    "io.max",
    "hugetlb.2MB.max",
];

#[test]
fn v2_translates_every_resource() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    fixture(d, V2_FILES);
    let r = resources(serde_json::json!({
        "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "burst": 1000,
                "cpus": "0", "mems": "0"},
        "memory": {"limit": 67108864, "reservation": 33554432, "swap": 134217728},
        "pids": {"limit": 32},
        "blockIO": {"weight": 500,
                    "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}]},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]
    }));
    v2::apply(d, &r, &[], Stage::Update, false).unwrap();
    // shares 1024 is weight 39 (runc's conversion), quota/period as cpu.max
    assert_eq!(read(d, "cpu.weight"), "39");
    assert_eq!(read(d, "cpu.max"), "50000 100000");
    assert_eq!(read(d, "cpu.max.burst"), "1000");
    assert_eq!(read(d, "cpuset.cpus"), "0");
    assert_eq!(read(d, "memory.max"), "67108864");
    assert_eq!(read(d, "memory.low"), "33554432");
    // v1's memory+swap total becomes v2's swap alone
    assert_eq!(read(d, "memory.swap.max"), "67108864");
    assert_eq!(read(d, "pids.max"), "32");
    // no io.bfq.weight here: blkio's 10..1000 is mapped onto io.weight's range
    assert_eq!(read(d, "io.weight"), "4950");
    assert_eq!(read(d, "io.max"), "8:0 rbps=1048576");
    assert_eq!(read(d, "hugetlb.2MB.max"), "4194304");
}

#[test]
fn v2_prefers_bfq_weight_when_offered() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    fixture(d, &["io.bfq.weight", "io.weight"]);
    let r = resources(serde_json::json!({"blockIO": {"weight": 500}}));
    v2::apply(d, &r, &[], Stage::Update, false).unwrap();
    assert_eq!(read(d, "io.bfq.weight"), "500");
    assert_eq!(read(d, "io.weight"), "");
}

#[test]
fn v2_names_the_field_of_a_file_the_host_lacks() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    fixture(d, &["memory.max"]);
    let r = resources(serde_json::json!({"blockIO": {"weight": 500}}));
    let e = format!(
        "{:#}",
        v2::apply(d, &r, &[], Stage::Update, false).unwrap_err()
    );
    assert!(
        e.contains("blockIO.weight") && e.contains("io.weight"),
        "{e}"
    );
    // and a period alone keeps the quota already there
    fixture(d, &["cpu.max"]);
    fs::write(d.join("cpu.max"), "20000 10000\n").unwrap();
    let r = resources(serde_json::json!({"cpu": {"period": 50000}}));
    v2::apply(d, &r, &[], Stage::Update, false).unwrap();
    assert_eq!(read(d, "cpu.max").trim_end(), "20000 50000");
}

#[test]
fn v2_validate_names_a_missing_controller() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    fixture(d, &[]);
    fs::write(d.join("cgroup.controllers"), "cpu memory\n").unwrap();
    let ok = resources(serde_json::json!({"memory": {"limit": 1048576}}));
    v2::validate(d, &ok).unwrap();
    let r = resources(serde_json::json!({"pids": {"limit": 10}}));
    let e = format!("{:#}", v2::validate(d, &r).unwrap_err());
    assert!(
        e.contains("pids") && e.contains("cgroup.controllers"),
        "{e}"
    );
}

/// A v1 manager whose hierarchies are directories under `root`, each
/// holding the container's cgroup `/c1` with `files`.
fn v1_manager(root: &Path, layout: &[(&str, &[&str])]) -> Manager {
    let mut hierarchies = Vec::new();
    for (controller, files) in layout {
        let mount = root.join(controller);
        fixture(&mount.join("c1"), files);
        hierarchies.push(Hierarchy {
            mount,
            controllers: vec![controller.to_string()],
        });
    }
    Manager {
        mode: Mode::V1,
        path: "/c1".into(),
        hierarchies,
        unified: None,
        device_nodes: Vec::new(),
        rootless: false,
        systemd: None,
    }
}

#[test]
fn v1_writes_each_controller_in_its_hierarchy() {
    let t = tempfile::tempdir().unwrap();
    let m = v1_manager(
        t.path(),
        &[
            ("cpu", &["cpu.cfs_quota_us", "cpu.cfs_period_us"]),
            (
                "memory",
                &["memory.limit_in_bytes", "memory.soft_limit_in_bytes"],
            ),
            ("pids", &["pids.max"]),
            ("blkio", &["blkio.throttle.read_bps_device"]),
        ],
    );
    let r = resources(serde_json::json!({
        "cpu": {"quota": 50000, "period": 100000},
        "memory": {"limit": 67108864, "reservation": 33554432},
        "pids": {"limit": 32},
        "blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}]}
    }));
    v1::apply(&m, &r, &[], Stage::Update).unwrap();
    let f = |c: &str, file: &str| read(&t.path().join(c).join("c1"), file);
    assert_eq!(f("cpu", "cpu.cfs_quota_us"), "50000");
    assert_eq!(f("cpu", "cpu.cfs_period_us"), "100000");
    assert_eq!(f("memory", "memory.limit_in_bytes"), "67108864");
    assert_eq!(f("memory", "memory.soft_limit_in_bytes"), "33554432");
    assert_eq!(f("pids", "pids.max"), "32");
    assert_eq!(f("blkio", "blkio.throttle.read_bps_device"), "8:0 1048576");
}

#[test]
fn v1_names_what_the_host_lacks() {
    let t = tempfile::tempdir().unwrap();
    // a blkio hierarchy without BFQ: no blkio.weight file
    let m = v1_manager(t.path(), &[("blkio", &["blkio.throttle.read_bps_device"])]);
    let r = resources(serde_json::json!({"blockIO": {"weight": 500}}));
    let e = format!("{:#}", v1::apply(&m, &r, &[], Stage::Update).unwrap_err());
    assert!(
        e.contains("blockIO.weight") || e.contains("blkio.weight"),
        "{e}"
    );
    // a controller that is not mounted at all
    let r = resources(serde_json::json!({"pids": {"limit": 3}}));
    let e = format!("{:#}", v1::apply(&m, &r, &[], Stage::Update).unwrap_err());
    assert!(e.contains("pids") && e.contains("not mounted"), "{e}");
}

#[test]
fn v2_hands_controllers_down_through_existing_ancestors() {
    // A host's root that has cpu but does not hand it down (a plain file
    // records one write: the root lacks one controller only).
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    fixture(root, &[]);
    fs::write(root.join("cgroup.controllers"), "cpu").unwrap();
    fs::write(root.join("cgroup.subtree_control"), "").unwrap();
    let parent = root.join("kubepods");
    fixture(&parent, &[]);
    fs::write(parent.join("cgroup.controllers"), "memory pids").unwrap();
    fs::write(parent.join("cgroup.subtree_control"), "memory pids").unwrap();
    let made = parent.join("made");
    let leaf = made.join("c1");
    v2::enable_in_ancestors(root, &leaf, &[made.clone(), leaf.clone()]);
    // the root gets what it lacked, the existing parent (all handed down
    // already) is not written, and the cgroups this create made are left
    // to enable_controllers
    assert_eq!(read(root, "cgroup.subtree_control"), "+cpu");
    assert_eq!(read(&parent, "cgroup.subtree_control"), "memory pids");
    assert!(!made.exists());
}

#[test]
fn v1_cpuset_fills_a_shared_parent_a_concurrent_start_left_empty() {
    let t = tempfile::tempdir().unwrap();
    let mount = t.path().join("cpuset");
    fixture(&mount, &[]);
    fs::write(mount.join("cpuset.cpus"), "0-1").unwrap();
    fs::write(mount.join("cpuset.mems"), "0").unwrap();
    // `rcontain` was just made by another start that has not filled it yet;
    // `c1` is this start's.
    fixture(&mount.join("rcontain/c1"), &["cpuset.cpus", "cpuset.mems"]);
    fixture(&mount.join("rcontain"), &["cpuset.cpus", "cpuset.mems"]);
    v1::init_cpuset(&mount, Path::new("/rcontain/c1")).unwrap();
    for d in ["rcontain", "rcontain/c1"] {
        assert_eq!(read(&mount.join(d), "cpuset.cpus"), "0-1", "{d}");
        assert_eq!(read(&mount.join(d), "cpuset.mems"), "0", "{d}");
    }
}
