//! cgroup v2: one directory in the unified hierarchy; v1-style spec values
//! are translated (translate.rs), devices are an eBPF program.

use super::devices::{self, Rule};
use super::fsutil::{parse_u64, read, read_opt, read_u64, write};
use super::translate::{self, Throttle};
use super::{check_values, Stage};
use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxResources};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub(super) fn validate(root: &Path, r: &LinuxResources) -> Result<()> {
    check_values(r)?;
    have_controllers(root, r, "available")
}

/// A scope of the user's systemd: the controllers `r` needs must be among
/// those it delegated to the scope `dir` (user@.service delegates only
/// some, e.g. Debian's and Fedora's "cpu memory pids").
pub(super) fn validate_delegated(dir: &Path, r: &LinuxResources) -> Result<()> {
    have_controllers(dir, r, "delegated by the user's systemd: not")
}

/// Each controller `r` needs is in `dir`'s cgroup.controllers (`how` says
/// what its absence means, for the error).
fn have_controllers(root: &Path, r: &LinuxResources, how: &str) -> Result<()> {
    // read only when a value needs a controller: a config without limits
    // needs none, and its create skips the read
    let available = std::cell::OnceCell::new();
    for n in needs(r) {
        let (c, what) = match n {
            Need::Controller(c, what) => (c, what),
            Need::Refused(msg) => bail!("{msg}"),
            Need::Invalid(msg) => bail!("{msg}"),
        };
        if available.get().is_none() {
            let _ = available.set(read(root, "cgroup.controllers")?);
        }
        let available: &String = available.get().expect("set above");
        if !available.split_whitespace().any(|x| x == c) {
            bail!(
                "cannot set {what}: the {c} controller is not {how} in {}/cgroup.controllers",
                root.display()
            )
        }
    }
    Ok(())
}

