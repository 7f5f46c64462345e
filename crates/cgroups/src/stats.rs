//! Resource usage in the shape of runc's `events --stats` "data" object
//! (runc's types/events.go): field names, and Go's `omitempty` (zero
//! values left out) where runc has it.

use super::fsutil::{parse_u64, read_opt};
use super::translate::parse_cpu_list;
use anyhow::{Context, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn zero(v: &u64) -> bool {
    *v == 0
}

#[derive(Serialize, Default, Debug)]
pub struct Stats {
    pub cpu: Cpu,
    pub cpuset: CpuSet,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    pub hugetlb: BTreeMap<String, Hugetlb>,
    pub intel_rdt: BTreeMap<String, u64>,
    pub network_interfaces: Option<Vec<u8>>,
}

#[derive(Serialize, Default, Debug)]
pub struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

#[derive(Serialize, Default, Debug)]
pub struct CpuUsage {
    #[serde(skip_serializing_if = "zero")]
    pub total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Serialize, Default, Debug)]
pub struct Throttling {
    #[serde(skip_serializing_if = "zero")]
    pub periods: u64,
    #[serde(skip_serializing_if = "zero", rename = "throttled_periods")]
    pub throttled_periods: u64,
    #[serde(skip_serializing_if = "zero", rename = "throttled_time")]
    pub throttled_time: u64,
}

#[derive(Serialize, Default, Debug)]
pub struct CpuSet {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u16>,
    pub cpu_exclusive: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mems: Vec<u16>,
    pub mem_hardwall: u64,
    pub mem_exclusive: u64,
    pub memory_migrate: u64,
    pub memory_spread_page: u64,
    pub memory_spread_slab: u64,
    pub memory_pressure: u64,
    pub sched_load_balance: u64,
    pub sched_relax_domain_level: i64,
}

#[derive(Serialize, Default, Debug, PartialEq)]
pub struct MemoryEntry {
    pub limit: u64,
    #[serde(skip_serializing_if = "zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Serialize, Default, Debug)]
pub struct Memory {
    #[serde(skip_serializing_if = "zero")]
    pub cache: u64,
    pub usage: MemoryEntry,
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

#[derive(Serialize, Default, Debug)]
pub struct Pids {
    #[serde(skip_serializing_if = "zero")]
    pub current: u64,
    #[serde(skip_serializing_if = "zero")]
    pub limit: u64,
}

#[derive(Serialize, Default, Debug, PartialEq)]
pub struct BlkioEntry {
    #[serde(skip_serializing_if = "zero")]
    pub major: u64,
    #[serde(skip_serializing_if = "zero")]
    pub minor: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(skip_serializing_if = "zero")]
    pub value: u64,
}

#[derive(Serialize, Default, Debug)]
pub struct Blkio {
    #[serde(
        rename = "ioServiceBytesRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(rename = "ioServicedRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
}

#[derive(Serialize, Default, Debug, PartialEq)]
pub struct Hugetlb {
    #[serde(skip_serializing_if = "zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "zero")]
    pub max: u64,
    pub failcnt: u64,
}

/// "key value" lines (memory.stat, cpu.stat, memory.events) as a map.
pub fn parse_keyed(s: &str) -> BTreeMap<String, u64> {
    s.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// v1 blkio "MAJ:MIN Op value" lines; the device-less "Total" line is dropped.
pub fn parse_blkio_v1(s: &str) -> Vec<BlkioEntry> {
    s.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (dev, op, value) = (f.next()?, f.next()?, f.next()?);
            let (major, minor) = dev.split_once(':')?;
            Some(BlkioEntry {
                major: major.parse().ok()?,
                minor: minor.parse().ok()?,
                op: op.to_string(),
                value: value.parse().ok()?,
            })
        })
        .collect()
}

/// v2 io.stat ("MAJ:MIN rbytes=.. wbytes=.. rios=.. wios=.. ...") as
/// runc's (bytes, serviced) lists.
pub fn parse_io_stat(s: &str) -> (Vec<BlkioEntry>, Vec<BlkioEntry>) {
    let (mut bytes, mut ios) = (Vec::new(), Vec::new());
    for l in s.lines() {
        let mut f = l.split_whitespace();
        let Some((major, minor)) = f.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (major.parse(), minor.parse()) else {
            continue;
        };
        for kv in f {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(value) = v.parse() else { continue };
            let (list, op) = match k {
                "rbytes" => (&mut bytes, "Read"),
                "wbytes" => (&mut bytes, "Write"),
                "rios" => (&mut ios, "Read"),
                "wios" => (&mut ios, "Write"),
                _ => continue,
            };
            list.push(BlkioEntry {
                major,
                minor,
                op: op.into(),
                value,
            });
        }
    }
    (bytes, ios)
}

