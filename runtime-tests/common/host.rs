//! What this host's kernel offers, for tests that need more than every
//! supported host has (a cgroup file such as blkio.weight, a namespace
//! type, a seccomp action, clone3 CLONE_INTO_CGROUP, overlayfs lowerdir+).
//! Each probe asks the kernel itself, never a version number or a
//! distribution's defaults: the suite must pass on any kernel build.
//!
//! Where a capability is missing a test still checks what the runtime must
//! do there (a clean failure naming the field, nothing left behind) and
//! reports the rest through `Skips`: one `skipped: host lacks ...` line.

use rcontain::cgroups::{self, Mode};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// What one test could not check on this host; dropping it prints a single
/// `skipped: host lacks A, B` line (nothing when everything was there).
#[derive(Default)]
pub struct Skips(Vec<String>);

impl Skips {
    /// Record that the host lacks `what` (said as "the X that Y needs").
    pub fn lack(&mut self, what: impl Into<String>) {
        let what = what.into();
        if !self.0.contains(&what) {
            self.0.push(what);
        }
    }

    /// `have`, recording `what` as lacking when it is false.
    pub fn need(&mut self, have: bool, what: impl Into<String>) -> bool {
        if !have {
            self.lack(what);
        }
        have
    }
}

impl Drop for Skips {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            eprintln!("skipped: host lacks {}", self.0.join(", "));
        }
    }
}

/// The host's cgroup layout.
pub fn cgroup_mode() -> Mode {
    static MODE: OnceLock<Mode> = OnceLock::new();
    *MODE.get_or_init(|| cgroups::detect().expect("detect the cgroup layout"))
}

/// Whether a cgroup2 hierarchy exists (v2, or hybrid's `unified`).
pub fn has_cgroup2() -> bool {
    cgroup_mode() != Mode::V1
}

/// The files a new cgroup gets on this host, over every hierarchy: found
/// by making an empty cgroup of our own below each hierarchy's root (what
/// a container's cgroup gets too: files such as blkio.weight exist only
/// below the root), listing it and removing it again. Once per process.
pub fn cgroup_files() -> &'static BTreeSet<String> {
    static FILES: OnceLock<BTreeSet<String>> = OnceLock::new();
    FILES.get_or_init(|| {
        let roots: Vec<PathBuf> = match cgroup_mode() {
            Mode::V2 => {
                // A container's cgroup gets every controller the root has:
                // rcontain hands them all down (as runc), so the probe must
                // not depend on whether a container started before it.
                let root = Path::new(cgroups::ROOT);
                let all =
                    std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
                for c in all.split_whitespace() {
                    let _ = std::fs::write(root.join("cgroup.subtree_control"), format!("+{c}"));
                }
                vec![root.to_path_buf()]
            }
            _ => cgroups::v1_hierarchies()
                .expect("list the cgroup v1 hierarchies")
                .into_iter()
                .map(|h| h.mount)
                .chain(Some(Path::new(cgroups::ROOT).join("unified")).filter(|_| has_cgroup2()))
                .collect(),
        };
        let mut files = BTreeSet::new();
        for root in roots {
            let probe = root.join(format!("rcontain-hostprobe-{}", std::process::id()));
            if std::fs::create_dir(&probe).is_err() {
                continue;
            }
            if let Ok(rd) = std::fs::read_dir(&probe) {
                files.extend(
                    rd.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned()),
                );
            }
            let _ = std::fs::remove_dir(&probe);
        }
        files
    })
}

/// Whether a container's cgroup gets `file` (e.g. "blkio.weight").
pub fn cgroup_has(file: &str) -> bool {
    cgroup_files().contains(file)
}

/// The cgroup files that take blockIO.weight here: BFQ's or the
/// CFQ-era/io.cost one, whichever the kernel offers (none without BFQ on
/// v1, without BFQ or io.cost on v2).
pub fn blkio_weight_files() -> Vec<&'static str> {
    let candidates: &[&'static str] = match cgroup_mode() {
        Mode::V2 => &["io.bfq.weight", "io.weight"],
        _ => &["blkio.bfq.weight", "blkio.weight"],
    };
    candidates
        .iter()
        .copied()
        .filter(|f| cgroup_has(f))
        .collect()
}

