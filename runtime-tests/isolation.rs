//! Isolation exactly as config.json says: every test configures one aspect,
//! looks at it from inside the container, and compares with the config (and
//! with the host where the host must stay untouched).

mod common;

use common::host::{self, Skips};
use common::*;
use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

/// One mountinfo entry as seen inside the container.
#[derive(Debug)]
struct Mnt {
    target: String,
    opts: String,
    fstype: String,
    super_opts: String,
}

fn parse_mountinfo(text: &str) -> Vec<Mnt> {
    text.lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let pre: Vec<&str> = pre.split(' ').collect();
            let post: Vec<&str> = post.split(' ').collect();
            Some(Mnt {
                target: pre.get(4)?.to_string(),
                opts: pre.get(5)?.to_string(),
                fstype: post.first()?.to_string(),
                super_opts: post.get(2).unwrap_or(&"").to_string(),
            })
        })
        .collect()
}

fn find<'a>(mounts: &'a [Mnt], target: &str) -> &'a Mnt {
    mounts
        .iter()
        .rev()
        .find(|m| m.target == target)
        .unwrap_or_else(|| panic!("no mount at {target}: {mounts:#?}"))
}

fn has_opt(opts: &str, o: &str) -> bool {
    opts.split(',').any(|x| x == o)
}

fn cap_mask(names: &[&str]) -> u64 {
    names.iter().fold(0, |m, n| {
        m | 1u64
            << match *n {
                "CAP_CHOWN" => 0,
                "CAP_KILL" => 5,
                "CAP_NET_BIND_SERVICE" => 10,
                "CAP_NET_ADMIN" => 12,
                "CAP_SYS_ADMIN" => 21,
                "CAP_AUDIT_WRITE" => 29,
                other => panic!("add {other} to cap_mask"),
            }
    })
}

fn caps_of(status: &str, field: &str) -> u64 {
    let v = status_field(status, field).unwrap_or_else(|| panic!("{field} missing: {status}"));
    u64::from_str_radix(&v, 16).unwrap()
}

#[test]
fn hostname_and_domainname() {
    let env = TestEnv::new("uts");
    let out = env.run_ok(
        &["sh", "-c", "hostname; cat /proc/sys/kernel/domainname"],
        |c, _| {
            c["hostname"] = json!("box-one");
            c["domainname"] = json!("dom.example");
        },
    );
    assert_eq!(out, "box-one\ndom.example\n");
    env.assert_nothing_left();
}

#[test]
fn namespaces_new_ones_differ_from_host_others_shared() {
    let env = TestEnv::new("ns");
    let mut skips = Skips::default();
    let mut kinds = vec![
        ("pid", "pid"),
        ("network", "net"),
        ("ipc", "ipc"),
        ("uts", "uts"),
        ("mount", "mnt"),
        ("cgroup", "cgroup"),
    ];
    // a type this kernel lacks must fail create cleanly instead
    kinds.retain(|(t, _)| !host::lacking_namespace_fails(&env, t, &mut skips));
    let out = env.run_ok(
        &[
            "sh",
            "-c",
            "for n in pid net ipc uts mnt cgroup user time; do echo $n $(readlink /proc/self/ns/$n); done",
        ],
        |c, _| {
            c["linux"]["namespaces"] =
                Value::Array(kinds.iter().map(|(t, _)| json!({"type": t})).collect());
        },
    );
    for line in out.lines() {
        let (n, link) = line.split_once(' ').unwrap();
        let Ok(host) = fs::read_link(format!("/proc/self/ns/{n}")) else {
            // the kernel has no such namespaces: neither has the container
            assert_eq!(link, "", "{n}: the container has what the host lacks");
            skips.lack(format!("{n} namespaces"));
            continue;
        };
        let host = host.to_string_lossy().into_owned();
        let private = kinds.iter().any(|(_, k)| *k == n);
        if private {
            assert_ne!(link, host, "{n} namespace shared with host");
        } else {
            assert_eq!(link, host, "{n} namespace not requested but private");
        }
    }
    assert_eq!(out.lines().count(), 8, "{out}");
    env.assert_nothing_left();
}

/// Without a mount namespace the container's mounts (rootfs, /proc, /dev,
/// ...) are made in the host's mount namespace: delete must take every one
/// of them down again (runc 1.1.5 and crun 1.8.1 leave them behind).
#[test]
fn no_mount_namespace_leaves_no_mounts_on_the_host() {
    let env = TestEnv::new("nomntns");
    let mut b = env.bundle(&["true"]);
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "mount");
    b.save();
    let id = env.id("m");
    env.rt(&["create", "-b", b.path(), &id]).expect_ok("create");
    let during = mounts_under(&b.dir);
    assert!(
        during.iter().any(|m| m.ends_with("/rootfs/proc")),
        "the container's mounts are not in the host's namespace: {during:#?}"
    );
    env.rt(&["start", &id]).expect_ok("start");
    env.wait_for("exit", || env.state(&id)["status"] == "stopped");
    env.rt(&["delete", &id]).expect_ok("delete");
    env.assert_nothing_left();
}

