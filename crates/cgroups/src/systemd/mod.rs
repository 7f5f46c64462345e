//! The systemd cgroup driver (`--systemd-cgroup`): the container's cgroup
//! is a transient scope unit that systemd creates and owns, as runc's
//! driver does, so that systemd (which rewrites the cgroups of its units,
//! e.g. on `daemon-reload`) keeps the container's limits.
//!
//! This module is the pure part: `slice:prefix:name` parsing, slice
//! expansion and the spec-to-unit-property conversions (runc's). The
//! D-Bus calls are in `bus`.

mod annotations;
mod bus;
mod devices;

use crate::{translate, Mode};
use anyhow::{bail, Result};
use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The slice a container goes to when cgroupsPath names none (runc's).
pub const DEFAULT_SLICE: &str = "system.slice";
/// The same for the user's own systemd (rootless), inside its
/// user@UID.service (runc's).
pub const USER_SLICE: &str = "user.slice";
/// The unit-name prefix when cgroupsPath is empty: runc uses "runc"; two
/// runtimes must not race for one unit name, so this one says "rcontain".
pub const DEFAULT_PREFIX: &str = "rcontain";

/// A container's scope unit. Persisted in the state (Manager "systemd").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unit {
    /// "prefix-name.scope"
    #[serde(rename = "unit")]
    pub name: String,
    /// the slice unit it lives in, "system.slice"
    #[serde(rename = "slice")]
    pub slice: String,
    /// Owned by the user's systemd instance (rootless), reached on the
    /// user's D-Bus, rather than by the system's.
    #[serde(rename = "user", default, skip_serializing_if = "std::ops::Not::not")]
    pub user: bool,
}

impl Unit {
    /// runc's rules: cgroupsPath "slice:prefix:name" (each part may be
    /// empty: slice defaults to system.slice); an absent or empty
    /// cgroupsPath is ":rcontain:<id>". Returns the unit and its cgroup
    /// path relative to the hierarchy roots, or for the `user`'s systemd
    /// (whose default slice is user.slice) relative to that manager's own
    /// cgroup.
    pub fn parse(cgroups_path: Option<&Path>, id: &str, user: bool) -> Result<(Unit, PathBuf)> {
        let given = cgroups_path
            .map(|p| {
                p.to_str()
                    .map(String::from)
                    .ok_or_else(|| anyhow::anyhow!("linux.cgroupsPath {p:?} is not valid UTF-8"))
            })
            .transpose()?
            .unwrap_or_default();
        let (slice, prefix, name) = if given.is_empty() {
            ("", DEFAULT_PREFIX, id)
        } else {
            let parts: Vec<&str> = given.split(':').collect();
            let [s, p, n] = parts[..] else {
                bail!("linux.cgroupsPath {given:?}: with --systemd-cgroup it must be \"slice:prefix:name\"");
            };
            (s, p, n)
        };
        let slice = if slice.is_empty() && user {
            USER_SLICE
        } else if slice.is_empty() {
            DEFAULT_SLICE
        } else {
            slice
        };
        let slice_path =
            expand_slice(slice).map_err(|e| anyhow::anyhow!("linux.cgroupsPath {given:?}: {e}"))?;
        if name.is_empty() {
            bail!("linux.cgroupsPath {given:?}: the name (after the second ':') is empty");
        }
        if name.ends_with(".slice") {
            bail!("linux.cgroupsPath {given:?}: a container in a slice unit of its own ({name:?}) is not supported, only a scope");
        }
        let unit = format!("{prefix}-{name}.scope");
        if let Some(c) = unit.chars().find(|c| !unit_char(*c)) {
            bail!("linux.cgroupsPath {given:?}: {c:?} is not allowed in a systemd unit name ({unit:?})");
        }
        // systemd's UNIT_NAME_MAX
        if unit.len() >= 256 {
            bail!("linux.cgroupsPath {given:?}: the unit name {unit:?} is longer than systemd's 255 bytes");
        }
        let path = slice_path.join(&unit);
        Ok((
            Unit {
                name: unit,
                slice: slice.to_string(),
                user,
            },
            path,
        ))
    }
}

/// Characters systemd accepts in a unit name.
fn unit_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || ":-_.\\@".contains(c)
}

