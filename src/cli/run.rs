//! `run`: the positional argument is an id, or (containing '/', or '.') a
//! bundle directory whose name becomes the id.

use super::CreateArgs;
use anyhow::Result;
use rcontain::container::{CreateOpts, Runtime};
use rcontain::image::store::Store;
use rcontain::image::SizeLimits;
use rcontain::oci::specgen::default_spec;
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
/// container does (for a detached one, on `delete`).
fn run_image(
    rt: &Runtime,
    args: &CreateArgs,
    detach: bool,
    image: &str,
    id: &str,
    img: &ImageRun,
) -> Result<i32> {
    super::images_need_root("run IMAGE")?;
    let s = Store::open(img.store)?.with_limits(img.limits);
    let mut args = args.clone();
    args.bundle = s.create_bundle(image, img.platform.as_deref(), id, &default_spec(), None)?;
    let opts = CreateOpts {
        image_rootfs: true,
        ..args.opts(id)
    };
    let r = rcontain::container::foreground::run(rt, &opts, detach);
    if r.is_err() || !detach {
        s.remove_bundle(id)?;
    }
    r
}

/// After `delete`: drop the container's store bundle, if it has one.
pub fn release_image_bundle(store: &Path, id: &str) -> Result<()> {
    if store.join("containers").join(id).exists() {
        Store::open(store)?.remove_bundle(id)?;
    }
    Ok(())
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
        .find(|id| !rt.store.dir(id).exists())
        .unwrap()
}