#[test]
fn mounts_tmpfs_bind_and_special_filesystems() {
    let env = TestEnv::new("mounts");
    let hostdir = env.dir.join("hostdata");
    fs::create_dir(&hostdir).unwrap();
    fs::write(hostdir.join("file"), "from-host\n").unwrap();
    let h = hostdir.to_str().unwrap().to_string();
    let out = env.run_ok(
        &[
            "sh",
            "-c",
            "cat /mnt/b/file; stat -c %a /mnt/t; touch /mnt/b/new 2>/dev/null && echo bind-writable; \
             echo ---; cat /proc/self/mountinfo",
        ],
        |c, _| {
            let m = c["mounts"].as_array_mut().unwrap();
            m.push(json!({"destination": "/mnt/t", "type": "tmpfs", "source": "tmpfs",
                          "options": ["nosuid", "nodev", "noexec", "size=1m", "mode=700"]}));
            m.push(json!({"destination": "/mnt/b", "type": "bind", "source": h,
                          "options": ["rbind", "ro"]}));
        },
    );
    let (head, mi) = out.split_once("---\n").unwrap();
    assert_eq!(head, "from-host\n700\n", "bind content / tmpfs mode");
    assert!(!hostdir.join("new").exists());
    let mounts = parse_mountinfo(mi);
    let t = find(&mounts, "/mnt/t");
    assert_eq!(t.fstype, "tmpfs");
    for o in ["nosuid", "nodev", "noexec"] {
        assert!(has_opt(&t.opts, o), "tmpfs lacks {o}: {t:?}");
    }
    assert!(has_opt(&t.super_opts, "size=1024k"), "{t:?}");
    let b = find(&mounts, "/mnt/b");
    assert!(has_opt(&b.opts, "ro"), "bind not ro: {b:?}");
    for (target, fstype) in [
        ("/proc", "proc"),
        ("/dev", "tmpfs"),
        ("/dev/pts", "devpts"),
        ("/dev/shm", "tmpfs"),
        ("/dev/mqueue", "mqueue"),
        ("/sys", "sysfs"),
    ] {
        assert_eq!(find(&mounts, target).fstype, fstype, "{target}");
    }
    assert!(has_opt(&find(&mounts, "/sys").opts, "ro"));
    assert!(has_opt(&find(&mounts, "/dev/pts").super_opts, "gid=5"));
    // Nothing of the container's mounts is visible on the host.
    assert!(mounts_under(&env.dir).is_empty());
    env.assert_nothing_left();
}

#[test]
fn readonly_root() {
    let env = TestEnv::new("roroot");
    let out = env.run_ok(
        &[
            "sh",
            "-c",
            "touch /newfile 2>/dev/null && echo wrote || echo ro",
        ],
        |c, _| c["root"]["readonly"] = json!(true),
    );
    assert_eq!(out.trim(), "ro");
    let out = env.run_ok(
        &[
            "sh",
            "-c",
            "touch /newfile 2>/dev/null && echo wrote || echo ro",
        ],
        |c, _| c["root"]["readonly"] = json!(false),
    );
    assert_eq!(out.trim(), "wrote");
}

/// linux.rootfsPropagation as the container's / shows it in mountinfo's
/// optional fields. An unbindable tree cannot be bind mounted, so the
/// rootfs must be set up before / becomes unbindable.
#[test]
fn rootfs_propagation() {
    let env = TestEnv::new("rootprop");
    for prop in ["shared", "slave", "private", "unbindable"] {
        let out = env.run_ok(&["cat", "/proc/self/mountinfo"], |c, _| {
            c["linux"]["rootfsPropagation"] = json!(prop)
        });
        let root = out
            .lines()
            .rev()
            .find(|l| l.split(' ').nth(4) == Some("/"))
            .unwrap_or_else(|| panic!("{prop}: no / in {out}"));
        let optional: Vec<&str> = root
            .split(" - ")
            .next()
            .unwrap()
            .split(' ')
            .skip(6)
            .collect();
        let has = |p: &str| optional.iter().any(|f| f.starts_with(p));
        match prop {
            "shared" => assert!(has("shared:"), "{prop}: {root}"),
            "unbindable" => assert!(has("unbindable"), "{prop}: {root}"),
            // Neither must let the container's mounts out to the host.
            _ => assert!(!has("shared:") && !has("unbindable"), "{prop}: {root}"),
        }
    }
    env.assert_nothing_left();
}

#[test]
fn masked_and_readonly_paths() {
    let env = TestEnv::new("masked");
    let mut b = env.bundle(&["true"]);
    // the template's paths exist only with some kernel options: one that
    // every procfs has makes sure something is masked on any host
    let add_always_there = |c: &mut Value| {
        c["linux"]["maskedPaths"]
            .as_array_mut()
            .unwrap()
            .push(json!("/proc/uptime"))
    };
    add_always_there(&mut b.config);
    let masked: Vec<String> = b.config["linux"]["maskedPaths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    let script = format!(
        "for p in {}; do if [ -d $p ]; then echo $p $(ls -A $p | wc -l); \
         elif [ -e $p ]; then echo $p $(wc -c < $p); else echo $p absent; fi; done; \
         echo x 2>/dev/null > /proc/sys/kernel/domainname && echo sys-writable || echo sys-ro; \
         cat /proc/self/mountinfo",
        masked.join(" ")
    );
    let out = env.run_ok(&["sh", "-c", &script], |c, _| add_always_there(c));
    let mut checked = 0;
    for p in &masked {
        let line = out
            .lines()
            .find(|l| l.split(' ').next() == Some(p.as_str()))
            .unwrap();
        let seen = line.split(' ').nth(1).unwrap();
        if Path::new(p).exists() {
            // Masked: an empty file or an empty directory inside.
            assert_eq!(seen, "0", "{p} not masked: {line}");
            checked += 1;
        } else {
            assert!(seen == "absent" || seen == "0", "{line}");
        }
    }
    assert!(checked > 0, "no masked path exists on this host to check");
    assert!(out.contains("\nsys-ro\n"), "/proc/sys writable: {out}");
    let mounts = parse_mountinfo(&out);
    for p in b.config["linux"]["readonlyPaths"].as_array().unwrap() {
        let p = p.as_str().unwrap();
        if Path::new(p).exists() {
            assert!(has_opt(&find(&mounts, p).opts, "ro"), "{p} not read-only");
        }
    }
    env.assert_nothing_left();
}

