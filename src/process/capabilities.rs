//! `process.capabilities`: checked in the runtime, applied by the container
//! init (see `process::set_identity` for the order).
//!
//! Which capabilities the kernel has is asked of the kernel itself
//! (prctl(PR_CAPBSET_READ)), in the runtime, never read from a file: in the
//! container /proc/sys/kernel/cap_last_cap may be the image's own file, and
//! a lie there would leave capabilities in the bounding set.

use crate::oci::names::json_name;
use anyhow::{bail, Result};
use caps::{CapSet, Capability, CapsHashSet};
use oci_spec::runtime::{Capabilities, LinuxCapabilities};
use std::str::FromStr;

/// The five capability sets of the container process, restricted to the
/// capabilities the running kernel knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapSets {
    bounding: CapsHashSet,
    effective: CapsHashSet,
    inheritable: CapsHashSet,
    permitted: CapsHashSet,
    ambient: CapsHashSet,
    /// Numbers of the capabilities the kernel knows but the bounding set
    /// lacks, including any too new for the caps crate to name.
    drop_from_bounding: Vec<u8>,
    warnings: Vec<String>,
}

/// Checks `process.capabilities` against the running kernel. Capabilities
/// the kernel does not know are left out with a warning (see
/// [`CapSets::warnings`]), as runc does. Ambient capabilities outside
/// permitted ∩ inheritable cannot be raised; runc silently skips them and
/// so does this (its default config.json relies on it).
pub fn parse(c: &LinuxCapabilities) -> Result<CapSets> {
    let last = kernel_last_cap();
    let kernel = kernel_caps(last);
    let mut warnings = Vec::new();
    let mut set = |name: &str, caps: &Option<Capabilities>| -> Result<CapsHashSet> {
        let mut out = CapsHashSet::new();
        let mut unknown = Vec::new();
        for cap in caps.iter().flatten() {
            let spelled = json_name(cap);
            let cap = Capability::from_str(&spelled).map_err(|_| {
                anyhow::anyhow!("process.capabilities.{name}: unknown capability {spelled}")
            })?;
            if kernel.contains(&cap) {
                out.insert(cap);
            } else {
                unknown.push(spelled);
            }
        }
        if !unknown.is_empty() {
            unknown.sort();
            warnings.push(format!(
                "process.capabilities.{name}: ignoring capabilities the kernel does not know: {}",
                unknown.join(", ")
            ));
        }
        Ok(out)
    };
    let bounding = set("bounding", c.bounding())?;
    let effective = set("effective", c.effective())?;
    let inheritable = set("inheritable", c.inheritable())?;
    let permitted = set("permitted", c.permitted())?;
    let mut ambient = set("ambient", c.ambient())?;

    let mut outside: Vec<String> = effective
        .difference(&permitted)
        .map(ToString::to_string)
        .collect();
    if !outside.is_empty() {
        outside.sort();
        bail!(
            "process.capabilities.effective: {} not in the permitted set",
            outside.join(", ")
        );
    }
    ambient.retain(|c| permitted.contains(c) && inheritable.contains(c));

    let drop_from_bounding = (0..=last)
        .filter(|&i| !bounding.iter().any(|c| c.index() == i))
        .collect();
    Ok(CapSets {
        bounding,
        effective,
        inheritable,
        permitted,
        ambient,
        drop_from_bounding,
        warnings,
    })
}

/// What an absent `process.capabilities` means: every set empty, the
/// bounding set included (as in runc). Call it in the runtime, like
/// [`parse`].
pub fn none() -> CapSets {
    CapSets {
        bounding: CapsHashSet::new(),
        effective: CapsHashSet::new(),
        inheritable: CapsHashSet::new(),
        permitted: CapsHashSet::new(),
        ambient: CapsHashSet::new(),
        drop_from_bounding: (0..=kernel_last_cap()).collect(),
        warnings: Vec::new(),
    }
}