/// The name of the file a memory+swap limit goes to on this layout, and
/// whether the host has it (swap accounting).
pub fn swap_file() -> (&'static str, bool) {
    let f = match cgroup_mode() {
        Mode::V2 => "memory.swap.max",
        _ => "memory.memsw.limit_in_bytes",
    };
    (f, cgroup_has(f))
}

/// Whether swap is in use: without swap accounting, a memory-hungry test
/// would push a container into the host's swap instead of hitting an OOM.
pub fn swap_active() -> bool {
    std::fs::read_to_string("/proc/swaps")
        .map(|s| s.lines().count() > 1)
        .unwrap_or(false)
}

/// Whether the kernel has namespaces of type `ns` ("time", "cgroup", ...,
/// as named in /proc/self/ns).
pub fn has_namespace(ns: &str) -> bool {
    Path::new("/proc/self/ns").join(ns).exists()
}

/// Whether root may create a user namespace here (the type exists and
/// user.max_user_namespaces does not forbid it).
pub fn has_user_namespaces() -> bool {
    has_namespace("user")
        && std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
            .map(|s| s.trim() != "0")
            .unwrap_or(true)
}

/// Whether seccomp filters may use `action` as the kernel names it in
/// actions_avail ("errno", "user_notif", "log", ...).
pub fn has_seccomp_action(action: &str) -> bool {
    std::fs::read_to_string("/proc/sys/kernel/seccomp/actions_avail")
        .map(|s| s.split_whitespace().any(|a| a == action))
        .unwrap_or(false)
}

/// Whether clone3 takes CLONE_INTO_CGROUP here (Linux 5.7, and not denied
/// by a seccomp profile around the tests).
pub fn has_clone_into_cgroup() -> bool {
    rcontain::sys::clone_into_cgroup_probe().is_ok()
}

/// Whether overlayfs takes lower layers one at a time ("lowerdir+", Linux
/// 6.8): without it, images of more than about 14 layers cannot be mounted.
pub fn has_overlay_lowerdir_plus() -> bool {
    rcontain::sys::fs_accepts_option("overlay", "lowerdir+", "/").is_ok()
}

/// /proc/self/ns's name for the spec's namespace `typ` ("network" is "net").
pub fn proc_ns_name(typ: &str) -> &str {
    match typ {
        "network" => "net",
        "mount" => "mnt",
        t => t,
    }
}

/// Whether the host can make a namespace of the spec's type `typ`.
pub fn has_namespace_type(typ: &str) -> bool {
    match typ {
        "user" => has_user_namespaces(),
        t => has_namespace(proc_ns_name(t)),
    }
}

/// For a namespace type the host lacks: `create` of a bundle asking for it
/// must fail with one line naming linux.namespaces and the type, and leave
/// nothing behind. Returns false (checking nothing) when the host has it.
pub fn lacking_namespace_fails(env: &super::TestEnv, typ: &str, skips: &mut Skips) -> bool {
    if has_namespace_type(typ) {
        return false;
    }
    let mut b = env.bundle(&["true"]);
    super::add_namespace(&mut b.config, typ);
    if typ == "user" {
        let map = serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        b.config["linux"]["uidMappings"] = map.clone();
        b.config["linux"]["gidMappings"] = map;
    }
    b.save();
    let id = env.id("nons");
    let out = env.rt(&["create", "-b", b.path(), &id]);
    assert!(!out.ok(), "create with a {typ} namespace worked: {out:?}");
    if env.rt.is_rcontain() {
        let name = if typ == "mount" { "mnt" } else { typ };
        assert!(
            out.stderr.contains("linux.namespaces[")
                && out.stderr.contains(&format!("{name} namespace"))
                && out.stderr.trim().lines().count() == 1,
            "{out:?}"
        );
    }
    env.assert_nothing_left();
    skips.lack(format!("{typ} namespaces"));
    true
}
