//! Each test mounts a known container-escape attack and shows it fails.
//! (a) runtime binary overwrite through /proc/PID/exe (CVE-2019-5736),
//! (b) host fds leaking into the container, (c) cwd outside the rootfs
//! through a leaked fd (CVE-2024-21626), (d) mount destinations that are
//! symlinks out of the rootfs (CVE-2021-30465 class), (e) procfs writes
//! redirected by the container's own files or mounts (CVE-2025-52881 class).

mod common;

use common::*;
use serde_json::json;
use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::symlink;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const ALL_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_ADMIN",
    "CAP_MKNOD",
    "CAP_AUDIT_WRITE",
    "CAP_SETFCAP",
];

/// (a) A second container shares the pid namespace of a created (not yet
/// started) container, whose pid 1 is still the runtime's own init. With
/// every capability it tries to write the runtime binary through
/// /proc/1/exe, directly and through an fd it keeps open until the first
/// container has exec'd its process. The victim is handled by one private
/// copy of the runtime binary and the attacker by another, so once the
/// victim runs nothing executes the victim's copy any more and ETXTBSY
/// cannot hide a vulnerability; a successful attack cannot wreck the real
/// binary either. Both copies must stay identical.
#[test]
fn a_runtime_binary_not_writable_via_proc_exe() {
    let mut env = TestEnv::new("exe");
    let copy = env.dir.join(format!("victim-{}", env.rt.name()));
    let attacker_copy = env.dir.join(format!("attacker-{}", env.rt.name()));
    fs::copy(&env.rt.bin, &copy).unwrap();
    fs::copy(&env.rt.bin, &attacker_copy).unwrap();
    env.rt.bin = copy.clone();
    let before = fs::read(&copy).unwrap();

    let victim = env.bundle(&["sleep", "1000"]);
    let vid = env.id("victim");
    env.rt(&["create", "-b", victim.path(), &vid])
        .expect_ok("create victim");
    let vpid = env.state(&vid)["pid"].as_i64().unwrap();
    // Whatever file the victim's init runs from, on the host side.
    let init_exe: Option<PathBuf> = fs::read_link(format!("/proc/{vpid}/exe"))
        .ok()
        .filter(|p| p.is_absolute() && p.is_file());
    let init_before = init_exe.as_ref().map(|p| fs::read(p).unwrap());

    let shared = env.dir.join("shared");
    fs::create_dir(&shared).unwrap();
    let script = "exec 3</proc/1/exe && echo opened || echo open-denied; \
         (echo pwned >> /proc/1/exe) 2>/dev/null && echo DIRECT-WRITE || echo direct-denied; \
         echo probed > /shared/probed; \
         while [ ! -e /shared/go ]; do usleep 20000; done; \
         (echo pwned >> /proc/self/fd/3) 2>/dev/null && echo REOPEN-WRITE || echo reopen-denied; \
         (echo pwned > /proc/self/fd/3) 2>/dev/null && echo TRUNC-WRITE || echo trunc-denied; \
         echo done";
    let mut attacker = env.bundle(&["sh", "-c", script]);
    let c = &mut attacker.config;
    for n in c["linux"]["namespaces"].as_array_mut().unwrap() {
        if n["type"] == "pid" {
            n["path"] = json!(format!("/proc/{vpid}/ns/pid"));
        }
    }
    c["process"]["capabilities"] = json!({
        "bounding": ALL_CAPS, "effective": ALL_CAPS, "permitted": ALL_CAPS
    });
    c["process"]["noNewPrivileges"] = json!(false);
    c["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/shared", "type": "bind",
        "source": shared.to_str().unwrap(), "options": ["rbind", "rw"]
    }));
    attacker.save();
    let aid = env.id("attacker");
    env.rt.bin = attacker_copy.clone();
    let (mut child, so, se) = env.spawn_rt(&["run", "-b", attacker.path(), &aid]);
    env.rt.bin = copy.clone();
    // The victim must still be in "created" (its init is the runtime)
    // while the attacker probes: wait for the probe, or for a failed run.
    env.wait_for("attacker probed", || {
        shared.join("probed").exists() || child.try_wait().unwrap().is_some()
    });
    assert_eq!(env.state(&vid)["status"], "created");
    env.rt(&["start", &vid]).expect_ok("start victim");
    env.wait_for("victim running", || env.state(&vid)["status"] == "running");
    fs::write(shared.join("go"), "").unwrap();
    wait_child(child, "attacker run");
    let out = fs::read_to_string(&so).unwrap();
    let err = fs::read_to_string(&se).unwrap();
    eprintln!("attacker saw:\n{out}");
    assert!(out.contains("done"), "attacker did not run: {out} {err}");
    assert!(
        fs::read(&copy).unwrap() == before,
        "runtime binary modified"
    );
    assert!(
        fs::read(&attacker_copy).unwrap() == before,
        "attacker's runtime binary modified"
    );
    if let (Some(p), Some(b)) = (&init_exe, &init_before) {
        assert!(&fs::read(p).unwrap() == b, "{} modified", p.display());
    }
    for bad in ["DIRECT-WRITE", "REOPEN-WRITE", "TRUNC-WRITE"] {
        assert!(!out.contains(bad), "{bad}: {out}");
    }
    env.rt(&["delete", "-f", &vid]).expect_ok("delete victim");
    env.assert_nothing_left();
}

