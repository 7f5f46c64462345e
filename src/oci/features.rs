//! The runtime-spec "features" document (`rcontain features`): what this
//! build of rcontain on this host can do. Only what is implemented is
//! claimed; what other modules own (cgroups, mount options) is passed in.

use crate::oci::names::json_name;
use crate::oci::specgen;
use crate::process::{capabilities, seccomp};
use oci_spec::runtime::{
    Apparmor, Arch, Cgroup, Features, IDMap, IntelRdt, LinuxFeature, LinuxNamespaceType,
    LinuxSeccompAction as Action, LinuxSeccompFilterFlag as Flag, MountExtensions, Seccomp,
    Selinux,
};
use serde_json::Value;
use std::collections::HashMap;

/// The oldest spec version whose configs rcontain accepts.
pub const OCI_VERSION_MIN: &str = "1.0.0";

/// Mount options `mounts::parse_options` acts on (a test keeps the two in
/// step); options it would pass to the kernel as filesystem data are not
/// listed, as they are not understood by rcontain itself.
const MOUNT_OPTIONS: &[&str] = &[
    "async",
    "atime",
    "bind",
    "defaults",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "lazytime",
    "loud",
    "mand",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "nolazytime",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "private",
    "rbind",
    "rdev",
    "relatime",
    "remount",
    "rexec",
    "rnoatime",
    "rnodev",
    "rnodiratime",
    "rnoexec",
    "rnosuid",
    "ro",
    "rprivate",
    "rrelatime",
    "rro",
    "rrw",
    "rshared",
    "rslave",
    "rstrictatime",
    "rsuid",
    "runbindable",
    "rw",
    "shared",
    "silent",
    "slave",
    "strictatime",
    "suid",
    "sync",
    "tmpcopyup",
    "unbindable",
];

/// The features document. `cgroup` is what the cgroup manager supports
/// (`None` leaves the field out). Fields that do not apply are left out,
/// not null.
pub fn features(cgroup: Option<Cgroup>) -> Value {
    let mut f = Features::default();
    f.set_oci_version_min(OCI_VERSION_MIN.to_string())
        .set_oci_version_max(specgen::OCI_VERSION.to_string())
        .set_hooks(Some(
            [
                "prestart",
                "createRuntime",
                "createContainer",
                "startContainer",
                "poststart",
                "poststop",
            ]
            .map(String::from)
            .to_vec(),
        ))
        .set_mount_options(Some(MOUNT_OPTIONS.iter().map(|o| o.to_string()).collect()))
        .set_annotations(Some(annotations()));

    let mut linux = LinuxFeature::default();
    linux
        .set_namespaces(Some(vec![
            LinuxNamespaceType::Cgroup,
            LinuxNamespaceType::Ipc,
            LinuxNamespaceType::Mount,
            LinuxNamespaceType::Network,
            LinuxNamespaceType::Pid,
            LinuxNamespaceType::Time,
            LinuxNamespaceType::User,
            LinuxNamespaceType::Uts,
        ]))
        .set_capabilities(Some(capabilities::known()))
        .set_cgroup(cgroup)
        .set_seccomp(Some(seccomp_features()))
        .set_apparmor(Some(disabled(Apparmor::default(), Apparmor::set_enabled)))
        .set_selinux(Some(disabled(Selinux::default(), Selinux::set_enabled)))
        .set_intel_rdt(Some(disabled(IntelRdt::default(), IntelRdt::set_enabled)))
        .set_mount_extensions(Some({
            let mut m = MountExtensions::default();
            m.set_idmap(Some(disabled(IDMap::default(), IDMap::set_enabled)));
            m
        }));
    f.set_linux(Some(linux));

    let mut v = serde_json::to_value(&f).expect("features serialize to JSON");
    strip_nulls(&mut v);
    v
}

fn disabled<T>(mut t: T, set: impl FnOnce(&mut T, Option<bool>) -> &mut T) -> T {
    set(&mut t, Some(false));
    t
}

fn annotations() -> HashMap<String, String> {
    let mut a = HashMap::new();
    if let Ok(v) = libseccomp::ScmpVersion::current() {
        a.insert(
            "io.github.seccomp.libseccomp.version".to_string(),
            format!("{}.{}.{}", v.major, v.minor, v.micro),
        );
    }
    a
}

/// Every architecture token of the spec except SCMP_ARCH_NATIVE.
const ARCHS: &[Arch] = &[
    Arch::ScmpArchX86,
    Arch::ScmpArchX86_64,
    Arch::ScmpArchX32,
    Arch::ScmpArchArm,
    Arch::ScmpArchAarch64,
    Arch::ScmpArchMips,
    Arch::ScmpArchMips64,
    Arch::ScmpArchMips64n32,
    Arch::ScmpArchMipsel,
    Arch::ScmpArchMipsel64,
    Arch::ScmpArchMipsel64n32,
    Arch::ScmpArchPpc,
    Arch::ScmpArchPpc64,
    Arch::ScmpArchPpc64le,
    Arch::ScmpArchS390,
    Arch::ScmpArchS390x,
    Arch::ScmpArchParisc,
    Arch::ScmpArchParisc64,
    Arch::ScmpArchRiscv64,
    Arch::ScmpArchLoongarch64,
    Arch::ScmpArchM68k,
    Arch::ScmpArchSh,
    Arch::ScmpArchSheb,
];