#[test]
fn default_devices_and_linux_devices() {
    let env = TestEnv::new("devices");
    let out = env.run_ok(
        &[
            "sh",
            "-c",
            "for d in null zero full random urandom tty mydev; do \
               echo $d $(stat -c '%F %t %T %a' /dev/$d); done; \
             for l in fd stdin stdout stderr ptmx; do echo $l $(readlink /dev/$l); done; \
             echo hi > /dev/null && echo null-ok",
        ],
        |c, _| {
            c["linux"]["devices"] = json!([{
                "path": "/dev/mydev", "type": "c", "major": 1, "minor": 7,
                "fileMode": 416, "uid": 0, "gid": 0
            }]);
        },
    );
    let want = [
        ("null", "1 3"),
        ("zero", "1 5"),
        ("full", "1 7"),
        ("random", "1 8"),
        ("urandom", "1 9"),
        ("tty", "5 0"),
    ];
    for (dev, majmin) in want {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{dev} ")))
            .unwrap();
        let hex: Vec<String> = majmin
            .split(' ')
            .map(|n| format!("{:x}", n.parse::<u32>().unwrap()))
            .collect();
        // 666 whatever the umask the runtime was started with
        assert_eq!(
            line,
            format!("{dev} character special file {} {} 666", hex[0], hex[1])
        );
    }
    assert!(
        out.contains("mydev character special file 1 7 640"),
        "linux.devices entry: {out}"
    );
    for (l, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        assert!(
            out.contains(&format!("\n{l} {target}\n")),
            "/dev/{l}: {out}"
        );
    }
    assert!(out.contains("null-ok"));
    env.assert_nothing_left();
}

#[test]
fn sysctl_in_new_netns_leaves_host_alone() {
    let env = TestEnv::new("sysctl");
    let host_before = fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let flipped = if host_before.trim() == "1" { "0" } else { "1" };
    let out = env.run_ok(&["cat", "/proc/sys/net/ipv4/ip_forward"], |c, _| {
        c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": flipped});
    });
    assert_eq!(out.trim(), flipped);
    assert_eq!(
        fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        host_before
    );
    env.assert_nothing_left();
}

#[test]
fn user_uid_gid_additional_gids_umask() {
    let env = TestEnv::new("user");
    let out = env.run_ok(
        &[
            "sh",
            "-c",
            "id -u; id -g; id -G; umask; grep -E '^(Uid|Gid|Groups):' /proc/self/status",
        ],
        |c, _| {
            c["process"]["user"] = json!({
                "uid": 1000, "gid": 1001, "additionalGids": [10, 20], "umask": 63
            });
        },
    );
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l[0], "1000");
    assert_eq!(l[1], "1001");
    let mut groups: Vec<&str> = l[2].split_whitespace().collect();
    groups.sort();
    assert_eq!(groups, ["10", "1001", "20"], "{out}");
    assert_eq!(l[3], "0077");
    let status = l[4..].join("\n");
    assert_eq!(
        status_field(&status, "Uid").unwrap(),
        "1000\t1000\t1000\t1000"
    );
    assert_eq!(
        status_field(&status, "Gid").unwrap(),
        "1001\t1001\t1001\t1001"
    );
    let groups_line = status_field(&status, "Groups").unwrap();
    let mut sup: Vec<&str> = groups_line.split_whitespace().collect();
    sup.sort();
    assert_eq!(sup, ["10", "20"], "supplementary groups: {status}");
    env.assert_nothing_left();
}

#[test]
fn capabilities_as_root() {
    let env = TestEnv::new("capsroot");
    let bounding = ["CAP_CHOWN", "CAP_NET_ADMIN", "CAP_KILL"];
    let out = env.run_ok(&["cat", "/proc/self/status"], |c, _| {
        c["process"]["capabilities"] = json!({
            "bounding": bounding, "permitted": bounding, "effective": bounding,
            "inheritable": ["CAP_KILL"], "ambient": []
        });
    });
    assert_eq!(caps_of(&out, "CapBnd"), cap_mask(&bounding));
    assert_eq!(caps_of(&out, "CapEff"), cap_mask(&bounding));
    assert_eq!(caps_of(&out, "CapPrm"), cap_mask(&bounding));
    assert_eq!(caps_of(&out, "CapInh"), cap_mask(&["CAP_KILL"]));
    assert_eq!(caps_of(&out, "CapAmb"), 0);
    env.assert_nothing_left();
}