/// A shell command for a process of a container: open `exe` (a /proc exe
/// link; $VARS expand) as fd 3 and say whether that worked, mark
/// /shared/probed, wait for /shared/go, then write through fd 3. What it
/// says goes to /shared/out, ending with "done".
fn exe_holder(exe: &str) -> String {
    format!(
        "{{ exec 3<{exe} && echo opened || echo open-denied; \
         echo probed > /shared/probed; \
         while [ ! -e /shared/go ]; do usleep 20000; done; \
         (echo pwned >> /proc/self/fd/3) 2>/dev/null && echo REOPEN-WRITE || echo reopen-denied; \
         (echo pwned > /proc/self/fd/3) 2>/dev/null && echo TRUNC-WRITE || echo trunc-denied; \
         echo done; }} > /shared/out 2>&1 < /dev/null"
    )
}

/// A container bundle with every capability and the host dir `shared` at
/// /shared, saved.
fn privileged_bundle(env: &TestEnv, args: &[&str], shared: &Path) -> Bundle {
    let mut b = env.bundle(args);
    let c = &mut b.config;
    c["process"]["capabilities"] = json!({
        "bounding": ALL_CAPS, "effective": ALL_CAPS, "permitted": ALL_CAPS
    });
    c["process"]["noNewPrivileges"] = json!(false);
    c["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/shared", "type": "bind",
        "source": shared.to_str().unwrap(), "options": ["rbind", "rw"]
    }));
    b.save();
    b
}

/// Lets the holder of `exe_holder` write once `run -d` is back (nothing
/// executes the private runtime `copy` then, so ETXTBSY cannot hide a
/// vulnerability), and checks that it held the exe and wrote nothing.
fn release_holder(env: &TestEnv, shared: &Path, copy: &Path, before: &[u8]) {
    fs::write(shared.join("go"), "").unwrap();
    let out_path = shared.join("out");
    env.wait_for("the holder's report", || {
        fs::read_to_string(&out_path).is_ok_and(|o| o.contains("done"))
    });
    let out = fs::read_to_string(&out_path).unwrap();
    eprintln!("holder saw:\n{out}");
    assert!(
        fs::read(copy).unwrap() == before,
        "runtime binary modified: {out}"
    );
    for bad in ["REOPEN-WRITE", "TRUNC-WRITE"] {
        assert!(!out.contains(bad), "{bad}: {out}");
    }
    // Else the attack was never made: the init's exe must be reachable
    // with CAP_SYS_PTRACE (what the runtime protects is the file).
    if env.rt.is_rcontain() {
        assert!(
            out.contains("opened"),
            "the holder could not open the exe: {out}"
        );
    }
}

