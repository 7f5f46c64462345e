//! The config.json that `rcontain spec` writes: the same container as
//! `runc spec` (and `runc spec --rootless`) describes, so bundles made by
//! either runtime run the same way under both.

use anyhow::Result;
use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxDeviceCgroupBuilder,
    LinuxIdMappingBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, LinuxResourcesBuilder, Mount,
    MountBuilder, PosixRlimitBuilder, PosixRlimitType, ProcessBuilder, RootBuilder, Spec,
    SpecBuilder, UserBuilder,
};
use serde_json::Value;

/// The spec version rcontain writes: the one its oci-spec types follow.
pub const OCI_VERSION: &str = oci_spec::runtime::VERSION;

/// A shell in a read-only rootfs with new pid, network, ipc, uts and mount
/// namespaces, the three capabilities runc grants by default, and
/// `terminal: true`.
pub fn default_spec() -> Spec {
    build(Caller::Root)
}

/// As [`default_spec`] but runnable by an unprivileged user: a user
/// namespace mapping the caller's uid and gid to root, the host network
/// (no new network namespace: nothing could configure it), /sys bound
/// from the host, no devices cgroup rules and no `gid=5` for devpts.
pub fn rootless_spec() -> Spec {
    build(Caller::Rootless)
}

/// Who the spec is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Caller {
    Root,
    Rootless,
}

/// Serializes a spec as tab-indented JSON like runc's, in a stable order
/// (capability sets sorted; they are sets, held unordered in memory).
pub fn to_pretty_json(spec: &Spec) -> Result<String> {
    let mut v = serde_json::to_value(spec)?;
    if let Some(Value::Object(sets)) = v.pointer_mut("/process/capabilities") {
        for set in sets.values_mut() {
            if let Value::Array(caps) = set {
                caps.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
            }
        }
    }
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    serde::Serialize::serialize(
        &v,
        &mut serde_json::Serializer::with_formatter(&mut out, fmt),
    )?;
    out.push(b'\n');
    Ok(String::from_utf8(out)?)
}

fn build(caller: Caller) -> Spec {
    // Every value below is a constant accepted by the builders, whose only
    // failure is a missing required field: expect() cannot fire. Fields not
    // set come from oci-spec's Default impls (youki's defaults), so those
    // that runc leaves out are cleared explicitly afterwards.
    let mut spec = SpecBuilder::default()
        .version(OCI_VERSION)
        .process(process())
        .root(
            RootBuilder::default()
                .path("rootfs")
                .readonly(true)
                .build()
                .expect("root"),
        )
        .hostname("rcontain")
        .mounts(mounts(caller))
        .linux(linux(caller))
        .build()
        .expect("spec");
    spec.set_annotations(None);
    spec
}

fn process() -> oci_spec::runtime::Process {
    let caps: oci_spec::runtime::Capabilities = [
        Capability::AuditWrite,
        Capability::Kill,
        Capability::NetBindService,
    ]
    .into_iter()
    .collect();
    let mut capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps.clone())
        .ambient(caps)
        .build()
        .expect("capabilities");
    capabilities.set_inheritable(None);
    ProcessBuilder::default()
        .terminal(true)
        .user(
            UserBuilder::default()
                .uid(0u32)
                .gid(0u32)
                .build()
                .expect("user"),
        )
        .args(vec!["sh".to_string()])
        .env(vec![
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
            "TERM=xterm".to_string(),
        ])
        .cwd("/")
        .capabilities(capabilities)
        .rlimits(vec![PosixRlimitBuilder::default()
            .typ(PosixRlimitType::RlimitNofile)
            .hard(1024u64)
            .soft(1024u64)
            .build()
            .expect("rlimit")])
        .no_new_privileges(true)
        .build()
        .expect("process")
}

fn namespaces(caller: Caller) -> Vec<oci_spec::runtime::LinuxNamespace> {
    let rootless = caller == Caller::Rootless;
    let mut namespaces = vec![LinuxNamespaceType::Pid];
    if !rootless {
        namespaces.push(LinuxNamespaceType::Network);
    }
    namespaces.extend([
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
    ]);
    if rootless {
        namespaces.push(LinuxNamespaceType::User);
    }
    namespaces
        .into_iter()
        .map(|t| {
            LinuxNamespaceBuilder::default()
                .typ(t)
                .build()
                .expect("namespace")
        })
        .collect()
}

