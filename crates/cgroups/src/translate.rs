//! Value mappings between the runtime spec, cgroup v1 files and cgroup v2
//! files. The formulas are the ones runc 1.1 uses, so a container gets the
//! same cgroup values from rcontain as from runc on the same host.

use anyhow::{bail, Result};
use oci_spec::runtime::{LinuxBlockIo, LinuxThrottleDevice};

/// cpu.shares (v1, 2..=262144) to cpu.weight (v2, 1..=10000), linear.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// blkio.weight (v1, 10..=1000) to io.weight (v2, 1..=10000), linear.
/// io.bfq.weight shares blkio's range and takes the value unchanged.
pub fn blkio_weight_to_io_weight(weight: u16) -> u64 {
    if weight == 0 {
        return 0;
    }
    let weight = u64::from(weight.clamp(10, 1000));
    1 + (weight - 10) * 9999 / 990
}

/// The spec's `memory.swap` is memory+swap (v1 memsw semantics); v2's
/// memory.swap.max is swap alone. Returns the value for memory.swap.max
/// (-1 = "max", 0 = leave unset).
pub fn swap_to_v2(swap: i64, memory: i64) -> Result<i64> {
    // v1 compatibility: an unlimited memory with no swap given means both unlimited.
    if memory == -1 && swap == 0 {
        return Ok(-1);
    }
    if swap == -1 || swap == 0 {
        return Ok(swap);
    }
    if memory == 0 || memory == -1 {
        bail!("memory.swap {swap} needs memory.limit to be set too (cgroup v2 memory.swap.max is swap without memory)");
    }
    if memory < 0 {
        bail!("invalid memory.limit {memory}");
    }
    if swap < memory {
        bail!("memory.swap {swap} (memory+swap) must be >= memory.limit {memory}");
    }
    Ok(swap - memory)
}

/// v2 limit files: -1 (or any negative) is "max", 0 means "not set".
pub fn v2_limit(value: i64) -> Option<String> {
    match value {
        0 => None,
        v if v < 0 => Some("max".into()),
        v => Some(v.to_string()),
    }
}

/// cpu.max from quota/period; None when neither is set. A quota of -1 or
/// an unset quota with a period keeps the quota unlimited ("max").
pub fn cpu_max(quota: Option<i64>, period: Option<u64>) -> Option<String> {
    let quota = quota.unwrap_or(0);
    let period = period.unwrap_or(0);
    if quota == 0 && period == 0 {
        return None;
    }
    let mut s = if quota > 0 {
        quota.to_string()
    } else {
        "max".to_string()
    };
    if period != 0 {
        s.push_str(&format!(" {period}"));
    }
    Some(s)
}

/// pids.max for both versions; runc 1.1 treats 0 as "not set".
pub fn pids_max(limit: i64) -> Option<String> {
    v2_limit(limit)
}

/// A spec hugepage size ("2MB", "1GB", "64KB") from the kernel's
/// /sys/kernel/mm/hugepages/hugepages-<N>kB directory name.
pub fn hugepage_size_name(dir_name: &str) -> Option<String> {
    let kb: u64 = dir_name
        .strip_prefix("hugepages-")?
        .strip_suffix("kB")?
        .parse()
        .ok()?;
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    let mut size = kb;
    let mut unit = 0;
    while size >= 1024 && size.is_multiple_of(1024) && unit < UNITS.len() - 1 {
        size /= 1024;
        unit += 1;
    }
    Some(format!("{size}{}", UNITS[unit]))
}

/// rdma.max line for one device.
pub fn rdma_line(device: &str, handles: Option<u32>, objects: Option<u32>) -> Option<String> {
    let mut s = device.to_string();
    if let Some(h) = handles {
        s.push_str(&format!(" hca_handle={h}"));
    }
    if let Some(o) = objects {
        s.push_str(&format!(" hca_object={o}"));
    }
    (handles.is_some() || objects.is_some()).then_some(s)
}

/// Which of the four blockIO throttles a device limit is; v1 and v2 each
/// name it their own way (a blkio file, an io.max key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Throttle {
    ReadBps,
    WriteBps,
    ReadIops,
    WriteIops,
}

/// Every device limit of the blockIO throttle lists, with which throttle it
/// is and the spec field it came from (for the error message), list by list
/// in the spec's order, so both versions write them in the same order.
pub fn throttles(
    bio: &LinuxBlockIo,
) -> impl Iterator<Item = (Throttle, &LinuxThrottleDevice, &'static str)> {
    [
        (
            Throttle::ReadBps,
            bio.throttle_read_bps_device(),
            "blockIO.throttleReadBpsDevice",
        ),
        (
            Throttle::WriteBps,
            bio.throttle_write_bps_device(),
            "blockIO.throttleWriteBpsDevice",
        ),
        (
            Throttle::ReadIops,
            bio.throttle_read_iops_device(),
            "blockIO.throttleReadIOPSDevice",
        ),
        (
            Throttle::WriteIops,
            bio.throttle_write_iops_device(),
            "blockIO.throttleWriteIOPSDevice",
        ),
    ]
    .into_iter()
    .flat_map(|(which, list, what)| list.iter().flatten().map(move |t| (which, t, what)))
}

