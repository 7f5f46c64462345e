//! Image config -> runtime config.json, per the image-spec's "Conversion to
//! OCI Runtime Configuration": Entrypoint+Cmd, Env, WorkingDir and User
//! become process settings; os/architecture/author/created/StopSignal,
//! Labels, ExposedPorts and Volumes become annotations.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use oci_spec::runtime::{Process, Spec, User};
use serde::Deserialize;

use super::blob::Digest;
use super::inroot::Rootfs;

/// The parts of an image config (OCI or Docker) that matter here. Docker
/// writes `null` for empty lists and maps, hence the Options.
#[derive(Debug, Default, Deserialize)]
pub struct ImageConfig {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    pub variant: Option<String>,
    #[serde(rename = "os.version")]
    pub os_version: Option<String>,
    #[serde(rename = "os.features")]
    pub os_features: Option<Vec<String>>,
    pub author: Option<String>,
    pub created: Option<String>,
    pub config: Option<ContainerConfig>,
    #[serde(default)]
    pub rootfs: RootfsJson,
}

#[derive(Debug, Default, Deserialize)]
pub struct RootfsJson {
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    pub user: Option<String>,
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    pub env: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    pub working_dir: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
    pub stop_signal: Option<String>,
}

pub const ANN_EXPOSED_PORTS: &str = "org.opencontainers.image.exposedPorts";
/// The image-spec has no annotation for volumes; this records them so a
/// caller can provide mounts.
pub const ANN_VOLUMES: &str = "io.rcontain.image.volumes";

/// Largest /etc/passwd or /etc/group we read.
const MAX_DB: u64 = 16 << 20;

/// The runtime spec for running `img` unpacked at `rootfs`, starting from
/// the runtime's defaults `base`.
pub fn runtime_spec(mut base: Spec, img: &ImageConfig, rootfs: &Rootfs) -> Result<Spec> {
    let empty = ContainerConfig::default();
    let c = img.config.as_ref().unwrap_or(&empty);
    let process = process(c, base.process().clone().unwrap_or_default(), rootfs)?;
    base.set_process(Some(process));

    let mut root = base.root().clone().unwrap_or_default();
    root.set_path(PathBuf::from("rootfs"));
    base.set_root(Some(root));

    let ann = annotations(img, c, base.annotations().clone().unwrap_or_default());
    base.set_annotations(Some(ann));
    Ok(base)
}

/// The runtime's default `process` with the image's command, environment,
/// working directory and user.
fn process(c: &ContainerConfig, mut process: Process, rootfs: &Rootfs) -> Result<Process> {
    let mut args = c.entrypoint.clone().unwrap_or_default();
    args.extend(c.cmd.clone().unwrap_or_default());
    if args.is_empty() {
        bail!("image config: neither config.Entrypoint nor config.Cmd is set, nothing to run");
    }
    process.set_args(Some(args));

    let image_env = c.env.clone().unwrap_or_default();
    let var = |e: &str| e.split('=').next().unwrap_or("").to_string();
    let names: Vec<String> = image_env.iter().map(|e| var(e)).collect();
    let mut env = image_env.clone();
    // Runtime defaults (PATH, TERM) only fill in what the image left unset.
    for d in process.env().clone().unwrap_or_default() {
        if !names.contains(&var(&d)) {
            env.push(d);
        }
    }
    process.set_env(Some(env));

    let cwd = c
        .working_dir
        .as_deref()
        .filter(|w| !w.is_empty())
        .unwrap_or("/");
    if !cwd.starts_with('/') {
        bail!("image config: config.WorkingDir {cwd:?} is not an absolute path");
    }
    process.set_cwd(PathBuf::from(cwd));
    // Images run non-interactively by default; a terminal is opt-in.
    process.set_terminal(Some(false));

    if let Some(u) = c.user.as_deref().filter(|u| !u.is_empty()) {
        let db = UserDb::load(rootfs)?;
        let user = resolve_user(u, &db).context("image config: config.User")?;
        process.set_user(user);
    }
    Ok(process)
}

/// The runtime's default annotations `ann` with the image's metadata and
/// labels.
fn annotations(
    img: &ImageConfig,
    c: &ContainerConfig,
    mut ann: HashMap<String, String>,
) -> HashMap<String, String> {
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            ann.insert(k.to_string(), v);
        }
    };
    put("org.opencontainers.image.os", Some(img.os.clone()));
    put(
        "org.opencontainers.image.architecture",
        Some(img.architecture.clone()),
    );
    put("org.opencontainers.image.variant", img.variant.clone());
    put(
        "org.opencontainers.image.os.version",
        img.os_version.clone(),
    );
    put(
        "org.opencontainers.image.os.features",
        img.os_features.as_ref().map(|f| f.join(",")),
    );
    put("org.opencontainers.image.author", img.author.clone());
    put("org.opencontainers.image.created", img.created.clone());
    put("org.opencontainers.image.stopSignal", c.stop_signal.clone());
    let keys = |m: &Option<BTreeMap<String, serde_json::Value>>| {
        m.as_ref()
            .map(|m| m.keys().cloned().collect::<Vec<_>>().join(","))
    };
    put(ANN_EXPOSED_PORTS, keys(&c.exposed_ports));
    put(ANN_VOLUMES, keys(&c.volumes));
    // Labels come last: they take precedence over implicit annotations.
    for (k, v) in c.labels.iter().flatten() {
        ann.insert(k.clone(), v.clone());
    }
    ann
}

