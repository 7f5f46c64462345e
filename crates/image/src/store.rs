//! A content-addressed store of unpacked layers, so containers can run
//! straight from an image: each layer is applied once into its own
//! directory (overlayfs form: whiteouts as 0:0 devices, opaque dirs as
//! `trusted.overlay.opaque`), and every container's rootfs is an overlay
//! of its image's layers plus a private upper directory.
//!
//! ```text
//! STORE/lock                       flock: shared by import/create, exclusive for prune
//! STORE/layers/sha256/<chainid>/   one applied layer, named by its ChainID
//! STORE/images/<config hex>.json   image record: names, config, layer chain
//! STORE/containers/<id>/           bundle: config.json, rootfs/ (overlay), upper/, work/, image
//! ```
//!
//! A layer directory is written under a temporary name and renamed into
//! place only when complete and verified, so a crash or a concurrent
//! rcontain never leaves a partial layer under a final name; the loser of
//! a race discards its copy. Layers are named by ChainID (the layer's
//! diff_id chained with those below it) rather than diff_id, since how a
//! layer is laid down depends on the layers under it: it is applied through
//! an overlay of them (see `overlay`), so its directory holds what the
//! kernel copied up from them.
//!
//! Without root (see `rootless`) the store is the user's own, and all of
//! its work runs in a user namespace mapping the user's subordinate ids:
//! layers are applied through overlays mounted there with `userxattr`
//! (opaque directories carry `user.overlay.opaque`), and a container's
//! overlay is mounted by its init in the container's user and mount
//! namespace (`RootfsOverlay`), never in the host's. `STORE/idmap` names
//! the mapping the files' owners were written with.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use nix::fcntl::OFlag;
use nix::mount::{umount2, MntFlags};
use nix::sys::stat::Mode;
use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

use super::blob::{Algorithm, Digest};
use super::inroot::{remove_tree, Rootfs};
use super::layer;
use super::layout::{self, Platform};
use super::rootless::IdMap;
use super::{config, pipeline, unique, Progress, SizeLimits};

pub const DEFAULT_STORE: &str = "/var/lib/rcontain";

/// What the store knows of an image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageRecord {
    /// Config digest: the image's identity.
    pub id: String,
    /// The IMAGE arguments it was imported as.
    pub names: Vec<String>,
    /// Layer directories, bottom first.
    pub chain: Vec<String>,
    /// The verified image config, verbatim.
    pub config: serde_json::Value,
}

pub struct Store {
    root: PathBuf,
    limits: SizeLimits,
    /// Working in a user namespace without root (see the module doc).
    userns: bool,
}

/// A container's rootfs overlay in a rootless store: its image's layer
/// directories (bottom first) and its own upper and work directories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootfsOverlay {
    pub lowers: Vec<PathBuf>,
    pub upper: PathBuf,
    pub work: PathBuf,
}

/// Overlay options in a user namespace: xattrs in the user.overlay.
/// namespace (trusted.* is root's); with it the kernel turns redirect_dir
/// and metacopy off by itself (and refuses them given explicitly).
const IN_USERNS: [(&str, &str); 2] = [("index", "off"), ("userxattr", "")];

impl RootfsOverlay {
    /// Mounts the overlay at `target`; only ever called by a container's
    /// init, in the container's user and mount namespace, where setuid
    /// files act within the namespace's ids alone.
    pub fn mount_at(&self, target: &Path) -> Result<()> {
        let m =
            overlay(&self.lowers, &self.upper, &self.work, &IN_USERNS, 0).with_context(|| {
                format!(
                    "mounting the overlay of {} image layers in the container's user namespace \
                 (Linux 5.11 or later)",
                    self.lowers.len()
                )
            })?;
        rcontain_sys::attach_mount(m.as_fd(), target)
            .with_context(|| format!("attaching the image overlay at {}", target.display()))
    }
}

/// ChainIDs per the image-spec: the first layer's is its diff_id, each
/// next is sha256 of "<previous chainid> <diff_id>".
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => Digest::of(Algorithm::Sha256, format!("{prev} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

fn valid_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b));
    if !ok {
        bail!("container id {id:?}: only letters, digits and . _ - + are allowed");
    }
    Ok(())
}

/// Removes a temporary directory unless disarmed.
struct TempDir(Option<PathBuf>);

