//! rcontain as an ordinary user: the test user `rctest` (created if
//! missing, with subordinate ids in /etc/subuid and /etc/subgid) owns the
//! bundles and runs the runtime, with HOME and XDG_RUNTIME_DIR as a login
//! would set them, so the state lives in $XDG_RUNTIME_DIR/rcontain. runc
//! runs the same bundles as the same user where the behaviour is runc's.
//!
//! Also: what a rootless container must not gain — the user's files
//! outside its mounts, the host's /run/rcontain, host root through a
//! setuid binary (of a bundle or of an image).
//!
//! Images as the user: `unpack` and `run IMAGE` of a multi-layer image
//! with files of uid 0 and 1000, whiteouts and a device node, compared
//! with what root's `run IMAGE` shows.

mod common;
#[allow(dead_code)] // shared with image.rs, which uses the rest
#[path = "image/util.rs"]
mod util;

use common::*;
use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

const USER: &str = "rctest";

struct TestUser {
    uid: u32,
    gid: u32,
    /// first subordinate uid and gid, and how many of both (at least 65536)
    sub: Option<(u32, u32, u32)>,
    /// the runtime binaries, as paths the user can execute
    rcontain: PathBuf,
    runc: PathBuf,
}

fn run_root(cmd: &mut Command) -> Option<std::process::Output> {
    cmd.stdin(Stdio::null()).output().ok()
}

/// The subordinate range of `name` in /etc/subuid or /etc/subgid.
fn sub_range(file: &str, name: &str, uid: u32) -> Option<(u32, u32)> {
    fs::read_to_string(file).ok()?.lines().find_map(|l| {
        let f: Vec<&str> = l.trim().split(':').collect();
        (f.len() == 3 && (f[0] == name || f[0] == uid.to_string()))
            .then(|| Some((f[1].parse().ok()?, f[2].parse().ok()?)))
            .flatten()
    })
}

/// The end of the highest range any user has in `file`.
fn first_free(file: &str) -> u32 {
    fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.trim().split(':').collect();
            Some(f.get(1)?.parse::<u32>().ok()? + f.get(2)?.parse::<u32>().ok()?)
        })
        .max()
        .unwrap_or(0)
        .max(100000)
}

/// The test user, made once per test binary; None (and why) when this
/// host cannot have one.
fn test_user() -> Result<&'static TestUser, &'static str> {
    static USER_ONCE: OnceLock<Result<TestUser, &'static str>> = OnceLock::new();
    USER_ONCE.get_or_init(make_user).as_ref().map_err(|e| *e)
}

fn make_user() -> Result<TestUser, &'static str> {
    require_root();
    let id = |flag: &str| -> Option<u32> {
        let o = run_root(Command::new("id").args([flag, USER]))?;
        String::from_utf8_lossy(&o.stdout).trim().parse().ok()
    };
    if id("-u").is_none() {
        // Exit status 9: made meanwhile by a concurrent run, fine.
        let o = run_root(Command::new("useradd").args(["-M", "-U", "-s", "/bin/sh", USER]))
            .ok_or("useradd")?;
        if !o.status.success() && o.status.code() != Some(9) {
            return Err("useradd (cannot create a test user)");
        }
    }
    let (uid, gid) = (id("-u").ok_or("useradd")?, id("-g").ok_or("useradd")?);
    if sub_range("/etc/subuid", USER, uid).is_none()
        || sub_range("/etc/subgid", USER, uid).is_none()
    {
        let start = first_free("/etc/subuid").max(first_free("/etc/subgid"));
        let range = format!("{start}-{}", start + 65535);
        let _ = run_root(Command::new("usermod").args([
            "--add-subuids",
            &range,
            "--add-subgids",
            &range,
            USER,
        ]));
    }
    let sub = match (
        sub_range("/etc/subuid", USER, uid),
        sub_range("/etc/subgid", USER, uid),
    ) {
        (Some((u, n)), Some((g, m))) if n.min(m) >= 65536 && which_opt("newuidmap") => {
            Some((u, g, 65536))
        }
        _ => None,
    };
    // The user's runtime directory, as pam_systemd makes it.
    let xdg = PathBuf::from(format!("/run/user/{uid}"));
    fs::create_dir_all(&xdg).map_err(|_| "/run/user")?;
    nix::unistd::chown(&xdg, Some(uid.into()), Some(gid.into())).map_err(|_| "/run/user")?;
    fs::set_permissions(&xdg, fs::Permissions::from_mode(0o700)).map_err(|_| "/run/user")?;
    let bin = |p: PathBuf| -> PathBuf {
        if as_user_ok(uid, gid, &p) {
            return p;
        }
        // Not reachable by the user (a build under /root): a copy it can
        // run, in $TMPDIR/rct-rootless-bin (replaced by each run).
        let dir = std::env::temp_dir().join("rct-rootless-bin");
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let to = dir.join(p.file_name().unwrap());
        let tmp = dir.join(format!(".{}", std::process::id()));
        fs::copy(&p, &tmp).unwrap();
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).unwrap();
        fs::rename(&tmp, &to).unwrap();
        to
    };
    Ok(TestUser {
        uid,
        gid,
        sub,
        rcontain: bin(Runtime::under_test().bin),
        runc: bin(Runtime::reference().bin),
    })
}

fn which_opt(name: &str) -> bool {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .any(|d| Path::new(d).join(name).is_file())
}

/// Whether the user can reach and execute `bin` by its path.
fn as_user_ok(uid: u32, gid: u32, bin: &Path) -> bool {
    as_user(uid, gid)
        .args(["/bin/sh", "-c", "test -x \"$0\""])
        .arg(bin)
        .status()
        .is_ok_and(|s| s.success())
}

/// Supplementary group of the test user's processes (Debian's "users"), as
/// a login gives them: the container cannot drop it where its user
/// namespace denies setgroups.
const SUPPLEMENTARY_GID: u32 = 100;

/// A command run as `uid`:`gid` with one supplementary group.
fn as_user(uid: u32, gid: u32) -> Command {
    let mut c = Command::new("setpriv");
    c.args([
        &format!("--reuid={uid}"),
        &format!("--regid={gid}"),
        &format!("--groups={SUPPLEMENTARY_GID}"),
        "--",
    ])
    .stdin(Stdio::null());
    c
}