/// Entries of the image's own /etc/passwd and /etc/group.
#[derive(Debug, Default)]
pub struct UserDb {
    /// (name, uid, gid)
    users: Vec<(String, u32, u32)>,
    /// (name, gid, members)
    groups: Vec<(String, u32, Vec<String>)>,
}

impl UserDb {
    /// Reads the files through the rootfs with symlinks confined to it; a
    /// missing file is an empty database.
    pub fn load(rootfs: &Rootfs) -> Result<UserDb> {
        let read = |p: &str| -> Result<String> {
            match rootfs.open_file_in_root(Path::new(p)) {
                Ok(f) => {
                    let mut s = String::new();
                    f.take(MAX_DB)
                        .read_to_string(&mut s)
                        .with_context(|| format!("reading the image's /{p}"))?;
                    Ok(s)
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
                Err(e) => Err(anyhow!("reading the image's /{p}: {e}")),
            }
        };
        Ok(UserDb::parse(&read("etc/passwd")?, &read("etc/group")?))
    }

    pub fn parse(passwd: &str, group: &str) -> UserDb {
        let users = rcontain_sys::passwd::users(passwd)
            .map(|u| (u.name.to_string(), u.uid, u.gid))
            .collect();
        let groups = rcontain_sys::passwd::groups(group)
            .map(|g| {
                let members = g.members.iter().map(|m| m.to_string()).collect();
                (g.name.to_string(), g.gid, members)
            })
            .collect();
        UserDb { users, groups }
    }
}

/// Resolves `user`, `uid`, `user:group`, `uid:gid` (and mixes) as the
/// image-spec says: numbers verbatim, names through the image's files;
/// supplementary groups only for a named user without an explicit group.
pub fn resolve_user(spec: &str, db: &UserDb) -> Result<User> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let mut user = User::default();
    let (uid, primary, name) = if let Ok(uid) = u.parse::<u32>() {
        let gid = db
            .users
            .iter()
            .find(|e| e.1 == uid)
            .map(|e| e.2)
            .unwrap_or(0);
        (uid, gid, None)
    } else {
        let e = db
            .users
            .iter()
            .find(|e| e.0 == u)
            .ok_or_else(|| anyhow!("user {u:?} is not in the image's /etc/passwd"))?;
        (e.1, e.2, Some(e.0.clone()))
    };
    user.set_uid(uid);
    match g {
        Some(g) => {
            let gid = match g.parse::<u32>() {
                Ok(gid) => gid,
                Err(_) => db
                    .groups
                    .iter()
                    .find(|e| e.0 == g)
                    .map(|e| e.1)
                    .ok_or_else(|| anyhow!("group {g:?} is not in the image's /etc/group"))?,
            };
            user.set_gid(gid);
        }
        None => {
            user.set_gid(primary);
            if let Some(name) = name {
                let mut extra: Vec<u32> = db
                    .groups
                    .iter()
                    .filter(|e| e.1 != primary && e.2.contains(&name))
                    .map(|e| e.1)
                    .collect();
                extra.dedup();
                if !extra.is_empty() {
                    user.set_additional_gids(Some(extra));
                }
            }
        }
    }
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
        # comment\n\
        app:x:1000:1000::/home/app:/bin/sh\n\
        web:x:33:33::/var/www:/bin/false\n\
        broken:line\n";
    const GROUP: &str = "root:x:0:\n\
        app:x:1000:\n\
        wheel:x:10:app,web\n\
        audio:x:29:web, app\n\
        www:x:33:\n";

    fn db() -> UserDb {
        UserDb::parse(PASSWD, GROUP)
    }

    fn ids(u: &User) -> (u32, u32, Vec<u32>) {
        (
            u.uid(),
            u.gid(),
            u.additional_gids().clone().unwrap_or_default(),
        )
    }

    #[test]
    fn named_user_gets_primary_and_supplementary_groups() {
        assert_eq!(
            ids(&resolve_user("app", &db()).unwrap()),
            (1000, 1000, vec![10, 29])
        );
        assert_eq!(ids(&resolve_user("root", &db()).unwrap()), (0, 0, vec![]));
    }

    #[test]
    fn numeric_ids_are_verbatim_without_supplementary_groups() {
        assert_eq!(
            ids(&resolve_user("1000", &db()).unwrap()),
            (1000, 1000, vec![])
        );
        assert_eq!(
            ids(&resolve_user("4242", &db()).unwrap()),
            (4242, 0, vec![])
        );
        assert_eq!(
            ids(&resolve_user("4242:77", &db()).unwrap()),
            (4242, 77, vec![])
        );
    }

