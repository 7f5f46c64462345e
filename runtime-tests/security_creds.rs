//! Credentials and special files an image must not be able to subvert:
//! (a) capabilities and supplementary groups decided from files the image
//! ships at /proc (no /proc mount), or kept from the runtime when
//! setgroups(2) is denied; (b) /dev/console for a terminal, with the image
//! planting symlinks at /dev/console and /dev/pts (CVE-2025-52565 class);
//! (c) /proc or /sys as a symlink in the rootfs (CVE-2019-19921,
//! CVE-2023-27561). Every attack comes with a positive control showing the
//! probe would see the effect it looks for.

mod common;

use common::*;
use serde_json::{json, Value};
use std::fs;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::symlink;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::Path;

const ZERO: &str = "0000000000000000";

/// The runtime's own supplementary groups in these tests: what must never
/// reach a container process that did not ask for them.
const RUNTIME_GROUPS: [u32; 3] = [0, 6, 42];

/// Drop the /proc mount (and the paths that only make sense on it).
fn without_proc(cfg: &mut Value) {
    cfg["mounts"]
        .as_array_mut()
        .unwrap()
        .retain(|m| m["destination"] != "/proc");
    cfg["linux"]["maskedPaths"] = json!([]);
    cfg["linux"]["readonlyPaths"] = json!([]);
}

/// `create` (with the runtime holding RUNTIME_GROUPS) and `start` the
/// bundle, whose process must sleep; returns /proc/PID/status of the
/// container process as the host sees it, then kills and deletes it.
fn status_of_running(env: &TestEnv, b: &Bundle) -> String {
    let id = env.id("cr");
    let log = env.dir.join(format!("create-{id}.log"));
    let mut cmd = env.command(&["create", "-b", b.path(), &id]);
    // SAFETY: setgroups is async-signal-safe; nothing is allocated here.
    unsafe {
        cmd.pre_exec(|| {
            let g = RUNTIME_GROUPS.map(nix::unistd::Gid::from_raw);
            nix::unistd::setgroups(&g).map_err(std::io::Error::from)
        });
    }
    start_detached(&mut cmd, &log, "create");
    env.rt(&["start", &id]).expect_ok("start");
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    env.kill_and_delete(&id, Some("KILL"));
    status
}

fn field(status: &str, name: &str) -> String {
    status_field(status, name).unwrap_or_else(|| panic!("no {name} in {status}"))
}

/// A rootfs without a /proc mount whose image ships a procfs look-alike
/// saying the kernel knows only capabilities 0 and 1.
fn fake_cap_last_cap(b: &Bundle) {
    let k = b.rootfs().join("proc/sys/kernel");
    fs::create_dir_all(&k).unwrap();
    fs::write(k.join("cap_last_cap"), "1\n").unwrap();
}

/// (a) No `process.capabilities` means no capabilities at all, bounding
/// set included, whatever the image ships at /proc/sys/kernel/cap_last_cap.
/// Without no_new_privs a root process gets its bounding set as permitted
/// at execve, so a bounding set left full is full capabilities.
#[test]
fn a_absent_capabilities_object_means_none_despite_fake_cap_last_cap() {
    let env = TestEnv::new("nocaps");
    let mut b = env.bundle(&["sleep", "1000"]);
    without_proc(&mut b.config);
    b.config["process"]["noNewPrivileges"] = json!(false);
    b.config["process"]
        .as_object_mut()
        .unwrap()
        .remove("capabilities");
    fake_cap_last_cap(&b);
    b.save();
    let st = status_of_running(&env, &b);
    for f in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(field(&st, f), ZERO, "{f} with no capabilities object: {st}");
    }

    // Positive control: the same image, capabilities asked for, and the
    // probe sees them (CAP_KILL 5, CAP_SYS_ADMIN 21).
    let mut b = env.bundle(&["sleep", "1000"]);
    without_proc(&mut b.config);
    let set = json!(["CAP_KILL", "CAP_SYS_ADMIN"]);
    b.config["process"]["capabilities"] =
        json!({"bounding": set, "permitted": set, "effective": set});
    fake_cap_last_cap(&b);
    b.save();
    let st = status_of_running(&env, &b);
    for f in ["CapPrm", "CapEff", "CapBnd"] {
        assert_eq!(field(&st, f), "0000000000200020", "{f}: {st}");
    }
    env.assert_nothing_left();
}

