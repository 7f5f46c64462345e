//! Loading and validating a bundle's config.json.
//!
//! Everything that can be checked without touching the host is checked
//! here, before any state dir, cgroup or process exists, so that a bad
//! bundle fails `create` with one line naming the field and leaves nothing
//! behind.

use anyhow::{anyhow, bail, Context, Result};
use oci_spec::runtime::{Hooks, Linux, LinuxNamespaceType, Process, Spec};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The runtime-spec versions this runtime implements: any 1.x.
const SUPPORTED_MAJOR: u64 = 1;

/// A validated bundle: its absolute directory, the parsed spec and the
/// absolute rootfs path.
pub struct Bundle {
    pub dir: PathBuf,
    pub spec: Spec,
    pub rootfs: PathBuf,
    /// config.json as it was read and validated: what the state dir keeps
    /// (a copy made later could differ if the file changed meanwhile).
    pub text: String,
}

impl Bundle {
    pub fn load(dir: &Path) -> Result<Bundle> {
        let dir =
            std::fs::canonicalize(dir).with_context(|| format!("bundle {}", dir.display()))?;
        let cfg = dir.join("config.json");
        let text = std::fs::read_to_string(&cfg).with_context(|| format!("{}", cfg.display()))?;
        let spec = parse(&text).map_err(|e| anyhow!("{}: {e}", cfg.display()))?;
        validate(&spec).map_err(|e| anyhow!("{}: {:#}", cfg.display(), e))?;
        let root = spec
            .root()
            .as_ref()
            .ok_or_else(|| anyhow!("{}: root: missing", cfg.display()))?;
        let rootfs = if root.path().is_absolute() {
            root.path().clone()
        } else {
            dir.join(root.path())
        };
        let meta = std::fs::metadata(&rootfs)
            .map_err(|e| anyhow!("{}: root.path {}: {}", cfg.display(), rootfs.display(), e))?;
        if !meta.is_dir() {
            bail!(
                "{}: root.path {}: not a directory",
                cfg.display(),
                rootfs.display()
            );
        }
        let rootfs = std::fs::canonicalize(&rootfs)?;
        Ok(Bundle {
            dir,
            spec,
            rootfs,
            text,
        })
    }
}

/// config.json's text as a spec. A config that does not parse is parsed
/// again by the path-tracking deserializer, for an error naming the field
/// at fault ("process.args: invalid type ..."), not just a line and
/// column: tracking the path of every field costs each start more than
/// the rest of the parse.
fn parse(text: &str) -> Result<Spec, String> {
    serde_json::from_str(text).map_err(|plain| {
        let de = &mut serde_json::Deserializer::from_str(text);
        match serde_path_to_error::deserialize::<_, Spec>(de) {
            Err(e) if e.path().to_string() != "." => format!("{}: {}", e.path(), e.inner()),
            _ => plain.to_string(),
        }
    })
}

/// Checks of the spec alone (no filesystem access), one section at a time
/// in the order of config.json; each error names its field.
pub fn validate(spec: &Spec) -> Result<()> {
    check_version(spec.version())?;
    check_process(spec.process().as_ref())?;
    check_mounts(spec)?;
    if let Some(hooks) = spec.hooks() {
        check_hooks(hooks)?;
    }
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| anyhow!("linux: missing (only Linux containers are supported)"))?;
    let ns = check_namespaces(linux)?;
    check_id_mappings(linux, &ns)?;
    check_uts_names(spec, &ns)?;
    if !ns.new.contains(&LinuxNamespaceType::Time)
        && linux.time_offsets().as_ref().is_some_and(|t| !t.is_empty())
    {
        bail!("linux.timeOffsets: set but no new time namespace is requested");
    }
    for (key, _) in linux.sysctl().iter().flatten() {
        check_sysctl(key, &ns.own)?;
    }
    check_absolute("linux.maskedPaths", linux.masked_paths())?;
    check_absolute("linux.readonlyPaths", linux.readonly_paths())?;
    for (i, d) in linux.devices().iter().flatten().enumerate() {
        if !d.path().is_absolute() {
            bail!(
                "linux.devices[{i}].path: {:?} is not an absolute path",
                d.path()
            );
        }
    }
    Ok(())
}

