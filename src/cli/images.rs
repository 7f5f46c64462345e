//! `images` and `prune`: what the image store holds, and cleaning it.

use std::path::Path;

use anyhow::Result;
use rcontain::image::store::Store;

pub fn images(store: &Path, quiet: bool) -> Result<()> {
    let s = Store::open(store)?;
    let containers = s.containers()?;
    let images = s.images()?;
    if quiet {
        for r in &images {
            outln!("{}", r.id)?;
        }
        return Ok(());
    }
    outln!(
        "{:<19} {:>6} {:>10}  NAMES",
        "IMAGE ID",
        "LAYERS",
        "CONTAINERS"
    )?;
    for r in &images {
        let users = containers.iter().filter(|(_, i)| *i == r.id).count();
        let short = r.id.strip_prefix("sha256:").unwrap_or(&r.id);
        outln!(
            "{:<19} {:>6} {:>10}  {}",
            &short[..12.min(short.len())],
            r.chain.len(),
            users,
            r.names.join(", ")
        )?;
    }
    Ok(())
}

/// Without root in the store's user namespace, where its files' owners
/// are: the helper prints what it removed.
pub fn prune(store: &Path) -> Result<()> {
    let map = super::rootless_images()?;
    let s = super::run::open_store(store, map.as_ref())?;
    let work = || {
        for what in s.prune()? {
            outln!("removed {what}")?;
        }
        Ok(())
    };
    match &map {
        Some(m) => rcontain::image::rootless::in_user_namespace(m, "prune", work),
        None => work(),
    }
}