#[test]
fn capabilities_ambient_for_non_root() {
    // Without file capabilities, a non-root process keeps across execve
    // only its ambient set (which also becomes permitted and effective).
    let env = TestEnv::new("capsuser");
    let bounding = ["CAP_CHOWN", "CAP_NET_ADMIN", "CAP_KILL"];
    let amb = ["CAP_NET_ADMIN", "CAP_KILL"];
    let out = env.run_ok(&["cat", "/proc/self/status"], |c, _| {
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        c["process"]["capabilities"] = json!({
            "bounding": bounding, "permitted": bounding, "effective": bounding,
            "inheritable": amb, "ambient": amb
        });
    });
    assert_eq!(caps_of(&out, "CapBnd"), cap_mask(&bounding));
    assert_eq!(caps_of(&out, "CapInh"), cap_mask(&amb));
    assert_eq!(caps_of(&out, "CapAmb"), cap_mask(&amb));
    assert_eq!(caps_of(&out, "CapPrm"), cap_mask(&amb));
    assert_eq!(caps_of(&out, "CapEff"), cap_mask(&amb));
    env.assert_nothing_left();
}

#[test]
fn rlimits() {
    let env = TestEnv::new("rlimits");
    let out = env.run_ok(&["cat", "/proc/self/limits"], |c, _| {
        c["process"]["rlimits"] = json!([
            {"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200},
            {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
            {"type": "RLIMIT_NPROC", "soft": 1000, "hard": 2000}
        ]);
    });
    for (name, soft, hard) in [
        ("Max open files", "100", "200"),
        ("Max core file size", "0", "0"),
        ("Max processes", "1000", "2000"),
    ] {
        let line = out.lines().find(|l| l.starts_with(name)).unwrap();
        let f: Vec<&str> = line[name.len()..].split_whitespace().collect();
        assert_eq!((f[0], f[1]), (soft, hard), "{line}");
    }
    env.assert_nothing_left();
}

#[test]
fn no_new_privileges() {
    let env = TestEnv::new("nnp");
    for (flag, want) in [(true, "1"), (false, "0")] {
        let out = env.run_ok(&["cat", "/proc/self/status"], |c, _| {
            c["process"]["noNewPrivileges"] = json!(flag);
        });
        assert_eq!(status_field(&out, "NoNewPrivs").as_deref(), Some(want));
    }
    env.assert_nothing_left();
}

#[test]
fn oom_score_adj() {
    let env = TestEnv::new("oom");
    let out = env.run_ok(&["cat", "/proc/self/oom_score_adj"], |c, _| {
        c["process"]["oomScoreAdj"] = json!(423);
    });
    assert_eq!(out.trim(), "423");
    env.assert_nothing_left();
}

#[test]
fn env_is_exactly_the_configured_one() {
    let env = TestEnv::new("env");
    let out = env.run_ok(&["cat", "/proc/self/environ"], |c, _| {
        c["process"]["env"] = json!(["PATH=/bin", "FOO=bar baz", "HOME=/root", "EMPTY="]);
    });
    let mut got: Vec<&str> = out.split('\0').filter(|s| !s.is_empty()).collect();
    got.sort();
    assert_eq!(got, ["EMPTY=", "FOO=bar baz", "HOME=/root", "PATH=/bin"]);
    env.assert_nothing_left();
}

#[test]
fn cwd() {
    let env = TestEnv::new("cwd");
    let out = env.run_ok(&["pwd"], |c, _| c["process"]["cwd"] = json!("/tmp"));
    assert_eq!(out.trim(), "/tmp");
    env.assert_nothing_left();
}

#[test]
fn user_namespace_with_mappings() {
    let env = TestEnv::new("userns");
    if host::lacking_namespace_fails(&env, "user", &mut Skips::default()) {
        return;
    }
    let mut b = env.bundle(&[
        "sh",
        "-c",
        "cat /proc/self/uid_map /proc/self/gid_map; id -u; sleep 1000",
    ]);
    add_namespace(&mut b.config, "user");
    b.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    b.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    b.save();
    let id = env.id("u");
    let (child, so, _) = env.spawn_rt(&["run", "-b", b.path(), &id]);
    env.wait_for("container output", || {
        fs::read_to_string(&so).unwrap_or_default().lines().count() >= 3
    });
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    env.rt(&["kill", &id, "KILL"]).expect_ok("kill");
    wait_child(child, "run");
    let out = fs::read_to_string(&so).unwrap();
    let nums: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(nums[0], ["0", "100000", "65536"], "{out}");
    assert_eq!(nums[1], ["0", "200000", "65536"], "{out}");
    assert_eq!(nums[2], ["0"], "{out}");
    assert!(
        status_field(&status, "Uid")
            .unwrap()
            .starts_with("100000\t"),
        "host view: {status}"
    );
    assert!(status_field(&status, "Gid")
        .unwrap()
        .starts_with("200000\t"));
    env.assert_nothing_left();
}

/// A named network namespace (`ip netns add`), deleted on drop.
struct NetNs(String);

impl NetNs {
    fn new(name: &str) -> NetNs {
        let st = Command::new("ip")
            .args(["netns", "add", name])
            .status()
            .unwrap();
        assert!(st.success(), "ip netns add {name}");
        NetNs(name.to_string())
    }
    fn path(&self) -> String {
        format!("/run/netns/{}", self.0)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn join_existing_netns_by_path() {
    let env = TestEnv::new("nsjoin");
    let ns = NetNs::new(&format!("rct{}", std::process::id()));
    let ino = fs::metadata(ns.path()).unwrap().ino();
    let p = ns.path();
    let out = env.run_ok(&["readlink", "/proc/self/ns/net"], |c, _| {
        for n in c["linux"]["namespaces"].as_array_mut().unwrap() {
            if n["type"] == "network" {
                n["path"] = json!(p);
            }
        }
    });
    assert_eq!(out.trim(), format!("net:[{ino}]"));
    env.assert_nothing_left();
}

#[test]
fn seccomp_errno_rule() {
    let env = TestEnv::new("seccomp");
    if !host::has_seccomp_action("errno") {
        lacking_seccomp_fails(&env, "SCMP_ACT_ERRNO", "errno");
        return;
    }
    let out = env.run_ok(
        &[
            "sh",
            "-c",
            "mkdir /tmp/d 2>&1; echo rc=$?; touch /tmp/f && echo touch-ok",
        ],
        |c, _| {
            c["linux"]["seccomp"] = json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                              "errnoRet": 95}]
            });
        },
    );
    assert!(
        out.contains("Operation not supported"),
        "errnoRet 95: {out}"
    );
    assert!(out.contains("rc=1"), "{out}");
    assert!(out.contains("touch-ok"), "{out}");
    env.assert_nothing_left();
}