/// cpuacct.usage_all: "cpu user system" header, then one line per cpu.
/// Returns (kernel, user) per cpu.
pub fn parse_usage_all(s: &str) -> (Vec<u64>, Vec<u64>) {
    let (mut kernel, mut user) = (Vec::new(), Vec::new());
    for l in s.lines().skip(1) {
        let f: Vec<u64> = l
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if let [_, u, k] = f[..] {
            user.push(u);
            kernel.push(k);
        }
    }
    (kernel, user)
}

/// Clock ticks (USER_HZ, 100 on Linux) to nanoseconds.
const NS_PER_TICK: u64 = 1_000_000_000 / 100;

/// A v1 cpuset cgroup's settings.
fn cpuset_v1(d: &Path) -> Result<CpuSet> {
    Ok(CpuSet {
        cpus: parse_cpu_list(&text(d, "cpuset.cpus")?)?,
        mems: parse_cpu_list(&text(d, "cpuset.mems")?)?,
        cpu_exclusive: num(d, "cpuset.cpu_exclusive")?,
        mem_hardwall: num(d, "cpuset.mem_hardwall")?,
        mem_exclusive: num(d, "cpuset.mem_exclusive")?,
        memory_migrate: num(d, "cpuset.memory_migrate")?,
        memory_spread_page: num(d, "cpuset.memory_spread_page")?,
        memory_spread_slab: num(d, "cpuset.memory_spread_slab")?,
        memory_pressure: num(d, "cpuset.memory_pressure")?,
        sched_load_balance: num(d, "cpuset.sched_load_balance")?,
        sched_relax_domain_level: text(d, "cpuset.sched_relax_domain_level")?
            .trim()
            .parse()
            .unwrap_or(0),
    })
}

/// A v1 memory cgroup's counters: memory, memory+swap, kernel, kernel TCP.
fn memory_v1(d: &Path) -> Result<Memory> {
    let entry = |prefix: &str| -> Result<MemoryEntry> {
        Ok(MemoryEntry {
            limit: num(d, &format!("{prefix}limit_in_bytes"))?,
            usage: num(d, &format!("{prefix}usage_in_bytes"))?,
            max: num(d, &format!("{prefix}max_usage_in_bytes"))?,
            failcnt: num(d, &format!("{prefix}failcnt"))?,
        })
    };
    let usage = entry("memory.")?;
    let swap = entry("memory.memsw.")?;
    let kernel = entry("memory.kmem.")?;
    let kernel_tcp = entry("memory.kmem.tcp.")?;
    let raw = parse_keyed(&text(d, "memory.stat")?);
    Ok(Memory {
        cache: raw.get("cache").copied().unwrap_or(0),
        usage,
        swap,
        kernel,
        kernel_tcp,
        raw,
    })
}

fn num(dir: &Path, file: &str) -> Result<u64> {
    match read_opt(dir, file)? {
        Some(s) => parse_u64(&s).with_context(|| format!("parse {}", dir.join(file).display())),
        None => Ok(0),
    }
}

fn text(dir: &Path, file: &str) -> Result<String> {
    Ok(read_opt(dir, file)?.unwrap_or_default())
}

