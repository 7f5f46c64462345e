//! `run`: the positional argument is an id, or (containing '/', or '.') a
//! bundle directory whose name becomes the id.

use super::CreateArgs;
use anyhow::Result;
use rcontain::container::{CreateOpts, Runtime};
use rcontain::image::rootless::{self, IdMap};
use rcontain::image::store::Store;
use rcontain::image::SizeLimits;
use rcontain::rootfs::ImageRootfs;
use std::path::Path;

/// Running from an image: where the store is, and `--image`/`--platform`.
pub struct ImageRun<'a> {
    pub store: &'a Path,
    pub image: Option<String>,
    pub platform: Option<String>,
    pub limits: SizeLimits,
}

/// Whether `arg` names an image rather than a bundle: an archive file, or
/// a directory with an index.json and no config.json (optionally
/// followed by :TAG or @DIGEST).
fn is_image(arg: &str) -> bool {
    let Ok((path, _)) = rcontain::image::layout::parse_image_arg(arg) else {
        return false;
    };
    path.is_file() || (path.join("index.json").is_file() && !path.join("config.json").exists())
}

pub fn run(rt: &Runtime, args: &CreateArgs, detach: bool, arg: &str, img: ImageRun) -> Result<i32> {
    let image = match &img.image {
        Some(i) => Some((i.clone(), arg.to_string())),
        None if is_image(arg) => {
            let (path, _) = rcontain::image::layout::parse_image_arg(arg)?;
            Some((arg.to_string(), unique_id(rt, &path)))
        }
        None => None,
    };
    if let Some((image, id)) = image {
        if !cfg!(feature = "image") {
            return Err(super::without_image());
        }
        return run_image(rt, args, detach, &image, &id, &img);
    }
    let mut args = args.clone();
    let id = if arg.contains('/') || arg == "." {
        args.bundle = arg.into();
        unique_id(rt, &args.bundle)
    } else {
        arg.to_string()
    };
    rcontain::container::foreground::run(rt, &args.opts(&id), detach)
}

/// Imports the image into the store, makes the container's overlay
/// bundle there and runs it; in the foreground the bundle goes when the
/// container does (for a detached one, on `delete`). Without root all
/// store work happens in a user namespace of the user's subordinate ids
/// (see rcontain::image::rootless), and the overlay is mounted by the
/// container's init in the container's namespaces.
fn run_image(
    rt: &Runtime,
    args: &CreateArgs,
    detach: bool,
    image: &str,
    id: &str,
    img: &ImageRun,
) -> Result<i32> {
    let map = super::rootless_images()?;
    let s = open_store(img.store, map.as_ref())?.with_limits(img.limits);
    let platform = img.platform.as_deref();
    let mut args = args.clone();
    let image_rootfs = match &map {
        Some(map) => {
            let base = super::image_base_spec(Some(map));
            rootless::in_user_namespace(map, "run IMAGE", || {
                s.create_bundle(image, platform, id, &base, None).map(drop)
            })?;
            args.bundle = s.bundle_path(id)?;
            match s.rootfs_overlay(id) {
                Ok(o) => ImageRootfs::Layers(o),
                Err(e) => {
                    remove_bundle(&s, map, id)?;
                    return Err(e);
                }
            }
        }
        None => {
            // Decided on the base config, before the store makes anything
            // a re-exec would find in its way: an image's config changes
            // neither namespaces nor hooks, so the bundle's decides alike.
            let base = super::image_base_spec(None);
            rcontain::process::selfexe::ensure_read_only_exe_for_run(&base)?;
            args.bundle = s.create_bundle(image, platform, id, &base, None)?;
            ImageRootfs::HostOverlay
        }
    };
    let opts = CreateOpts {
        image_rootfs: Some(image_rootfs),
        ..args.opts(id)
    };
    let r = rcontain::container::foreground::run(rt, &opts, detach);
    if r.is_err() || !detach {
        match &map {
            Some(map) => remove_bundle(&s, map, id)?,
            None => s.remove_bundle(id)?,
        }
    }
    r
}

/// The store at `root`; without root (`map`), the user's, worked on in
/// its user namespace.
pub fn open_store(root: &Path, map: Option<&IdMap>) -> Result<Store> {
    let s = Store::open(root)?;
    match map {
        Some(m) => s.in_user_namespace(m),
        None => Ok(s),
    }
}

/// A rootless store's bundle holds files of the container's ids: removed
/// from its user namespace.
fn remove_bundle(s: &Store, map: &IdMap, id: &str) -> Result<()> {
    rootless::in_user_namespace(map, "removing the container's store bundle", || {
        s.remove_bundle(id)
    })
}

/// After `delete`: drop the container's store bundle, if it has one.
pub fn release_image_bundle(store: &Path, id: &str) -> Result<()> {
    if !store.join("containers").join(id).exists() {
        return Ok(());
    }
    let map = super::rootless_images()?;
    let s = open_store(store, map.as_ref())?;
    match &map {
        Some(map) => remove_bundle(&s, map, id),
        None => s.remove_bundle(id),
    }
}

/// The bundle directory's name, made a valid id and suffixed until no
/// container has it (the create itself still reserves it atomically).
fn unique_id(rt: &Runtime, bundle: &Path) -> String {
    let base = std::fs::canonicalize(bundle)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "container".into());
    let base: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_+-.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let base = if base.is_empty() || base == "." || base == ".." {
        "container".to_string()
    } else {
        base
    };
    (1..)
        .map(|n| {
            if n == 1 {
                base.clone()
            } else {
                format!("{base}-{n}")
            }
        })
        .find(|id| !rt.states.dir(id).exists())
        .unwrap()
}