/// (a) for `run`, which moves onto the read-only clone only where the
/// container could reach its init before it execs
/// (selfexe::container_reaches_init): here a startContainer hook, a program
/// of the container's own run by the init in its pid namespace, leaves a
/// process holding the init's /proc/1/exe behind, which writes through it
/// once `run -d` is back.
#[test]
fn run_with_a_start_container_hook_keeps_the_binary_out_of_reach() {
    let mut env = TestEnv::new("exehook");
    let copy = env.dir.join(format!("runtime-{}", env.rt.name()));
    fs::copy(&env.rt.bin, &copy).unwrap();
    env.rt.bin = copy.clone();
    let before = fs::read(&copy).unwrap();
    let shared = env.dir.join("shared");
    fs::create_dir(&shared).unwrap();
    let mut b = privileged_bundle(&env, &["sleep", "1000"], &shared);
    let hook = format!(
        "({}) & while [ ! -e /shared/probed ]; do usleep 20000; done",
        exe_holder("/proc/1/exe")
    );
    b.config["hooks"] = json!({
        "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", hook]}]
    });
    b.save();
    let id = env.id("c");
    env.rt(&["run", "-d", "-b", b.path(), &id])
        .expect_ok("run -d");
    release_holder(&env, &shared, &copy, &before);
    env.rt(&["delete", "-f", &id]).expect_ok("delete");
    env.assert_nothing_left();
}

/// (a) for a `run` whose container joins the pid namespace of a running
/// one: a process of that one opens the new init's exe while a
/// createRuntime hook holds the init before pivot_root, and writes through
/// it once `run -d` is back.
#[test]
fn run_into_a_shared_pid_namespace_keeps_the_binary_out_of_reach() {
    let mut env = TestEnv::new("exepidns");
    let copy = env.dir.join(format!("runtime-{}", env.rt.name()));
    fs::copy(&env.rt.bin, &copy).unwrap();
    env.rt.bin = copy.clone();
    let before = fs::read(&copy).unwrap();
    let shared = env.dir.join("shared");
    fs::create_dir(&shared).unwrap();

    // The holder: waits for the pid (in its own pid namespace) of the
    // second container's init.
    let holder = format!(
        "while [ ! -s /shared/pid ]; do usleep 20000; done; {}; sleep 1000",
        exe_holder("/proc/$(cat /shared/pid)/exe")
    );
    let h = privileged_bundle(&env, &["sh", "-c", &holder], &shared);
    let hid = env.id("holder");
    env.rt(&["run", "-d", "-b", h.path(), &hid])
        .expect_ok("run -d holder");
    let hpid = env.state(&hid)["pid"].as_i64().unwrap();

    // On the host, with the new init's state on stdin: its pid as the
    // holder's namespace numbers it, then wait until the holder has it.
    let pid_file = shared.join("pid");
    let probed = shared.join("probed");
    let hook = script(
        &env.dir.join("hold-init.sh"),
        &format!(
            "pid=$(sed -n 's/.*\"pid\": *\\([0-9]*\\).*/\\1/p')\n\
             awk '/^NSpid:/ {{ print $NF }}' /proc/$pid/status > {pf}.tmp\n\
             mv {pf}.tmp {pf}\n\
             while [ ! -e {probed} ]; do sleep 0.02; done",
            pf = pid_file.display(),
            probed = probed.display()
        ),
    );
    let mut v = env.bundle(&["sleep", "1000"]);
    for n in v.config["linux"]["namespaces"].as_array_mut().unwrap() {
        if n["type"] == "pid" {
            n["path"] = json!(format!("/proc/{hpid}/ns/pid"));
        }
    }
    v.config["hooks"] = json!({
        "createRuntime": [{"path": hook.to_str().unwrap()}]
    });
    v.save();
    let vid = env.id("joiner");
    env.rt(&["run", "-d", "-b", v.path(), &vid])
        .expect_ok("run -d joiner");
    release_holder(&env, &shared, &copy, &before);
    env.rt(&["delete", "-f", &vid]).expect_ok("delete joiner");
    env.rt(&["delete", "-f", &hid]).expect_ok("delete holder");
    env.assert_nothing_left();
}