/// On a kernel without seccomp action `action` (as named in
/// /proc/sys/kernel/seccomp/actions_avail), a profile using it must fail
/// create with one line naming linux.seccomp, leaving nothing behind.
fn lacking_seccomp_fails(env: &TestEnv, action: &str, kernel_name: &str) {
    let mut b = env.bundle(&["true"]);
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": env.dir.join("agent.sock"),
        "syscalls": [{"names": ["mkdir"], "action": action}]
    });
    b.save();
    let id = env.id("noscmp");
    let out = env.rt(&["create", "-b", b.path(), &id]);
    assert!(
        !out.ok(),
        "{action} accepted by a kernel without it: {out:?}"
    );
    if env.rt.is_rcontain() {
        assert!(out.stderr.contains("linux.seccomp"), "{out:?}");
    }
    env.assert_nothing_left();
    Skips::default().lack(format!(
        "the seccomp action {kernel_name}: {action} applied"
    ));
}

#[test]
fn cgroup_mount_shows_the_containers_own_cgroup() {
    let env = TestEnv::new("cgmount");
    if host::lacking_namespace_fails(&env, "cgroup", &mut Skips::default()) {
        return;
    }
    // cgroup.procs lists only processes of the reader's pid namespace: our
    // pid 1 is there only when the mount is the container's own cgroup.
    let out = env.run_ok(
        &[
            "sh",
            "-c",
            "cat /sys/fs/cgroup/pids/cgroup.procs /sys/fs/cgroup/cgroup.procs 2>/dev/null; true",
        ],
        |c, _| {
            add_namespace(c, "cgroup");
            c["mounts"].as_array_mut().unwrap().push(json!({
                "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                "options": ["ro", "nosuid", "noexec", "nodev"]
            }));
        },
    );
    assert!(out.lines().any(|l| l == "1"), "{out:?}");
    env.assert_nothing_left();
}

/// A seccomp agent listening where `linux.seccomp.listenerPath` points.
/// Each connection must bring one container process state and a notify fd,
/// then be closed by the runtime; every fd gets a thread that answers
/// mkdir/mkdirat with EXDEV and lets every other notified syscall continue,
/// until the last process using the filter is gone.
struct Agent {
    path: std::path::PathBuf,
    conns: std::sync::Arc<std::sync::Mutex<Vec<AgentConn>>>,
    accept: Option<std::thread::JoinHandle<()>>,
}

/// What one connection brought: the state and the syscalls notified
/// through its fd, in order, with the pid that made them.
struct AgentConn {
    state: Value,
    calls: std::sync::Arc<std::sync::Mutex<Vec<(u32, String)>>>,
}

impl Agent {
    fn start(path: &Path) -> Agent {
        use std::sync::{Arc, Mutex};
        let listener = std::os::unix::net::UnixListener::bind(path).unwrap();
        let conns: Arc<Mutex<Vec<AgentConn>>> = Arc::default();
        let seen = conns.clone();
        let accept = std::thread::spawn(move || {
            // Ends when `stop` unlinks the socket and connects one last time.
            for conn in listener.incoming() {
                let mut conn = conn.unwrap();
                let Some((state, fd)) = receive_state(&mut conn) else {
                    return;
                };
                let calls: Arc<Mutex<Vec<(u32, String)>>> = Arc::default();
                let log = calls.clone();
                std::thread::spawn(move || answer_notifications(fd, &log));
                seen.lock().unwrap().push(AgentConn { state, calls });
                // Only one state per connection, and the runtime closes it
                // (`stop` reports a failure here).
                let mut rest = String::new();
                std::io::Read::read_to_string(&mut conn, &mut rest).unwrap();
                assert!(rest.trim().is_empty(), "more after the state: {rest:?}");
            }
        });
        Agent {
            path: path.to_path_buf(),
            conns,
            accept: Some(accept),
        }
    }

    /// (state, notified syscalls) of every connection so far.
    fn seen(&self) -> Vec<(Value, Vec<(u32, String)>)> {
        self.conns
            .lock()
            .unwrap()
            .iter()
            .map(|c| (c.state.clone(), c.calls.lock().unwrap().clone()))
            .collect()
    }

    /// No more connections: the socket is gone.
    fn stop(&mut self) {
        let Some(t) = self.accept.take() else { return };
        let _ = std::os::unix::net::UnixStream::connect(&self.path);
        fs::remove_file(&self.path).unwrap();
        t.join().expect("the seccomp agent failed");
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.stop();
        }
    }
}