/// Parse a cpuset list ("0-3,8,10-11") into the numbers it names.
pub fn parse_cpu_list(s: &str) -> Result<Vec<u16>> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u16, u16) = (a.parse()?, b.parse()?);
                if a > b {
                    bail!("bad range {part:?} in cpu list {s:?}");
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse()?),
        }
    }
    Ok(out)
}

/// Whether blockIO asks for an I/O weight (overall or per device): only
/// then do the weight files have to exist.
pub fn asks_weight(bio: &LinuxBlockIo) -> bool {
    bio.weight().is_some_and(|w| w != 0)
        || bio
            .weight_device()
            .iter()
            .flatten()
            .any(|w| w.weight().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_map_onto_weight_range() {
        assert_eq!(shares_to_weight(0), 0);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(512), 20);
        assert_eq!(shares_to_weight(262_144), 10_000);
        // out-of-range shares are clamped the way the v1 kernel clamps them
        assert_eq!(shares_to_weight(1), 1);
        assert_eq!(shares_to_weight(1 << 20), 10_000);
    }

    #[test]
    fn blkio_weight_maps_onto_io_weight() {
        assert_eq!(blkio_weight_to_io_weight(0), 0);
        assert_eq!(blkio_weight_to_io_weight(10), 1);
        assert_eq!(blkio_weight_to_io_weight(500), 4950);
        assert_eq!(blkio_weight_to_io_weight(1000), 10_000);
    }

    #[test]
    fn swap_is_converted_to_swap_only() {
        assert_eq!(swap_to_v2(200, 100).unwrap(), 100);
        assert_eq!(swap_to_v2(100, 100).unwrap(), 0);
        assert_eq!(swap_to_v2(-1, 100).unwrap(), -1);
        assert_eq!(swap_to_v2(0, 100).unwrap(), 0);
        assert_eq!(swap_to_v2(0, -1).unwrap(), -1);
        assert!(swap_to_v2(50, 100).is_err());
        assert!(swap_to_v2(50, 0).is_err());
        assert!(swap_to_v2(50, -1).is_err());
    }

    #[test]
    fn limits_and_cpu_max_format() {
        assert_eq!(v2_limit(0), None);
        assert_eq!(v2_limit(-1).as_deref(), Some("max"));
        assert_eq!(v2_limit(4096).as_deref(), Some("4096"));
        assert_eq!(cpu_max(None, None), None);
        assert_eq!(
            cpu_max(Some(50000), Some(100000)).as_deref(),
            Some("50000 100000")
        );
        assert_eq!(
            cpu_max(Some(-1), Some(100000)).as_deref(),
            Some("max 100000")
        );
        assert_eq!(cpu_max(Some(20000), None).as_deref(), Some("20000"));
        assert_eq!(cpu_max(None, Some(250000)).as_deref(), Some("max 250000"));
        assert_eq!(pids_max(0), None);
        assert_eq!(pids_max(-1).as_deref(), Some("max"));
    }

    #[test]
    fn throttles_in_spec_order() {
        let bio: LinuxBlockIo = serde_json::from_str(
            r#"{"throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1}, {"major": 8, "minor": 16, "rate": 2}],
                "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 3}]}"#,
        )
        .unwrap();
        let got: Vec<_> = throttles(&bio)
            .map(|(which, t, what)| (which, t.minor(), t.rate(), what))
            .collect();
        assert_eq!(
            got,
            [
                (Throttle::ReadBps, 0, 1, "blockIO.throttleReadBpsDevice"),
                (Throttle::ReadBps, 16, 2, "blockIO.throttleReadBpsDevice"),
                (Throttle::WriteIops, 0, 3, "blockIO.throttleWriteIOPSDevice"),
            ]
        );
    }

    #[test]
    fn hugepage_names() {
        assert_eq!(
            hugepage_size_name("hugepages-2048kB").as_deref(),
            Some("2MB")
        );
        assert_eq!(
            hugepage_size_name("hugepages-1048576kB").as_deref(),
            Some("1GB")
        );
        assert_eq!(
            hugepage_size_name("hugepages-64kB").as_deref(),
            Some("64KB")
        );
        assert_eq!(hugepage_size_name("hugepages-x"), None);
    }

    #[test]
    fn rdma_and_cpu_lists() {
        assert_eq!(
            rdma_line("mlx4_0", Some(3), Some(9)).as_deref(),
            Some("mlx4_0 hca_handle=3 hca_object=9")
        );
        assert_eq!(rdma_line("mlx4_0", None, None), None);
        assert_eq!(parse_cpu_list("0-2,5\n").unwrap(), vec![0, 1, 2, 5]);
        assert_eq!(parse_cpu_list("").unwrap(), Vec::<u16>::new());
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("a").is_err());
    }
}