/// Spawn `run` with two extra inherited fds (3 and 7) open on host files.
fn run_with_extra_fds(env: &TestEnv, extra_args: &[&str], script: &str) -> String {
    let b = env.bundle(&["sh", "-c", script]);
    let id = env.id("fd");
    let secret3 = fs::File::create(env.dir.join("secret3")).unwrap();
    let secret7 = fs::File::create(env.dir.join("secret7")).unwrap();
    let (f3, f7) = (secret3.as_raw_fd(), secret7.as_raw_fd());
    let out_path = env.dir.join(format!("{id}.out"));
    let mut cmd = Command::new(&env.rt.bin);
    cmd.args(&env.rt.global)
        .arg("--root")
        .arg(&env.root)
        .arg("run")
        .args(extra_args)
        .args(["-b", b.path(), &id])
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path).unwrap())
        .stderr(Stdio::inherit());
    // SAFETY: between fork and exec we only call fcntl, dup2 and close,
    // which are async-signal-safe; f3/f7 are valid (owned by secret3 and
    // secret7, alive until spawn returns). Going through fds >= 100 first
    // means neither target can clobber the other source, and dup2 onto a
    // different fd leaves the copy without O_CLOEXEC.
    unsafe {
        cmd.pre_exec(move || {
            let high = [
                libc::fcntl(f3, libc::F_DUPFD_CLOEXEC, 100),
                libc::fcntl(f7, libc::F_DUPFD_CLOEXEC, 100),
            ];
            for (from, to) in [(high[0], 3), (high[1], 7)] {
                if from < 0 || libc::dup2(from, to) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(from);
            }
            Ok(())
        });
    }
    let child = spawn(&mut cmd).unwrap();
    let st = wait_child(child, "run");
    let out = fs::read_to_string(&out_path).unwrap();
    assert!(st.success(), "run failed: {out}");
    out
}

/// The container's process (pid 1, a shell that stays alive because of the
/// trailing `true`) has its fds listed by a child.
const LIST_PID1_FDS: &str = "ls -l /proc/1/fd/; true";

/// fd numbers from an `ls -l` of a /proc/PID/fd directory.
fn fds(listing: &str) -> Vec<String> {
    listing
        .lines()
        .filter_map(|l| l.split_whitespace().nth(8).map(String::from))
        .collect()
}

/// (b) No host fd reaches the container process beyond stdio.
#[test]
fn b_no_host_fd_leaks_into_container() {
    let env = TestEnv::new("fdleak");
    let out = run_with_extra_fds(&env, &[], LIST_PID1_FDS);
    assert_eq!(fds(&out), ["0", "1", "2"], "fds in container: {out}");
    env.assert_nothing_left();
}

/// (b) With --preserve-fds 1 exactly fd 3 is passed on, and it is the file
/// we gave; fd 7 still is not.
#[test]
fn b_preserve_fds_passes_exactly_those() {
    let env = TestEnv::new("fdpreserve");
    let out = run_with_extra_fds(&env, &["--preserve-fds", "1"], LIST_PID1_FDS);
    assert_eq!(fds(&out), ["0", "1", "2", "3"], "fds in container: {out}");
    let fd3 = out
        .lines()
        .find(|l| l.split_whitespace().nth(8) == Some("3"))
        .unwrap();
    assert!(
        fd3.ends_with("secret3"),
        "fd 3 is not the preserved file: {fd3}"
    );
    env.assert_nothing_left();
}

