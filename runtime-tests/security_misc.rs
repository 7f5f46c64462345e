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
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// A process in a new user namespace mapping 0.. to 100000.., standing for
/// the processes of a running container whose user namespace the next
/// container joins. Killed on drop.
struct UserNs {
    child: Child,
}

impl UserNs {
    fn new() -> UserNs {
        let child = Command::new("unshare")
            .args(["--user", "sleep", "1000"])
            .stdin(Stdio::null())
            .spawn()
            .expect("unshare");
        let pid = child.id();
        let me = fs::read_link("/proc/self/ns/user").unwrap();
        let deadline = Instant::now() + CMD_TIMEOUT;
        while fs::read_link(format!("/proc/{pid}/ns/user")).ok() == Some(me.clone()) {
            assert!(Instant::now() < deadline, "unshare --user never unshared");
            sleep(Duration::from_millis(5));
        }
        for f in ["uid_map", "gid_map"] {
            fs::write(format!("/proc/{pid}/{f}"), "0 100000 65536\n").unwrap();
        }
        UserNs { child }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn link(&self) -> PathBuf {
        fs::read_link(format!("/proc/{}/ns/user", self.pid())).unwrap()
    }

    /// `readlink /proc/PID/root` run as root of the user namespace (host
    /// uid 100000, every capability in the namespace, none outside): Some
    /// when the kernel lets it see the process's root directory.
    fn probe_root(&self, pid: u32) -> Option<String> {
        let out = Command::new("nsenter")
            .args(["-t", &self.pid().to_string(), "--user", "--"])
            .args(["readlink", &format!("/proc/{pid}/root")])
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

impl Drop for UserNs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn in_user_ns(pid: u32, link: &Path) -> bool {
    fs::read_link(format!("/proc/{pid}/ns/user")).is_ok_and(|l| l == link)
}

/// A container joining the user namespace of another one by path: the
/// runtime's intermediate process joins it before forking the init. If it
/// is still dumpable then, root of that namespace (which every container
/// process may be) passes ptrace checks against a host-root process that
/// has the host's root, cwd and the runtime's fds. strace holds the
/// intermediate right after its setns(2) and we stop it there, then probe
/// it from inside the namespace.
#[test]
fn intermediate_is_not_dumpable_when_it_joins_the_user_namespace() {
    let env = TestEnv::new("dumpable");
    if !env.rt.is_rcontain() {
        eprintln!("skipped: the intermediate process is rcontain's");
        return;
    }
    if Command::new("strace").arg("-V").output().is_err() {
        eprintln!("skipped: host lacks strace");
        return;
    }
    let ns = UserNs::new();
    let link = ns.link();

    // Positive control: a host-root process that joined the namespace and
    // is dumpable is open to the probe.
    let mut control = Command::new("nsenter")
        .args([
            "-t",
            &ns.pid().to_string(),
            "--user",
            "--preserve-credentials",
        ])
        .args(["sleep", "1000"])
        .spawn()
        .unwrap();
    env.wait_for("control in the user namespace", || {
        in_user_ns(control.id(), &link)
    });
    assert_eq!(
        ns.probe_root(control.id()).as_deref(),
        Some("/"),
        "positive control: the probe must see a dumpable process's root"
    );
    let _ = control.kill();
    let _ = control.wait();

    let mut b = env.bundle(&["true"]);
    b.config["root"]["readonly"] = json!(false);
    b.config["linux"]["namespaces"] = json!([
        { "type": "user", "path": format!("/proc/{}/ns/user", ns.pid()) },
        { "type": "pid" }, { "type": "network" }, { "type": "ipc" },
        { "type": "uts" }, { "type": "mount" }
    ]);
    b.save();
    let id = env.id("d");
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-qq", "-o", "/dev/null", "-e", "trace=setns"])
        .args(["-e", "inject=setns:delay_exit=500000"])
        .arg(&env.rt.bin)
        .args(&env.rt.global)
        .arg("--root")
        .arg(&env.root)
        .args(["run", "-b", b.path(), &id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let run = cmd.spawn().unwrap();
    let tracer = run.id();
    let mut mid = None;
    env.wait_for("a runtime process in the user namespace", || {
        mid = descendants(tracer)
            .into_iter()
            .find(|p| in_user_ns(*p, &link));
        mid.is_some()
    });
    let mid = mid.unwrap();
    // Stopped, it stays in the namespace for as long as the probe takes.
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(mid as i32),
        nix::sys::signal::Signal::SIGSTOP,
    );
    let seen = ns.probe_root(mid);
    assert!(
        in_user_ns(mid, &link),
        "process {mid} left the namespace before the probe"
    );
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(mid as i32),
        nix::sys::signal::Signal::SIGCONT,
    );
    wait_child(run, "strace rcontain run");
    assert_eq!(
        seen, None,
        "root of the container's user namespace reached the root of runtime process {mid}"
    );
    let _ = env.rt(&["delete", "-f", &id]);
    env.assert_nothing_left();
}

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
    let last_pid = || -> Option<u32> {
        fs::read_to_string("/proc/sys/kernel/ns_last_pid")
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    if last_pid().is_none() {
        eprintln!("skipped: host lacks /proc/sys/kernel/ns_last_pid");
        return;
    }
    let mut hit = false;
    for _ in 0..5 {
        let last = last_pid().unwrap();
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

/// Remount flags (ro, nosuid, …) and propagation of bind mounts now go
/// through the fd of the new mount: they must still land on it (the
/// container's view, also for a destination reached through an in-root
/// symlink) and on nothing else (the host's source stays writable).
#[test]
fn bind_remount_flags_land_on_the_new_mount() {
    let env = TestEnv::new("remount");
    let src = env.dir.join("vol");
    fs::create_dir(&src).unwrap();
    let out = env.run_ok(
        &[
            "sh",
            "-c",
            "grep -E ' /(data|link-target|etc/hostname2) ' /proc/self/mountinfo; \
             touch /data/x 2>/dev/null && echo data-writable; \
             touch /tmp/y && echo tmp-writable",
        ],
        |c, dir| {
            fs::create_dir(dir.join("rootfs/link-target")).unwrap();
            symlink("/link-target", dir.join("rootfs/via-link")).unwrap();
            let m = c["mounts"].as_array_mut().unwrap();
            m.push(json!({"destination": "/data", "type": "bind",
                "source": src.to_str().unwrap(), "options": ["rbind", "ro", "nosuid", "nodev"]}));
            m.push(json!({"destination": "/via-link", "type": "bind",
                "source": src.to_str().unwrap(), "options": ["bind", "ro", "rprivate"]}));
            c["root"]["readonly"] = json!(false);
        },
    );
    let data = out.lines().find(|l| l.contains(" /data ")).expect(&out);
    let opts = data.split(' ').nth(5).unwrap();
    assert!(
        opts.split(',').any(|o| o == "ro") && opts.contains("nosuid") && opts.contains("nodev"),
        "{data}"
    );
    let link = out
        .lines()
        .find(|l| l.contains(" /link-target "))
        .expect(&out);
    assert!(
        link.split(' ')
            .nth(5)
            .unwrap()
            .split(',')
            .any(|o| o == "ro"),
        "{link}"
    );
    assert!(!out.contains("data-writable"), "{out}");
    assert!(out.contains("tmp-writable"), "{out}");
    fs::write(src.join("still-writable"), "").expect("the host's source became read-only");
    env.assert_nothing_left();
}

/// The race against a shared volume, staged: the volume V is mounted at
/// /vol and S read-only at /vol/sub. strace holds each mount(2) for a
/// while after it returns; as soon as S is mounted, "another container"
/// renames V/sub away and puts a symlink to / in its place. A runtime that
/// looks /vol/sub up again for the read-only remount makes the rootfs
/// read-only instead, and S stays writable at /vol/sub.moved.
#[test]
fn read_only_bind_survives_a_swapped_volume_path() {
    let env = TestEnv::new("swap");
    if Command::new("strace").arg("-V").output().is_err() {
        eprintln!("skipped: host lacks strace");
        return;
    }
    let vol = env.dir.join("vol");
    let src = env.dir.join("src");
    fs::create_dir_all(vol.join("sub")).unwrap();
    fs::create_dir(&src).unwrap();
    let mut b = env.bundle(&[
        "sh",
        "-c",
        "touch /vol/control; touch /vol/sub.moved/pwned /vol/sub/pwned 2>/dev/null; true",
    ]);
    b.config["root"]["readonly"] = json!(false);
    b.config["linux"]["maskedPaths"] = json!([]);
    b.config["linux"]["readonlyPaths"] = json!([]);
    b.config["mounts"] = json!([
        { "destination": "/proc", "type": "proc", "source": "proc" },
        { "destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"] },
        { "destination": "/vol", "type": "bind", "source": vol.to_str().unwrap(), "options": ["bind"] },
        { "destination": "/vol/sub", "type": "bind", "source": src.to_str().unwrap(), "options": ["bind", "ro"] }
    ]);
    b.save();
    let target = format!("{}/vol/sub", b.rootfs().display());
    let id = env.id("w");
    let run = Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null", "-e", "trace=mount"])
        .args(["-e", "inject=mount:delay_exit=300000"])
        .arg(&env.rt.bin)
        .args(&env.rt.global)
        .arg("--root")
        .arg(&env.root)
        .args(["run", "-b", b.path(), &id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(env.dir.join("run.err")).unwrap())
        .spawn()
        .unwrap();
    let tracer = run.id();
    let mounted = || {
        descendants(tracer).into_iter().any(|p| {
            fs::read_to_string(format!("/proc/{p}/mountinfo")).is_ok_and(|mi| {
                mi.lines()
                    .any(|l| l.split(' ').nth(4) == Some(target.as_str()))
            })
        })
    };
    let deadline = Instant::now() + CMD_TIMEOUT;
    while !mounted() {
        assert!(Instant::now() < deadline, "S never got mounted");
        sleep(Duration::from_millis(2));
    }
    fs::rename(vol.join("sub"), vol.join("sub.moved")).unwrap();
    symlink("/", vol.join("sub")).unwrap();
    let st = wait_child(run, "strace rcontain run");
    let err = fs::read_to_string(env.dir.join("run.err")).unwrap_or_default();
    assert!(
        !src.join("pwned").exists(),
        "the read-only bind of {} was writable in the container ({err})",
        src.display()
    );
    assert!(st.success(), "run: {err}");
    // Positive control: the container could write to the read-write
    // volume next to it, so only the read-only flag kept the write out.
    assert!(vol.join("control").exists(), "{err}");
    let _ = env.rt(&["delete", "-f", &id]);
    env.assert_nothing_left();
}

/// A container joining another one's mount namespace by path with its own
/// time namespace: /proc/self/timens_offsets looked up after the join is
/// whatever that container put at /proc (here: no procfs, a plain file).
/// The runtime, host root, must not write into it.
#[test]
fn timens_offsets_are_not_written_into_a_joined_mount_namespace() {
    let env = TestEnv::new("timens");
    if !Path::new("/proc/self/timens_offsets").exists() {
        eprintln!("skipped: host lacks time namespaces");
        return;
    }
    // The victim container: no /proc mount, a planted file instead.
    let mut a = env.bundle(&["sleep", "1000"]);
    a.config["mounts"]
        .as_array_mut()
        .unwrap()
        .retain(|m| m["destination"] != "/proc");
    a.config["linux"]["maskedPaths"] = json!([]);
    a.config["linux"]["readonlyPaths"] = json!([]);
    a.config["root"]["readonly"] = json!(false);
    a.save();
    let planted = a.rootfs().join("proc/self/timens_offsets");
    fs::create_dir_all(planted.parent().unwrap()).unwrap();
    fs::write(&planted, "planted\n").unwrap();
    let aid = env.id("a");
    start_detached(
        &mut env.command(&["run", "-d", "-b", a.path(), &aid]),
        &env.dir.join("a.log"),
        "run -d victim",
    );
    let apid = env.state(&aid)["pid"].as_i64().unwrap();

    let mut b = env.bundle(&["true"]);
    b.config["linux"]["namespaces"] = json!([
        { "type": "pid" }, { "type": "time" },
        { "type": "mount", "path": format!("/proc/{apid}/ns/mnt") }
    ]);
    b.config.as_object_mut().unwrap().remove("hostname");
    b.config["linux"]["timeOffsets"] = json!({"monotonic": {"secs": 86400, "nanosecs": 0}});
    b.save();
    let out = env.run(&b);
    assert_eq!(
        fs::read_to_string(&planted).unwrap(),
        "planted\n",
        "the runtime wrote the time offsets into the joined mount namespace's /proc ({out:?})"
    );
    assert!(
        !out.stderr.contains("timens_offsets"),
        "the offsets could not be set: {out:?}"
    );
    env.kill_and_delete(&aid, Some("KILL"));
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