/// The layers an import applied (`staged`: index and temporary dir, now
/// at `lowers[i]`) renamed to their final `dirs[i]`.
fn store_staged(staged: Vec<(usize, TempDir)>, lowers: &[PathBuf], dirs: &[PathBuf]) -> Result<()> {
    for (i, mut guard) in staged {
        let final_dir = &dirs[i];
        match fs::rename(&lowers[i], final_dir) {
            // Renamed: nothing for the guard to remove.
            Ok(()) => drop(guard.0.take()),
            // Another rcontain stored the same layer first: keep theirs.
            Err(_) if final_dir.exists() => {}
            Err(e) => return Err(e).with_context(|| format!("storing {}", final_dir.display())),
        }
    }
    Ok(())
}

/// Overlay options that would make an upper directory depend on the exact
/// lowers under it; off where a layer is applied, as its directory is
/// reused under other stacks later.
const REUSABLE_UPPER: [(&str, &str); 3] = [
    ("index", "off"),
    ("metacopy", "off"),
    ("redirect_dir", "off"),
];

/// fsconfig(2) copies at most this many bytes of a value, NUL included.
const FSCONFIG_VALUE_MAX: usize = 256;

/// A detached (mounted nowhere, gone with its fd) overlay of the layer
/// directories `lowers` (bottom first) with `upper` and `work`, plus the
/// options `extra`. Both the store's layer imports and container rootfs
/// mounts use it, so they hold as many layers as the kernel allows.
fn overlay(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    extra: &[(&str, &str)],
    attrs: u64,
) -> Result<OwnedFd> {
    // fsconfig takes at most 256 bytes a value: directories are named by
    // the short /proc/self/fd links of fds held here, and the lowers given
    // one at a time ("lowerdir+", Linux 6.8) where the kernel has that.
    let open = |p: &Path| {
        rcontain_sys::open(
            p,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("opening {}", p.display()))
    };
    let fds: Vec<OwnedFd> = lowers
        .iter()
        .rev()
        .chain([upper.to_path_buf(), work.to_path_buf()].iter())
        .map(|p| open(p))
        .collect::<Result<_>>()?;
    let links: Vec<String> = fds
        .iter()
        .map(|fd| format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .collect();
    let (lower, rest) = links.split_at(lowers.len());
    let fixed: Vec<(&str, &str)> = [
        ("upperdir", rest[0].as_str()),
        ("workdir", rest[1].as_str()),
    ]
    .into_iter()
    .chain(extra.iter().copied())
    .collect();
    let one_by_one: Vec<(&str, &str)> = lower
        .iter()
        .map(|l| ("lowerdir+", l.as_str()))
        .chain(fixed.iter().copied())
        .collect();
    match rcontain_sys::detached_mount("overlay", &one_by_one, attrs) {
        Err(nix::errno::Errno::EINVAL) => {
            // Before Linux 6.8 all lowers share one value.
            let joined = lower.join(":");
            if joined.len() >= FSCONFIG_VALUE_MAX {
                bail!(
                    "{} layers are too many for this kernel's overlayfs: without \
                     lowerdir+ (Linux 6.8) they must fit in one {FSCONFIG_VALUE_MAX}-byte \
                     option, which holds about {}",
                    lowers.len(),
                    FSCONFIG_VALUE_MAX / (lower[0].len() + 1)
                );
            }
            let opts: Vec<(&str, &str)> = [("lowerdir", joined.as_str())]
                .into_iter()
                .chain(fixed.iter().copied())
                .collect();
            Ok(rcontain_sys::detached_mount("overlay", &opts, attrs)?)
        }
        r => Ok(r?),
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = remove_tree(&p);
        }
    }
}

/// How the store's lock is held: shared by imports and bundle creation,
/// exclusive for `prune`, which removes what they may be about to use.
#[derive(Clone, Copy)]
enum Lock {
    Shared,
    Exclusive,
}

impl Store {
    /// Opens (creating if needed) the store at `root`.
    /// Layer directories hold image content as it is: setuid-root files,
    /// device nodes. So the store is closed to everyone but root at its
    /// top (also when it already existed), as docker's is since
    /// CVE-2021-41091, and so is every directory in it.
    pub fn open(root: &Path) -> Result<Store> {
        let private = |p: &Path| {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(p)
                .with_context(|| format!("creating store {}", p.display()))
        };
        private(root)?;
        fs::set_permissions(root, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("making store {} private", root.display()))?;
        for sub in ["layers/sha256", "images", "containers"] {
            private(&root.join(sub))?;
        }
        Ok(Store {
            root: root.to_path_buf(),
            limits: SizeLimits::default(),
            userns: false,
        })
    }