/// (c) process.cwd set to /proc/self/fd/N (the CVE-2024-21626 trick: a
/// runtime fd to a host directory still open when the process starts).
/// Either the runtime refuses, or the process's cwd is inside its rootfs:
/// walking up from it must not reach a marker file on the host.
#[test]
fn c_cwd_cannot_escape_through_leaked_fd() {
    let env = TestEnv::new("cwdleak");
    let marker = env.dir.join("host-marker");
    fs::write(&marker, "HOST-SIDE-SECRET\n").unwrap();
    let up = "../".repeat(40);
    for n in 3..=9 {
        let mut b = env.bundle(&[
            "sh",
            "-c",
            &format!(
                "pwd; cat {up}{} 2>/dev/null; ls {up} 2>/dev/null | head -50",
                marker.display()
            ),
        ]);
        b.config["process"]["cwd"] = json!(format!("/proc/self/fd/{n}"));
        b.save();
        let out = env.run(&b);
        eprintln!("cwd /proc/self/fd/{n}: {out:?}");
        assert!(
            !out.stdout.contains("HOST-SIDE-SECRET"),
            "cwd /proc/self/fd/{n} reached the host: {out:#?}"
        );
        // The host root has the test's temp dir; the container's root is a
        // tmpfs-backed /tmp that never has it.
        let tmp_name = env.dir.file_name().unwrap().to_str().unwrap();
        assert!(!out.stdout.contains(tmp_name), "{out:#?}");
    }
    env.assert_nothing_left();
}

/// (d) A mount destination that is a symlink in the rootfs pointing at a
/// host directory must resolve inside the rootfs (or be refused): the host
/// directory stays untouched and nothing gets mounted there.
fn symlinked_destination(name: &str, make_link: impl FnOnce(&Path, &Path)) {
    let env = TestEnv::new(name);
    let hostdir = env.dir.join("hostdir");
    fs::create_dir(&hostdir).unwrap();
    fs::write(hostdir.join("keep"), "host file\n").unwrap();
    let src = env.dir.join("mountsrc");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("from-source"), "x").unwrap();
    let mut b = env.bundle(&[
        "sh",
        "-c",
        "ls /etc/evil/ 2>&1; touch /etc/evil/written-by-container 2>/dev/null; \
         echo END; exec sleep 1000",
    ]);
    make_link(&b.rootfs().join("etc/evil"), &hostdir);
    b.config["root"]["readonly"] = json!(false);
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/etc/evil", "type": "bind",
        "source": src.to_str().unwrap(), "options": ["rbind", "rw"]
    }));
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/etc/evil/sub", "type": "tmpfs", "source": "tmpfs"
    }));
    b.save();
    let id = env.id("sym");
    let (mut child, so, se) = env.spawn_rt(&["run", "-b", b.path(), &id]);
    // Look at the host while the container is alive (it waits after
    // printing), unless the runtime refused the config and exited.
    let mut alive = false;
    let mut exited = None;
    env.wait_for("container output or runtime exit", || {
        alive = fs::read_to_string(&so).unwrap_or_default().contains("END");
        if !alive {
            exited = child.try_wait().unwrap();
        }
        alive || exited.is_some()
    });
    let host_mounts = mounts_under(&hostdir);
    if alive {
        env.rt(&["kill", &id, "KILL"]).expect_ok("kill");
    }
    let st = match exited {
        Some(st) => st,
        None => wait_child(child, "run"),
    };
    let out = fs::read_to_string(&so).unwrap();
    let err = fs::read_to_string(&se).unwrap();
    eprintln!("alive={alive} stdout={out:?} stderr={err:?}");
    assert!(
        alive || !st.success(),
        "neither ran nor refused: {out} {err}"
    );
    assert!(host_mounts.is_empty(), "mounted on host: {host_mounts:?}");
    let mut entries: Vec<String> = fs::read_dir(&hostdir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    assert_eq!(
        entries,
        ["keep"],
        "host dir changed (stdout {out}, stderr {err})"
    );
    assert_eq!(
        fs::read_to_string(hostdir.join("keep")).unwrap(),
        "host file\n"
    );
    if alive {
        // Accepted: then the mount must have landed inside the container.
        assert!(
            out.contains("from-source"),
            "bind not visible at /etc/evil: {out}"
        );
    }
    env.assert_nothing_left();
}

