//! `update`'s individual flags (runc's names and units) as the
//! linux.resources they stand for.

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};

/// The flags as given on the command line; None = not given.
#[derive(Default, Debug, Clone)]
pub struct UpdateFlags {
    pub blkio_weight: Option<u16>,
    pub cpu_period: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_share: Option<u64>,
    pub cpu_rt_period: Option<u64>,
    pub cpu_rt_runtime: Option<i64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    pub memory: Option<String>,
    pub memory_reservation: Option<String>,
    pub memory_swap: Option<String>,
    pub kernel_memory: Option<String>,
    pub kernel_memory_tcp: Option<String>,
    pub pids_limit: Option<i64>,
}

/// A size as docker and runc take it: "1024", "512k", "100m", "1.5g",
/// "2GiB" (binary units), or "-1" for unlimited.
pub fn parse_bytes(s: &str) -> Result<i64> {
    let t = s.trim();
    if t == "-1" {
        return Ok(-1);
    }
    let lower = t.to_ascii_lowercase();
    let body = lower.strip_suffix('b').unwrap_or(&lower);
    let body = body.strip_suffix('i').unwrap_or(body);
    let (num, mult) = match body.chars().last() {
        Some('k') => (&body[..body.len() - 1], 1u64 << 10),
        Some('m') => (&body[..body.len() - 1], 1 << 20),
        Some('g') => (&body[..body.len() - 1], 1 << 30),
        Some('t') => (&body[..body.len() - 1], 1 << 40),
        Some('p') => (&body[..body.len() - 1], 1 << 50),
        _ => (body, 1),
    };
    let num = num.trim();
    if num.is_empty() || !num.chars().all(|c| c.is_ascii_digit() || c == '.') {
        bail!("invalid size {s:?} (want e.g. 1024, 512k, 100m, 2g or -1)");
    }
    let v: f64 = num.parse().with_context(|| format!("invalid size {s:?}"))?;
    let bytes = v * mult as f64;
    if bytes > i64::MAX as f64 {
        bail!("size {s:?} is too large");
    }
    Ok(bytes as i64)
}

impl UpdateFlags {
    /// The resources these flags set (only what was given).
    pub fn to_resources(&self) -> Result<LinuxResources> {
        let mut r = LinuxResources::default();
        let size = |name: &str, v: &Option<String>| -> Result<Option<i64>> {
            v.as_deref()
                .map(parse_bytes)
                .transpose()
                .with_context(|| format!("--{name}"))
        };
        let memory = size("memory", &self.memory)?;
        let reservation = size("memory-reservation", &self.memory_reservation)?;
        let swap = size("memory-swap", &self.memory_swap)?;
        let kernel = size("kernel-memory", &self.kernel_memory)?;
        let kernel_tcp = size("kernel-memory-tcp", &self.kernel_memory_tcp)?;
        if kernel.is_some() {
            bail!("--kernel-memory: kernel memory limits are obsolete (ignored since Linux 5.4) and not supported");
        }
        if memory.is_some() || reservation.is_some() || swap.is_some() || kernel_tcp.is_some() {
            let mut m = LinuxMemory::default();
            m.set_limit(memory);
            m.set_reservation(reservation);
            m.set_swap(swap);
            m.set_kernel_tcp(kernel_tcp);
            r.set_memory(Some(m));
        }
        let cpu_given = self.cpu_period.is_some()
            || self.cpu_quota.is_some()
            || self.cpu_share.is_some()
            || self.cpu_rt_period.is_some()
            || self.cpu_rt_runtime.is_some()
            || self.cpuset_cpus.is_some()
            || self.cpuset_mems.is_some();
        if cpu_given {
            let mut c = LinuxCpu::default();
            c.set_period(self.cpu_period);
            c.set_quota(self.cpu_quota);
            c.set_shares(self.cpu_share);
            c.set_realtime_period(self.cpu_rt_period);
            c.set_realtime_runtime(self.cpu_rt_runtime);
            c.set_cpus(self.cpuset_cpus.clone());
            c.set_mems(self.cpuset_mems.clone());
            r.set_cpu(Some(c));
        }
        if let Some(limit) = self.pids_limit {
            let mut p = LinuxPids::default();
            p.set_limit(limit);
            r.set_pids(Some(p));
        }
        if let Some(w) = self.blkio_weight {
            let mut b = LinuxBlockIo::default();
            b.set_weight(Some(w));
            r.set_block_io(Some(b));
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("1024").unwrap(), 1024);
        assert_eq!(parse_bytes("512k").unwrap(), 512 * 1024);
        assert_eq!(parse_bytes("100M").unwrap(), 100 << 20);
        assert_eq!(parse_bytes("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_bytes("1.5g").unwrap(), 3 << 29);
        assert_eq!(parse_bytes("10mb").unwrap(), 10 << 20);
        assert_eq!(parse_bytes("-1").unwrap(), -1);
        for bad in ["", "m", "12x", "-5", "1e9"] {
            assert!(parse_bytes(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn only_given_flags_become_resources() {
        let f = UpdateFlags {
            memory: Some("64m".into()),
            memory_swap: Some("-1".into()),
            cpu_quota: Some(20000),
            pids_limit: Some(10),
            ..Default::default()
        };
        let r = f.to_resources().unwrap();
        let m = r.memory().as_ref().unwrap();
        assert_eq!(m.limit(), Some(64 << 20));
        assert_eq!(m.swap(), Some(-1));
        assert_eq!(m.reservation(), None);
        let c = r.cpu().as_ref().unwrap();
        assert_eq!(c.quota(), Some(20000));
        assert_eq!(c.period(), None);
        assert_eq!(r.pids().as_ref().unwrap().limit(), 10);
        assert!(r.block_io().is_none());
        assert!(UpdateFlags::default()
            .to_resources()
            .unwrap()
            .memory()
            .is_none());
        let k = UpdateFlags {
            kernel_memory: Some("1m".into()),
            ..Default::default()
        };
        assert!(k.to_resources().is_err());
    }
}