/// systemd's nesting: "a-b-c.slice" is /a.slice/a-b.slice/a-b-c.slice and
/// "-.slice" the root.
pub fn expand_slice(slice: &str) -> Result<PathBuf> {
    let bad = || anyhow::anyhow!("invalid slice name {slice:?}");
    let base = slice.strip_suffix(".slice").ok_or_else(bad)?;
    if base.is_empty() || slice.contains('/') {
        return Err(bad());
    }
    if let Some(c) = slice.chars().find(|c| !unit_char(*c)) {
        bail!("invalid slice name {slice:?}: {c:?} is not allowed in a unit name");
    }
    let mut path = PathBuf::from("/");
    if base == "-" {
        return Ok(path);
    }
    let mut prefix = String::new();
    for part in base.split('-') {
        if part.is_empty() {
            return Err(bad());
        }
        prefix.push_str(part);
        path.push(format!("{prefix}.slice"));
        prefix.push('-');
    }
    Ok(path)
}

/// A unit property value, in the D-Bus type systemd expects for it.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(String),
    Bool(bool),
    /// "t"
    U64(u64),
    /// "au"
    U32s(Vec<u32>),
    /// "ay"
    Bytes(Vec<u8>),
    /// "a(ss)": DeviceAllow's (path or group, access)
    DeviceAllow(Vec<(String, String)>),
    // The other basic types, for org.systemd.property.* annotations.
    Byte(u8),
    I16(i16),
    U16(u16),
    I32(i32),
    U32(u32),
    I64(i64),
    Double(f64),
    ObjectPath(String),
    Signature(String),
    /// An array of the basic type whose signature is given ("s", "t", ...)
    Array(String, Vec<Value>),
}

pub type Property = (&'static str, Value);

/// The properties the scope is started with (runc's): no resources yet,
/// those are set afterwards as `update` sets them.
pub fn start_properties(unit: &Unit, id: &str, pid: i32, mode: Mode) -> Vec<Property> {
    let io_accounting = if mode == Mode::V2 {
        "IOAccounting"
    } else {
        "BlockIOAccounting"
    };
    vec![
        (
            "Description",
            Value::Str(format!("rcontain container {id}")),
        ),
        ("Slice", Value::Str(unit.slice.clone())),
        ("PIDs", Value::U32s(vec![pid as u32])),
        ("Delegate", Value::Bool(true)),
        ("MemoryAccounting", Value::Bool(true)),
        ("CPUAccounting", Value::Bool(true)),
        (io_accounting, Value::Bool(true)),
        ("TasksAccounting", Value::Bool(true)),
        // scopes otherwise conflict with shutdown.target and are stopped
        // before the engine that manages them
        ("DefaultDependencies", Value::Bool(false)),
    ]
}

/// The properties for `r` (runc's conversions); `version` is systemd's,
/// which learnt CPUQuotaPeriodUSec in 242 and AllowedCPUs in 244. What
/// has no property is written to the cgroup files afterwards.
pub fn resource_properties(r: &LinuxResources, mode: Mode, version: u32) -> Result<Vec<Property>> {
    let mut props = Vec::new();
    let v2 = mode == Mode::V2;
    if let Some(m) = r.memory() {
        let limit = m.limit().unwrap_or(0);
        if limit != 0 {
            let key = if v2 { "MemoryMax" } else { "MemoryLimit" };
            props.push((key, Value::U64(limit as u64)));
        }
        if v2 {
            if let Some(low) = m.reservation().filter(|&l| l != 0) {
                props.push(("MemoryLow", Value::U64(low as u64)));
            }
            let swap = translate::swap_to_v2(m.swap().unwrap_or(0), limit)?;
            if swap != 0 {
                props.push(("MemorySwapMax", Value::U64(swap as u64)));
            }
        }
    }
    if let Some(cpu) = r.cpu() {
        if let Some(shares) = cpu.shares().filter(|&s| s != 0) {
            if v2 {
                let w = translate::shares_to_weight(shares);
                props.push(("CPUWeight", Value::U64(w)));
            } else {
                props.push(("CPUShares", Value::U64(shares)));
            }
        }
        cpu_quota(
            &mut props,
            cpu.quota().unwrap_or(0),
            cpu.period().unwrap_or(0),
            version,
        );
        if version >= 244 {
            for (key, list) in [
                ("AllowedCPUs", cpu.cpus()),
                ("AllowedMemoryNodes", cpu.mems()),
            ] {
                if let Some(list) = list.as_deref().filter(|l| !l.is_empty()) {
                    let bits = range_to_bits(list)
                        .map_err(|e| anyhow::anyhow!("cpu.{}: {list:?}: {e}", key_field(key)))?;
                    props.push((key, Value::Bytes(bits)));
                }
            }
        }
    }
    if let Some(p) = r.pids() {
        let l = p.limit();
        if l > 0 || l == -1 {
            props.push(("TasksMax", Value::U64(l as u64)));
        }
    }
    if !v2 {
        if let Some(w) = r
            .block_io()
            .as_ref()
            .and_then(|b| b.weight())
            .filter(|&w| w != 0)
        {
            props.push(("BlockIOWeight", Value::U64(w.into())));
        }
    }
    Ok(props)
}

fn key_field(key: &str) -> &'static str {
    if key == "AllowedCPUs" {
        "cpus"
    } else {
        "mems"
    }
}