#[test]
fn d_absolute_symlink_destination_stays_in_rootfs() {
    symlinked_destination("symabs", |link, host| symlink(host, link).unwrap());
}

#[test]
fn d_relative_symlink_destination_stays_in_rootfs() {
    symlinked_destination("symrel", |link, host| {
        let up = "../".repeat(30);
        symlink(
            format!("{up}{}", host.to_str().unwrap().trim_start_matches('/')),
            link,
        )
        .unwrap()
    });
}

/// (e) The config bind-mounts a container-controlled file over the procfs
/// file of a sysctl it also sets. The runtime must write the real procfs
/// file (or refuse), never the file the container put there.
#[test]
fn e_sysctl_write_not_redirected_by_bind_mount() {
    let env = TestEnv::new("procbind");
    let decoy = env.dir.join("decoy");
    fs::write(&decoy, "decoy\n").unwrap();
    let host_before = fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let mut b = env.bundle(&["cat", "/proc/sys/net/ipv4/ip_forward"]);
    b.config["linux"]["readonlyPaths"] = json!([]);
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/proc/sys/net/ipv4/ip_forward", "type": "bind",
        "source": decoy.to_str().unwrap(), "options": ["bind", "rw"]
    }));
    b.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    b.save();
    let out = env.run(&b);
    eprintln!("runtime answered: {out:?}");
    assert_eq!(
        fs::read_to_string(&decoy).unwrap(),
        "decoy\n",
        "sysctl written to the decoy"
    );
    assert_eq!(
        fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        host_before,
        "host sysctl changed"
    );
    env.assert_nothing_left();
}

/// (e) The rootfs's /proc is a symlink to a directory of regular files
/// that look like procfs. The runtime must not follow it to mount proc or
/// write sysctl / oom_score_adj there.
#[test]
fn e_symlinked_proc_cannot_redirect_procfs_writes() {
    let env = TestEnv::new("procsym");
    let mut b = env.bundle(&[
        "cat",
        "/proc/sys/net/ipv4/ip_forward",
        "/proc/self/oom_score_adj",
    ]);
    let rootfs = b.rootfs();
    let fake = rootfs.join("fakeproc");
    fs::create_dir_all(fake.join("sys/net/ipv4")).unwrap();
    fs::create_dir_all(fake.join("self")).unwrap();
    fs::write(fake.join("sys/net/ipv4/ip_forward"), "fake\n").unwrap();
    fs::write(fake.join("self/oom_score_adj"), "fake\n").unwrap();
    fs::remove_dir(rootfs.join("proc")).unwrap();
    symlink("fakeproc", rootfs.join("proc")).unwrap();
    b.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    b.config["process"]["oomScoreAdj"] = json!(321);
    b.save();
    let out = env.run(&b);
    eprintln!("runtime answered: {out:?}");
    for f in ["sys/net/ipv4/ip_forward", "self/oom_score_adj"] {
        assert_eq!(
            fs::read_to_string(fake.join(f)).unwrap(),
            "fake\n",
            "runtime wrote through the symlinked /proc into {f}: {out:#?}"
        );
    }
    if out.ok() {
        // Accepted: then the process saw the real values.
        assert_eq!(out.stdout, "1\n321\n", "{out:#?}");
    }
    env.assert_nothing_left();
}