/// The highest capability number the running kernel knows: PR_CAPBSET_READ
/// fails with EINVAL beyond it (a capability dropped from the bounding set
/// reads as 0, not as an error), so the known numbers are exactly 0..=last
/// and a binary search finds it in 6 calls rather than 41 at every start.
/// No file is read.
fn kernel_last_cap() -> u8 {
    let known = |i: u8| crate::sys::prctl(libc::PR_CAPBSET_READ, i.into()).is_ok();
    // known(lo) (CAP_CHOWN, 0, is in every kernel), !known(hi)
    let (mut lo, mut hi) = (0u8, 64u8);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if known(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Capabilities the running kernel knows (0..=`last`), of those the caps
/// crate names.
fn kernel_caps(last: u8) -> CapsHashSet {
    caps::all()
        .into_iter()
        .filter(|c| c.index() <= last)
        .collect()
}

impl CapSets {
    /// Problems worth a warning that did not stop the container.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Shrinks the bounding set to `bounding`. Needs CAP_SETPCAP, so call it
    /// before switching to the container's uid; `process::set_identity`
    /// does. Dropping is idempotent.
    pub fn drop_bounding(&self) -> Result<()> {
        for &i in &self.drop_from_bounding {
            crate::sys::prctl(libc::PR_CAPBSET_DROP, i.into()).map_err(|e| {
                let name = caps::all()
                    .into_iter()
                    .find(|c| c.index() == i)
                    .map_or_else(|| format!("capability {i}"), |c| c.to_string());
                anyhow::anyhow!("process.capabilities.bounding: dropping {name}: {e}")
            })?;
        }
        Ok(())
    }

    /// Sets the effective, inheritable, permitted and ambient sets of the
    /// calling thread. Call it after the uid change (with PR_SET_KEEPCAPS
    /// set, so that permitted still holds everything needed).
    pub fn apply(&self) -> Result<()> {
        // Effective first, while permitted is still the full old set; then
        // permitted may shrink because effective ⊆ permitted was checked.
        for (set, name, value) in [
            (CapSet::Effective, "effective", &self.effective),
            (CapSet::Inheritable, "inheritable", &self.inheritable),
            (CapSet::Permitted, "permitted", &self.permitted),
        ] {
            caps::set(None, set, value).map_err(|e| {
                // The usual cause: the runtime itself lacks a capability
                // (then runc and crun fail the same way).
                let held = caps::read(None, CapSet::Permitted).unwrap_or_default();
                let mut missing: Vec<String> =
                    value.difference(&held).map(ToString::to_string).collect();
                missing.sort();
                if missing.is_empty() {
                    anyhow::anyhow!("process.capabilities.{name}: {e}")
                } else {
                    anyhow::anyhow!(
                        "process.capabilities.{name}: {} not held by the runtime: {e}",
                        missing.join(", ")
                    )
                }
            })?;
        }
        caps::clear(None, CapSet::Ambient)
            .map_err(|e| anyhow::anyhow!("process.capabilities.ambient: {e}"))?;
        for &cap in &self.ambient {
            caps::raise(None, CapSet::Ambient, cap)
                .map_err(|e| anyhow::anyhow!("process.capabilities.ambient: raising {cap}: {e}"))?;
        }
        Ok(())
    }
}

/// Names of every capability this runtime can manage, in kernel order.
pub fn known() -> Vec<String> {
    let mut all: Vec<Capability> = caps::all().into_iter().collect();
    all.sort_by_key(Capability::index);
    all.iter().map(ToString::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{in_child, is_root, rerun_alone};
    use anyhow::Context;

    fn parse_json(json: &str) -> Result<CapSets> {
        parse(&serde_json::from_str(json).context("process.capabilities")?)
    }

    /// Status-file mask of a list of capability numbers, computed
    /// independently of the caps crate.
    fn mask(bits: &[u32]) -> String {
        format!("{:016x}", bits.iter().fold(0u64, |m, b| m | 1 << b))
    }

    /// Applies `c` to this process; its five sets as /proc/self/status
    /// shows them (bounding, effective, permitted, inheritable, ambient).
    fn applied(c: &CapSets) -> Result<String> {
        c.drop_bounding()?;
        c.apply()?;
        Ok(["CapBnd", "CapEff", "CapPrm", "CapInh", "CapAmb"]
            .map(status)
            .join(" "))
    }

    fn status(field: &str) -> String {
        let s = std::fs::read_to_string("/proc/self/status").unwrap();
        s.lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:\t")))
            .unwrap()
            .to_string()
    }

    #[test]
    fn every_oci_capability_maps_to_the_caps_crate() {
        for name in known() {
            let oci: oci_spec::runtime::Capability =
                serde_json::from_value(serde_json::json!(name)).unwrap();
            assert_eq!(json_name(&oci), name);
        }
        assert_eq!(known().len(), 41);
        assert_eq!(known()[0], "CAP_CHOWN");
    }

    #[test]
    fn parse_keeps_sets_apart() {
        let c = parse_json(
            r#"{"bounding":["CAP_KILL","CAP_CHOWN","CAP_SETPCAP"],
                "effective":["CAP_KILL"],"permitted":["CAP_KILL","CAP_CHOWN"],
                "inheritable":["CAP_KILL"],"ambient":["CAP_KILL","CAP_CHOWN"]}"#,
        )
        .unwrap();
        assert!(c.bounding.contains(&Capability::CAP_SETPCAP));
        assert!(!c.bounding.contains(&Capability::CAP_SYS_ADMIN));
        assert_eq!(c.effective, CapsHashSet::from([Capability::CAP_KILL]));
        // CAP_CHOWN is not inheritable, so it cannot be ambient.
        assert_eq!(c.ambient, CapsHashSet::from([Capability::CAP_KILL]));
        assert!(c
            .drop_from_bounding
            .contains(&Capability::CAP_SYS_ADMIN.index()));
        assert!(!c.drop_from_bounding.contains(&Capability::CAP_KILL.index()));
        assert!(c.warnings().is_empty());
    }

    #[test]
    fn effective_outside_permitted_is_an_error() {
        let e = parse_json(r#"{"effective":["CAP_KILL","CAP_CHOWN"],"permitted":["CAP_KILL"]}"#)
            .unwrap_err();
        assert_eq!(
            format!("{e:#}"),
            "process.capabilities.effective: CAP_CHOWN not in the permitted set"
        );
    }

    #[test]
    fn unknown_names_fail_when_reading_config() {
        let e = parse_json(r#"{"bounding":["CAP_FOO"]}"#).unwrap_err();
        assert!(format!("{e:#}").contains("CAP_FOO"), "{e:#}");
    }

    #[test]
    fn applied_sets_match_the_config() {
        if !is_root() || rerun_alone() {
            return;
        }
        let c = parse_json(
            r#"{"bounding":["CAP_AUDIT_WRITE","CAP_KILL","CAP_NET_BIND_SERVICE"],
                "effective":["CAP_KILL"],
                "permitted":["CAP_KILL","CAP_NET_BIND_SERVICE"],
                "inheritable":["CAP_NET_BIND_SERVICE","CAP_AUDIT_WRITE"],
                "ambient":["CAP_NET_BIND_SERVICE"]}"#,
        )
        .unwrap();
        let out = in_child(|| applied(&c)).unwrap();
        // CAP_KILL 5, CAP_NET_BIND_SERVICE 10, CAP_AUDIT_WRITE 29.
        let want = [
            mask(&[5, 10, 29]),
            mask(&[5]),
            mask(&[5, 10]),
            mask(&[10, 29]),
            mask(&[10]),
        ]
        .join(" ");
        assert_eq!(out, want);
    }

    #[test]
    fn capabilities_the_runtime_lacks_are_named() {
        if !is_root() || rerun_alone() {
            return;
        }
        let c = parse_json(
            r#"{"effective":["CAP_KILL","CAP_SYSLOG"],"permitted":["CAP_KILL","CAP_SYSLOG"]}"#,
        )
        .unwrap();
        let e = in_child(|| {
            caps::drop(None, CapSet::Effective, Capability::CAP_SYSLOG)?;
            caps::drop(None, CapSet::Permitted, Capability::CAP_SYSLOG)?;
            c.apply().map(|_| String::new())
        })
        .unwrap_err();
        assert!(
            e.to_string().starts_with(
                "process.capabilities.effective: CAP_SYSLOG not held by the runtime: "
            ),
            "{e}"
        );
    }

    #[test]
    fn the_kernel_is_asked_which_capabilities_it_has() {
        let last: u8 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(kernel_last_cap(), last);
        let none = none();
        assert_eq!(none.drop_from_bounding, (0..=last).collect::<Vec<_>>());
    }

    #[test]
    fn no_capabilities_means_none_at_all() {
        if !is_root() || rerun_alone() {
            return;
        }
        let out = in_child(|| applied(&none())).unwrap();
        assert_eq!(out, vec![mask(&[]); 5].join(" "));
    }
}