fn check_process(process: Option<&Process>) -> Result<()> {
    let process = process.ok_or_else(|| anyhow!("process: missing"))?;
    match process.args() {
        Some(a) if !a.is_empty() && !a[0].is_empty() => {}
        _ => bail!("process.args: must contain at least one element"),
    }
    if !process.cwd().is_absolute() {
        bail!("process.cwd: {:?} is not an absolute path", process.cwd());
    }
    for (i, e) in process.env().iter().flatten().enumerate() {
        if !e.contains('=') {
            bail!("process.env[{i}]: {e:?} is not of the form KEY=VALUE");
        }
    }
    Ok(())
}

fn check_mounts(spec: &Spec) -> Result<()> {
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        if !m.destination().is_absolute() {
            bail!(
                "mounts[{i}].destination: {:?} is not an absolute path",
                m.destination()
            );
        }
    }
    Ok(())
}

fn check_hooks(hooks: &Hooks) -> Result<()> {
    let kinds = [
        ("prestart", hooks.prestart()),
        ("createRuntime", hooks.create_runtime()),
        ("createContainer", hooks.create_container()),
        ("startContainer", hooks.start_container()),
        ("poststart", hooks.poststart()),
        ("poststop", hooks.poststop()),
    ];
    for (kind, list) in kinds {
        for (i, h) in list.iter().flatten().enumerate() {
            if !h.path().is_absolute() {
                bail!(
                    "hooks.{kind}[{i}].path: {:?} is not an absolute path",
                    h.path()
                );
            }
            if matches!(h.timeout(), Some(t) if t <= 0) {
                bail!("hooks.{kind}[{i}].timeout: must be greater than zero");
            }
        }
    }
    Ok(())
}

/// The container's namespaces as linux.namespaces lists them.
struct OwnNamespaces {
    /// every type, created or joined by path
    own: HashSet<LinuxNamespaceType>,
    /// the types created new
    new: HashSet<LinuxNamespaceType>,
}

fn check_namespaces(linux: &Linux) -> Result<OwnNamespaces> {
    let mut own = HashSet::new();
    let mut new = HashSet::new();
    for (i, ns) in linux.namespaces().iter().flatten().enumerate() {
        if !own.insert(ns.typ()) {
            bail!(
                "linux.namespaces[{i}]: duplicate namespace type {}",
                ns.typ()
            );
        }
        match ns.path() {
            Some(p) if !p.is_absolute() => {
                bail!("linux.namespaces[{i}].path: {p:?} is not an absolute path")
            }
            Some(_) => {}
            None => {
                new.insert(ns.typ());
            }
        }
    }
    Ok(OwnNamespaces { own, new })
}

/// Id mappings belong to a user namespace, and a new one needs them.
fn check_id_mappings(linux: &Linux, ns: &OwnNamespaces) -> Result<()> {
    let uid = linux.uid_mappings().as_ref().map_or(0, |m| m.len());
    let gid = linux.gid_mappings().as_ref().map_or(0, |m| m.len());
    if ns.new.contains(&LinuxNamespaceType::User) && (uid == 0 || gid == 0) {
        bail!("linux.uidMappings/gidMappings: required when a new user namespace is created");
    }
    if !ns.own.contains(&LinuxNamespaceType::User) && uid + gid > 0 {
        let field = if uid > 0 {
            "uidMappings"
        } else {
            "gidMappings"
        };
        bail!("linux.{field}: set but no user namespace is requested");
    }
    Ok(())
}

/// Hostname and domainname change the namespace the container is in: one
/// of its own, created or joined, never the runtime's.
fn check_uts_names(spec: &Spec, ns: &OwnNamespaces) -> Result<()> {
    for (field, value) in [
        ("hostname", spec.hostname()),
        ("domainname", spec.domainname()),
    ] {
        if value.as_deref().is_some_and(|h| !h.is_empty())
            && !ns.own.contains(&LinuxNamespaceType::Uts)
        {
            bail!("{field}: setting it requires a uts namespace (new or joined)");
        }
    }
    Ok(())
}

/// Paths of the container (linux.maskedPaths, linux.readonlyPaths).
fn check_absolute(field: &str, paths: &Option<Vec<String>>) -> Result<()> {
    for (i, p) in paths.iter().flatten().enumerate() {
        if !p.starts_with('/') {
            bail!("{field}[{i}]: {p:?} is not an absolute path");
        }
    }
    Ok(())
}

fn check_version(v: &str) -> Result<()> {
    let major = v.split('.').next().and_then(|m| m.parse::<u64>().ok());
    let parts = v
        .split(['.', '-', '+'])
        .take(3)
        .filter(|p| p.parse::<u64>().is_ok())
        .count();
    match major {
        Some(SUPPORTED_MAJOR) if parts == 3 => Ok(()),
        Some(_) if parts == 3 => {
            bail!("ociVersion: {v:?} is not supported (this runtime implements 1.x)")
        }
        _ => bail!("ociVersion: {v:?} is not a valid semantic version"),
    }
}