/// One test's sandbox, all of it owned by the test user.
struct Env {
    dir: PathBuf,
    user: &'static TestUser,
    ids: Mutex<Vec<String>>,
    seq: AtomicUsize,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl Env {
    /// None (after printing why) when the host cannot run these tests.
    fn new(name: &str) -> Option<Env> {
        if !which_opt("setpriv") {
            println!("skipped: host lacks setpriv (util-linux)");
            return None;
        }
        let user = match test_user() {
            Ok(u) => u,
            Err(why) => {
                println!("skipped: host lacks {why}");
                return None;
            }
        };
        if fs::read_to_string("/proc/sys/kernel/unprivileged_userns_clone")
            .is_ok_and(|v| v.trim() == "0")
        {
            println!("skipped: host lacks unprivileged user namespaces");
            return None;
        }
        let dir = std::env::temp_dir().join(format!(
            "rct-rootless-{name}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("home")).unwrap();
        let env = Env {
            dir,
            user,
            ids: Default::default(),
            seq: AtomicUsize::new(0),
        };
        env.own(&env.dir);
        fs::set_permissions(&env.dir, fs::Permissions::from_mode(0o755)).unwrap();
        Some(env)
    }

    fn xdg(&self) -> PathBuf {
        PathBuf::from(format!("/run/user/{}", self.user.uid))
    }

    /// Where rcontain keeps container `id` by default for this user.
    fn state_dir(&self, id: &str) -> PathBuf {
        self.xdg().join("rcontain").join(id)
    }

    /// chown -R to the test user.
    fn own(&self, p: &Path) {
        let st = Command::new("chown")
            .args(["-R", &format!("{}:{}", self.user.uid, self.user.gid)])
            .arg(p)
            .status()
            .unwrap();
        assert!(st.success(), "chown -R {}", p.display());
    }

    fn id(&self, tag: &str) -> String {
        let id = format!(
            "rctl{tag}{}{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        self.ids.lock().unwrap().push(id.clone());
        id
    }

    /// The template bundle made runnable without root: a user namespace
    /// mapping the user's own ids to root, devpts without gid=5 (group 5 is
    /// not mapped). Owned by the user once saved with `save`.
    fn bundle(&self, args: &[&str]) -> Bundle {
        let n = self.seq.fetch_add(1, Ordering::SeqCst);
        let dir = self.dir.join(format!("bundle{n}"));
        fs::create_dir_all(&dir).unwrap();
        copy_tree(&base_rootfs(), &dir.join("rootfs"));
        let mut config: Value =
            serde_json::from_str(include_str!("../bundles/config.template.json")).unwrap();
        config["process"]["args"] = json!(args);
        add_namespace(&mut config, "user");
        let own = |id: u32| json!([{"containerID": 0, "hostID": id, "size": 1}]);
        config["linux"]["uidMappings"] = own(self.user.uid);
        config["linux"]["gidMappings"] = own(self.user.gid);
        for m in config["mounts"].as_array_mut().unwrap() {
            if let Some(o) = m["options"].as_array_mut() {
                o.retain(|o| o != "gid=5");
            }
        }
        let b = Bundle { dir, config };
        self.save(&b);
        b
    }

    fn save(&self, b: &Bundle) {
        b.save();
        self.own(&b.dir);
    }

    /// `prog args` as the test user, with a login's environment.
    fn user_cmd(&self, prog: &Path, args: &[&str]) -> Command {
        let mut c = as_user(self.user.uid, self.user.gid);
        c.arg(prog)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .env("HOME", self.dir.join("home"))
            .env("USER", USER)
            .env("XDG_RUNTIME_DIR", self.xdg())
            .current_dir(&self.dir);
        c
    }

    fn output(&self, mut c: Command, what: &str) -> Out {
        let n = self.seq.fetch_add(1, Ordering::SeqCst);
        let (so, se) = (
            self.dir.join(format!("out{n}")),
            self.dir.join(format!("err{n}")),
        );
        let child = c
            .stdout(fs::File::create(&so).unwrap())
            .stderr(fs::File::create(&se).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let status = wait_child(child, what);
        Out {
            status,
            stdout: fs::read_to_string(so).unwrap_or_default(),
            stderr: fs::read_to_string(se).unwrap_or_default(),
        }
    }

    /// rcontain as the test user.
    fn rt(&self, args: &[&str]) -> Out {
        self.output(
            self.user_cmd(&self.user.rcontain, args),
            &format!("rcontain {}", args.join(" ")),
        )
    }

    /// runc as the test user.
    fn runc(&self, args: &[&str]) -> Out {
        self.output(
            self.user_cmd(&self.user.runc, args),
            &format!("runc {}", args.join(" ")),
        )
    }

    #[track_caller]
    fn state(&self, id: &str) -> Value {
        let out = self.rt(&["state", id]);
        out.expect_ok("state");
        serde_json::from_str(&out.stdout).unwrap()
    }

    #[track_caller]
    fn wait_for(&self, what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + CMD_TIMEOUT;
        while !cond() {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// State entries of our ids (rcontain's and runc's), processes and
    /// mounts in the test dir, cgroups named after our ids.
    #[track_caller]
    fn assert_nothing_left(&self) {
        let mut left = Vec::new();
        for id in self.ids.lock().unwrap().iter() {
            for d in [self.state_dir(id), self.xdg().join("runc").join(id)] {
                if d.exists() {
                    left.push(format!("state entry {}", d.display()));
                }
            }
            for cg in cgroups_named(id) {
                left.push(format!("cgroup {}", cg.display()));
            }
        }
        for m in mounts_under(&self.dir) {
            left.push(format!("mount {m}"));
        }
        for (pid, why) in procs_in(&self.dir) {
            left.push(format!("process {pid} ({why})"));
        }
        assert!(left.is_empty(), "left behind: {left:#?}");
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for id in std::mem::take(&mut *self.ids.lock().unwrap()) {
            for bin in [&self.user.rcontain, &self.user.runc] {
                let _ = self
                    .user_cmd(bin, &["delete", "-f", &id])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
        kill_procs_in(&self.dir);
        if mounts_under(&self.dir).is_empty() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

macro_rules! env_or_skip {
    ($name:expr) => {
        match Env::new($name) {
            Some(e) => e,
            None => return,
        }
    };
}

#[test]
fn run_exit_code_and_output_like_runc() {
    let env = env_or_skip!("run");
    let b = env.bundle(&["sh", "-c", "echo out; echo err >&2; id -u; id -g; exit 3"]);
    let id = env.id("run");
    let out = env.rt(&["run", "-b", b.path(), &id]);
    assert_eq!(out.code(), 3, "{}", out.stderr);
    assert_eq!(out.stdout, "out\n0\n0\n");
    assert_eq!(out.stderr, "err\n");
    // The state root is the user's, under XDG_RUNTIME_DIR.
    let root = env.xdg().join("rcontain");
    assert_eq!(fs::metadata(&root).unwrap().uid(), env.user.uid);
    let rid = env.id("runc");
    let theirs = env.runc(&["run", "-b", b.path(), &rid]);
    assert_eq!(
        (theirs.code(), theirs.stdout.as_str()),
        (out.code(), out.stdout.as_str()),
        "runc: {}",
        theirs.stderr
    );
    env.assert_nothing_left();
}

#[test]
fn lifecycle_exec_list_ps() {
    let env = env_or_skip!("life");
    let b = env.bundle(&["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]);
    let id = env.id("life");
    env.rt(&["create", "-b", b.path(), &id]).expect_ok("create");
    assert!(env.state_dir(&id).join("state.json").is_file());
    let st = env.state(&id);
    assert_eq!(st["status"], "created");
    assert_eq!(st["owner"], USER);
    let pid = st["pid"].as_i64().unwrap();
    env.rt(&["start", &id]).expect_ok("start");
    assert_eq!(env.state(&id)["status"], "running");

    let list = env.rt(&["list"]);
    list.expect_ok("list");
    let row = list
        .stdout
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("{}", list.stdout));
    assert!(row.contains("running") && row.ends_with(USER), "{row}");

    let ex = env.rt(&["exec", &id, "sh", "-c", "id -u; echo from-exec"]);
    ex.expect_ok("exec");
    assert_eq!(ex.stdout, "0\nfrom-exec\n");

    let ps = env.rt(&["ps", "-f", "json", &id]);
    ps.expect_ok("ps");
    let pids: Vec<i64> = serde_json::from_str(&ps.stdout).unwrap();
    assert!(pids.contains(&pid), "{pids:?} lacks the init {pid}");
    let table = env.rt(&["ps", &id]);
    table.expect_ok("ps");
    assert!(
        table.stdout.starts_with("UID") || table.stdout.contains("PID"),
        "{}",
        table.stdout
    );
    assert!(table.stdout.lines().count() >= 2, "{}", table.stdout);

    // Until its trap is set, pid 1 ignores TERM: wait for the trap.
    env.wait_for("the TERM trap", || {
        fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| status_field(&s, "SigCgt"))
            .and_then(|v| u64::from_str_radix(&v, 16).ok())
            .is_some_and(|caught| caught & (1 << (libc::SIGTERM - 1)) != 0)
    });
    env.rt(&["kill", &id, "TERM"]).expect_ok("kill");
    env.wait_for("stopped", || env.state(&id)["status"] == "stopped");
    env.rt(&["delete", &id]).expect_ok("delete");
    assert!(!env.state_dir(&id).exists());
    env.assert_nothing_left();
}

#[test]
fn without_xdg_runtime_dir_a_private_dir_in_tmp() {
    let env = env_or_skip!("noxdg");
    let tmp = env.dir.join("tmp");
    fs::create_dir(&tmp).unwrap();
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o1777)).unwrap();
    let cmd = |env: &Env, args: &[&str]| {
        let mut c = env.user_cmd(&env.user.rcontain, args);
        c.env_remove("XDG_RUNTIME_DIR").env("TMPDIR", &tmp);
        env.output(c, &format!("rcontain {}", args[0]))
    };
    let list = |env: &Env| cmd(env, &["list", "-q"]);
    // Commands that keep no container state leave /tmp alone (they made
    // the directory, and failed where it was someone else's).
    let spec_dir = env.dir.join("spec");
    fs::create_dir(&spec_dir).unwrap();
    env.own(&spec_dir);
    let spec = |env: &Env| {
        let _ = fs::remove_file(spec_dir.join("config.json"));
        cmd(
            env,
            &["spec", "--rootless", "-b", spec_dir.to_str().unwrap()],
        )
    };
    spec(&env).expect_ok("spec without XDG_RUNTIME_DIR");
    cmd(&env, &["features"]).expect_ok("features without XDG_RUNTIME_DIR");
    assert_eq!(
        fs::read_dir(&tmp).unwrap().count(),
        0,
        "spec or features wrote to /tmp"
    );
    list(&env).expect_ok("list without XDG_RUNTIME_DIR");
    let fallback = tmp.join(format!("rcontain-{}", env.user.uid));
    let m = fs::symlink_metadata(&fallback).unwrap();
    assert!(
        m.is_dir() && m.uid() == env.user.uid && m.mode() & 0o777 == 0o700,
        "{m:?}"
    );
    // Someone else's directory there (a planted state root) is refused.
    fs::remove_dir(&fallback).unwrap();
    fs::create_dir(&fallback).unwrap();
    let out = list(&env);
    assert!(!out.ok(), "accepted a state root owned by root");
    assert!(
        out.stderr.contains("XDG_RUNTIME_DIR") && out.stderr.contains(fallback.to_str().unwrap()),
        "{}",
        out.stderr
    );
    spec(&env).expect_ok("spec beside a planted state root");
    env.assert_nothing_left();
}

#[test]
fn spec_rootless_runs_as_is() {
    let env = env_or_skip!("spec");
    let b = env.bundle(&["true"]);
    fs::remove_file(b.dir.join("config.json")).unwrap();
    env.rt(&["spec", "--rootless", "-b", b.path()])
        .expect_ok("spec --rootless");
    let ours: Value =
        serde_json::from_slice(&fs::read(b.dir.join("config.json")).unwrap()).unwrap();
    // runc's, written by the same user, differs only where it names itself.
    let rdir = env.dir.join("runc-spec");
    fs::create_dir(&rdir).unwrap();
    env.own(&rdir);
    env.runc(&["spec", "--rootless", "-b", rdir.to_str().unwrap()])
        .expect_ok("runc spec --rootless");
    let mut theirs: Value =
        serde_json::from_slice(&fs::read(rdir.join("config.json")).unwrap()).unwrap();
    theirs["hostname"] = ours["hostname"].clone();
    theirs["ociVersion"] = ours["ociVersion"].clone();
    assert_eq!(ours, theirs);
    assert_eq!(ours["linux"]["uidMappings"][0]["hostID"], env.user.uid);
    // Only the process changes: a command instead of an interactive shell.
    let mut config = ours;
    config["process"]["terminal"] = json!(false);
    config["process"]["args"] = json!(["sh", "-c", "id -u; echo works"]);
    fs::write(b.dir.join("config.json"), config.to_string()).unwrap();
    env.own(&b.dir);
    let id = env.id("spec");
    let out = env.rt(&["run", "-b", b.path(), &id]);
    out.expect_ok("run of the spec --rootless config");
    assert_eq!(out.stdout, "0\nworks\n");
    env.assert_nothing_left();
}

#[test]
fn device_nodes_are_bound_from_the_host_like_runc() {
    let env = env_or_skip!("dev");
    let Some(dev) = ["/dev/fuse", "/dev/net/tun"].into_iter().find(|d| {
        fs::metadata(d)
            .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_char_device(&m.file_type()))
    }) else {
        println!("skipped: host lacks /dev/fuse and /dev/net/tun");
        return;
    };
    let rdev = fs::metadata(dev).unwrap().rdev();
    let (major, minor) = (libc::major(rdev), libc::minor(rdev));
    // mknod is refused in a user namespace: the node must be the host's.
    let probe = format!("stat -c '%F %t:%T' {dev}; grep -c ' {dev} ' /proc/self/mountinfo");
    let mut b = env.bundle(&["sh", "-c", &probe]);
    b.config["linux"]["devices"] = json!([{
        "path": dev, "type": "c", "major": major, "minor": minor, "fileMode": 438
    }]);
    env.save(&b);
    let out = env.rt(&["run", "-b", b.path(), &env.id("dev")]);
    out.expect_ok("run with linux.devices");
    assert_eq!(
        out.stdout,
        format!("character special file {major:x}:{minor:x}\n1\n"),
        "not the host's node bound there"
    );
    let theirs = env.runc(&["run", "-b", b.path(), &env.id("devrunc")]);
    assert_eq!(theirs.stdout, out.stdout, "runc: {}", theirs.stderr);
    env.assert_nothing_left();
}

/// A linux.devices entry is bound from the host's path of the same name
/// when rootless: the attacker's config names one of the user's files
/// (directly, or through a symlink) as a device, to have it bound writable
/// into the container. Only a host node of the asked type and numbers may
/// be bound; a real device still is (the positive control).
#[test]
fn a_host_file_named_as_a_device_is_not_bound() {
    let env = env_or_skip!("devfile");
    let secret = env.dir.join("secret");
    fs::write(&secret, "the user's secret\n").unwrap();
    let link = env.dir.join("link");
    std::os::unix::fs::symlink(&secret, &link).unwrap();
    env.own(&secret);
    let node =
        |path: &str, minor: u32| json!({"path": path, "type": "c", "major": 1, "minor": minor});
    // The control: the host's /dev/full (1:7), asked for as such.
    let mut b = env.bundle(&["sh", "-c", "stat -c '%F %t:%T' /dev/full; echo ran"]);
    b.config["linux"]["devices"] = json!([node("/dev/full", 7)]);
    env.save(&b);
    let out = env.rt(&["run", "-b", b.path(), &env.id("devok")]);
    out.expect_ok("run with a real host device");
    assert_eq!(out.stdout, "character special file 1:7\nran\n");
    for (what, dev) in [
        ("a regular file", node(secret.to_str().unwrap(), 3)),
        (
            "a symlink to a regular file",
            node(link.to_str().unwrap(), 3),
        ),
        // a device, but not the one asked for: /dev/full is 1:7
        ("another device", node("/dev/full", 3)),
    ] {
        let path = dev["path"].as_str().unwrap().to_string();
        let mut b = env.bundle(&[
            "sh",
            "-c",
            &format!("cat {path}; echo hi >{path}; echo ran"),
        ]);
        b.config["linux"]["devices"] = json!([dev]);
        env.save(&b);
        let out = env.rt(&["run", "-b", b.path(), &env.id("devfile")]);
        assert!(
            !out.ok() && !out.stdout.contains("ran"),
            "{what} named as a device was bound: {}{}",
            out.stdout,
            out.stderr
        );
        assert!(
            out.stderr.contains("linux.devices[0]") && out.stderr.trim().lines().count() == 1,
            "{what}: {}",
            out.stderr
        );
    }
    assert_eq!(fs::read_to_string(&secret).unwrap(), "the user's secret\n");
    env.assert_nothing_left();
}

/// `--systemd-cgroup` as the user where the user's systemd cannot own the
/// scope (this host: no systemd, or cgroup v1/hybrid; the same with no
/// user bus: XDG_RUNTIME_DIR has no `bus`): one line, nothing made. The
/// working case runs in the systemd VM (runtime-tests/systemd/rootless.sh).
#[test]
fn systemd_cgroup_without_the_users_systemd_fails_on_one_line() {
    let env = env_or_skip!("sdcg");
    let mut b = env.bundle(&["sh", "-c", "echo ran"]);
    b.config["linux"]["resources"] = json!({"memory": {"limit": 67108864}});
    env.save(&b);
    let empty = env.dir.join("no-bus");
    fs::create_dir(&empty).unwrap();
    env.own(&empty);
    let root = env.xdg().join("rcontain");
    let id = env.id("sdcg");
    let mut c = env.user_cmd(
        &env.user.rcontain,
        &[
            "--root",
            root.to_str().unwrap(),
            "--systemd-cgroup",
            "run",
            "-b",
            b.path(),
            &id,
        ],
    );
    c.env("XDG_RUNTIME_DIR", &empty);
    let out = env.output(c, "rcontain --systemd-cgroup run");
    assert!(
        !out.ok() && !out.stdout.contains("ran"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    let line = out.stderr.trim();
    assert!(
        line.starts_with("rcontain: --systemd-cgroup: ") && line.lines().count() == 1,
        "{}",
        out.stderr
    );
    assert!(
        line.contains("systemd is not running")
            || line.contains("rootless needs cgroup v2")
            || line.contains("no user D-Bus"),
        "{line}"
    );
    env.assert_nothing_left();
}

/// The test user's subordinate ids, or None after printing why not.
fn subordinate(env: &Env) -> Option<(u32, u32, u32)> {
    if env.user.sub.is_none() {
        println!("skipped: host lacks subordinate ids for {USER} (/etc/subuid, newuidmap)");
    }
    env.user.sub
}

/// uid and gid 0 are the user, 1..count its subordinate ids.
fn map_subordinate(env: &Env, config: &mut Value, (su, sg, n): (u32, u32, u32)) {
    let map = |own: u32, sub: u32| {
        json!([
            {"containerID": 0, "hostID": own, "size": 1},
            {"containerID": 1, "hostID": sub, "size": n},
        ])
    };
    config["linux"]["uidMappings"] = map(env.user.uid, su);
    config["linux"]["gidMappings"] = map(env.user.gid, sg);
}

#[test]
fn subordinate_ids_through_newuidmap() {
    let env = env_or_skip!("subid");
    let Some(sub) = subordinate(&env) else { return };
    let mut b = env.bundle(&["sh", "-c", "id -u; id -g; cat /proc/self/uid_map"]);
    map_subordinate(&env, &mut b.config, sub);
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    env.save(&b);
    let out = env.rt(&["run", "-b", b.path(), &env.id("subid")]);
    out.expect_ok("run with subordinate ids");
    let want_map = format!("0 {} 1\n1 {} {}\n", env.user.uid, sub.0, sub.2);
    let squeeze = |s: &str| -> String {
        s.lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ") + "\n")
            .collect()
    };
    assert_eq!(squeeze(&out.stdout), format!("1000\n1000\n{want_map}"));
    let theirs = env.runc(&["run", "-b", b.path(), &env.id("subidrunc")]);
    assert_eq!(theirs.stdout, out.stdout, "runc: {}", theirs.stderr);

    // Seen from the host: the mapping, and the process's ids are the
    // subordinate ones.
    b.config["process"]["args"] = json!(["sleep", "1000"]);
    env.save(&b);
    let id = env.id("subidd");
    env.rt(&["run", "-d", "-b", b.path(), &id])
        .expect_ok("run -d");
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    let map = fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap();
    assert_eq!(squeeze(&map), want_map);
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let host_uid = (sub.0 + 999).to_string();
    let uids = status_field(&status, "Uid").unwrap();
    assert!(
        uids.split_whitespace().all(|u| u == host_uid),
        "Uid: {uids}"
    );
    env.rt(&["kill", &id, "KILL"]).expect_ok("kill");
    env.wait_for("stopped", || env.state(&id)["status"] == "stopped");
    env.rt(&["delete", &id]).expect_ok("delete");
    env.assert_nothing_left();
}

/// Whether this user may create cgroups where rcontain puts them (then
/// the non-delegated behaviour below does not apply).
fn cgroups_delegated(env: &Env) -> bool {
    let dirs: Vec<PathBuf> = fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .chain([PathBuf::from("/sys/fs/cgroup")])
        .map(|d| {
            let r = d.join("rcontain");
            if r.is_dir() {
                r
            } else {
                d
            }
        })
        .collect();
    dirs.iter().any(|d| {
        env.user_cmd(
            Path::new("/bin/sh"),
            &["-c", "test -w \"$0\"", d.to_str().unwrap()],
        )
        .status()
        .is_ok_and(|s| s.success())
    })
}

#[test]
fn limits_without_delegated_cgroups_fail_like_runc() {
    let env = env_or_skip!("cg");
    if cgroups_delegated(&env) {
        println!("skipped: host delegates cgroups to {USER}");
        return;
    }
    for (field, res) in [
        ("memory", json!({"memory": {"limit": 67108864}})),
        ("pids", json!({"pids": {"limit": 50}})),
    ] {
        let mut b = env.bundle(&["true"]);
        b.config["linux"]["resources"] = res;
        env.save(&b);
        let out = env.rt(&["run", "-b", b.path(), &env.id("cg")]);
        assert!(!out.ok(), "a {field} limit was accepted without a cgroup");
        assert!(
            out.stderr.contains(&format!("linux.resources.{field}")),
            "{}",
            out.stderr
        );
        let theirs = env.runc(&["run", "-b", b.path(), &env.id("cgrunc")]);
        assert!(
            !theirs.ok(),
            "runc accepted it: the behaviour to match changed"
        );
    }
    // Device rules alone: ignored, as runc ignores them.
    let mut b = env.bundle(&["sh", "-c", "echo ran"]);
    b.config["linux"]["resources"] = json!({"devices": [{"allow": false, "access": "rwm"}]});
    env.save(&b);
    let out = env.rt(&["run", "-b", b.path(), &env.id("dev")]);
    out.expect_ok("device rules without a cgroup");
    assert_eq!(out.stdout, "ran\n");
    let theirs = env.runc(&["run", "-b", b.path(), &env.id("devrunc")]);
    assert_eq!(theirs.stdout, "ran\n", "runc: {}", theirs.stderr);
    // --rootless false: cgroups are required, and cannot be made.
    let out = env.rt(&[
        "--rootless",
        "false",
        "run",
        "-b",
        b.path(),
        &env.id("strict"),
    ]);
    assert!(
        !out.ok() && out.stderr.contains("/sys/fs/cgroup"),
        "{}",
        out.stderr
    );
    env.assert_nothing_left();
}

/// Capabilities the attacker would want: everything, in its user namespace.
fn all_caps(config: &mut Value) {
    let caps: Vec<String> = fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .map(|_| {
            [
                "CAP_CHOWN",
                "CAP_DAC_OVERRIDE",
                "CAP_DAC_READ_SEARCH",
                "CAP_FOWNER",
                "CAP_SETUID",
                "CAP_SETGID",
                "CAP_SYS_ADMIN",
                "CAP_SYS_PTRACE",
                "CAP_MKNOD",
                "CAP_SYS_CHROOT",
                "CAP_NET_ADMIN",
            ]
            .iter()
            .map(|c| c.to_string())
            .collect()
        })
        .unwrap_or_default();
    for set in ["bounding", "effective", "permitted"] {
        config["process"]["capabilities"][set] = json!(caps);
    }
    config["process"]["capabilities"]["ambient"] = json!([]);
    config["process"]["noNewPrivileges"] = json!(false);
}

#[test]
fn cannot_write_the_users_files_outside_its_mounts() {
    let env = env_or_skip!("files");
    // The user's files: one the container is given, one it is not.
    let shared = env.dir.join("shared");
    let outside = env.dir.join("outside");
    fs::create_dir(&shared).unwrap();
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("secret"), "orig\n").unwrap();
    env.own(&shared);
    env.own(&outside);
    let attack = format!(
        "echo ok > /mnt/probe && echo control-ok; \
         for p in /mnt/../outside/secret /proc/1/root{o}/secret /proc/self/root{o}/secret {o}/secret; do \
           echo pwn > $p 2>/dev/null && echo WROTE $p; done; \
         mount -o remount,rw / 2>/dev/null; echo pwn > {o}/secret 2>/dev/null && echo WROTE-after-remount; \
         mkdir -p /tmp/h; mknod /tmp/h/disk b 8 0 2>/dev/null && echo MKNOD; \
         for d in /dev/vda /dev/sda /dev/nvme0n1; do mount $d /tmp/h 2>/dev/null && echo MOUNTED $d; done; \
         mount -t proc proc /tmp/h 2>/dev/null; ls /tmp/h/1/root{o} 2>/dev/null && echo SAW; \
         mount --bind / /tmp/h 2>/dev/null; echo pwn > /tmp/h{o}/secret 2>/dev/null && echo WROTE-bind; \
         true",
        o = outside.display()
    );
    let mut b = env.bundle(&["sh", "-c", &attack]);
    all_caps(&mut b.config);
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/mnt", "type": "bind", "source": shared, "options": ["rbind", "rw"]
    }));
    env.save(&b);
    let out = env.rt(&["run", "-b", b.path(), &env.id("files")]);
    out.expect_ok("run");
    // Positive control: the container does write where it was given access.
    assert!(out.stdout.contains("control-ok"), "{}", out.stdout);
    assert_eq!(fs::read_to_string(shared.join("probe")).unwrap(), "ok\n");
    assert_eq!(
        out.stdout.trim(),
        "control-ok",
        "an attack got through: {}",
        out.stdout
    );
    assert_eq!(
        fs::read_to_string(outside.join("secret")).unwrap(),
        "orig\n"
    );
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 1);
    env.assert_nothing_left();
}

#[test]
fn cannot_see_the_hosts_run_rcontain() {
    let env = env_or_skip!("run-rcontain");
    // The host's root state dir, with an entry, and the user's own.
    let host_root = Path::new("/run/rcontain");
    fs::create_dir_all(host_root).unwrap();
    let marker = host_root.join(format!("rct-marker-{}", std::process::id()));
    fs::create_dir(&marker).unwrap();
    let probe = format!(
        "for p in /run/rcontain {m} /proc/1/root{m} /sys/fs/cgroup/../../../run/rcontain {x}; do \
           ls -d $p 2>/dev/null && echo SAW $p; done; ls -d /run && echo control-ok",
        m = marker.display(),
        x = env.xdg().join("rcontain").display()
    );
    let mut b = env.bundle(&["sh", "-c", &probe]);
    all_caps(&mut b.config);
    env.save(&b);
    let out = env.rt(&["run", "-b", b.path(), &env.id("seer")]);
    let _ = fs::remove_dir(&marker);
    out.expect_ok("run");
    // Positive control: the same probe does list what exists in its root.
    assert_eq!(
        out.stdout, "/run\ncontrol-ok\n",
        "the container saw: {}",
        out.stdout
    );
    env.assert_nothing_left();
}

#[test]
fn setuid_binary_stays_the_user_on_the_host() {
    let env = env_or_skip!("setuid");
    let Some(sub) = subordinate(&env) else { return };
    // A setuid-root copy of busybox; busybox drops privileges for most
    // applets, but the kernel set the saved uid to the file's owner first.
    let mut b = env.bundle(&["/opt/s/sleep", "1000"]);
    let s = b.rootfs().join("opt/s");
    fs::create_dir_all(&s).unwrap();
    fs::copy(b.rootfs().join("bin/busybox"), s.join("sleep")).unwrap();
    map_subordinate(&env, &mut b.config, sub);
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    b.config["process"]["noNewPrivileges"] = json!(false);
    env.save(&b);
    // Owned by the container's root (the user on the host), setuid.
    fs::set_permissions(s.join("sleep"), fs::Permissions::from_mode(0o4755)).unwrap();
    let id = env.id("suid");
    env.rt(&["run", "-d", "-b", b.path(), &id])
        .expect_ok("run -d");
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uids: Vec<u32> = status_field(&status, "Uid")
        .unwrap()
        .split_whitespace()
        .map(|u| u.parse().unwrap())
        .collect();
    // Positive control: the setuid bit took effect (saved uid = the file's
    // owner, the container's root) ...
    assert_eq!(uids[2], env.user.uid, "setuid did not apply: {uids:?}");
    // ... which on the host is the user, never root.
    assert!(uids.iter().all(|&u| u != 0), "host root gained: {uids:?}");
    assert!(
        uids.iter().all(|&u| u == env.user.uid || u == sub.0 + 999),
        "{uids:?}"
    );
    let inside = env.rt(&["exec", &id, "cat", "/proc/1/status"]);
    inside.expect_ok("exec");
    let u = status_field(&inside.stdout, "Uid").unwrap();
    assert_eq!(u.split_whitespace().nth(2), Some("0"), "inside: {u}");
    env.rt(&["kill", &id, "KILL"]).expect_ok("kill");
    env.wait_for("stopped", || env.state(&id)["status"] == "stopped");
    env.rt(&["delete", &id]).expect_ok("delete");
    env.assert_nothing_left();
}

/// A tar of the test rootfs (busybox) owned by root: an image's base layer.
fn base_layer() -> Vec<u8> {
    let o = Command::new("tar")
        .args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
        .arg(base_rootfs())
        .args(["-cf", "-", "."])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "tar: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

/// Files of root and of uid 1000 in layer 2; layer 3 removes one (a
/// whiteout) and makes a directory opaque; a device node in /devs.
fn owners_layers() -> Vec<util::TestLayer> {
    use util::{RawTar, TestLayer};
    let l2 = RawTar::default()
        .dir("data/")
        .file("data/root-file", "r")
        .owned("data/user-file", b'0', 0o640, "u", (1000, 1000))
        .owned("data/userdir/", b'5', 0o750, "", (1000, 1000))
        .owned("data/userdir/f", b'0', 0o600, "x", (1000, 1000))
        .file("data/gone", "g")
        .dir("data/opq/")
        .file("data/opq/old", "o")
        .dir("devs/")
        .chardev("devs/null")
        .finish();
    let l3 = RawTar::default()
        .entry("data/.wh.gone", b'0', "", 0o644, b"")
        .dir("data/opq/")
        .entry("data/opq/.wh..wh..opq", b'0', "", 0o644, b"")
        .owned("data/opq/new", b'0', 0o644, "n", (1000, 1001))
        .finish();
    vec![
        TestLayer::plain(base_layer()),
        TestLayer::plain(l2),
        TestLayer::plain(l3),
    ]
}

/// `ls -lnAR /data` without link counts, sizes, times and totals (which
/// differ between an overlay and a plain tree, or with each unpack), then
/// what /devs holds.
const LIST_DATA: &str = "ls -lnAR /data | awk '/^total/ {next} NF >= 9 {print $1, $3, $4, $NF; next} {print}'; echo devs: $(ls -A /devs)";

/// An image layout in the test dir, readable by the user.
fn owners_image(env: &Env, name: &str, cmd: &[&str]) -> PathBuf {
    let img = env.dir.join(name);
    util::write_layout_cmd(&img, owners_layers(), cmd);
    env.own(&img);
    img
}

/// The test user's subordinate ids where images without root can work
/// here (they also need overlayfs in a user namespace, Linux 5.11), or
/// None after printing why not.
fn image_ready(env: &Env) -> Option<(u32, u32, u32)> {
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut v = release
        .trim()
        .split(['.', '-'])
        .map(|n| n.parse::<u32>().unwrap_or(0));
    if (v.next().unwrap_or(0), v.next().unwrap_or(0)) < (5, 11) {
        println!(
            "skipped: host lacks overlayfs in user namespaces (Linux 5.11; this is {release})"
        );
        return None;
    }
    subordinate(env)
}

/// The user's image store (HOME is the test's).
fn user_store(env: &Env) -> PathBuf {
    env.dir.join("home/.local/share/rcontain")
}

#[test]
fn images_without_root_keep_owners_and_whiteouts_like_root() {
    let env = env_or_skip!("image");
    let Some(sub) = image_ready(&env) else { return };
    let img = owners_image(&env, "owners", &["sh", "-c", LIST_DATA]);
    let img_arg = format!("{}:latest", img.display());

    // Root's view: run IMAGE with a store of its own.
    let rid = env.id("rootimg");
    let root_out = Command::new(Runtime::under_test().bin)
        .arg("--root")
        .arg(env.dir.join("root-state"))
        .arg("--store")
        .arg(env.dir.join("root-store"))
        .args(["run", "--image", &img_arg, &rid])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        root_out.status.success(),
        "root's run IMAGE: {}",
        String::from_utf8_lossy(&root_out.stderr)
    );
    let root_out = String::from_utf8(root_out.stdout).unwrap();
    let (root_data, root_devs) = root_out.split_once("devs:").unwrap();
    assert!(
        root_data.contains("-rw-r----- 1000 1000 user-file"),
        "{root_out}"
    );
    assert!(root_data.contains("-rw-r--r-- 1000 1001 new"), "{root_out}");
    assert!(
        !root_data.contains("gone") && !root_data.contains("old"),
        "{root_out}"
    );
    assert_eq!(root_devs.trim(), "null");

    // The user's: the same owners, modes, whiteouts; the device node left
    // out, saying so in one line.
    let id = env.id("img");
    let out = env.rt(&["run", "--image", &img_arg, &id]);
    out.expect_ok("run IMAGE as the user");
    let (data, devs) = out.stdout.split_once("devs:").unwrap();
    assert_eq!(
        data, root_data,
        "the user's container shows other owners than root's"
    );
    assert_eq!(devs.trim(), "", "a device node was made");
    let notes: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("device node"))
        .collect();
    assert_eq!(notes.len(), 1, "{}", out.stderr);
    assert!(notes[0].contains("1 device node(s)"), "{}", notes[0]);

    // The store is the user's, closed to others, and on the host the
    // files belong to the user's ids: uid 1000 is subordinate uid 999+start.
    let store = user_store(&env);
    let m = fs::metadata(&store).unwrap();
    assert_eq!((m.uid(), m.mode() & 0o777), (env.user.uid, 0o700));
    let owners: Vec<(u32, u32)> = fs::read_dir(store.join("layers/sha256"))
        .unwrap()
        .flatten()
        .filter_map(|l| fs::metadata(l.path().join("data/user-file")).ok())
        .map(|m| (m.uid(), m.gid()))
        .collect();
    assert_eq!(owners, [(sub.0 + 999, sub.1 + 999)]);
    // Gone with the container.
    assert_eq!(fs::read_dir(store.join("containers")).unwrap().count(), 0);

    // unpack as the user, then the bundle as is: the same again.
    let bundle = env.dir.join("unpacked");
    env.rt(&["unpack", &img_arg, bundle.to_str().unwrap()])
        .expect_ok("unpack as the user");
    let m = fs::metadata(bundle.join("rootfs/data/user-file")).unwrap();
    assert_eq!((m.uid(), m.gid()), (sub.0 + 999, sub.1 + 999));
    let out = env.rt(&["run", "-b", bundle.to_str().unwrap(), &env.id("unp")]);
    out.expect_ok("run of the unpacked bundle");
    let (data, devs) = out.stdout.split_once("devs:").unwrap();
    assert_eq!(data, root_data);
    assert_eq!(devs.trim(), "");
    env.assert_nothing_left();
}

#[test]
fn image_container_detached_exec_delete_and_no_overlay_on_the_host() {
    let env = env_or_skip!("imaged");
    if image_ready(&env).is_none() {
        return;
    }
    let img = owners_image(&env, "sleeper", &["sleep", "1000"]);
    let img_arg = format!("{}:latest", img.display());
    let id = env.id("imgd");
    env.rt(&["run", "-d", "--image", &img_arg, &id])
        .expect_ok("run -d IMAGE");
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    // The overlay is the container's root in its own mount namespace
    // (positive control) and mounted nowhere in the host's.
    let theirs = fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    assert!(
        theirs
            .lines()
            .any(|l| l.split(' ').nth(4) == Some("/") && l.contains(" - overlay ")),
        "{theirs}"
    );
    let store = user_store(&env);
    let host = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !host.contains(store.to_str().unwrap()) && mounts_under(&env.dir).is_empty(),
        "the image overlay shows in the host's mount table"
    );
    let ex = env.rt(&["exec", &id, "sh", "-c", LIST_DATA]);
    ex.expect_ok("exec");
    assert!(
        ex.stdout.contains("-rw-r----- 1000 1000 user-file"),
        "{}",
        ex.stdout
    );
    env.rt(&["kill", &id, "KILL"]).expect_ok("kill");
    env.wait_for("stopped", || env.state(&id)["status"] == "stopped");
    env.rt(&["delete", &id]).expect_ok("delete");
    assert_eq!(fs::read_dir(store.join("containers")).unwrap().count(), 0);
    // prune as the user removes the image's layers, owned by its ids.
    env.rt(&["prune"]).expect_ok("prune");
    assert_eq!(
        fs::read_dir(store.join("layers/sha256")).unwrap().count(),
        0
    );
    env.assert_nothing_left();
}

#[test]
fn failed_images_leave_nothing_in_the_users_store() {
    let env = env_or_skip!("imgbad");
    if image_ready(&env).is_none() {
        return;
    }
    // The top layer's blob is not what its digest says (same size).
    let mut layers = owners_layers();
    layers[2].stored = Some(vec![0; layers[2].tar.len()]);
    let img = env.dir.join("bad");
    util::write_layout_cmd(&img, layers, &["true"]);
    env.own(&img);
    let img_arg = format!("{}:latest", img.display());
    let out = env.rt(&["run", "--image", &img_arg, &env.id("bad")]);
    assert!(!out.ok(), "a corrupt image ran");
    assert!(out.stderr.contains("digest"), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    let store = user_store(&env);
    for sub in ["containers", "layers/sha256"] {
        let left: Vec<_> = fs::read_dir(store.join(sub))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        assert!(left.is_empty(), "left in the store: {left:?}");
    }
    let bundle = env.dir.join("badbundle");
    let out = env.rt(&["unpack", &img_arg, bundle.to_str().unwrap()]);
    assert!(!out.ok(), "a corrupt image unpacked");
    let left: Vec<_> = fs::read_dir(&env.dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("badbundle"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    env.assert_nothing_left();
}

#[test]
fn setuid_binary_of_an_image_stays_the_user_on_the_host() {
    let env = env_or_skip!("imgsuid");
    let Some(sub) = image_ready(&env) else { return };
    // A setuid-root busybox in the image, owned by uid 0 there.
    let busybox = fs::read(base_rootfs().join("bin/busybox")).unwrap();
    let l = util::RawTar::default()
        .dir("opt/")
        .dir("opt/s/")
        .entry("opt/s/sleep", b'0', "", 0o4755, &busybox)
        .finish();
    let mut layers = owners_layers();
    layers.push(util::TestLayer::plain(l));
    let img = env.dir.join("suid");
    util::write_layout_cmd(&img, layers, &["/opt/s/sleep", "1000"]);
    env.own(&img);
    let bundle = env.dir.join("suidb");
    env.rt(&[
        "unpack",
        &format!("{}:latest", img.display()),
        bundle.to_str().unwrap(),
    ])
    .expect_ok("unpack");
    // On the host: the image's root is the user, the bit kept (positive
    // control), and the bundle closed to others.
    let m = fs::metadata(bundle.join("rootfs/opt/s/sleep")).unwrap();
    assert_eq!((m.uid(), m.mode() & 0o7777), (env.user.uid, 0o4755));
    assert_eq!(fs::metadata(&bundle).unwrap().mode() & 0o777, 0o700);
    let mut config: Value =
        serde_json::from_slice(&fs::read(bundle.join("config.json")).unwrap()).unwrap();
    config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    config["process"]["noNewPrivileges"] = json!(false);
    fs::write(bundle.join("config.json"), config.to_string()).unwrap();
    env.own(&bundle.join("config.json"));
    let id = env.id("isuid");
    env.rt(&["run", "-d", "-b", bundle.to_str().unwrap(), &id])
        .expect_ok("run -d");
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uids: Vec<u32> = status_field(&status, "Uid")
        .unwrap()
        .split_whitespace()
        .map(|u| u.parse().unwrap())
        .collect();
    // The setuid bit took effect (saved uid: the file's owner, the
    // container's root) and that is the user on the host, never root.
    assert_eq!(uids[2], env.user.uid, "setuid did not apply: {uids:?}");
    assert!(
        uids.iter().all(|&u| u == env.user.uid || u == sub.0 + 999),
        "{uids:?}"
    );
    env.rt(&["kill", &id, "KILL"]).expect_ok("kill");
    env.wait_for("stopped", || env.state(&id)["status"] == "stopped");
    env.rt(&["delete", &id]).expect_ok("delete");
    env.assert_nothing_left();
}

/// An unpacked bundle's files belong to the user's subordinate ids, so the
/// user's own `rm -rf` cannot remove it; `rcontain unshare rm -rf` runs in
/// the user namespace `unpack` used and can, as `podman unshare rm -rf`
/// does for podman's files.
#[test]
fn unshare_removes_an_unpacked_bundle() {
    let env = env_or_skip!("unshare");
    let Some((sub_uid, _, n)) = subordinate(&env) else {
        return;
    };
    let img = owners_image(&env, "owners", &["true"]);
    let img_arg = format!("{}:latest", img.display());
    let bundle = env.dir.join("unpacked");
    let b = bundle.to_str().unwrap();
    env.rt(&["unpack", &img_arg, b])
        .expect_ok("unpack as the user");
    // The problem: userdir (mode 0750) is subordinate uid 999+start's.
    let kept = bundle.join("rootfs/data/userdir/f");
    let rm = env.output(env.user_cmd(Path::new("rm"), &["-rf", b]), "rm -rf");
    assert!(!rm.ok() && kept.exists(), "the user removed {b} alone");

    // Root of that namespace, with the command's own exit status.
    let out = env.rt(&[
        "unshare",
        "sh",
        "-c",
        "id -u; cat /proc/self/uid_map; exit 7",
    ]);
    assert_eq!(out.code(), 7, "{}", out.stderr);
    let maps: Vec<Vec<String>> = out
        .stdout
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect();
    assert_eq!(out.stdout.lines().next(), Some("0"), "{}", out.stdout);
    assert_eq!(
        maps,
        [
            vec!["0".to_string(), env.user.uid.to_string(), "1".into()],
            vec!["1".to_string(), sub_uid.to_string(), n.to_string()],
        ]
    );
    env.rt(&["unshare", "rm", "-rf", b])
        .expect_ok("unshare rm -rf");
    assert!(!bundle.exists(), "{b} is still there");

    // A command that cannot run: one line, not 0.
    let out = env.rt(&["unshare", "/nonexistent-command"]);
    assert!(!out.ok());
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("/nonexistent-command"),
        "{}",
        out.stderr
    );
    // Root needs no namespace for that: refused in one line.
    let out = Command::new(Runtime::under_test().bin)
        .args(["unshare", "true"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("only without root"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    env.assert_nothing_left();
}