fn seccomp_features() -> Seccomp {
    // API levels from seccomp_api_get(3): 3 brings KILL_PROCESS and LOG,
    // 6 user notification.
    let api = libseccomp::get_api();
    let mut actions: Vec<Action> = [
        (0, Action::ScmpActAllow),
        (0, Action::ScmpActErrno),
        (0, Action::ScmpActKill),
        (3, Action::ScmpActKillProcess),
        (0, Action::ScmpActKillThread),
        (3, Action::ScmpActLog),
        (6, Action::ScmpActNotify),
        (0, Action::ScmpActTrace),
        (0, Action::ScmpActTrap),
    ]
    .into_iter()
    .filter(|&(level, _)| api >= level)
    .map(|(_, a)| a)
    .collect();
    actions.sort_by_key(json_name);

    let mut archs: Vec<Arch> = ARCHS
        .iter()
        .copied()
        .filter(|&a| seccomp::arch_supported(a))
        .collect();
    archs.sort_by_key(json_name);

    let names = |flags: &[Flag]| -> Vec<String> { flags.iter().map(json_name).collect() };
    let mut s = Seccomp::default();
    s.set_enabled(Some(true))
        .set_actions(Some(actions))
        .set_operators(Some(
            [
                "SCMP_CMP_EQ",
                "SCMP_CMP_GE",
                "SCMP_CMP_GT",
                "SCMP_CMP_LE",
                "SCMP_CMP_LT",
                "SCMP_CMP_MASKED_EQ",
                "SCMP_CMP_NE",
            ]
            .map(String::from)
            .to_vec(),
        ))
        .set_archs(Some(archs))
        .set_known_flags(Some(names(&[
            Flag::SeccompFilterFlagTsync,
            Flag::SeccompFilterFlagSpecAllow,
            Flag::SeccompFilterFlagLog,
            Flag::SeccompFilterFlagWaitKillableRecv,
        ])))
        .set_supported_flags(Some(names(&seccomp::supported_flags())));
    s
}

/// oci-spec serializes absent optional fields as null; the document
/// leaves them out instead, as runc's does.
fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Value {
        let mut cg = Cgroup::default();
        cg.set_v1(Some(true)).set_v2(Some(false));
        features(Some(cg))
    }

    fn strings(v: &Value) -> Vec<&str> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect()
    }

    fn has_null(v: &Value) -> bool {
        match v {
            Value::Null => true,
            Value::Object(m) => m.values().any(has_null),
            Value::Array(a) => a.iter().any(has_null),
            _ => false,
        }
    }

    #[test]
    fn document_is_a_valid_features_object_without_nulls() {
        let v = doc();
        assert!(!has_null(&v), "{v}");
        let back: Features = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(back.oci_version_max(), specgen::OCI_VERSION);
        assert_eq!(
            v["linux"]["cgroup"],
            serde_json::json!({"v1": true, "v2": false})
        );
        assert_eq!(strings(&v["linux"]["namespaces"]).len(), 8);
        assert_eq!(strings(&v["hooks"]).len(), 6);
    }

    #[test]
    fn unimplemented_features_are_not_claimed() {
        let v = doc();
        for path in ["apparmor", "selinux", "intelRdt"] {
            assert_eq!(v["linux"][path]["enabled"], false, "{path}");
        }
        assert_eq!(v["linux"]["mountExtensions"]["idmap"]["enabled"], false);
        let none = features(None);
        assert!(none["linux"].get("cgroup").is_none());
    }

    #[test]
    fn capabilities_and_seccomp_come_from_the_libraries() {
        let v = doc();
        let caps = strings(&v["linux"]["capabilities"]);
        assert_eq!(caps.len(), caps::all().len());
        assert_eq!(caps[0], "CAP_CHOWN");
        assert!(caps.contains(&"CAP_CHECKPOINT_RESTORE"));
        let s = &v["linux"]["seccomp"];
        assert_eq!(s["enabled"], true);
        assert!(strings(&s["archs"]).contains(&"SCMP_ARCH_X86_64"));
        assert!(strings(&s["actions"]).contains(&"SCMP_ACT_KILL_PROCESS"));
        for f in strings(&s["supportedFlags"]) {
            assert!(strings(&s["knownFlags"]).contains(&f), "{f}");
        }
        let version = &v["annotations"]["io.github.seccomp.libseccomp.version"];
        assert!(version.as_str().unwrap().starts_with("2."), "{version}");
    }

    #[test]
    fn mount_options_are_the_ones_the_mount_code_knows() {
        let v = doc();
        let listed = strings(&v["mountOptions"]);
        assert_eq!(listed.len(), MOUNT_OPTIONS.len());
        for o in listed {
            let parsed = crate::rootfs::mounts::parse_options(&[o.to_string()]);
            assert!(parsed.data.is_empty(), "{o} would go to the kernel as data");
        }
        // The check can fail: an unknown option is passed on as data.
        assert!(!crate::rootfs::mounts::parse_options(&["acl".to_string()])
            .data
            .is_empty());
    }

    /// Same libseccomp, same answers as runc where runc knows the names.
    #[test]
    fn seccomp_agrees_with_runc_features() {
        let Ok(out) = std::process::Command::new("runc").arg("features").output() else {
            eprintln!("skipped: runc is not installed");
            return;
        };
        let runc: Value = serde_json::from_slice(&out.stdout).unwrap();
        let ours = doc();
        let (r, o) = (&runc["linux"]["seccomp"], &ours["linux"]["seccomp"]);
        assert_eq!(o["actions"], r["actions"]);
        assert_eq!(o["operators"], r["operators"]);
        for arch in strings(&r["archs"]) {
            assert!(strings(&o["archs"]).contains(&arch), "{arch}");
        }
        assert_eq!(ours["linux"]["capabilities"], runc["linux"]["capabilities"]);
        assert_eq!(
            ours["annotations"]["io.github.seccomp.libseccomp.version"],
            runc["annotations"]["io.github.seccomp.libseccomp.version"]
        );
    }
}