/// A sysctl is namespaced only in some namespaces; setting one the
/// container does not own (`own`: created or joined) would change the
/// host.
fn check_sysctl(key: &str, own: &HashSet<LinuxNamespaceType>) -> Result<()> {
    const IPC: [&str; 7] = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
    ];
    let needs = if IPC.contains(&key) || key.starts_with("fs.mqueue.") {
        LinuxNamespaceType::Ipc
    } else if key.starts_with("net.") {
        LinuxNamespaceType::Network
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        LinuxNamespaceType::Uts
    } else {
        bail!("linux.sysctl: {key:?} is not namespaced and would change the host");
    };
    if !own.contains(&needs) {
        bail!("linux.sysctl: {key:?} requires a {needs} namespace (new or joined)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> serde_json::Value {
        serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
            "linux": {"namespaces": [{"type": "mount"}, {"type": "pid"}]}
        })
    }

    fn check(v: serde_json::Value) -> Result<()> {
        let spec: Spec = serde_json::from_value(v)?;
        validate(&spec)
    }

    #[test]
    fn accepts_minimal() {
        check(base()).unwrap();
    }

    #[test]
    fn a_config_that_does_not_parse_is_reported_by_field() {
        let mut v = base();
        v["process"]["args"] = "sh".into();
        let err = parse(&v.to_string()).map(drop).unwrap_err();
        assert!(err.starts_with("process.args: invalid type"), "{err}");
        let err = parse("{\"ociVersion\": ").map(drop).unwrap_err();
        assert_eq!(
            err,
            "ociVersion: EOF while parsing a value at line 1 column 15"
        );
        let err = parse("1").map(drop).unwrap_err();
        assert!(err.starts_with("invalid type: integer"), "{err}");
        assert!(parse(&base().to_string()).is_ok());
    }

    #[test]
    fn rejects_bad_fields() {
        let cases: Vec<(&str, serde_json::Value, &str)> = vec![
            ("/ociVersion", "2.0.0".into(), "ociVersion"),
            ("/ociVersion", "banana".into(), "ociVersion"),
            ("/process/args", serde_json::json!([]), "process.args"),
            ("/process/cwd", "relative".into(), "process.cwd"),
            (
                "/mounts",
                serde_json::json!([{"destination": "tmp", "type": "tmpfs", "source": "tmpfs"}]),
                "mounts[0].destination",
            ),
            (
                "/linux/namespaces",
                serde_json::json!([{"type": "mount"}, {"type": "mount"}]),
                "duplicate",
            ),
            (
                "/linux/namespaces",
                serde_json::json!([{"type": "mount"}, {"type": "network", "path": "x"}]),
                "namespaces[1].path",
            ),
            ("/hostname", "h".into(), "hostname"),
            (
                "/linux/sysctl",
                serde_json::json!({"net.ipv4.ip_forward": "1"}),
                "net.ipv4.ip_forward",
            ),
            (
                "/linux/sysctl",
                serde_json::json!({"vm.swappiness": "1"}),
                "not namespaced",
            ),
            (
                "/linux/maskedPaths",
                serde_json::json!(["proc/kcore"]),
                "maskedPaths[0]",
            ),
            (
                "/hooks",
                serde_json::json!({"prestart": [{"path": "hook"}]}),
                "hooks.prestart[0].path",
            ),
        ];
        for (ptr, val, want) in cases {
            let mut v = base();
            let (parent, key) = ptr.rsplit_once('/').unwrap();
            let target = if parent.is_empty() {
                &mut v
            } else {
                v.pointer_mut(parent).unwrap()
            };
            target[key] = val;
            let err = match check(v) {
                Err(e) => format!("{e:#}"),
                Ok(()) => panic!("{ptr}: accepted, expected an error about {want:?}"),
            };
            assert!(
                err.contains(want),
                "{ptr}: error {err:?} does not mention {want:?}"
            );
        }
    }

    #[test]
    fn userns_needs_mappings() {
        let mut v = base();
        v["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"type": "user"}));
        assert!(format!("{:#}", check(v.clone()).unwrap_err()).contains("uidMappings"));
        v["linux"]["uidMappings"] =
            serde_json::json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
        v["linux"]["gidMappings"] =
            serde_json::json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
        check(v).unwrap();
    }
}
