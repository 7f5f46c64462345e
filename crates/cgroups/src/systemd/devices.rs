//! Device rules as systemd's `DevicePolicy` / `DeviceAllow`, with runc's
//! conversion, so that the unit reads back as runc's. systemd only has an
//! allow-list (`strict`: deny what is not listed), so the rules are first
//! reduced to the state a v1 devices cgroup would end in, then each
//! exception is spelled the way systemd parses it. rcontain's own filter
//! (eBPF on v2, devices.* on v1) is still applied afterwards and is the
//! exact one; systemd's is what it restores after a daemon-reload.

use super::{Property, Value};
use crate::devices::{access_of, Rule};
use anyhow::{bail, Result};
use std::collections::BTreeMap;

/// A wildcard major or minor in `Key`.
const ANY: i64 = -1;

/// (major, minor, kind): the order runc lists the exceptions in (wildcards
/// first, block before char), which is the order systemd then shows.
type Key = (i64, i64, char);

/// The end state of a v1 devices cgroup after some rules: a default and
/// the exceptions to it.
#[derive(Default)]
struct Emulated {
    default_allow: bool,
    exceptions: BTreeMap<Key, u32>,
}

impl Emulated {
    fn apply(&mut self, r: &Rule) -> Result<()> {
        if r.kind == 'a' {
            // "a" resets the cgroup to allow or deny everything
            *self = Emulated {
                default_allow: r.allow,
                exceptions: BTreeMap::new(),
            };
            return Ok(());
        }
        let key = (r.major.unwrap_or(ANY), r.minor.unwrap_or(ANY), r.kind);
        let bits = r.access_bits();
        if r.allow != self.default_allow {
            *self.exceptions.entry(key).or_default() |= bits;
            return Ok(());
        }
        // Removing access that a wider exception grants cannot be
        // expressed (v1 ignores it silently); runc refuses it.
        let (major, minor, kind) = key;
        for wider in [(ANY, minor, kind), (major, ANY, kind), (ANY, ANY, kind)] {
            if wider != key && self.exceptions.get(&wider).is_some_and(|b| b & bits != 0) {
                bail!(
                    "linux.resources.devices: the rule {:?} takes access away from the wider rule {} {}:{}, which the systemd driver cannot express",
                    r.v1_line(),
                    kind,
                    num(wider.0),
                    num(wider.1)
                );
            }
        }
        if let Some(b) = self.exceptions.get_mut(&key) {
            *b &= !bits;
            if *b == 0 {
                self.exceptions.remove(&key);
            }
        }
        Ok(())
    }
}

fn num(n: i64) -> String {
    if n == ANY {
        "*".into()
    } else {
        n.to_string()
    }
}

/// The properties for `rules` (the container's full list: the spec's, the
/// defaults, its device nodes) on systemd `version`, as runc sets them.
/// `proc_devices` is /proc/devices, needed only before systemd 240.
pub fn device_properties(
    rules: &[Rule],
    version: u32,
    proc_devices: impl Fn() -> Result<String>,
    exists: impl Fn(&str) -> bool,
) -> Result<Vec<Property>> {
    let mut emu = Emulated::default();
    for r in rules {
        emu.apply(r)?;
    }
    let policy = |p: &str| ("DevicePolicy", Value::Str(p.into()));
    // An empty DeviceAllow clears what the unit had before.
    let clear = ("DeviceAllow", Value::DeviceAllow(Vec::new()));
    if emu.default_allow {
        if emu.exceptions.is_empty() {
            // allow everything: systemd's default policy with no list
            return Ok(vec![policy("auto"), clear]);
        }
        // A deny-list: systemd has none, so runc leaves systemd denying
        // everything and its own filter alone decides.
        return Ok(vec![policy("strict"), clear]);
    }
    let mut allow = Vec::new();
    let mut devices_text = None;
    for (&(major, minor, kind), &bits) in &emu.exceptions {
        let group = if kind == 'b' { "block-" } else { "char-" };
        let path = match (major, minor) {
            // "*:n" has no systemd spelling: left to rcontain's filter
            (ANY, m) if m != ANY => continue,
            (ANY, _) => format!("{group}*"),
            (maj, ANY) if version >= 240 => format!("{group}{maj}"),
            (maj, ANY) => {
                let text = match &devices_text {
                    Some(t) => t,
                    None => devices_text.insert(proc_devices()?),
                };
                match device_group(text, kind, maj) {
                    Some(name) => format!("{group}{name}"),
                    None => continue,
                }
            }
            (maj, min) => {
                let dir = if kind == 'b' { "block" } else { "char" };
                let path = format!("/dev/{dir}/{maj}:{min}");
                // before 240 systemd stat()s the path and skips a missing one
                if version < 240 && !exists(&path) {
                    continue;
                }
                path
            }
        };
        allow.push((path, access_of(bits)));
    }
    Ok(vec![
        policy("strict"),
        clear,
        ("DeviceAllow", Value::DeviceAllow(allow)),
    ])
}

/// The name /proc/devices gives `major` in the `kind` section.
fn device_group(text: &str, kind: char, major: i64) -> Option<String> {
    let mut section = ' ';
    for line in text.lines().map(str::trim) {
        match line {
            "Character devices:" => section = 'c',
            "Block devices:" => section = 'b',
            _ if section == kind => {
                if let Some((n, name)) = line.split_once(' ') {
                    if n.parse() == Ok(major) {
                        return Some(name.trim().to_string());
                    }
                }
            }
            _ => {}
        }
    }
    None
}