    /// This store is worked on without root, from the user namespace of
    /// `rootless::in_user_namespace` with mapping `map`: the mapping its
    /// files were written with must be this one (else their owners would
    /// shift in containers), which the first use records.
    pub fn in_user_namespace(self, map: &IdMap) -> Result<Store> {
        let p = self.root.join("idmap");
        let want = map.describe();
        match fs::read_to_string(&p) {
            Ok(had) if had.trim() == want => {}
            Ok(had) => bail!(
                "store {}: its files were written with the id mapping {}, but this user's \
                 subordinate ids now give {want}: restore /etc/subuid and /etc/subgid, or \
                 remove the store",
                self.root.display(),
                had.trim()
            ),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::write(&p, format!("{want}\n"))
                    .with_context(|| format!("writing {}", p.display()))?;
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", p.display())),
        }
        Ok(Store {
            userns: true,
            ..self
        })
    }

    /// How far imports may expand (default: `SizeLimits::default()`).
    pub fn with_limits(self, limits: SizeLimits) -> Store {
        Store { limits, ..self }
    }

    fn lock(&self, how: Lock) -> Result<File> {
        let p = self.root.join("lock");
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .with_context(|| format!("opening {}", p.display()))?;
        let op = match how {
            Lock::Shared => libc::LOCK_SH,
            Lock::Exclusive => libc::LOCK_EX,
        };
        rcontain_sys::flock(f.as_fd(), op).context("locking the store")?;
        Ok(f)
    }

    fn layer_dir(&self, chain: &str) -> Result<PathBuf> {
        let d = Digest::parse(chain)?;
        Ok(self
            .root
            .join("layers")
            .join(d.algorithm_name())
            .join(d.hex()))
    }

    fn record_path(&self, id: &str) -> Result<PathBuf> {
        let d = Digest::parse(id)?;
        Ok(self.root.join("images").join(format!("{}.json", d.hex())))
    }

    /// Brings the image named by `image` (as for `unpack`) into the store:
    /// layers not already there are verified and applied; returns its record.
    pub fn import(
        &self,
        image: &str,
        platform: Option<&str>,
        progress: Option<&dyn Progress>,
    ) -> Result<ImageRecord> {
        let _lock = self.lock(Lock::Shared)?;
        self.import_locked(image, platform, progress)
    }

