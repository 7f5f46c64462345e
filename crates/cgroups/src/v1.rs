//! cgroup v1 (and the v1 half of hybrid): one directory per mounted
//! hierarchy, resources written to each controller's own files.

use super::devices::{self, Rule};
use super::fsutil::{self, read, read_u64, write, write_read_back_u64};
use super::translate::{self, Throttle};
use super::{check_values, Hierarchy, Manager, Stage};
use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxResources};
use std::path::Path;
use std::time::{Duration, Instant};

pub(super) fn validate(hierarchies: &[Hierarchy], r: &LinuxResources) -> Result<()> {
    check_values(r)?;
    let need = |c: &str, what: &str| -> Result<()> {
        if hierarchies
            .iter()
            .any(|h| h.controllers.iter().any(|x| x == c))
        {
            Ok(())
        } else {
            bail!("cannot set {what}: the {c} cgroup v1 controller is not mounted on this host")
        }
    };
    if r.memory().is_some() {
        need("memory", "linux.resources.memory")?;
    }
    if let Some(cpu) = r.cpu() {
        if cpu.cpus().is_some() || cpu.mems().is_some() {
            need("cpuset", "linux.resources.cpu.cpus/mems")?;
        }
        if cpu.shares().is_some()
            || cpu.quota().is_some()
            || cpu.period().is_some()
            || cpu.burst().is_some()
            || cpu.realtime_period().is_some()
            || cpu.realtime_runtime().is_some()
            || cpu.idle().is_some()
        {
            need("cpu", "linux.resources.cpu")?;
        }
    }
    if r.pids().is_some() {
        need("pids", "linux.resources.pids")?;
    }
    if r.block_io().is_some() {
        need("blkio", "linux.resources.blockIO")?;
    }
    if r.hugepage_limits().as_ref().is_some_and(|l| !l.is_empty()) {
        need("hugetlb", "linux.resources.hugepageLimits")?;
    }
    if let Some(net) = r.network() {
        if net.class_id().is_some() {
            need("net_cls", "linux.resources.network.classID")?;
        }
        if net.priorities().as_ref().is_some_and(|p| !p.is_empty()) {
            need("net_prio", "linux.resources.network.priorities")?;
        }
    }
    if r.rdma().as_ref().is_some_and(|m| !m.is_empty()) {
        need("rdma", "linux.resources.rdma")?;
    }
    if r.devices().is_some() {
        need("devices", "linux.resources.devices")?;
    }
    if r.unified().as_ref().is_some_and(|m| !m.is_empty()) {
        bail!("cannot set linux.resources.unified: it needs cgroup v2, and this host's controllers are cgroup v1");
    }
    Ok(())
}

/// A new cpuset cgroup starts with empty cpus/mems, which makes it
/// impossible to join: copy the parent's, outermost first. Every level of
/// `rel` below `mount` is checked, not only those this start created: a
/// concurrent start may have just created a shared parent and not filled
/// it yet (copying the same values twice is harmless).
pub(super) fn init_cpuset(mount: &Path, rel: &Path) -> Result<()> {
    for f in ["cpuset.cpus", "cpuset.mems"] {
        let mut dir = mount.to_path_buf();
        // what the level above has, once read or written
        let mut above: Option<String> = None;
        for comp in rel.components().skip(1) {
            let parent = dir.clone();
            dir.push(comp);
            let mut own = read(&dir, f)?.trim().to_string();
            if own.is_empty() {
                own = match above {
                    Some(v) => v,
                    None => read(&parent, f)?.trim().to_string(),
                };
                write(&dir, f, &own, f)?;
            }
            above = Some(own);
        }
    }
    Ok(())
}

pub(super) fn apply(m: &Manager, r: &LinuxResources, rules: &[Rule], stage: Stage) -> Result<()> {
    let dir = |c: &str| {
        m.v1_dir(c)
            .with_context(|| format!("the {c} cgroup v1 controller is not mounted"))
    };
    if let Some(cpu) = r.cpu() {
        if let Some(cpus) = cpu.cpus() {
            write(&dir("cpuset")?, "cpuset.cpus", cpus, "cpu.cpus")?;
        }
        if let Some(mems) = cpu.mems() {
            write(&dir("cpuset")?, "cpuset.mems", mems, "cpu.mems")?;
        }
        if m.v1_dir("cpu").is_some() {
            apply_cpu(&dir("cpu")?, cpu)?;
        }
    }
    if let Some(mem) = r.memory() {
        apply_memory(&dir("memory")?, mem)?;
    }
    if let Some(limit) = r
        .pids()
        .as_ref()
        .and_then(|p| translate::pids_max(p.limit()))
    {
        write(&dir("pids")?, "pids.max", &limit, "pids.limit")?;
    }
    if let Some(bio) = r.block_io() {
        apply_blkio(&dir("blkio")?, bio)?;
    }
    for l in r.hugepage_limits().iter().flatten() {
        let file = format!("hugetlb.{}.limit_in_bytes", l.page_size());
        write(
            &dir("hugetlb")?,
            &file,
            &l.limit().to_string(),
            "hugepageLimits",
        )?;
    }
    if let Some(net) = r.network() {
        if let Some(id) = net.class_id() {
            write(
                &dir("net_cls")?,
                "net_cls.classid",
                &id.to_string(),
                "network.classID",
            )?;
        }
        for p in net.priorities().iter().flatten() {
            let line = format!("{} {}", p.name(), p.priority());
            write(
                &dir("net_prio")?,
                "net_prio.ifpriomap",
                &line,
                "network.priorities",
            )?;
        }
    }
    for (dev, limits) in r.rdma().iter().flatten() {
        if let Some(line) = translate::rdma_line(dev, limits.hca_handles(), limits.hca_objects()) {
            write(&dir("rdma")?, "rdma.max", &line, "rdma")?;
        }
    }
    if stage == Stage::Create || r.devices().is_some() {
        if let Some(d) = m.v1_dir("devices") {
            apply_devices(&d, rules, stage)?;
        }
    }
    Ok(())
}