    #[test]
    fn user_group_forms() {
        assert_eq!(
            ids(&resolve_user("app:wheel", &db()).unwrap()),
            (1000, 10, vec![])
        );
        assert_eq!(ids(&resolve_user("web:5", &db()).unwrap()), (33, 5, vec![]));
        assert_eq!(ids(&resolve_user("7:www", &db()).unwrap()), (7, 33, vec![]));
    }

    #[test]
    fn unknown_names_are_errors() {
        let e = resolve_user("nobody", &db()).unwrap_err().to_string();
        assert!(
            e.contains("\"nobody\" is not in the image's /etc/passwd"),
            "{e}"
        );
        let e = resolve_user("app:staff", &db()).unwrap_err().to_string();
        assert!(
            e.contains("\"staff\" is not in the image's /etc/group"),
            "{e}"
        );
        assert!(resolve_user("broken", &db()).is_err());
    }

    fn rootfs_with(passwd: &str, group: &str) -> (tempfile::TempDir, Rootfs) {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("etc")).unwrap();
        std::fs::write(t.path().join("etc/passwd"), passwd).unwrap();
        std::fs::write(t.path().join("etc/group"), group).unwrap();
        let r = Rootfs::open(t.path()).unwrap();
        (t, r)
    }

    fn image(config: serde_json::Value) -> ImageConfig {
        serde_json::from_value(config).unwrap()
    }

    #[test]
    fn conversion_follows_the_image_spec() {
        let (_t, r) = rootfs_with(PASSWD, GROUP);
        let img = image(serde_json::json!({
            "architecture": "amd64", "os": "linux", "author": "me",
            "created": "1970-01-01T00:00:00Z",
            "config": {
                "User": "app", "Entrypoint": ["/bin/sh", "-c"], "Cmd": ["echo hi"],
                "Env": ["PATH=/bin", "A=1"], "WorkingDir": "/srv",
                "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
                "Volumes": {"/data": {}},
                "StopSignal": "SIGINT",
                "Labels": {"k": "v", "org.opencontainers.image.author": "label wins"}
            },
            "rootfs": {"type": "layers", "diff_ids": []}
        }));
        let spec = runtime_spec(Spec::default(), &img, &r).unwrap();
        let p = spec.process().as_ref().unwrap();
        assert_eq!(p.args().as_ref().unwrap(), &["/bin/sh", "-c", "echo hi"]);
        let env = p.env().as_ref().unwrap();
        assert_eq!(&env[..2], &["PATH=/bin", "A=1"]);
        assert_eq!(env.iter().filter(|e| e.starts_with("PATH=")).count(), 1);
        assert_eq!(p.cwd(), Path::new("/srv"));
        assert_eq!((p.user().uid(), p.user().gid()), (1000, 1000));
        let a = spec.annotations().as_ref().unwrap();
        assert_eq!(a["org.opencontainers.image.stopSignal"], "SIGINT");
        assert_eq!(a[ANN_EXPOSED_PORTS], "53/udp,80/tcp");
        assert_eq!(a[ANN_VOLUMES], "/data");
        assert_eq!(a["org.opencontainers.image.author"], "label wins");
        assert_eq!(a["org.opencontainers.image.os"], "linux");
        assert_eq!(a["k"], "v");
        assert_eq!(spec.root().as_ref().unwrap().path(), Path::new("rootfs"));
    }

    #[test]
    fn conversion_errors_name_the_field() {
        let (_t, r) = rootfs_with(PASSWD, GROUP);
        let e = runtime_spec(
            Spec::default(),
            &image(serde_json::json!({"config": {}})),
            &r,
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("config.Entrypoint"), "{e:#}");
        let img = image(serde_json::json!({"config": {"Cmd": ["x"], "User": "ghost"}}));
        let e = format!("{:#}", runtime_spec(Spec::default(), &img, &r).unwrap_err());
        assert!(e.contains("config.User") && e.contains("ghost"), "{e}");
        let img = image(serde_json::json!({"config": {"Cmd": ["x"], "WorkingDir": "rel"}}));
        let e = format!("{:#}", runtime_spec(Spec::default(), &img, &r).unwrap_err());
        assert!(e.contains("config.WorkingDir"), "{e}");
    }

    #[test]
    fn docker_nulls_parse() {
        let img = image(serde_json::json!({
            "config": {"Cmd": ["sh"], "Env": null, "Entrypoint": null, "Labels": null,
                       "ExposedPorts": null, "Volumes": null}
        }));
        let (_t, r) = rootfs_with("", "");
        let spec = runtime_spec(Spec::default(), &img, &r).unwrap();
        assert_eq!(
            spec.process().as_ref().unwrap().args().as_ref().unwrap(),
            &["sh"]
        );
    }
}