/// runc's CPU quota properties: systemd keeps the quota per second as a
/// whole percentage, so a fraction is rounded up to the next 10 ms, which
/// the cgroup file (written afterwards) then makes exact.
fn cpu_quota(props: &mut Vec<Property>, quota: i64, period: u64, version: u32) {
    if period != 0 && version >= 242 {
        props.push(("CPUQuotaPeriodUSec", Value::U64(period)));
    }
    if quota == 0 && period == 0 {
        return;
    }
    let mut per_sec = u64::MAX; // USEC_INFINITY
    if quota > 0 {
        let period = if period == 0 { 100_000 } else { period };
        per_sec = (quota as u64).saturating_mul(1_000_000) / period;
        if per_sec % 10_000 != 0 {
            per_sec = (per_sec / 10_000 + 1) * 10_000;
        }
    }
    props.push(("CPUQuotaPerSecUSec", Value::U64(per_sec)));
}

/// A cpu list ("0-3,8") as systemd's bitmask: bit n of byte n/8 for cpu
/// n, the lowest byte first.
pub fn range_to_bits(list: &str) -> Result<Vec<u8>> {
    let cpus = translate::parse_cpu_list(list)?;
    let top = cpus.iter().copied().max().unwrap_or(0) as usize;
    let mut bits = vec![0u8; top / 8 + 1];
    for c in cpus {
        bits[c as usize / 8] |= 1 << (c % 8);
    }
    Ok(bits)
}

pub use annotations::properties as annotation_properties;
pub use bus::Bus;
pub use devices::device_properties;

/// The user's D-Bus address, as runc finds it: $DBUS_SESSION_BUS_ADDRESS,
/// else $XDG_RUNTIME_DIR/bus when that socket exists (the bus of the
/// user's systemd, dbus-user-session); one line saying so otherwise.
pub fn user_bus_address(
    env_address: Option<std::ffi::OsString>,
    runtime_dir: Option<std::ffi::OsString>,
) -> Result<String> {
    if let Some(a) = env_address.filter(|a| !a.is_empty()) {
        return a.into_string().map_err(|a| {
            anyhow::anyhow!("--systemd-cgroup: DBUS_SESSION_BUS_ADDRESS {a:?} is not UTF-8")
        });
    }
    if let Some(dir) = runtime_dir.filter(|d| !d.is_empty()) {
        let bus = Path::new(&dir).join("bus");
        if bus.exists() {
            let bus = bus
                .to_str()
                .ok_or_else(|| anyhow::anyhow!("--systemd-cgroup: {bus:?} is not UTF-8"))?;
            return Ok(format!("unix:path={bus}"));
        }
    }
    bail!("--systemd-cgroup: rootless, and no user D-Bus to reach the user's systemd: DBUS_SESSION_BUS_ADDRESS is unset and there is no $XDG_RUNTIME_DIR/bus (the user's systemd, user@UID.service, with dbus-user-session, provides it)")
}

/// Before anything is made: the user's bus is there and, when it is a
/// socket path, something listens on it (a plain connect and close, no
/// D-Bus: zbus starts threads, and the init is still to be forked).
pub fn check_user_bus(
    env_address: Option<std::ffi::OsString>,
    runtime_dir: Option<std::ffi::OsString>,
) -> Result<()> {
    let address = user_bus_address(env_address, runtime_dir)?;
    if let Some(socket) = bus_socket(&address) {
        std::os::unix::net::UnixStream::connect(&socket).map_err(|e| {
            anyhow::anyhow!(
                "--systemd-cgroup: rootless, and the user's D-Bus at {} does not answer: {e}",
                socket.display()
            )
        })?;
    }
    Ok(())
}

/// The socket of a "unix:path=..." D-Bus address (the first of a list).
fn bus_socket(address: &str) -> Option<PathBuf> {
    let first = address.split(';').next()?;
    let params = first.strip_prefix("unix:")?;
    params
        .split(',')
        .find_map(|kv| kv.strip_prefix("path="))
        .map(PathBuf::from)
}

/// Whether this host was booted with systemd (sd_booted(3)'s test).
pub fn booted() -> bool {
    std::fs::symlink_metadata("/run/systemd/system").is_ok_and(|m| m.is_dir())
}

#[cfg(test)]
mod tests;
