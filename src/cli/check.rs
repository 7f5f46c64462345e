//! `check [--bundle DIR | IMAGE] [--format json]`: the host's capability
//! report, and for a bundle or an image what this host cannot honour or
//! shows differently. Exit status 1 when it will not run, or not as on a
//! pure cgroup-v2 host (rcontain::check).

use anyhow::Result;
use clap::Args;
use rcontain::check::{self, Finding, Host, Kind};
use std::path::PathBuf;

#[derive(Args)]
pub struct CheckArgs {
    /// Bundle directory to check against this host
    #[arg(short, long, conflicts_with = "image")]
    bundle: Option<PathBuf>,
    /// Image to check, as `run IMAGE` takes it (PATH[:TAG|@DIGEST])
    image: Option<String>,
    /// Output format: text or json
    #[arg(short, long, default_value = "text", value_parser = ["text", "json"])]
    format: String,
}

pub fn run(a: CheckArgs) -> Result<i32> {
    let host = check::host()?;
    let findings = match (&a.bundle, &a.image) {
        (Some(b), _) => Some(check::bundle(b, &host)),
        (None, Some(_)) if !cfg!(feature = "image") => return Err(super::without_image()),
        (None, Some(i)) => Some(check::image(i, &host)),
        (None, None) => None,
    };
    let ok = findings.as_deref().is_none_or(check::as_on_reference);
    if a.format == "json" {
        let mut v = serde_json::json!({ "host": host });
        if let Some(f) = &findings {
            v["findings"] = serde_json::to_value(f)?;
            v["asOnReference"] = ok.into();
        }
        outln!("{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        text(&host, findings.as_deref())?;
    }
    Ok(if ok { 0 } else { 1 })
}

fn text(h: &Host, findings: Option<&[Finding]>) -> Result<()> {
    let yes = |b: bool| if b { "yes" } else { "no" };
    outln!("kernel           {}", h.kernel)?;
    outln!(
        "cgroup           {} ({})",
        h.cgroup.mode,
        h.cgroup.controllers.join(" ")
    )?;
    let (have, lack): (Vec<_>, Vec<_>) = h.cgroup.files.iter().partition(|(_, v)| **v);
    let names = |l: Vec<(&String, &bool)>| {
        l.into_iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    };
    outln!("  files          {}", names(have))?;
    outln!("  lacking        {}", names(lack))?;
    if let Some(why) = &h.cgroup.probe {
        outln!("  not probed     {why}")?;
    }
    outln!("  hugepages      {}", h.cgroup.hugepage_sizes.join(" "))?;
    let namespaces: Vec<&str> = h
        .namespaces
        .iter()
        .filter(|(_, v)| **v)
        .map(|(k, _)| k.as_str())
        .collect();
    outln!("namespaces       {}", namespaces.join(" "))?;
    for (name, s) in [
        ("user namespaces", &h.user_namespaces),
        ("clone3 cgroup", &h.clone_into_cgroup),
        ("overlay lower+", &h.overlay_lowerdir_plus),
        ("idmapped mounts", &h.idmapped_mounts),
    ] {
        outln!("{name:<16} {}: {}", yes(s.available), s.detail)?;
    }
    outln!(
        "seccomp          {} (libseccomp API level {})",
        h.seccomp.actions.join(" "),
        h.seccomp.api_level
    )?;
    outln!("lsm              {}", h.lsm.join(" "))?;
    let Some(findings) = findings else {
        return Ok(());
    };
    if findings.is_empty() {
        outln!("runs as on a pure cgroup-v2 host")?;
    }
    for f in findings {
        let kind = match f.kind {
            Kind::Fails => "FAILS",
            Kind::Differs => "DIFFERS",
            Kind::Note => "NOTE",
        };
        outln!("{kind:<8} {}: {}", f.field, f.reason)?;
    }
    Ok(())
}
