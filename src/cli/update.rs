//! `update ID`: change a running container's resources, from a
//! linux.resources JSON file (-r FILE, or - for stdin) or from runc's
//! individual flags. The new values are kept in the container's saved
//! config.json, so later commands see them.

use super::update_flags::UpdateFlags;
use anyhow::{bail, Context, Result};
use clap::Args;
use oci_spec::runtime::LinuxResources;
use rcontain::container::state::{self, Status};
use rcontain::container::Runtime;
use serde_json::{json, Value};
use std::io::Read;
use std::path::PathBuf;

#[derive(Args)]
pub struct UpdateArgs {
    /// linux.resources as JSON from this file ("-": stdin); the flags
    /// below are then ignored, as with runc
    #[arg(short, long)]
    resources: Option<PathBuf>,
    /// Block IO weight (10..1000)
    #[arg(long = "blkio-weight")]
    blkio_weight: Option<u16>,
    /// CPU CFS period in microseconds
    #[arg(long = "cpu-period")]
    cpu_period: Option<u64>,
    /// CPU CFS quota in microseconds (-1: unlimited)
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    cpu_quota: Option<i64>,
    /// CPU shares (relative weight)
    #[arg(long = "cpu-share", alias = "cpu-shares")]
    cpu_share: Option<u64>,
    /// CPU realtime period in microseconds
    #[arg(long = "cpu-rt-period")]
    cpu_rt_period: Option<u64>,
    /// CPU realtime runtime in microseconds
    #[arg(long = "cpu-rt-runtime", allow_hyphen_values = true)]
    cpu_rt_runtime: Option<i64>,
    /// CPUs the container may use (0-3, 0,1)
    #[arg(long = "cpuset-cpus")]
    cpuset_cpus: Option<String>,
    /// Memory nodes the container may use (0-3, 0,1)
    #[arg(long = "cpuset-mems")]
    cpuset_mems: Option<String>,
    /// Memory limit (e.g. 512m; -1: unlimited)
    #[arg(long, allow_hyphen_values = true)]
    memory: Option<String>,
    /// Memory soft limit
    #[arg(long = "memory-reservation", allow_hyphen_values = true)]
    memory_reservation: Option<String>,
    /// Memory plus swap limit (-1: unlimited swap)
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    memory_swap: Option<String>,
    /// Kernel memory limit (obsolete: refused)
    #[arg(long = "kernel-memory")]
    kernel_memory: Option<String>,
    /// Kernel TCP buffer memory limit (cgroup v1)
    #[arg(long = "kernel-memory-tcp", allow_hyphen_values = true)]
    kernel_memory_tcp: Option<String>,
    /// Maximum number of processes (-1: unlimited)
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    /// Intel RDT L3 cache schema (not supported)
    #[arg(long = "l3-cache-schema")]
    l3_cache_schema: Option<String>,
    /// Intel RDT memory bandwidth schema (not supported)
    #[arg(long = "mem-bw-schema")]
    mem_bw_schema: Option<String>,
    id: String,
}

pub fn run(rt: &Runtime, a: UpdateArgs) -> Result<()> {
    if a.l3_cache_schema.is_some() || a.mem_bw_schema.is_some() {
        bail!("--l3-cache-schema/--mem-bw-schema: Intel RDT is not supported");
    }
    let r: LinuxResources = match &a.resources {
        Some(path) => {
            let mut text = String::new();
            if path.as_os_str() == "-" {
                std::io::stdin()
                    .read_to_string(&mut text)
                    .context("reading resources from stdin")?;
            } else {
                text = std::fs::read_to_string(path)
                    .with_context(|| format!("--resources {}", path.display()))?;
            }
            serde_json::from_str(&text).with_context(|| {
                format!("--resources {}: not linux.resources JSON", path.display())
            })?
        }
        None => UpdateFlags {
            blkio_weight: a.blkio_weight,
            cpu_period: a.cpu_period,
            cpu_quota: a.cpu_quota,
            cpu_share: a.cpu_share,
            cpu_rt_period: a.cpu_rt_period,
            cpu_rt_runtime: a.cpu_rt_runtime,
            cpuset_cpus: a.cpuset_cpus,
            cpuset_mems: a.cpuset_mems,
            memory: a.memory,
            memory_reservation: a.memory_reservation,
            memory_swap: a.memory_swap,
            kernel_memory: a.kernel_memory,
            kernel_memory_tcp: a.kernel_memory_tcp,
            pids_limit: a.pids_limit,
        }
        .to_resources()?,
    };
    if rt.load(&a.id)?.1 == Status::Stopped {
        bail!("cannot update container {:?}: it is not running", a.id);
    }
    super::container_cgroup(rt, &a.id)?.update(&r)?;
    save(rt, &a.id, &r)
}

/// Merge the new values into the saved config.json's linux.resources.
fn save(rt: &Runtime, id: &str, r: &LinuxResources) -> Result<()> {
    let path = rt.states.dir(id).join(state::CONFIG);
    let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut spec: Value =
        serde_json::from_slice(&text).with_context(|| format!("{}", path.display()))?;
    let resources = &mut spec["linux"]["resources"];
    if resources.is_null() {
        *resources = json!({});
    }
    merge(resources, serde_json::to_value(r)?);
    state::write_atomic(&path, &serde_json::to_vec_pretty(&spec)?)
}

/// Objects are merged key by key; anything else in `new` replaces.
fn merge(old: &mut Value, new: Value) {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            for (k, v) in n {
                merge(o.entry(k).or_insert(Value::Null), v);
            }
        }
        (_, Value::Null) => {}
        (o, n) => *o = n,
    }
}

#[cfg(test)]
mod tests {
    use super::merge;
    use serde_json::json;

    #[test]
    fn merge_keeps_untouched_values() {
        let mut old = json!({"memory": {"limit": 1, "swap": 2}, "pids": {"limit": 5}});
        merge(
            &mut old,
            json!({"memory": {"limit": 3}, "cpu": {"shares": 9}, "pids": null}),
        );
        assert_eq!(
            old,
            json!({"memory": {"limit": 3, "swap": 2}, "pids": {"limit": 5}, "cpu": {"shares": 9}})
        );
    }
}