/// What one resource value asks of cgroup v2.
enum Need {
    /// a controller (and the field that needs it, for the error)
    Controller(String, String),
    /// something v2 does not have: the error
    Refused(&'static str),
    /// a unified key that is not a cgroup file's name: the error
    Invalid(String),
}

/// What `r` asks of cgroup v2, in the order of its fields (the first
/// unmet need is the error).
fn needs(r: &LinuxResources) -> Vec<Need> {
    let ctrl = |c: &str, what: &str| Need::Controller(c.to_string(), what.to_string());
    let mut out = Vec::new();
    if let Some(m) = r.memory() {
        if m.limit().is_some() || m.reservation().is_some() || m.swap().is_some() {
            out.push(ctrl("memory", "linux.resources.memory"));
        }
        if m.kernel_tcp().is_some_and(|t| t != 0) {
            out.push(Need::Refused(
                "cannot set memory.kernelTCP: cgroup v2 has no kernel TCP memory limit",
            ));
        }
        if m.swappiness().is_some() {
            out.push(Need::Refused(
                "cannot set memory.swappiness: cgroup v2 has no per-cgroup swappiness",
            ));
        }
        if m.disable_oom_killer() == Some(true) {
            out.push(Need::Refused(
                "cannot set memory.disableOOMKiller: cgroup v2 cannot disable the OOM killer",
            ));
        }
    }
    if let Some(cpu) = r.cpu() {
        out.extend(cpu_needs(cpu));
    }
    if r.pids().is_some() {
        out.push(ctrl("pids", "linux.resources.pids"));
    }
    if let Some(bio) = r.block_io() {
        out.push(ctrl("io", "linux.resources.blockIO"));
        let leaf = bio.leaf_weight().is_some()
            || bio
                .weight_device()
                .iter()
                .flatten()
                .any(|w| w.leaf_weight().is_some());
        if leaf {
            out.push(Need::Refused(
                "cannot set blockIO.leafWeight: cgroup v2 has no leaf weights",
            ));
        }
    }
    if r.hugepage_limits().as_ref().is_some_and(|l| !l.is_empty()) {
        out.push(ctrl("hugetlb", "linux.resources.hugepageLimits"));
    }
    if r.network().as_ref().is_some_and(|n| {
        n.class_id().is_some() || n.priorities().as_ref().is_some_and(|p| !p.is_empty())
    }) {
        out.push(Need::Refused(
            "cannot set linux.resources.network: net_cls/net_prio do not exist on cgroup v2",
        ));
    }
    if r.rdma().as_ref().is_some_and(|m| !m.is_empty()) {
        out.push(ctrl("rdma", "linux.resources.rdma"));
    }
    out.extend(unified_needs(r));
    out
}

fn cpu_needs(cpu: &oci_spec::runtime::LinuxCpu) -> Vec<Need> {
    let mut out = Vec::new();
    if cpu.cpus().is_some() || cpu.mems().is_some() {
        out.push(Need::Controller(
            "cpuset".into(),
            "linux.resources.cpu.cpus/mems".into(),
        ));
    }
    if cpu.shares().is_some()
        || cpu.quota().is_some()
        || cpu.period().is_some()
        || cpu.burst().is_some()
    {
        out.push(Need::Controller("cpu".into(), "linux.resources.cpu".into()));
    }
    if cpu.realtime_runtime().is_some_and(|v| v != 0)
        || cpu.realtime_period().is_some_and(|v| v != 0)
    {
        out.push(Need::Refused("cannot set cpu.realtimeRuntime/realtimePeriod: cgroup v2 has no realtime group scheduling"));
    }
    out
}

/// linux.resources.unified: each key's controller, up to the first
/// invalid key.
fn unified_needs(r: &LinuxResources) -> Vec<Need> {
    let mut out = Vec::new();
    for key in r.unified().iter().flatten().map(|(k, _)| k) {
        let Some((controller, _)) = key.split_once('.') else {
            out.push(Need::Invalid(format!(
                "linux.resources.unified: invalid key {key:?} (want <controller>.<file>)"
            )));
            return out;
        };
        if key.contains('/') || key.starts_with('.') {
            out.push(Need::Invalid(format!(
                "linux.resources.unified: invalid key {key:?}"
            )));
            return out;
        }
        if controller != "cgroup" {
            out.push(Need::Controller(
                controller.to_string(),
                format!("linux.resources.unified[{key:?}]"),
            ));
        }
    }
    out
}

/// Enable, in the cgroups rcontain just created above `leaf`, every
/// controller their parent hands down. Pre-existing cgroups are never
/// written: what they already delegate is what the container can use.
pub(super) fn enable_controllers(leaf: &Path, created: &[PathBuf]) -> Result<()> {
    for dir in created.iter().filter(|d| d.as_path() != leaf) {
        for c in read(dir, "cgroup.controllers")?.split_whitespace() {
            write(
                dir,
                "cgroup.subtree_control",
                &format!("+{c}"),
                "the controllers of the container's parent cgroup",
            )?;
        }
    }
    Ok(())
}

/// Hands every controller the hierarchy has down through the cgroups that
/// already existed above the container's (the root included), as runc
/// does: a systemd host enables only memory and pids in the root, and the
/// container's cgroup would otherwise have no cpu or io files at all.
/// Best effort: a cgroup that refuses (processes in a non-root cgroup:
/// EBUSY; no permission) keeps what it has, and a limit that then lacks
/// its file fails in `apply`, naming the field.
pub(super) fn enable_in_ancestors(root: &Path, leaf: &Path, created: &[PathBuf]) {
    let mut dir = root.to_path_buf();
    let rel = leaf.strip_prefix(root).unwrap_or(Path::new(""));
    let mut parts = rel.components().peekable();
    while parts.peek().is_some() {
        if created.contains(&dir) {
            break;
        }
        let (Ok(have), Ok(on)) = (
            read(&dir, "cgroup.controllers"),
            read(&dir, "cgroup.subtree_control"),
        ) else {
            return;
        };
        for c in have.split_whitespace() {
            if !on.split_whitespace().any(|x| x == c) {
                let _ = write(&dir, "cgroup.subtree_control", &format!("+{c}"), "");
            }
        }
        if let Some(next) = parts.next() {
            dir.push(next);
        }
    }
}

/// `rootless`: a refused device program is skipped (see Manager).
pub(super) fn apply(
    dir: &Path,
    r: &LinuxResources,
    rules: &[Rule],
    stage: Stage,
    rootless: bool,
) -> Result<()> {
    if let Some(cpu) = r.cpu() {
        apply_cpu(dir, cpu)?;
    }
    if let Some(mem) = r.memory() {
        apply_memory(dir, mem, stage)?;
    }
    if let Some(limit) = r
        .pids()
        .as_ref()
        .and_then(|p| translate::pids_max(p.limit()))
    {
        write(dir, "pids.max", &limit, "pids.limit")?;
    }
    if let Some(bio) = r.block_io() {
        apply_io(dir, bio)?;
    }
    for l in r.hugepage_limits().iter().flatten() {
        let file = format!("hugetlb.{}.max", l.page_size());
        write(dir, &file, &l.limit().to_string(), "hugepageLimits")?;
    }
    for (dev, limits) in r.rdma().iter().flatten() {
        if let Some(line) = translate::rdma_line(dev, limits.hca_handles(), limits.hca_objects()) {
            write(dir, "rdma.max", &line, "rdma")?;
        }
    }
    // last, so that explicit v2 values win over translated ones
    for (key, value) in r.unified().iter().flatten() {
        write(dir, key, value, &format!("unified[{key:?}]"))?;
    }
    if stage == Stage::Create || r.devices().is_some() {
        let fd = std::fs::File::open(dir).with_context(|| format!("open {}", dir.display()))?;
        let r = devices::apply_v2(fd.as_fd(), rules);
        if !(rootless && r.as_ref().is_err_and(crate::is_not_permitted)) {
            r.with_context(|| format!("device rules for {}", dir.display()))?;
        }
    }
    Ok(())
}

fn apply_cpu(dir: &Path, cpu: &LinuxCpu) -> Result<()> {
    if let Some(cpus) = cpu.cpus() {
        write(dir, "cpuset.cpus", cpus, "cpu.cpus")?;
    }
    if let Some(mems) = cpu.mems() {
        write(dir, "cpuset.mems", mems, "cpu.mems")?;
    }
    if let Some(shares) = cpu.shares().filter(|&s| s != 0) {
        let weight = translate::shares_to_weight(shares).to_string();
        write(dir, "cpu.weight", &weight, "cpu.shares (as cpu.weight)")?;
    }
    let mut quota = cpu.quota();
    if quota.is_none() && cpu.period().is_some() {
        // a period alone keeps the current quota
        let cur = read(dir, "cpu.max")?;
        quota = match cur.split_whitespace().next() {
            Some("max") | None => Some(-1),
            Some(q) => Some(
                q.parse()
                    .with_context(|| format!("parse {}/cpu.max", dir.display()))?,
            ),
        };
    }
    if let Some(max) = translate::cpu_max(quota, cpu.period()) {
        write(dir, "cpu.max", &max, "cpu.quota/period (as cpu.max)")?;
    }
    if let Some(burst) = cpu.burst() {
        write(dir, "cpu.max.burst", &burst.to_string(), "cpu.burst")?;
    }
    if let Some(idle) = cpu.idle() {
        write(dir, "cpu.idle", &idle.to_string(), "cpu.idle")?;
    }
    Ok(())
}

fn apply_memory(dir: &Path, mem: &LinuxMemory, stage: Stage) -> Result<()> {
    let swap = mem.swap().unwrap_or(0);
    let limit = match mem.limit() {
        Some(l) => l,
        // a swap change alone is relative to the current memory limit
        None if swap > 0 => match parse_u64(&read(dir, "memory.max")?)? {
            u64::MAX => -1,
            v => v as i64,
        },
        None => 0,
    };
    if stage == Stage::Update && mem.check_before_update() == Some(true) && limit > 0 {
        let usage = read_u64(dir, "memory.current")?;
        if usage > limit as u64 {
            bail!("cannot set memory.limit to {limit}: below the current usage {usage} (checkBeforeUpdate)");
        }
    }
    let swap_max = translate::swap_to_v2(swap, limit).context("memory.swap")?;
    // memory+swap equal to the memory limit leaves no room for swap: "0",
    // so that the container swaps no more than on v1 (runc writes it too)
    let swap_max = if swap > 0 && swap_max == 0 {
        Some("0".to_string())
    } else {
        translate::v2_limit(swap_max)
    };
    if let Some(v) = swap_max {
        // Without swap accounting there is no memory.swap.max: "no swap"
        // and "unlimited" are then left alone, as runc does (engines ask
        // for them on every host); a real swap limit still fails.
        let nothing_to_limit = v == "0" || v == "max";
        if !nothing_to_limit || dir.join("memory.swap.max").exists() {
            write(
                dir,
                "memory.swap.max",
                &v,
                "memory.swap (as memory.swap.max)",
            )?;
        }
    }
    if let Some(v) = mem.limit().and_then(translate::v2_limit) {
        write(dir, "memory.max", &v, "memory.limit (as memory.max)")?;
    }
    if let Some(v) = mem.reservation().and_then(translate::v2_limit) {
        write(dir, "memory.low", &v, "memory.reservation (as memory.low)")?;
    }
    Ok(())
}

fn apply_io(dir: &Path, bio: &LinuxBlockIo) -> Result<()> {
    // io.bfq.weight takes blkio's range unchanged; io.weight needs converting
    let bfq = dir.join("io.bfq.weight").exists();
    let (file, what) = if bfq {
        ("io.bfq.weight", "blockIO.weight (as io.bfq.weight)")
    } else {
        ("io.weight", "blockIO.weight (as io.weight)")
    };
    let weights = translate::asks_weight(bio);
    if weights && !bfq && !dir.join(file).exists() {
        bail!(
            "cannot set linux.resources.blockIO.weight: {} has neither io.bfq.weight nor \
             io.weight (this kernel offers I/O weights only with the BFQ scheduler or io.cost)",
            dir.display()
        );
    }
    let conv = |w: u16| {
        if bfq {
            u64::from(w)
        } else {
            translate::blkio_weight_to_io_weight(w)
        }
    };
    if let Some(w) = bio.weight().filter(|&w| w != 0) {
        write(dir, file, &conv(w).to_string(), what)?;
    }
    for wd in bio.weight_device().iter().flatten() {
        if let Some(w) = wd.weight() {
            write(
                dir,
                file,
                &format!("{}:{} {}", wd.major(), wd.minor(), conv(w)),
                what,
            )?;
        }
    }
    for (which, t, what) in translate::throttles(bio) {
        let key = match which {
            Throttle::ReadBps => "rbps",
            Throttle::WriteBps => "wbps",
            Throttle::ReadIops => "riops",
            Throttle::WriteIops => "wiops",
        };
        write(
            dir,
            "io.max",
            &format!("{}:{} {key}={}", t.major(), t.minor(), t.rate()),
            what,
        )?;
    }
    Ok(())
}

const FREEZE_TIMEOUT: Duration = Duration::from_secs(2);

pub(super) fn freeze(dir: &Path, frozen: bool) -> Result<()> {
    write(
        dir,
        "cgroup.freeze",
        if frozen { "1" } else { "0" },
        "the freezer state",
    )?;
    let deadline = Instant::now() + FREEZE_TIMEOUT;
    while is_frozen(dir)? != frozen {
        if Instant::now() > deadline {
            if frozen {
                // do not leave the container half frozen
                let _ = write(dir, "cgroup.freeze", "0", "the freezer state");
            }
            bail!(
                "{} did not report frozen={} within {FREEZE_TIMEOUT:?}",
                dir.join("cgroup.events").display(),
                u8::from(frozen)
            );
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

pub(super) fn is_frozen(dir: &Path) -> Result<bool> {
    let events = read_opt(dir, "cgroup.events")?.unwrap_or_default();
    Ok(events.lines().any(|l| l.trim() == "frozen 1"))
}
