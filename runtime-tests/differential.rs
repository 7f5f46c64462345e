//! Differential tests: the same bundle under the reference runtime (runc,
//! or $RUNC_BIN) and under the runtime under test must look the same from
//! inside: hostname, mounts, capabilities, ids, env, cwd, rlimits,
//! namespaces, masked paths, exit code.
//!
//! What legitimately differs is normalised away, each for a stated reason
//! (see `normalise`).

mod common;

use common::host::{self, Skips};
use common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fs;

/// Printed by the container; every section starts with "== name".
const PROBE: &str = r#"
echo "== hostname"; hostname
echo "== domainname"; cat /proc/sys/kernel/domainname
echo "== ids"; id -u; id -g; id -G; umask
echo "== status"; grep -E '^(Uid|Gid|Groups|Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp):' /proc/1/status
echo "== env"; tr '\000' '\n' < /proc/1/environ
echo "== cwd"; readlink /proc/1/cwd
echo "== limits"; cat /proc/1/limits
echo "== oom"; cat /proc/1/oom_score_adj
echo "== ns"; for n in cgroup ipc mnt net pid time user uts; do echo "$n $(readlink /proc/1/ns/$n)"; done
echo "== mounts"; cat /proc/1/mountinfo
echo "== masked"
for p in /proc/acpi /proc/asound /proc/kcore /proc/keys /proc/latency_stats /proc/timer_list \
         /proc/timer_stats /proc/sched_debug /proc/scsi /sys/firmware; do
  if [ -d $p ]; then echo "$p dir $(ls -A $p | wc -l)";
  elif [ -e $p ]; then echo "$p file $(wc -c < $p 2>&1)"; else echo "$p absent"; fi
done
echo "== readonly"
for p in /proc/bus /proc/fs /proc/irq /proc/sys /proc/sysrq-trigger; do
  (echo x > $p/.probe) 2>/dev/null && echo "$p writable" || echo "$p not-writable"
done
echo "== devices"; ls -l /dev | awk '/^[cb]/ {print $1, $3, $4, $5, $6, $NF; next} {print $1, $3, $4, $NF}' | sort
echo "== end"
exit 7
"#;

/// Normalise one probe output so that two runtimes can be compared.
fn normalise(out: &str, bundle: &str) -> BTreeMap<String, Vec<String>> {
    let mut sections: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut cur = String::new();
    for line in out.lines() {
        if let Some(name) = line.strip_prefix("== ") {
            cur = name.to_string();
            sections.entry(cur.clone()).or_default();
            continue;
        }
        let line = match cur.as_str() {
            // Namespace inode numbers are per-instance by nature: only
            // "shared with the host" vs "private" is observable behaviour.
            "ns" => {
                let (n, link) = line.split_once(' ').unwrap_or((line, ""));
                let host = fs::read_link(format!("/proc/self/ns/{n}"))
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default();
                format!("{n} {}", if link == host { "host" } else { "private" })
            }
            // Mount and parent ids and device numbers are allocated by the
            // kernel per mount; the bundle path differs between the two
            // copies. Mount point, options, fstype, source and super
            // options must match, in order.
            "mounts" => {
                let Some((pre, post)) = line.split_once(" - ") else {
                    continue;
                };
                let f: Vec<&str> = pre.split(' ').collect();
                let mut opts: Vec<&str> = f[5].split(',').collect();
                // A read-only rootfs on a nosuid/nodev/noexec mount (the
                // /tmp of many hosts): rcontain's read-only remount keeps
                // those flags of the mount it binds, runc and crun drop
                // them. Only the flags the bundle's mount has are ignored.
                if f[4] == "/" {
                    let kept = source_flags(bundle);
                    opts.retain(|o| !kept.contains(o));
                }
                opts.sort();
                let optional: Vec<&str> = f[6..]
                    .iter()
                    .map(|o| o.split(':').next().unwrap_or(o))
                    .collect();
                format!(
                    "{} {} [{}] - {}",
                    f[4],
                    opts.join(","),
                    optional.join(" "),
                    post.replace(bundle, "BUNDLE")
                )
            }
            // Device node timestamps are creation times. In a user
            // namespace runc creates the ipc namespace before its setgid,
            // so the mqueue root's group is the overflow gid there, while
            // crun and rcontain create it as the namespace's root: the
            // group of that one entry is not compared.
            "devices" if line.ends_with(" mqueue") => {
                let f: Vec<&str> = line.split(' ').collect();
                format!("{} {} GROUP mqueue", f[0], f[1])
            }
            "devices" => line.to_string(),
            _ => line.to_string(),
        };
        sections.entry(cur.clone()).or_default().push(line);
    }
    // The default devices may be bind-mounted (user namespaces) in any
    // order: the spec lists them as a set, and only mountinfo shows it.
    if let Some(m) = sections.get_mut("mounts") {
        let is_dev = |l: &String| {
            DEFAULT_DEVICES
                .iter()
                .any(|d| l.starts_with(&format!("/dev/{d} ")))
        };
        let mut devs: Vec<String> = m.iter().filter(|l| is_dev(l)).cloned().collect();
        devs.sort();
        let mut devs = devs.into_iter();
        for l in m.iter_mut() {
            if is_dev(l) {
                *l = devs.next().unwrap();
            }
        }
    }
    sections
}

/// The nosuid, nodev and noexec flags of the mount `dir` is on.
fn source_flags(dir: &str) -> Vec<&'static str> {
    use nix::sys::statvfs::{statvfs, FsFlags};
    let Ok(st) = statvfs(dir) else {
        return Vec::new();
    };
    [
        (FsFlags::ST_NOSUID, "nosuid"),
        (FsFlags::ST_NODEV, "nodev"),
        (FsFlags::ST_NOEXEC, "noexec"),
    ]
    .into_iter()
    .filter(|(f, _)| st.flags().contains(*f))
    .map(|(_, n)| n)
    .collect()
}