/// Stats from v1 hierarchies; `dir` maps a controller to its directory.
pub fn collect_v1(dir: &dyn Fn(&str) -> Option<PathBuf>) -> Result<serde_json::Value> {
    let mut st = Stats::default();
    if let Some(d) = dir("cpuacct") {
        let u = &mut st.cpu.usage;
        u.total = num(&d, "cpuacct.usage")?;
        u.percpu = text(&d, "cpuacct.usage_percpu")?
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        (u.percpu_kernel, u.percpu_user) = parse_usage_all(&text(&d, "cpuacct.usage_all")?);
        let s = parse_keyed(&text(&d, "cpuacct.stat")?);
        u.user = s.get("user").copied().unwrap_or(0) * NS_PER_TICK;
        u.kernel = s.get("system").copied().unwrap_or(0) * NS_PER_TICK;
    }
    if let Some(d) = dir("cpu") {
        let s = parse_keyed(&text(&d, "cpu.stat")?);
        let t = &mut st.cpu.throttling;
        t.periods = s.get("nr_periods").copied().unwrap_or(0);
        t.throttled_periods = s.get("nr_throttled").copied().unwrap_or(0);
        t.throttled_time = s.get("throttled_time").copied().unwrap_or(0);
    }
    if let Some(d) = dir("cpuset") {
        st.cpuset = cpuset_v1(&d)?;
    }
    if let Some(d) = dir("memory") {
        st.memory = memory_v1(&d)?;
    }
    if let Some(d) = dir("pids") {
        st.pids.current = num(&d, "pids.current")?;
        st.pids.limit = match num(&d, "pids.max")? {
            u64::MAX => 0,
            v => v,
        };
    }
    if let Some(d) = dir("blkio") {
        // CFQ's statistics, else BFQ's, else the throttling layer's
        for prefix in ["blkio.", "blkio.bfq.", "blkio.throttle."] {
            let bytes = parse_blkio_v1(&text(&d, &format!("{prefix}io_service_bytes_recursive"))?);
            if !bytes.is_empty() {
                st.blkio.io_service_bytes_recursive = bytes;
                st.blkio.io_serviced_recursive =
                    parse_blkio_v1(&text(&d, &format!("{prefix}io_serviced_recursive"))?);
                break;
            }
        }
    }
    if let Some(d) = dir("hugetlb") {
        for size in super::hugepage_sizes()? {
            let h = Hugetlb {
                usage: num(&d, &format!("hugetlb.{size}.usage_in_bytes"))?,
                max: num(&d, &format!("hugetlb.{size}.max_usage_in_bytes"))?,
                failcnt: num(&d, &format!("hugetlb.{size}.failcnt"))?,
            };
            st.hugetlb.insert(size, h);
        }
    }
    Ok(serde_json::to_value(st)?)
}

