//! The smaller holes of issue 10 item 8, each run as the real attack with a
//! positive control: a dumpable intermediate process joining the
//! container's user namespace, the `--pid-file` temp name, remounts by
//! path, /proc/self/timens_offsets written after joining a mount namespace,
//! and mountinfo escapes (paths with spaces).

mod common;

use common::*;
use serde_json::json;
use std::fs;
use std::os::unix::fs::symlink;
use std::process::Command;

/// `--pid-file` in a directory someone else can write: symlinks planted at
/// every name the runtime may use for its temp file must not be followed.
#[test]
fn pid_file_does_not_follow_a_planted_temp_symlink() {
    let env = TestEnv::new("pidfile");
    let host = env.dir.join("host-file");
    let dir = env.dir.join("piddir");
    fs::create_dir(&dir).unwrap();
    let pidfile = dir.join("c.pid");
    let b = env.bundle(&["true"]);
    // Positive control: a symlink at a name is followed by a plain write.
    fs::write(&host, "host data\n").unwrap();
    symlink(&host, dir.join("control")).unwrap();
    fs::write(dir.join("control"), "through the link\n").unwrap();
    assert_eq!(fs::read_to_string(&host).unwrap(), "through the link\n");
    fs::remove_file(dir.join("control")).unwrap();
    fs::write(&host, "host data\n").unwrap();

    // The temp name used to be "c.tmp<runtime pid>": plant it for the pids
    // the next processes will get (checked after, retried if we missed).
    let mut hit = false;
    for _ in 0..5 {
        let last: u32 = fs::read_to_string("/proc/sys/kernel/ns_last_pid")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        for p in last + 1..last + 400 {
            let _ = symlink(&host, dir.join(format!("c.tmp{p}")));
        }
        let id = env.id("p");
        let (child, _, se) = env.spawn_rt(&[
            "create",
            "--pid-file",
            pidfile.to_str().unwrap(),
            "-b",
            b.path(),
            &id,
        ]);
        let pid = child.id();
        let st = wait_child(child, "create");
        let err = fs::read_to_string(se).unwrap_or_default();
        assert_eq!(
            fs::read_to_string(&host).unwrap(),
            "host data\n",
            "the pid file was written through a planted symlink ({err})"
        );
        assert!(st.success(), "create: {err}");
        let written: i64 = fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(Some(written), env.state(&id)["pid"].as_i64());
        assert!(fs::symlink_metadata(&pidfile)
            .unwrap()
            .file_type()
            .is_file());
        env.rt(&["delete", "-f", &id]).expect_ok("delete -f");
        for e in fs::read_dir(&dir).unwrap().flatten() {
            if e.file_name().to_string_lossy().starts_with("c.tmp") {
                fs::remove_file(e.path()).unwrap();
            }
        }
        if pid > last && pid < last + 400 {
            hit = true;
            break;
        }
    }
    assert!(hit, "never planted the runtime's pid: machine too busy?");
    env.assert_nothing_left();
}

/// A bundle in a directory whose name has a space, run without a mount
/// namespace: its mounts are on the host and `delete` must find them in
/// mountinfo, where the space is written `\040`.
#[test]
fn bundle_path_with_a_space_leaves_no_host_mounts() {
    let env = TestEnv::new("space");
    let b = env.bundle(&["true"]);
    let spaced = env.dir.join("with space");
    fs::rename(&b.dir, &spaced).unwrap();
    let mut config: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(spaced.join("config.json")).unwrap()).unwrap();
    config["linux"]["namespaces"] = json!([{ "type": "pid" }, { "type": "uts" }]);
    let src = env.dir.join("vol ume");
    fs::create_dir(&src).unwrap();
    config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/a dir", "type": "bind",
        "source": src.to_str().unwrap(), "options": ["bind", "ro"]}));
    fs::write(spaced.join("config.json"), config.to_string()).unwrap();
    let id = env.id("s");
    let out = env.rt(&["run", "-b", spaced.to_str().unwrap(), &id]);
    out.expect_ok("run");
    let left = mounts_under(&env.dir);
    assert!(left.is_empty(), "host mounts left after delete: {left:#?}");
    // Positive control: the same bundle under create does mount on the
    // host, with the space escaped in mountinfo.
    env.rt(&["create", "-b", spaced.to_str().unwrap(), &id])
        .expect_ok("create");
    let raw = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(raw.contains("with\\040space/rootfs/a\\040dir"), "{raw}");
    env.rt(&["delete", "-f", &id]).expect_ok("delete -f");
    let left = mounts_under(&env.dir);
    assert!(left.is_empty(), "host mounts left after delete: {left:#?}");
    env.assert_nothing_left();
}

/// rootfsPropagation "shared" with the bundle on a mount point whose path
/// has a space: the runtime must make that mount (the rootfs's parent)
/// private for pivot_root, which needs its mount point from mountinfo.
#[test]
fn shared_rootfs_propagation_under_a_mount_point_with_a_space() {
    let env = TestEnv::new("spacemnt");
    let mnt = env.dir.join("mnt point");
    fs::create_dir(&mnt).unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(st.success());
    // shared, as on systemd hosts, so the runtime has to act
    let st = Command::new("mount")
        .arg("--make-shared")
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(st.success());
    let mut b = env.bundle(&["true"]);
    b.config["linux"]["rootfsPropagation"] = json!("shared");
    b.save();
    let bundle = mnt.join("bundle");
    copy_tree(&b.dir, &bundle);
    let id = env.id("m");
    let out = env.rt(&["run", "-b", bundle.to_str().unwrap(), &id]);
    let _ = nix::mount::umount2(&mnt, nix::mount::MntFlags::MNT_DETACH);
    out.expect_ok("run");
    env.assert_nothing_left();
}