/// The state JSON and the fd sent as SCM_RIGHTS with its first bytes;
/// `None` for a connection without an fd (the one `stop` makes). Reads
/// no further than the end of the JSON value, so that notifications can be
/// answered before the runtime closes the connection.
fn receive_state(
    conn: &mut std::os::unix::net::UnixStream,
) -> Option<(Value, std::os::fd::OwnedFd)> {
    use std::io::Read;
    use std::os::fd::AsFd;
    let mut buf = vec![0u8; 1 << 16];
    let (n, fd) = rcontain::start::fdpass::recv(conn.as_fd(), &mut buf).unwrap();
    let fd = fd?;
    let reader = std::io::Cursor::new(&buf[..n]).chain(conn);
    let state = serde_json::Deserializer::from_reader(reader)
        .into_iter::<Value>()
        .next()
        .expect("a state before EOF")
        .expect("the state is JSON");
    Some((state, fd))
}

fn answer_notifications(fd: std::os::fd::OwnedFd, log: &std::sync::Mutex<Vec<(u32, String)>>) {
    use libseccomp::{ScmpNotifReq, ScmpNotifResp, ScmpNotifRespFlags};
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::{AsFd, AsRawFd};
    loop {
        let mut p = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        poll(&mut p, PollTimeout::NONE).unwrap();
        let ev = p[0].revents().unwrap_or(PollFlags::empty());
        if !ev.contains(PollFlags::POLLIN) {
            // POLLHUP: no process uses the filter any more.
            return;
        }
        // The process may have been killed between poll and receive.
        let Ok(req) = ScmpNotifReq::receive(fd.as_raw_fd()) else {
            continue;
        };
        let name = req.data.syscall.get_name().unwrap_or_default();
        log.lock().unwrap().push((req.pid, name.clone()));
        let resp = if name.starts_with("mkdir") {
            ScmpNotifResp::new_error(req.id, -libc::EXDEV, ScmpNotifRespFlags::empty())
        } else {
            ScmpNotifResp::new_continue(req.id, ScmpNotifRespFlags::empty())
        };
        let _ = resp.respond(fd.as_raw_fd());
    }
}

#[test]
fn seccomp_notify_fds_reach_the_agent_from_init_and_exec() {
    let env = TestEnv::new("notify");
    if !host::has_seccomp_action("user_notif") {
        lacking_seccomp_fails(&env, "SCMP_ACT_NOTIFY", "user_notif");
        return;
    }
    let sock = env.dir.join("agent.sock");
    let mut agent = Agent::start(&sock);
    let mut b = env.bundle(&[
        "sh",
        "-c",
        "mkdir /init-dir 2>/dev/null; echo $? > /ready.tmp; uname -n >> /ready.tmp; \
         mv /ready.tmp /ready; exec sleep 1000",
    ]);
    b.config["root"]["readonly"] = json!(false);
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": sock,
        "listenerMetadata": "agent-metadata",
        "syscalls": [{"names": ["mkdir", "mkdirat", "uname"], "action": "SCMP_ACT_NOTIFY"}]
    });
    b.save();
    let id = env.id("n");
    env.rt(&["create", "-b", b.path(), &id]).expect_ok("create");
    env.rt(&["start", &id]).expect_ok("start");
    wait_path(&b.rootfs().join("ready"));
    // mkdir got the agent's EXDEV, uname was let through.
    assert_eq!(
        fs::read_to_string(b.rootfs().join("ready")).unwrap(),
        "1\nrcontain\n"
    );
    assert!(!b.rootfs().join("init-dir").exists());
    let init_pid = env.state(&id)["pid"].clone();

    let pid_file = env.dir.join("exec.pid");
    // exec FLAGS ID COMMAND: the pid of the process, from --pid-file.
    let exec = |flags: &[&str], cmd: &[&str]| {
        let pf = pid_file.to_str().unwrap();
        let out = env.rt(&[&["exec", "--pid-file", pf], flags, &[&id], cmd].concat());
        let pid: u32 = fs::read_to_string(&pid_file).map_or(0, |p| p.trim().parse().unwrap());
        (out, pid)
    };
    // The container's process with another command (noNewPrivileges: the
    // filter is loaded after the identity switch)...
    let (out, sh_pid) = exec(
        &[],
        &["sh", "-c", "mkdir /exec-dir 2>&1; echo rc=$?; uname -n"],
    );
    out.expect_ok("exec");
    assert!(out.stdout.contains("Invalid cross-device link"), "{out:?}");
    assert!(out.stdout.ends_with("rc=1\nrcontain\n"), "{out:?}");
    assert!(!b.rootfs().join("exec-dir").exists());
    // ... and one from --process JSON (the filter is loaded before).
    let process = env.dir.join("process.json");
    let json = json!({"args": ["mkdir", "/process-dir"], "cwd": "/", "env": ["PATH=/bin"],
                      "user": {"uid": 0, "gid": 0}, "noNewPrivileges": false});
    fs::write(&process, json.to_string()).unwrap();
    let (out, mkdir_pid) = exec(&["--process", process.to_str().unwrap()], &[]);
    assert_eq!(out.code(), 1, "{out:?}");
    assert!(out.stderr.contains("Invalid cross-device link"), "{out:?}");
    assert!(!b.rootfs().join("process-dir").exists());

    let seen = agent.seen();
    assert_eq!(seen.len(), 3, "one state per process: {seen:?}");
    for (st, _) in &seen {
        assert_eq!(st["fds"], json!(["seccompFd"]), "{st}");
        assert_eq!(st["metadata"], "agent-metadata", "{st}");
        assert!(
            st["ociVersion"]
                .as_str()
                .is_some_and(|v| v.starts_with("1.")),
            "{st}"
        );
        assert_eq!(st["state"]["id"], json!(id), "{st}");
        assert_eq!(st["state"]["bundle"], json!(b.path()), "{st}");
        assert_eq!(st["state"]["pid"], init_pid, "{st}");
    }
    // Which syscalls were notified, each once however often (sh itself
    // calls uname).
    let names = |calls: &[(u32, String)]| -> Vec<String> {
        let mut n: Vec<String> = calls
            .iter()
            .map(|c| c.1.replace("mkdirat", "mkdir"))
            .collect();
        n.sort();
        n.dedup();
        n
    };
    // Each fd watches its own process (tree) only.
    let (init, calls) = &seen[0];
    assert_eq!(init["pid"], init_pid, "{init}");
    assert_eq!(init["state"]["status"], "creating", "{init}");
    assert_eq!(names(calls), ["mkdir", "uname"], "{calls:?}");
    let (sh, calls) = &seen[1];
    assert_eq!(sh["pid"], json!(sh_pid), "{sh}");
    assert_eq!(sh["state"]["status"], "running", "{sh}");
    assert_eq!(names(calls), ["mkdir", "uname"], "{calls:?}");
    let (mkdir, calls) = &seen[2];
    assert_eq!(mkdir["pid"], json!(mkdir_pid), "{mkdir}");
    assert_eq!(mkdir["state"]["status"], "running", "{mkdir}");
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].0, mkdir_pid, "{calls:?}");

    // Without an agent the exec fails, and its program never runs.
    agent.stop();
    let out = env.rt(&["exec", &id, "sh", "-c", "echo ran > /exec-ran"]);
    assert!(!out.ok(), "{out:?}");
    if env.rt.is_rcontain() {
        assert!(out.stderr.contains("linux.seccomp.listenerPath"), "{out:?}");
    }
    assert!(!b.rootfs().join("exec-ran").exists());

    env.kill_and_delete(&id, Some("KILL"));
    env.assert_nothing_left();
}