/// Stats from a cgroup v2 directory.
pub fn collect_v2(d: &Path) -> Result<serde_json::Value> {
    let mut st = Stats::default();
    let cpu = parse_keyed(&text(d, "cpu.stat")?);
    let get = |m: &BTreeMap<String, u64>, k: &str| m.get(k).copied().unwrap_or(0);
    st.cpu.usage.total = get(&cpu, "usage_usec") * 1000;
    st.cpu.usage.user = get(&cpu, "user_usec") * 1000;
    st.cpu.usage.kernel = get(&cpu, "system_usec") * 1000;
    st.cpu.throttling.periods = get(&cpu, "nr_periods");
    st.cpu.throttling.throttled_periods = get(&cpu, "nr_throttled");
    st.cpu.throttling.throttled_time = get(&cpu, "throttled_usec") * 1000;
    // cpuset stays empty: v2 has none of v1's cpuset statistics, and runc
    // reports none either
    let m = &mut st.memory;
    m.usage = MemoryEntry {
        limit: num(d, "memory.max")?,
        usage: num(d, "memory.current")?,
        max: num(d, "memory.peak")?,
        failcnt: get(&parse_keyed(&text(d, "memory.events")?), "max"),
    };
    // v1 reports memory+swap; keep that meaning
    let swap_limit = num(d, "memory.swap.max")?;
    m.swap = MemoryEntry {
        limit: swap_limit.saturating_add(m.usage.limit),
        usage: num(d, "memory.swap.current")? + m.usage.usage,
        max: 0,
        failcnt: 0,
    };
    m.raw = parse_keyed(&text(d, "memory.stat")?);
    m.cache = get(&m.raw, "file");
    st.pids.current = num(d, "pids.current")?;
    st.pids.limit = match num(d, "pids.max")? {
        u64::MAX => 0,
        v => v,
    };
    (
        st.blkio.io_service_bytes_recursive,
        st.blkio.io_serviced_recursive,
    ) = parse_io_stat(&text(d, "io.stat")?);
    for size in super::hugepage_sizes()? {
        if !d.join(format!("hugetlb.{size}.current")).exists() {
            continue;
        }
        let h = Hugetlb {
            usage: num(d, &format!("hugetlb.{size}.current"))?,
            max: 0,
            failcnt: get(
                &parse_keyed(&text(d, &format!("hugetlb.{size}.events"))?),
                "max",
            ),
        };
        st.hugetlb.insert(size, h);
    }
    Ok(serde_json::to_value(st)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_and_blkio_parsing() {
        let m = parse_keyed("cache 4096\nrss 8192\nbad line x\n");
        assert_eq!(m.get("cache"), Some(&4096));
        assert_eq!(m.get("rss"), Some(&8192));
        assert_eq!(m.len(), 2);
        let b = parse_blkio_v1("254:0 Read 512\n254:0 Write 0\n8:16 Total 9\nTotal 521\n");
        assert_eq!(b.len(), 3);
        assert_eq!(
            b[0],
            BlkioEntry {
                major: 254,
                minor: 0,
                op: "Read".into(),
                value: 512
            }
        );
        assert_eq!(b[2].minor, 16);
    }

    #[test]
    fn io_stat_parsing() {
        let (bytes, ios) = parse_io_stat("254:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n7:1 rbytes=1 wbytes=0 rios=1 wios=0\n");
        assert_eq!(bytes.len(), 4);
        assert_eq!(
            bytes[1],
            BlkioEntry {
                major: 254,
                minor: 0,
                op: "Write".into(),
                value: 8192
            }
        );
        assert_eq!(ios[0].value, 1);
        assert_eq!(ios[3].major, 7);
    }

    #[test]
    fn usage_all_parsing() {
        let (k, u) = parse_usage_all("cpu user system\n0 100 200\n1 300 400\n");
        assert_eq!(k, vec![200, 400]);
        assert_eq!(u, vec![100, 300]);
    }

    #[test]
    fn omitempty_like_runc() {
        let mut st = Stats::default();
        st.memory.usage.limit = 5;
        st.blkio.io_service_bytes_recursive.push(BlkioEntry {
            major: 254,
            minor: 0,
            op: "Read".into(),
            value: 0,
        });
        let v = serde_json::to_value(&st).unwrap();
        assert_eq!(
            v["memory"]["usage"],
            serde_json::json!({"limit": 5, "failcnt": 0})
        );
        assert_eq!(
            v["blkio"]["ioServiceBytesRecursive"],
            serde_json::json!([{"major": 254, "op": "Read"}])
        );
        assert!(v["blkio"].get("ioServicedRecursive").is_none());
        assert_eq!(
            v["cpu"]["usage"],
            serde_json::json!({"kernel": 0, "user": 0})
        );
        assert_eq!(v["cpu"]["throttling"], serde_json::json!({}));
        assert!(v["network_interfaces"].is_null());
        assert_eq!(v["hugetlb"], serde_json::json!({}));
        assert!(v["memory"].get("raw").is_none());
    }

    #[test]
    fn collect_v1_from_fixture_dirs() {
        let tmp = std::env::temp_dir().join(format!("rcontain-stats-{}", std::process::id()));
        let mem = tmp.join("memory");
        let pids = tmp.join("pids");
        std::fs::create_dir_all(&mem).unwrap();
        std::fs::create_dir_all(&pids).unwrap();
        for (f, v) in [
            ("memory.limit_in_bytes", "67108864\n"),
            ("memory.usage_in_bytes", "1814528\n"),
            ("memory.max_usage_in_bytes", "1998848\n"),
            ("memory.failcnt", "3\n"),
            ("memory.stat", "cache 12288\nrss 4096\n"),
        ] {
            std::fs::write(mem.join(f), v).unwrap();
        }
        std::fs::write(pids.join("pids.current"), "4\n").unwrap();
        std::fs::write(pids.join("pids.max"), "max\n").unwrap();
        let v = collect_v1(&|c| match c {
            "memory" => Some(mem.clone()),
            "pids" => Some(pids.clone()),
            _ => None,
        });
        std::fs::remove_dir_all(&tmp).unwrap();
        let v = v.unwrap();
        assert_eq!(
            v["memory"]["usage"],
            serde_json::json!({"limit": 67108864, "usage": 1814528, "max": 1998848, "failcnt": 3})
        );
        assert_eq!(v["memory"]["cache"], 12288);
        assert_eq!(v["memory"]["raw"]["rss"], 4096);
        assert_eq!(
            v["memory"]["swap"],
            serde_json::json!({"limit": 0, "failcnt": 0})
        );
        assert_eq!(v["pids"], serde_json::json!({"current": 4}));
    }
}
