//! New filesystems (tmpfs, cgroup, …) mounted on a destination in a volume
//! that another container shares: every step after the mount itself must
//! reach the new mount, never the destination looked up again by path,
//! which the other container can meanwhile have turned into a symlink
//! (issue 10, "the remount steps find mount targets again by path").
//!
//! The race is staged: strace holds each mount(2) and move_mount(2) for a
//! while after it returns; as soon as the new filesystem shows at the
//! destination, the test (standing for the other container) renames the
//! destination away and puts a symlink to another volume in its place.

mod common;

use common::host;
use common::*;
use rcontain::cgroups::Mode;
use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// A bundle whose container gets the shared volume `vol` at /vol, a second
/// volume `w` at /w (both read-write) and `typed` (a mount entry with its
/// destination below /vol).
fn bundle(env: &TestEnv, script: &str, typed: Value) -> Bundle {
    let mut b = env.bundle(&["sh", "-c", script]);
    b.config["root"]["readonly"] = json!(false);
    b.config["linux"]["maskedPaths"] = json!([]);
    b.config["linux"]["readonlyPaths"] = json!([]);
    let vol = env.dir.join("vol");
    let w = env.dir.join("w");
    b.config["mounts"] = json!([
        { "destination": "/proc", "type": "proc", "source": "proc" },
        { "destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"] },
        { "destination": "/vol", "type": "bind", "source": vol.to_str().unwrap(), "options": ["bind"] },
        { "destination": "/w", "type": "bind", "source": w.to_str().unwrap(), "options": ["bind"] },
        typed
    ]);
    b.save();
    b
}

/// Runs the bundle under strace; once a mount of `fstype` shows at
/// `at` (in the rootfs) in the runtime's mount namespace, renames
/// `dir/name` (on the host: what is mounted at `at`'s parent) to
/// `name.moved` and leaves a symlink to /w in its place. Returns whether
/// the run succeeded, its stdout and its stderr.
fn run_with_swap(
    env: &TestEnv,
    b: &Bundle,
    at: &str,
    dir: &Path,
    fstype: &str,
) -> (bool, String, String) {
    let target = b
        .rootfs()
        .join(at.trim_start_matches('/'))
        .to_string_lossy()
        .into_owned();
    let name = Path::new(at).file_name().unwrap().to_str().unwrap();
    let id = env.id("m");
    let (out, err) = (env.dir.join("run.out"), env.dir.join("run.err"));
    let run = Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null"])
        .args(["-e", "trace=mount,move_mount"])
        .args(["-e", "inject=mount:delay_exit=300000"])
        .args(["-e", "inject=move_mount:delay_exit=300000"])
        .arg(&env.rt.bin)
        .args(&env.rt.global)
        .arg("--root")
        .arg(&env.root)
        .args(["run", "-b", b.path(), &id])
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let tracer = run.id();
    let mounted = || {
        descendants(tracer).into_iter().any(|p| {
            fs::read_to_string(format!("/proc/{p}/mountinfo")).is_ok_and(|mi| {
                mi.lines().any(|l| {
                    l.split(' ').nth(4) == Some(target.as_str())
                        && l.split(" - ").nth(1).and_then(|s| s.split(' ').next()) == Some(fstype)
                })
            })
        })
    };
    let deadline = Instant::now() + CMD_TIMEOUT;
    while !mounted() {
        assert!(
            Instant::now() < deadline,
            "{fstype} never got mounted at {target}"
        );
        sleep(Duration::from_millis(2));
    }
    fs::rename(dir.join(name), dir.join(format!("{name}.moved"))).unwrap();
    symlink("/w", dir.join(name)).unwrap();
    let st = wait_child(run, "strace rcontain run");
    let _ = env.rt(&["delete", "-f", &id]);
    (
        st.success(),
        fs::read_to_string(out).unwrap_or_default(),
        fs::read_to_string(err).unwrap_or_default(),
    )
}

fn has_strace() -> bool {
    if Command::new("strace").arg("-V").output().is_err() {
        eprintln!("skipped: host lacks strace");
        return false;
    }
    true
}

fn volumes(env: &TestEnv, sub: &str) {
    fs::create_dir_all(env.dir.join("vol").join(sub)).unwrap();
    fs::create_dir_all(env.dir.join("w")).unwrap();
}

/// A tmpfs asked read-only recursively (`rro`, applied after the mount) at
/// /vol/sub. A runtime that looks /vol/sub up again for that step makes
/// the other volume /w read-only instead, and leaves the tmpfs writable.
#[test]
fn recursive_attributes_of_a_new_filesystem_land_on_it() {
    let env = TestEnv::new("typedswap");
    if !has_strace() {
        return;
    }
    volumes(&env, "sub");
    let b = bundle(
        &env,
        "grep ' /vol/sub' /proc/self/mountinfo; \
         touch /vol/sub.moved/x 2>/dev/null && echo tmpfs-writable; \
         touch /w/control && echo w-writable; true",
        json!({ "destination": "/vol/sub", "type": "tmpfs", "source": "tmpfs",
                "options": ["rro", "nosuid"] }),
    );
    let (ok, out, err) = run_with_swap(&env, &b, "/vol/sub", &env.dir.join("vol"), "tmpfs");
    assert!(ok, "run: {err}");
    // Positive control: the swap happened while the runtime set the
    // container up (the tmpfs was already there and moved with the rename).
    let moved = out
        .lines()
        .find(|l| l.contains(" /vol/sub.moved ") && l.contains(" - tmpfs "))
        .unwrap_or_else(|| panic!("the tmpfs is not at /vol/sub.moved: {out}{err}"));
    assert!(
        moved
            .split(' ')
            .nth(5)
            .unwrap()
            .split(',')
            .any(|o| o == "ro"),
        "the tmpfs asked rro is not read-only: {moved}"
    );
    assert!(
        !out.contains("tmpfs-writable"),
        "the tmpfs asked rro was writable in the container: {out}"
    );
    // ... and the volume the symlink led to was not made read-only.
    assert!(
        out.contains("w-writable"),
        "the other volume was made read-only: {out}{err}"
    );
    assert!(env.dir.join("w/control").exists());
    env.assert_nothing_left();
}