// ---- hooks ---------------------------------------------------------------

/// A hook running `sh -c BODY`; BODY sees $LOG, a file every hook appends
/// its kind to, wherever the hook runs (host, container before or after
/// pivot_root).
fn hook(kind: &str, logdir: &Path, extra: &str) -> Value {
    let body = format!(
        "if [ -d /hooklog ]; then d=/hooklog; else d={}; fi; cat > $d/{kind}.json; \
         echo {kind} >> $d/log; {extra}",
        logdir.display()
    );
    json!({"path": "/bin/sh", "args": ["sh", "-c", body]})
}

/// A bundle whose process logs "process" and which mounts the hook log dir.
fn hook_bundle(env: &TestEnv, args: &[&str]) -> (Bundle, std::path::PathBuf) {
    let b = env.bundle(args);
    let logdir = env.dir.join("hooklog");
    fs::create_dir_all(&logdir).unwrap();
    fs::set_permissions(&logdir, fs::Permissions::from_mode(0o777)).unwrap();
    (b, logdir)
}

fn add_log_mount(c: &mut Value, logdir: &Path) {
    c["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/hooklog", "type": "bind",
        "source": logdir.to_str().unwrap(), "options": ["rbind", "rw"]
    }));
}

fn log_of(logdir: &Path) -> Vec<String> {
    fs::read_to_string(logdir.join("log"))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn hooks_all_six_in_order_with_state_on_stdin() {
    let env = TestEnv::new("hooks");
    let (mut b, logdir) = hook_bundle(&env, &["sh", "-c", "echo process >> /hooklog/log"]);
    add_log_mount(&mut b.config, &logdir);
    let kinds = [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ];
    let mut hooks = serde_json::Map::new();
    for k in kinds {
        hooks.insert(k.into(), json!([hook(k, &logdir, "")]));
    }
    b.config["hooks"] = Value::Object(hooks);
    b.save();
    let id = env.id("h");

    env.rt(&["create", "-b", b.path(), &id]).expect_ok("create");
    let mut at_create = log_of(&logdir);
    at_create.sort();
    assert_eq!(
        at_create,
        ["createContainer", "createRuntime", "prestart"],
        "hooks run by create"
    );
    env.rt(&["start", &id]).expect_ok("start");
    env.wait_for("container exit", || env.state(&id)["status"] == "stopped");
    env.wait_for("poststart", || {
        log_of(&logdir).iter().any(|l| l == "poststart")
    });
    env.rt(&["delete", &id]).expect_ok("delete");
    let log = log_of(&logdir);
    let pos = |k: &str| {
        log.iter()
            .position(|l| l == k)
            .unwrap_or_else(|| panic!("{k} never ran: {log:?}"))
    };
    assert!(pos("prestart") < pos("createContainer"), "{log:?}");
    assert!(pos("createRuntime") < pos("createContainer"), "{log:?}");
    assert!(pos("createContainer") < pos("startContainer"), "{log:?}");
    assert!(pos("startContainer") < pos("process"), "{log:?}");
    assert!(pos("poststart") < pos("poststop"), "{log:?}");
    assert_eq!(pos("poststop"), log.len() - 1, "{log:?}");
    assert_eq!(log.len(), 7, "each hook once: {log:?}");

    for k in kinds {
        let text = fs::read_to_string(logdir.join(format!("{k}.json"))).unwrap();
        let st: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{k} stdin is not state JSON ({e}): {text:?}"));
        assert_eq!(st["id"], json!(id), "{k}: {st}");
        assert_eq!(st["bundle"], json!(b.path()), "{k}: {st}");
        assert!(st["ociVersion"].is_string(), "{k}: {st}");
        if k != "poststop" {
            assert!(st["pid"].as_i64().unwrap_or(0) > 0, "{k}: {st}");
        }
        // Until the user's program runs the container is "created", from
        // prestart on: runtime-spec's status is "creating" only while the
        // environment is being built, before any hook.
        let status = match k {
            "poststart" => "running",
            "poststop" => "stopped",
            _ => "created",
        };
        assert_eq!(st["status"], status, "{k}: {st}");
    }
    env.assert_nothing_left();
}

/// `kind` fails (exit 1, or hangs past its timeout): create/start must fail
/// and leave nothing behind.
fn failing_hook_aborts(name: &str, kind: &str, extra: &str, timeout: Option<u64>) {
    let env = TestEnv::new(name);
    let (mut b, logdir) = hook_bundle(&env, &["true"]);
    add_log_mount(&mut b.config, &logdir);
    let mut h = hook(kind, &logdir, extra);
    if let Some(t) = timeout {
        h["timeout"] = json!(t);
    }
    b.config["hooks"] = json!({ kind: [h] });
    b.save();
    let id = env.id("hf");
    let out = env.rt(&["run", "-b", b.path(), &id]);
    assert!(!out.ok(), "{kind} failed but run succeeded: {out:#?}");
    assert!(log_of(&logdir).iter().any(|l| l == kind), "hook never ran");
    assert!(!log_of(&logdir).iter().any(|l| l == "process"));
    env.wait_for("no leftovers", || env.leftovers().is_empty());
}

#[test]
fn hook_prestart_failure_aborts() {
    failing_hook_aborts("hfprestart", "prestart", "exit 1", None);
}

#[test]
fn hook_create_runtime_failure_aborts() {
    failing_hook_aborts("hfcrt", "createRuntime", "exit 1", None);
}

#[test]
fn hook_create_container_failure_aborts() {
    failing_hook_aborts("hfcct", "createContainer", "exit 1", None);
}

#[test]
fn hook_start_container_failure_aborts() {
    failing_hook_aborts("hfsct", "startContainer", "exit 1", None);
}

/// The init fails after `start` has reached it (here a startContainer
/// hook; capabilities the runtime lacks, a cwd or an execve failing are
/// the same path): `start` itself must fail with the init's error and
/// leave the container stopped, poststart hooks not run (runtime-spec,
/// startContainer: "MUST generate an error, stop the container").
#[test]
fn start_fails_when_the_init_fails_before_exec() {
    let env = TestEnv::new("hfstart");
    let (mut b, logdir) = hook_bundle(&env, &["sh", "-c", "echo process >> /hooklog/log"]);
    add_log_mount(&mut b.config, &logdir);
    b.config["hooks"] = json!({
        "startContainer": [hook("startContainer", &logdir, "exit 3")],
        "poststart": [hook("poststart", &logdir, "")],
    });
    b.save();
    let id = env.id("s");
    env.rt(&["create", "-b", b.path(), &id]).expect_ok("create");
    let out = env.rt(&["start", &id]);
    assert!(!out.ok(), "start succeeded: {out:#?}");
    assert!(out.stderr.contains("startContainer"), "{out:#?}");
    assert_eq!(env.state(&id)["status"], "stopped");
    assert_eq!(log_of(&logdir), ["startContainer"]);
    env.rt(&["delete", &id]).expect_ok("delete");
    env.assert_nothing_left();
}

#[test]
fn hook_timeout_is_a_failure() {
    failing_hook_aborts("hftimeout", "createRuntime", "sleep 30", Some(1));
}

/// poststart/poststop failures only warn: the hooks after the failing one
/// run and the lifecycle goes on.
fn failing_hook_warns(name: &str, kind: &str) {
    let env = TestEnv::new(name);
    let (mut b, logdir) = hook_bundle(&env, &["sh", "-c", "echo process >> /hooklog/log"]);
    add_log_mount(&mut b.config, &logdir);
    let next = format!("{kind}-next");
    b.config["hooks"] = json!({ kind: [hook(kind, &logdir, "exit 1"), hook(&next, &logdir, "")] });
    b.save();
    let id = env.id("hw");
    env.rt(&["create", "-b", b.path(), &id]).expect_ok("create");
    let start = env.rt(&["start", &id]);
    start.expect_ok("start despite failing hook");
    env.wait_for("container ran", || {
        log_of(&logdir).iter().any(|l| l == "process")
    });
    env.wait_for("stopped", || env.state(&id)["status"] == "stopped");
    let delete = env.rt(&["delete", &id]);
    delete.expect_ok("delete despite failing hook");
    let warned = if kind == "poststart" { &start } else { &delete };
    assert!(
        warned.stderr.contains(&format!("hooks.{kind}[0]")),
        "no warning: {warned:#?}"
    );
    let log = log_of(&logdir);
    let pos = |k: &str| log.iter().position(|l| l == k);
    assert!(pos(kind).is_some(), "hook never ran: {log:?}");
    assert!(
        pos(&next) > pos(kind),
        "the hook after the failing one: {log:?}"
    );
    env.assert_nothing_left();
}

#[test]
fn hook_poststart_failure_only_warns() {
    failing_hook_warns("hwpoststart", "poststart");
}

#[test]
fn hook_poststop_failure_only_warns() {
    failing_hook_warns("hwpoststop", "poststop");
}