/// The rules in order at create. On update of a cgroup that already is an
/// allow-list, only the difference is written: a deny-all first would
/// briefly take /dev/null and friends from the running processes.
fn apply_devices(d: &Path, rules: &[Rule], stage: Stage) -> Result<()> {
    let what = "linux.resources.devices";
    if stage == Stage::Update {
        let target = devices::v1_allow_list(rules);
        let current = devices::parse_v1_list(&read(d, "devices.list")?);
        if let (Some(target), Some(current)) = (target, current) {
            for (allow, line) in devices::v1_diff(&current, &target) {
                let file = if allow {
                    "devices.allow"
                } else {
                    "devices.deny"
                };
                write(d, file, &line, what)?;
            }
            return Ok(());
        }
    }
    // One open of each file for all its rules.
    let (mut allow, mut deny) = (None, None);
    for rule in rules {
        let (slot, file) = if rule.allow {
            (&mut allow, "devices.allow")
        } else {
            (&mut deny, "devices.deny")
        };
        let f = match slot {
            Some(f) => f,
            None => slot.insert(fsutil::Opened::for_writing(d, file, what)?),
        };
        f.write(&rule.v1_line(), what)?;
    }
    Ok(())
}

fn apply_cpu(d: &Path, cpu: &LinuxCpu) -> Result<()> {
    if let Some(shares) = cpu.shares().filter(|&s| s != 0) {
        let got = write_read_back_u64(d, "cpu.shares", &shares.to_string(), "cpu.shares")?;
        if got != shares {
            bail!("cannot set cpu.shares: the kernel changed {shares} to {got} in {}/cpu.shares (valid range 2..=262144)", d.display());
        }
    }
    let quota = cpu.quota().filter(|&q| q != 0).map(|q| q.to_string());
    if let Some(period) = cpu.period().filter(|&p| p != 0) {
        let period = period.to_string();
        if write(d, "cpu.cfs_period_us", &period, "cpu.period").is_err() {
            // the old quota may not fit the new period: quota first, then retry
            if let Some(q) = &quota {
                write(d, "cpu.cfs_quota_us", q, "cpu.quota")?;
            }
            write(d, "cpu.cfs_period_us", &period, "cpu.period")?;
        }
    }
    if let Some(q) = &quota {
        write(d, "cpu.cfs_quota_us", q, "cpu.quota")?;
    }
    if let Some(burst) = cpu.burst() {
        write(d, "cpu.cfs_burst_us", &burst.to_string(), "cpu.burst")?;
    }
    // the period first: a runtime is checked against it
    if let Some(p) = cpu.realtime_period().filter(|&p| p != 0) {
        write(d, "cpu.rt_period_us", &p.to_string(), "cpu.realtimePeriod")?;
    }
    if let Some(rt) = cpu.realtime_runtime().filter(|&r| r != 0) {
        write(
            d,
            "cpu.rt_runtime_us",
            &rt.to_string(),
            "cpu.realtimeRuntime",
        )?;
    }
    if let Some(idle) = cpu.idle() {
        write(d, "cpu.idle", &idle.to_string(), "cpu.idle")?;
    }
    Ok(())
}