    /// `import`, with the shared lock already held by the caller.
    fn import_locked(
        &self,
        image: &str,
        platform: Option<&str>,
        progress: Option<&dyn Progress>,
    ) -> Result<ImageRecord> {
        let (path, reference) = layout::parse_image_arg(image)?;
        let (platform, explicit) = match platform {
            Some(p) => (Platform::parse(p)?, true),
            None => (Platform::host(), false),
        };
        let img = layout::resolve(&path, &reference, &platform, explicit, self.limits.image)?;
        let chains = chain_ids(&img.config.rootfs.diff_ids);
        let dirs: Vec<PathBuf> = chains
            .iter()
            .map(|c| self.layer_dir(&c.to_string()))
            .collect::<Result<_>>()?;
        let wanted: Vec<bool> = dirs.iter().map(|d| !d.exists()).collect();
        // Layers applied here stay under their temporary names until the
        // whole image is in, so a failed import (a layer over the size
        // limits, a bad digest) leaves no layer behind: where each layer
        // is meanwhile, and the temporary directories to rename.
        let mut lowers = dirs.clone();
        let mut staged: Vec<(usize, TempDir)> = Vec::new();
        pipeline(&img, &wanted, progress, &self.limits, |i, tar, cap| {
            let final_dir = &dirs[i];
            let tmp_name = format!(".{}.tmp-{}", chains[i].hex(), unique());
            let tmp = final_dir.with_file_name(&tmp_name);
            fs::create_dir(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
            staged.push((i, TempDir(Some(tmp.clone()))));
            let stats = if i == 0 {
                layer::apply_layer(&Rootfs::open(&tmp)?, tar, cap)?
            } else {
                let work = final_dir.with_file_name(tmp_name + ".work");
                fs::create_dir(&work).with_context(|| format!("creating {}", work.display()))?;
                let _work = TempDir(Some(work.clone()));
                // Applied through an overlay of the layers below with the
                // flat rules, the layer lands in `tmp` in overlay form by
                // the kernel's own rules, as containerd's overlay
                // snapshotter does it: removals become whiteouts, a
                // directory made anew is opaque, parents and hardlink
                // targets are copied up with their metadata (so a hardlink
                // to a lower layer's file is a hardlink, target and link
                // both in this layer), and symlinks in lower layers resolve
                // as in the container.
                let extra: &[(&str, &str)] = if self.userns {
                    &IN_USERNS
                } else {
                    &REUSABLE_UPPER
                };
                let root = overlay(
                    &lowers[..i],
                    &tmp,
                    &work,
                    extra,
                    libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV,
                )
                .with_context(|| format!("mounting an overlay to apply {}", tmp.display()))?;
                layer::apply_layer(&Rootfs::from_fd(root), tar, cap)?
            };
            lowers[i] = tmp;
            Ok(stats)
        })
        .with_context(|| format!("image {}", img.name))?;
        store_staged(staged, &lowers, &dirs)?;
        self.write_record(image, &img, &chains)
    }

    /// Records the image `img`, imported as `image` with the layers
    /// `chains`, adding `image` to the names of its record.
    fn write_record(
        &self,
        image: &str,
        img: &layout::Image,
        chains: &[Digest],
    ) -> Result<ImageRecord> {
        let id = img.config_digest.to_string();
        let mut names = self.record(&id).map(|r| r.names).unwrap_or_default();
        if !names.contains(&image.to_string()) {
            names.push(image.to_string());
        }
        let rec = ImageRecord {
            id: id.clone(),
            names,
            chain: chains.iter().map(|c| c.to_string()).collect(),
            config: serde_json::from_slice(&img.config_raw).context("image config")?,
        };
        let path = self.record_path(&id)?;
        let tmp = path.with_extension(format!("json.tmp-{}", unique()));
        fs::write(&tmp, serde_json::to_vec_pretty(&rec)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
        Ok(rec)
    }

    fn record(&self, id: &str) -> Result<ImageRecord> {
        let p = self.record_path(id)?;
        let b = fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
        serde_json::from_slice(&b).with_context(|| format!("parsing {}", p.display()))
    }

    /// All image records.
    pub fn images(&self) -> Result<Vec<ImageRecord>> {
        let mut out = Vec::new();
        for e in fs::read_dir(self.root.join("images"))? {
            let name = e?.file_name().to_string_lossy().into_owned();
            if let Some(hex) = name.strip_suffix(".json") {
                out.push(self.record(&format!("sha256:{hex}"))?);
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// Container ids with a bundle in the store, and the image each uses.
    pub fn containers(&self) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        for e in fs::read_dir(self.root.join("containers"))? {
            let e = e?;
            let id = e.file_name().to_string_lossy().into_owned();
            if let Ok(image) = fs::read_to_string(e.path().join("image")) {
                out.push((id, image.trim().to_string()));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Imports `image` and makes a bundle for container `id` whose rootfs
    /// is an overlay of the image's layers and a private upper directory.
    /// Returns the bundle directory.
    pub fn create_bundle(
        &self,
        image: &str,
        platform: Option<&str>,
        id: &str,
        base: &Spec,
        progress: Option<&dyn Progress>,
    ) -> Result<PathBuf> {
        let bundle = self.bundle_path(id)?;
        // One shared lock from import to mount: a prune in between would
        // see the image unused and remove its layers.
        let _lock = self.lock(Lock::Shared)?;
        let rec = self.import_locked(image, platform, progress)?;
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&bundle)
            .map_err(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => {
                    anyhow!("container {id} already has a bundle in the store")
                }
                _ => anyhow!("creating {}: {e}", bundle.display()),
            })?;
        let r = self.fill_bundle(&bundle, &rec, base);
        if r.is_err() {
            let _ = self.remove_bundle(id);
        }
        r.map(|()| bundle)
    }

    fn fill_bundle(&self, bundle: &Path, rec: &ImageRecord, base: &Spec) -> Result<()> {
        for d in ["upper", "work", "rootfs"] {
            fs::create_dir(bundle.join(d))?;
        }
        let dirs: Vec<PathBuf> = rec
            .chain
            .iter()
            .map(|c| self.layer_dir(c))
            .collect::<Result<_>>()?;
        let rootfs = bundle.join("rootfs");
        // The host's view of the rootfs: its setuid files and device nodes
        // do nothing there (the container's own mount of it clears both
        // flags in its mount namespace, see CreateOpts::image_rootfs).
        // Without root nothing is mounted on the host: the overlay here,
        // mounted nowhere, only serves to read the image's /etc/passwd.
        let extra: &[(&str, &str)] = if self.userns { &IN_USERNS } else { &[] };
        let merged = overlay(
            &dirs,
            &bundle.join("upper"),
            &bundle.join("work"),
            extra,
            libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV,
        )
        .and_then(|m| {
            if !self.userns {
                rcontain_sys::attach_mount(m.as_fd(), &rootfs)?;
            }
            Ok(m)
        })
        .with_context(|| {
            format!(
                "mounting the overlay of {} layers at {}",
                dirs.len(),
                rootfs.display()
            )
        })?;
        // Mark before anything else can fail, so remove_bundle unmounts.
        fs::write(bundle.join("image"), &rec.id)?;
        let img: config::ImageConfig =
            serde_json::from_value(rec.config.clone()).context("image config")?;
        let root = if self.userns {
            Rootfs::from_fd(merged)
        } else {
            drop(merged);
            Rootfs::open(&rootfs)?
        };
        let spec = config::runtime_spec(base.clone(), &img, &root)?;
        fs::write(
            bundle.join("config.json"),
            serde_json::to_vec_pretty(&spec)?,
        )?;
        Ok(())
    }

    /// Where container `id`'s bundle is (or would be).
    pub fn bundle_path(&self, id: &str) -> Result<PathBuf> {
        valid_id(id)?;
        Ok(self.root.join("containers").join(id))
    }

    /// The rootfs overlay of container `id`'s bundle in a rootless store,
    /// for its init to mount (`RootfsOverlay::mount_at`).
    pub fn rootfs_overlay(&self, id: &str) -> Result<RootfsOverlay> {
        let bundle = self.bundle_path(id)?;
        let p = bundle.join("image");
        let image = fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
        let rec = self.record(image.trim())?;
        Ok(RootfsOverlay {
            lowers: rec
                .chain
                .iter()
                .map(|c| self.layer_dir(c))
                .collect::<Result<_>>()?,
            upper: bundle.join("upper"),
            work: bundle.join("work"),
        })
    }

    /// Unmounts and removes container `id`'s bundle; absent is fine.
    pub fn remove_bundle(&self, id: &str) -> Result<()> {
        let bundle = self.bundle_path(id)?;
        if !bundle.exists() {
            return Ok(());
        }
        match umount2(&bundle.join("rootfs"), MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => {
                return Err(anyhow!(
                    "unmounting {}: {e}",
                    bundle.join("rootfs").display()
                ))
            }
        }
        remove_tree(&bundle).with_context(|| format!("removing {}", bundle.display()))
    }

    /// Removes images no container uses, then layers no image uses and
    /// leftovers of interrupted imports. Returns what was removed.
    pub fn prune(&self) -> Result<Vec<String>> {
        let _lock = self.lock(Lock::Exclusive)?;
        let used: BTreeSet<String> = self.containers()?.into_iter().map(|(_, i)| i).collect();
        let mut removed = Vec::new();
        let mut keep_chains = BTreeSet::new();
        for rec in self.images()? {
            if used.contains(&rec.id) {
                keep_chains.extend(rec.chain.iter().cloned());
            } else {
                fs::remove_file(self.record_path(&rec.id)?)?;
                removed.push(format!("image {}", rec.id));
            }
        }
        for dir in [self.root.join("layers/sha256"), self.root.join("images")] {
            for e in fs::read_dir(&dir)? {
                let e = e?;
                let name = e.file_name().to_string_lossy().into_owned();
                let stale_tmp = name.contains(".tmp-");
                let unused_layer = dir.ends_with("sha256")
                    && !stale_tmp
                    && !keep_chains.contains(&format!("sha256:{name}"));
                if stale_tmp || unused_layer {
                    if e.file_type()?.is_dir() {
                        remove_tree(&e.path())?;
                    } else {
                        fs::remove_file(e.path())?;
                    }
                    removed.push(if stale_tmp {
                        format!("leftover {}", e.path().display())
                    } else {
                        format!("layer sha256:{name}")
                    });
                }
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_image_spec() {
        let a = Digest::of(Algorithm::Sha256, b"a");
        let b = Digest::of(Algorithm::Sha256, b"b");
        let c = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(c[0], a);
        assert_eq!(
            c[1],
            Digest::of(Algorithm::Sha256, format!("{a} {b}").as_bytes())
        );
        assert_ne!(chain_ids(&[b, a])[1], c[1]);
    }

    #[test]
    fn container_ids_are_checked() {
        assert!(valid_id("web-1.a_b+c").is_ok());
        for bad in ["", "../x", "a/b", ".hidden", "a b"] {
            assert!(valid_id(bad).is_err(), "{bad}");
        }
    }
}
