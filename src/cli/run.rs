//! `run`: the positional argument is an id, or (containing '/', or '.') a
//! bundle directory whose name becomes the id.

use super::CreateArgs;
use anyhow::Result;
use rcontain::container::Runtime;
use std::path::Path;

pub fn run(rt: &Runtime, args: &CreateArgs, detach: bool, arg: &str) -> Result<i32> {
    let mut args = args.clone();
    let id = if arg.contains('/') || arg == "." {
        args.bundle = arg.into();
        unique_id(rt, &args.bundle)
    } else {
        arg.to_string()
    };
    rcontain::foreground::run(rt, &args.opts(&id), detach)
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