fn apply_memory(d: &Path, mem: &LinuxMemory) -> Result<()> {
    let limit = mem.limit().unwrap_or(0);
    let mut swap = mem.swap().unwrap_or(0);
    // unlimited memory with no swap given: unlimited memory+swap as well
    // (the file exists only with swap accounting; looked up only then)
    if limit == -1 && swap == 0 && d.join("memory.memsw.limit_in_bytes").exists() {
        swap = -1;
    }
    let set_limit = || -> Result<()> {
        if limit == 0 {
            return Ok(());
        }
        write(
            d,
            "memory.limit_in_bytes",
            &limit.to_string(),
            "memory.limit",
        )
        .map_err(|e| match read_u64(d, "memory.usage_in_bytes") {
            Ok(usage) => e.context(format!("current usage {usage} bytes")),
            Err(_) => e,
        })
    };
    let set_swap = || -> Result<()> {
        if swap == 0 {
            return Ok(());
        }
        write(
            d,
            "memory.memsw.limit_in_bytes",
            &swap.to_string(),
            "memory.swap",
        )
    };
    // memsw must stay >= limit at every step
    let swap_first = limit != 0
        && swap != 0
        && (swap == -1 || read_u64(d, "memory.limit_in_bytes")? < swap as u64);
    if swap_first {
        set_swap()?;
        set_limit()?;
    } else {
        set_limit()?;
        set_swap()?;
    }
    if let Some(res) = mem.reservation().filter(|&r| r != 0) {
        write(
            d,
            "memory.soft_limit_in_bytes",
            &res.to_string(),
            "memory.reservation",
        )?;
    }
    if let Some(tcp) = mem.kernel_tcp().filter(|&t| t != 0) {
        write(
            d,
            "memory.kmem.tcp.limit_in_bytes",
            &tcp.to_string(),
            "memory.kernelTCP",
        )?;
    }
    if let Some(s) = mem.swappiness() {
        write(d, "memory.swappiness", &s.to_string(), "memory.swappiness")?;
    }
    if mem.disable_oom_killer() == Some(true) {
        write(d, "memory.oom_control", "1", "memory.disableOOMKiller")?;
    }
    if let Some(h) = mem.use_hierarchy() {
        write(
            d,
            "memory.use_hierarchy",
            if h { "1" } else { "0" },
            "memory.useHierarchy",
        )?;
    }
    Ok(())
}

fn apply_blkio(d: &Path, bio: &LinuxBlockIo) -> Result<()> {
    // BFQ's files when the kernel has them, else CFQ-era names
    let bfq = d.join("blkio.bfq.weight").exists();
    let (weight, weight_device) = if bfq {
        ("blkio.bfq.weight", "blkio.bfq.weight_device")
    } else {
        ("blkio.weight", "blkio.weight_device")
    };
    let weights = translate::asks_weight(bio);
    if weights && !bfq && !d.join(weight).exists() {
        bail!(
            "cannot set linux.resources.blockIO.weight: {} has neither blkio.bfq.weight nor \
             blkio.weight (this kernel offers I/O weights only with the BFQ scheduler)",
            d.display()
        );
    }
    if let Some(w) = bio.weight().filter(|&w| w != 0) {
        write(d, weight, &w.to_string(), "blockIO.weight")?;
    }
    if let Some(w) = bio.leaf_weight().filter(|&w| w != 0) {
        write(d, "blkio.leaf_weight", &w.to_string(), "blockIO.leafWeight")?;
    }
    for wd in bio.weight_device().iter().flatten() {
        if let Some(w) = wd.weight() {
            let line = format!("{}:{} {w}", wd.major(), wd.minor());
            write(d, weight_device, &line, "blockIO.weightDevice")?;
        }
        if let Some(w) = wd.leaf_weight() {
            let line = format!("{}:{} {w}", wd.major(), wd.minor());
            write(
                d,
                "blkio.leaf_weight_device",
                &line,
                "blockIO.weightDevice.leafWeight",
            )?;
        }
    }
    for (which, t, what) in translate::throttles(bio) {
        let file = match which {
            Throttle::ReadBps => "blkio.throttle.read_bps_device",
            Throttle::WriteBps => "blkio.throttle.write_bps_device",
            Throttle::ReadIops => "blkio.throttle.read_iops_device",
            Throttle::WriteIops => "blkio.throttle.write_iops_device",
        };
        write(
            d,
            file,
            &format!("{}:{} {}", t.major(), t.minor(), t.rate()),
            what,
        )?;
    }
    Ok(())
}

const FREEZE_TIMEOUT: Duration = Duration::from_secs(2);

pub(super) fn freeze(dir: &Path, frozen: bool) -> Result<()> {
    let want = if frozen { "FROZEN" } else { "THAWED" };
    let deadline = Instant::now() + FREEZE_TIMEOUT;
    let mut tries = 0u32;
    loop {
        // a FREEZING cgroup makes progress only when asked again
        if tries.is_multiple_of(50) {
            write(dir, "freezer.state", want, "the freezer state")?;
        }
        if read(dir, "freezer.state")?.trim() == want {
            return Ok(());
        }
        if Instant::now() > deadline {
            if frozen {
                // do not leave the container half frozen
                let _ = write(dir, "freezer.state", "THAWED", "the freezer state");
            }
            bail!(
                "{} did not become {want} within {FREEZE_TIMEOUT:?}",
                dir.join("freezer.state").display()
            );
        }
        tries += 1;
        std::thread::sleep(Duration::from_millis(1));
    }
}

pub(super) fn is_frozen(dir: &Path) -> Result<bool> {
    Ok(read(dir, "freezer.state")?.trim() == "FROZEN")
}