/// (a) The image ships /proc/self/setgroups saying "deny" (no /proc
/// mount): a uid 1000 process must still lose the runtime's groups.
#[test]
fn a_fake_setgroups_file_does_not_keep_runtime_groups() {
    let env = TestEnv::new("fakesetgroups");
    let mut b = env.bundle(&["sleep", "1000"]);
    without_proc(&mut b.config);
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    let s = b.rootfs().join("proc/self");
    fs::create_dir_all(&s).unwrap();
    fs::write(s.join("setgroups"), "deny\n").unwrap();
    b.save();
    let st = status_of_running(&env, &b);
    assert_eq!(field(&st, "Uid"), "1000\t1000\t1000\t1000");
    assert_eq!(field(&st, "Groups"), "", "runtime groups kept: {st}");

    // Positive control: the probe sees groups the config asks for.
    b.config["process"]["user"]["additionalGids"] = json!([1234, 1235]);
    b.save();
    let st = status_of_running(&env, &b);
    assert_eq!(field(&st, "Groups"), "1234 1235", "{st}");
    env.assert_nothing_left();
}

/// A user namespace (identity map of 0..65536, setgroups denied) held by
/// a sleeping process; killed on drop.
struct HeldUserns {
    child: std::process::Child,
}

impl HeldUserns {
    fn new(setgroups: &str) -> HeldUserns {
        let child = std::process::Command::new("unshare")
            .args(["--user", "sleep", "1000"])
            .spawn()
            .expect("unshare --user");
        let pid = child.id();
        let ours = fs::read_link("/proc/self/ns/user").unwrap();
        let deadline = std::time::Instant::now() + CMD_TIMEOUT;
        while fs::read_link(format!("/proc/{pid}/ns/user")).ok() == Some(ours.clone()) {
            assert!(std::time::Instant::now() < deadline, "unshare never ran");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        fs::write(format!("/proc/{pid}/uid_map"), "0 0 65536").unwrap();
        fs::write(format!("/proc/{pid}/setgroups"), setgroups).unwrap();
        fs::write(format!("/proc/{pid}/gid_map"), "0 0 65536").unwrap();
        HeldUserns { child }
    }

    fn path(&self) -> String {
        format!("/proc/{}/ns/user", self.child.id())
    }
}

impl Drop for HeldUserns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn joining_userns(env: &TestEnv, ns: &HeldUserns, user: Value) -> Bundle {
    let mut b = env.bundle(&["sleep", "1000"]);
    b.config["process"]["user"] = user;
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user", "path": ns.path()}));
    b.save();
    b
}

/// (a) Joining a user namespace whose setgroups is "deny": the kernel
/// refuses setgroups(2) there, and the runtime's own groups (0 among them,
/// mapped to 0 in the container) must not stay with a uid 1000 process.
#[test]
fn a_denied_setgroups_in_user_namespace_does_not_keep_runtime_groups() {
    let env = TestEnv::new("denysetgroups");
    // no user namespace to join: create of one fails cleanly instead
    if common::host::lacking_namespace_fails(&env, "user", &mut Default::default()) {
        return;
    }
    let ns = HeldUserns::new("deny");
    assert_eq!(
        fs::read_to_string(format!("/proc/{}/setgroups", ns.child.id()))
            .unwrap()
            .trim(),
        "deny"
    );
    let b = joining_userns(&env, &ns, json!({"uid": 1000, "gid": 1000}));
    let st = status_of_running(&env, &b);
    assert_eq!(field(&st, "Uid"), "1000\t1000\t1000\t1000");
    assert_eq!(field(&st, "Groups"), "", "runtime groups kept: {st}");

    // Asking for groups setgroups cannot give fails clearly.
    let b = joining_userns(
        &env,
        &ns,
        json!({"uid": 1000, "gid": 1000, "additionalGids": [1234]}),
    );
    let id = env.id("cr");
    let out = env.rt(&["run", "-b", b.path(), &id]);
    assert!(!out.ok(), "{out:?}");
    assert!(out.stderr.contains("additionalGids"), "{out:?}");

    // Positive control: where setgroups is allowed the probe sees the groups.
    let allow = HeldUserns::new("allow");
    let b = joining_userns(
        &env,
        &allow,
        json!({"uid": 1000, "gid": 1000, "additionalGids": [1234]}),
    );
    let st = status_of_running(&env, &b);
    assert_eq!(field(&st, "Groups"), "1234", "{st}");
    env.assert_nothing_left();
}

/// Runs `create --console-socket` for `b` (whose process prints and then
/// sleeps), starts it and returns what it printed on the pty, once `END`
/// appears, plus the received master. The caller kills and deletes `id`.
fn run_on_console(env: &TestEnv, b: &Bundle, id: &str) -> Result<(String, OwnedFd), String> {
    let sock = env.dir.join(format!("console-{id}.sock"));
    let listener = UnixListener::bind(&sock).unwrap();
    let log = env.dir.join(format!("create-{id}.log"));
    let mut cmd = env.command(&[
        "create",
        "-b",
        b.path(),
        "--console-socket",
        sock.to_str().unwrap(),
        id,
    ]);
    let child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    listener.set_nonblocking(true).unwrap();
    let mut child = child;
    let master = loop {
        match listener.accept() {
            Ok((conn, _)) => {
                conn.set_nonblocking(false).unwrap();
                match rcontain::terminal::recv_fd(conn.as_fd()) {
                    Ok(fd) => break fd,
                    // The runtime hung up without a pty: say why it failed.
                    Err(e) => {
                        let st = wait_child(child, "create");
                        return Err(format!(
                            "create exited ({st}) without a pty ({e:#}): {}",
                            fs::read_to_string(&log).unwrap_or_default()
                        ));
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if let Some(st) = child.try_wait().unwrap() {
                    return Err(format!(
                        "create exited ({st}) without a pty: {}",
                        fs::read_to_string(&log).unwrap_or_default()
                    ));
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    let st = wait_child(child, "create");
    if !st.success() {
        return Err(format!(
            "create failed: {}",
            fs::read_to_string(&log).unwrap_or_default()
        ));
    }
    env.rt(&["start", id]).expect_ok("start");
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&out).contains("END") {
        let n = nix::unistd::read(master.as_raw_fd(), &mut buf).unwrap();
        assert!(n > 0, "pty closed: {}", String::from_utf8_lossy(&out));
        out.extend_from_slice(&buf[..n]);
    }
    Ok((String::from_utf8_lossy(&out).replace('\r', ""), master))
}

const CONSOLE_PROBE: &str = "stat -L -c 'console %t:%T %F' /dev/console; \
     stat -L -c 'stdin %t:%T' /proc/self/fd/0; echo END; exec sleep 1000";

/// The probe's "console X:Y" and "stdin X:Y" values.
fn probe_values(out: &str) -> (String, String) {
    let get = |k: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{k} ")))
            .unwrap_or("")
            .to_string()
    };
    (get("console"), get("stdin"))
}

/// (b) With process.terminal the pty must be bound onto /dev/console
/// (runtime-spec), so /dev/console is the very tty of stdin. Positive
/// control: the probe tells different ttys apart (/dev/tty vs the pty).
#[test]
fn b_terminal_binds_pty_onto_dev_console() {
    let env = TestEnv::new("console");
    let mut b = env.bundle(&["sh", "-c", CONSOLE_PROBE]);
    b.config["process"]["terminal"] = json!(true);
    b.save();
    let id = env.id("con");
    let r = run_on_console(&env, &b, &id);
    if r.is_ok() {
        env.kill_and_delete(&id, Some("KILL"));
    }
    let (out, _master) = r.unwrap();
    let (console, stdin) = probe_values(&out);
    // Unix98 pty slaves have majors 136-143 (busybox prints hex).
    assert!(stdin.starts_with('8'), "{out}");
    assert_eq!(console, format!("{stdin} character special file"), "{out}");
    // Positive control: /dev/tty (5:0) is reported as such.
    assert_ne!(stdin, "5:0");
    env.assert_nothing_left();
}

/// (b) The image plants /dev/console as a symlink to a host file (absolute
/// path) and has no /dev tmpfs over its own /dev: the bind must land on a
/// file inside the rootfs, never on the host file.
#[test]
fn b_console_symlink_in_image_cannot_redirect_bind() {
    let env = TestEnv::new("consolesym");
    let host = env.dir.join("host-target");
    fs::write(&host, "host file\n").unwrap();
    let mut b = env.bundle(&["sh", "-c", CONSOLE_PROBE]);
    b.config["process"]["terminal"] = json!(true);
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .retain(|m| m["destination"] != "/dev");
    b.save();
    let dev = b.rootfs().join("dev");
    fs::create_dir_all(dev.join("pts")).unwrap();
    let _ = fs::remove_file(dev.join("console"));
    symlink(&host, dev.join("console")).unwrap();
    // Positive control: followed from the host, the planted link is the
    // host file.
    assert_eq!(
        fs::metadata(dev.join("console")).unwrap().ino(),
        fs::metadata(&host).unwrap().ino()
    );
    let id = env.id("cs");
    let r = run_on_console(&env, &b, &id);
    let host_mounts = mounts_under(&host);
    if r.is_ok() {
        env.kill_and_delete(&id, Some("KILL"));
    }
    let (out, _master) = r.unwrap();
    assert!(
        host_mounts.is_empty(),
        "mounted on the host: {host_mounts:?}"
    );
    assert_eq!(fs::read_to_string(&host).unwrap(), "host file\n");
    let (console, stdin) = probe_values(&out);
    assert_eq!(console, format!("{stdin} character special file"), "{out}");
    env.assert_nothing_left();
}

/// (b) The image plants /dev/pts/ptmx as a symlink and the config mounts
/// no devpts: the pty must come from a devpts of the container's own, or
/// the terminal is refused; never a pty of the host's devpts.
#[test]
fn b_planted_ptmx_symlink_is_not_used() {
    let env = TestEnv::new("ptmxsym");
    let mut b = env.bundle(&["sh", "-c", CONSOLE_PROBE]);
    b.config["process"]["terminal"] = json!(true);
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .retain(|m| m["destination"] != "/dev" && m["destination"] != "/dev/pts");
    b.save();
    let pts = b.rootfs().join("dev/pts");
    fs::create_dir_all(&pts).unwrap();
    // The host's ptmx as the image would name it, and a node of our own.
    nix::sys::stat::mknod(
        &b.rootfs().join("dev/hostptmx"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(5, 2),
    )
    .unwrap();
    symlink("/dev/hostptmx", pts.join("ptmx")).unwrap();
    let host_pts = fs::metadata("/dev/pts").unwrap().dev();
    let id = env.id("pt");
    let r = run_on_console(&env, &b, &id);
    let _ = env.rt(&["delete", "-f", &id]);
    match r {
        Err(e) => assert!(e.contains("devpts"), "unclear refusal: {e}"),
        Ok((out, master)) => {
            let slave = rcontain::sys::pty_peer(master.as_fd()).unwrap();
            let dev = nix::sys::stat::fstat(slave.as_raw_fd()).unwrap().st_dev;
            assert_ne!(dev, host_pts, "the container got a host pty: {out}");
        }
    }
    env.assert_nothing_left();
}

/// (c) The rootfs's /proc (or /sys) is a symlink; `link` makes it point
/// at `target`. The runtime must refuse to mount procfs/sysfs there, mount
/// nothing on the host and leave nothing behind.
fn pseudo_fs_on_symlink(name: &str, dest: &str, link: impl FnOnce(&Path, &Path) -> String) {
    let env = TestEnv::new(name);
    let host = env.dir.join("host-target");
    fs::create_dir(&host).unwrap();
    let mut b = env.bundle(&["true"]);
    let d = b.rootfs().join(dest.trim_start_matches('/'));
    let _ = fs::remove_dir(&d);
    let target = link(&d, &host);
    fs::create_dir_all(b.rootfs().join(target.trim_start_matches('/'))).unwrap();
    b.config["linux"]["maskedPaths"] = json!([]);
    b.config["linux"]["readonlyPaths"] = json!([]);
    b.save();
    let out = env.run(&b);
    eprintln!("runtime answered: {out:?}");
    assert!(!out.ok(), "{dest} on a symlink was accepted: {out:?}");
    assert!(
        out.stderr.contains(dest) && out.stderr.contains("symlink"),
        "unclear error: {}",
        out.stderr
    );
    assert!(mounts_under(&host).is_empty());
    assert_eq!(fs::read_dir(&host).unwrap().count(), 0);
    env.assert_nothing_left();

    // Positive control: the same bundle with a real directory runs.
    fs::remove_file(&d).unwrap();
    fs::create_dir(&d).unwrap();
    env.run(&b).expect_ok("run with a real directory");
    env.assert_nothing_left();
}

#[test]
fn c_proc_absolute_symlink_refused() {
    pseudo_fs_on_symlink("procabs", "/proc", |l, host| {
        symlink(host, l).unwrap();
        host.to_str().unwrap().to_string()
    });
}

#[test]
fn c_proc_relative_symlink_refused() {
    pseudo_fs_on_symlink("procrel", "/proc", |l, host| {
        let t = format!(
            "{}{}",
            "../".repeat(20),
            host.to_str().unwrap().trim_start_matches('/')
        );
        symlink(t, l).unwrap();
        host.to_str().unwrap().to_string()
    });
}

#[test]
fn c_proc_in_root_symlink_refused() {
    pseudo_fs_on_symlink("procin", "/proc", |l, _| {
        symlink("fakeproc", l).unwrap();
        "fakeproc".into()
    });
}

#[test]
fn c_sys_absolute_symlink_refused() {
    pseudo_fs_on_symlink("sysabs", "/sys", |l, host| {
        symlink(host, l).unwrap();
        host.to_str().unwrap().to_string()
    });
}

#[test]
fn c_sys_in_root_symlink_refused() {
    pseudo_fs_on_symlink("sysin", "/sys", |l, _| {
        symlink("fakesys", l).unwrap();
        "fakesys".into()
    });
}

/// (c) A mount whose destination reaches into /proc through a symlink in
/// the image (here a tmpfs meant to cover /proc/sys) is refused, as any
/// mount over procfs other than the few lxcfs files runc allows.
#[test]
fn c_mount_into_proc_through_symlink_refused() {
    let env = TestEnv::new("intoproc");
    let mut b = env.bundle(&["true"]);
    symlink("/proc/sys", b.rootfs().join("sysctl")).unwrap();
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/sysctl", "type": "tmpfs", "source": "tmpfs"}));
    b.save();
    let out = env.run(&b);
    assert!(!out.ok(), "tmpfs over /proc/sys accepted: {out:?}");
    assert!(
        out.stderr.contains("procfs"),
        "unclear error: {}",
        out.stderr
    );
    env.assert_nothing_left();

    // Positive control: the same link to a non-procfs directory is fine.
    fs::remove_file(b.rootfs().join("sysctl")).unwrap();
    symlink("/tmp", b.rootfs().join("sysctl")).unwrap();
    env.run(&b).expect_ok("tmpfs through a symlink elsewhere");
    env.assert_nothing_left();
}

/// (c) Over /proc only the files lxcfs emulates may be mounted (as runc);
/// anything else inside procfs is refused. A masked path the kernel's
/// procfs does not have is still skipped, as runc does.
#[test]
fn c_mounts_inside_proc_are_limited_to_lxcfs_files() {
    let env = TestEnv::new("procfiles");
    let fake = env.dir.join("meminfo");
    fs::write(&fake, "MemTotal: 42 kB\n").unwrap();
    let mut b = env.bundle(&["cat", "/proc/meminfo"]);
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/proc/meminfo", "type": "bind",
        "source": fake.to_str().unwrap(), "options": ["bind", "ro"]
    }));
    b.config["linux"]["maskedPaths"]
        .as_array_mut()
        .unwrap()
        .push(json!("/proc/no-such-entry"));
    b.save();
    let out = env.run(&b);
    out.expect_ok("bind over /proc/meminfo");
    assert_eq!(out.stdout, "MemTotal: 42 kB\n");
    env.assert_nothing_left();

    let mut b = env.bundle(&["true"]);
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/proc/sys/kernel/core_pattern", "type": "bind",
        "source": fake.to_str().unwrap(), "options": ["bind", "ro"]
    }));
    b.save();
    let out = env.run(&b);
    assert!(!out.ok(), "mount inside procfs accepted: {out:?}");
    assert!(
        out.stderr
            .contains("/proc/sys/kernel/core_pattern is inside /proc"),
        "unclear error: {}",
        out.stderr
    );
    env.assert_nothing_left();
}