/// On cgroup v1 and hybrid hosts a cgroup mount is a tmpfs with one
/// directory and bind mount per hierarchy in it. A runtime that creates
/// those directories by the destination's path creates them in the other
/// volume (on the host) once the destination is a symlink.
#[test]
fn cgroup_hierarchies_go_into_the_new_tmpfs() {
    let env = TestEnv::new("cgswap");
    if !has_strace() {
        return;
    }
    if host::cgroup_mode() == Mode::V2 {
        eprintln!("skipped: host lacks cgroup v1 hierarchies (the cgroup mount is no tmpfs)");
        return;
    }
    volumes(&env, "cg");
    let b = bundle(
        &env,
        "ls /vol/cg.moved; true",
        json!({ "destination": "/vol/cg", "type": "cgroup", "source": "cgroup",
                "options": ["nosuid", "noexec", "nodev"] }),
    );
    let (ok, out, err) = run_with_swap(&env, &b, "/vol/cg", &env.dir.join("vol"), "tmpfs");
    assert!(ok, "run: {err}");
    let left: Vec<_> = fs::read_dir(env.dir.join("w"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        left.is_empty(),
        "the runtime created {left:?} in the other volume, on the host"
    );
    // Positive control: the swap happened after the tmpfs was mounted, and
    // the hierarchies are in it in the container.
    assert!(Path::new(&env.dir.join("vol/cg.moved")).is_dir());
    assert!(
        out.lines()
            .any(|l| l == "memory" || l == "cpu" || l == "pids"),
        "no hierarchies in the cgroup tmpfs: {out}{err}"
    );
    env.assert_nothing_left();
}

/// The device nodes and /dev links go into the /dev mount the runtime
/// made, not wherever /dev leads by then: here the rootfs is the volume
/// another container renames (/dev turned into a symlink to /w), and a
/// runtime that creates the nodes by path creates them in that volume, on
/// the host.
#[test]
fn device_nodes_go_into_the_new_dev_mount() {
    let env = TestEnv::new("devswap");
    if !has_strace() {
        return;
    }
    volumes(&env, "unused");
    let mut b = bundle(
        &env,
        "ls /dev.moved; true",
        json!({ "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                "options": ["nosuid", "mode=755"] }),
    );
    // /dev last: no other mount goes below it.
    let ms = b.config["mounts"].as_array_mut().unwrap();
    ms.remove(1);
    b.save();
    let (ok, out, err) = run_with_swap(&env, &b, "/dev", &b.rootfs(), "tmpfs");
    assert!(ok, "run: {err}");
    let left: Vec<_> = fs::read_dir(env.dir.join("w"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        left.is_empty(),
        "the runtime created {left:?} in the other volume, on the host"
    );
    // Positive control: the swap happened after /dev was mounted, and the
    // nodes and links are in it in the container.
    assert!(b.rootfs().join("dev.moved").is_dir());
    for n in ["null", "zero", "ptmx", "fd"] {
        assert!(
            out.lines().any(|l| l == n),
            "no {n} in the container's /dev: {out}{err}"
        );
    }
    env.assert_nothing_left();
}

/// Masked and read-only paths below /proc go into the procfs the runtime
/// mounted, whatever /proc has become meanwhile: here the rootfs is the
/// volume another container renames /proc in (a symlink to /w in its
/// place). A runtime that looks /proc up again masks the wrong place or,
/// checking what it found (as rcontain did), refuses to start.
#[test]
fn masked_paths_go_into_the_new_procfs() {
    let env = TestEnv::new("procswap");
    if !has_strace() {
        return;
    }
    volumes(&env, "sub");
    let mut b = bundle(
        &env,
        "grep -E ' /proc.moved[ /]' /proc.moved/self/mountinfo; true",
        json!({ "destination": "/vol/sub", "type": "tmpfs", "source": "tmpfs" }),
    );
    b.config["linux"]["maskedPaths"] = json!(["/proc/loadavg", "/proc/no-such-entry"]);
    b.config["linux"]["readonlyPaths"] = json!(["/proc/sys"]);
    b.save();
    let (ok, out, err) = run_with_swap(&env, &b, "/proc", &b.rootfs(), "proc");
    assert!(ok, "run: {err}");
    let at = |mp: &str| {
        out.lines()
            .find(|l| l.split(' ').nth(4) == Some(mp))
            .unwrap_or_else(|| panic!("nothing mounted at {mp}: {out}{err}"))
    };
    // Positive control: the swap happened after procfs was mounted.
    assert!(at("/proc.moved").contains(" - proc "));
    assert!(
        at("/proc.moved/sys")
            .split(' ')
            .nth(5)
            .unwrap()
            .split(',')
            .any(|o| o == "ro"),
        "/proc/sys is not read-only: {out}"
    );
    at("/proc.moved/loadavg");
    assert!(
        fs::read_dir(env.dir.join("w")).unwrap().next().is_none(),
        "something was created in the other volume"
    );
    env.assert_nothing_left();
}