fn linux(caller: Caller) -> oci_spec::runtime::Linux {
    let rootless = caller == Caller::Rootless;
    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces(caller))
        .masked_paths(oci_spec::runtime::get_default_maskedpaths())
        .readonly_paths(oci_spec::runtime::get_default_readonly_paths());
    if rootless {
        let id_map = |host: u32| {
            vec![LinuxIdMappingBuilder::default()
                .container_id(0u32)
                .host_id(host)
                .size(1u32)
                .build()
                .expect("id mapping")]
        };
        linux = linux
            .uid_mappings(id_map(nix::unistd::geteuid().as_raw()))
            .gid_mappings(id_map(nix::unistd::getegid().as_raw()));
    } else {
        linux = linux.resources(
            LinuxResourcesBuilder::default()
                .devices(vec![LinuxDeviceCgroupBuilder::default()
                    .allow(false)
                    .access("rwm")
                    .build()
                    .expect("device rule")])
                .build()
                .expect("resources"),
        );
    }

    let mut linux = linux.build().expect("linux");
    if rootless {
        linux.set_resources(None);
    }
    linux
}

fn mounts(caller: Caller) -> Vec<Mount> {
    let rootless = caller == Caller::Rootless;
    let m = |dest: &str, typ: &str, source: &str, options: &[&str]| {
        let b = MountBuilder::default()
            .destination(dest)
            .typ(typ)
            .source(source);
        let b = if options.is_empty() {
            b
        } else {
            b.options(options.iter().map(|o| o.to_string()).collect::<Vec<_>>())
        };
        b.build().expect("mount")
    };
    let devpts: &[&str] = if rootless {
        // Group 5 (tty) usually does not exist in a rootless user namespace.
        &[
            "nosuid",
            "noexec",
            "newinstance",
            "ptmxmode=0666",
            "mode=0620",
        ]
    } else {
        &[
            "nosuid",
            "noexec",
            "newinstance",
            "ptmxmode=0666",
            "mode=0620",
            "gid=5",
        ]
    };
    let sys = if rootless {
        // A new sysfs needs a network namespace of one's own.
        m(
            "/sys",
            "none",
            "/sys",
            &["rbind", "nosuid", "noexec", "nodev", "ro"],
        )
    } else {
        m(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        )
    };
    vec![
        m("/proc", "proc", "proc", &[]),
        m(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        m("/dev/pts", "devpts", "devpts", devpts),
        m(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
        m(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        sys,
        m(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", "ro"],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `runc spec` output from runtime-tests/fixtures, with the two
    /// values that name the runtime replaced by rcontain's.
    fn runc_fixture(name: &str) -> Value {
        let path = format!(
            "{}/runtime-tests/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let mut v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(v["hostname"], "runc");
        assert_eq!(v["ociVersion"], "1.0.2-dev");
        v["hostname"] = "rcontain".into();
        v["ociVersion"] = OCI_VERSION.into();
        v
    }

    fn written(spec: &Spec) -> Value {
        serde_json::from_str(&to_pretty_json(spec).unwrap()).unwrap()
    }

    #[test]
    fn default_spec_matches_runc_spec() {
        assert_eq!(written(&default_spec()), runc_fixture("runc-spec.json"));
    }

    #[test]
    fn rootless_spec_matches_runc_spec_rootless() {
        let mut want = runc_fixture("runc-spec-rootless.json");
        // runc maps the user who ran it; the fixture was made as root.
        let (uid, gid) = (nix::unistd::geteuid(), nix::unistd::getegid());
        want["linux"]["uidMappings"][0]["hostID"] = uid.as_raw().into();
        want["linux"]["gidMappings"][0]["hostID"] = gid.as_raw().into();
        assert_eq!(written(&rootless_spec()), want);
    }

    #[test]
    fn output_is_stable_and_tab_indented() {
        let a = to_pretty_json(&default_spec()).unwrap();
        for _ in 0..5 {
            assert_eq!(to_pretty_json(&default_spec()).unwrap(), a);
        }
        assert!(a.contains("\n\t\"ociVersion\": "), "{a}");
        assert!(a.contains(
            "\"bounding\": [\n\t\t\t\t\"CAP_AUDIT_WRITE\",\n\t\t\t\t\"CAP_KILL\",\n\t\t\t\t\"CAP_NET_BIND_SERVICE\"\n"
        ));
        // What is written reads back as the same spec.
        let back: Spec = serde_json::from_str(&a).unwrap();
        assert_eq!(back, default_spec());
    }
}