const DEFAULT_DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// Run the probe under `rt` with the config edited by `edit`.
fn probe(
    rt: Runtime,
    name: &str,
    edit: &dyn Fn(&mut Value),
) -> (i32, BTreeMap<String, Vec<String>>) {
    let env = TestEnv::with_runtime(name, rt);
    let mut b = env.bundle(&["sh", "-c", PROBE]);
    edit(&mut b.config);
    b.save();
    let out = env.run(&b);
    assert!(
        out.stdout.contains("== end"),
        "{} did not run the probe: {out:#?}",
        env.rt.name()
    );
    let n = normalise(&out.stdout, b.path());
    env.assert_nothing_left();
    (out.code(), n)
}

fn compare(name: &str, edit: &dyn Fn(&mut Value)) {
    let reference = Runtime::reference();
    let tested = Runtime::under_test();
    let (rc_ref, a) = probe(reference.clone(), &format!("{name}-ref"), edit);
    let (rc_test, b) = probe(tested.clone(), &format!("{name}-test"), edit);
    let mut diffs = Vec::new();
    if rc_ref != rc_test {
        diffs.push(format!(
            "exit code: {} {rc_ref} vs {} {rc_test}",
            reference.name(),
            tested.name()
        ));
    }
    for key in a
        .keys()
        .chain(b.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let (x, y) = (a.get(key), b.get(key));
        if x != y {
            diffs.push(format!(
                "section {key}:\n  {}: {:#?}\n  {}: {:#?}",
                reference.name(),
                x,
                tested.name(),
                y
            ));
        }
    }
    assert_eq!(rc_ref, 7, "probe exit code under {}", reference.name());
    assert!(
        diffs.is_empty(),
        "{} differs from {}:\n{}",
        tested.name(),
        reference.name(),
        diffs.join("\n")
    );
}

#[test]
fn same_as_reference_default_bundle() {
    compare("diffdefault", &|_| {});
}

#[test]
fn same_as_reference_non_root_user_and_extras() {
    let cgroupns = Skips::default().need(
        host::has_namespace("cgroup"),
        "cgroup namespaces: compared without one",
    );
    compare("diffrich", &|c| {
        c["hostname"] = json!("diffbox");
        c["process"]["user"] =
            json!({"uid": 1000, "gid": 1000, "additionalGids": [5, 100], "umask": 18});
        c["process"]["cwd"] = json!("/tmp");
        c["process"]["env"] = json!(["PATH=/bin", "A=1", "B=two words"]);
        c["process"]["oomScoreAdj"] = json!(200);
        c["process"]["rlimits"] = json!([
            {"type": "RLIMIT_NOFILE", "soft": 256, "hard": 512},
            {"type": "RLIMIT_NPROC", "soft": 100, "hard": 200}
        ]);
        c["process"]["capabilities"] = json!({
            "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"],
            "effective": ["CAP_KILL"], "permitted": ["CAP_CHOWN", "CAP_KILL"],
            "inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL"]
        });
        c["root"]["readonly"] = json!(false);
        if cgroupns {
            add_namespace(c, "cgroup");
        }
        c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/data", "type": "tmpfs", "source": "tmpfs",
            "options": ["nosuid", "nodev", "size=2m", "mode=750"]
        }));
    });
}

#[test]
fn same_as_reference_user_namespace() {
    // where the host has none, the reference fails too: only the clean
    // failure is checked
    if !host::has_namespace_type("user") {
        let mut skips = Skips::default();
        for rt in [Runtime::under_test(), Runtime::reference()] {
            let env = TestEnv::with_runtime("diffnouserns", rt);
            host::lacking_namespace_fails(&env, "user", &mut skips);
        }
        return;
    }
    compare("diffuserns", &|c| {
        add_namespace(c, "user");
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    });
}

/// New filesystems with every kind of option: flags that are superblock
/// flags (sync, dirsync, lazytime), mount attributes (noatime, nodiratime,
/// strictatime over noatime, ro), data options, a second devpts, procfs
/// with data. The reference mounts them with mount(2); rcontain through
/// fsopen/fsconfig/fsmount, which must come out the same.
#[test]
fn same_as_reference_typed_mounts() {
    compare("difftyped", &|c| {
        c["root"]["readonly"] = json!(false);
        let tmpfs = |dest: &str, options: Value| json!({"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": options});
        let ms = c["mounts"].as_array_mut().unwrap();
        ms.extend([
            tmpfs("/at1", json!(["noatime", "nodiratime", "nosuid"])),
            tmpfs("/at2", json!(["strictatime", "noatime", "noexec"])),
            tmpfs("/at3", json!(["relatime", "sync", "dirsync", "nodev"])),
            json!({"destination": "/lz", "type": "tmpfs", "source": "mytmp",
                   "options": ["lazytime", "uid=5", "gid=6", "nr_inodes=100", "size=1m", "mode=700"]}),
            json!({"destination": "/mq2", "type": "mqueue", "source": "mqueue", "options": ["ro"]}),
            json!({"destination": "/p2", "type": "proc", "source": "proc",
                   "options": ["nosuid", "hidepid=2"]}),
            json!({"destination": "/s2", "type": "sysfs", "source": "sysfs", "options": ["ro", "nosuid"]}),
            json!({"destination": "/pts2", "type": "devpts", "source": "devpts",
                   "options": ["newinstance", "ptmxmode=0600", "mode=600", "gid=5", "max=10"]}),
        ]);
    });
}
