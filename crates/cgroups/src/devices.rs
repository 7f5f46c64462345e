//! Device access rules: the runtime's default allow-list, v1
//! `devices.allow`/`devices.deny` lines, and for v2 a hand-assembled
//! BPF_PROG_TYPE_CGROUP_DEVICE program attached with bpf(2).

use anyhow::{anyhow, bail, Context, Result};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType};
use rcontain_sys::bpf::{self, Insn};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// One normalised rule; `None` major/minor is the `*` wildcard. Persisted
/// as part of a `Manager`: the serialized names are a format.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rule {
    #[serde(rename = "allow")]
    pub allow: bool,
    /// 'a', 'b' or 'c'
    #[serde(rename = "kind")]
    pub kind: char,
    #[serde(rename = "major")]
    pub major: Option<i64>,
    #[serde(rename = "minor")]
    pub minor: Option<i64>,
    /// subset of "rwm"
    #[serde(rename = "access")]
    pub access: String,
}

impl Rule {
    fn new(allow: bool, kind: char, major: Option<i64>, minor: Option<i64>, access: &str) -> Rule {
        Rule {
            allow,
            kind,
            major,
            minor,
            access: access.into(),
        }
    }

    /// The line for devices.allow / devices.deny ("c 1:3 rwm").
    pub fn v1_line(&self) -> String {
        let num = |n: Option<i64>| n.map_or("*".to_string(), |n| n.to_string());
        if self.kind == 'a'
            && self.major.is_none()
            && self.minor.is_none()
            && self.access_bits() == 7
        {
            // "a" alone also resets the exception list, as runc writes it
            return "a".into();
        }
        format!(
            "{} {}:{} {}",
            self.kind,
            num(self.major),
            num(self.minor),
            self.access
        )
    }

    fn from_spec(r: &LinuxDeviceCgroup) -> Result<Option<Rule>> {
        let kind = match r.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::A => 'a',
            LinuxDeviceType::B => 'b',
            LinuxDeviceType::C | LinuxDeviceType::U => 'c',
            // FIFOs are not subject to the device cgroup
            LinuxDeviceType::P => return Ok(None),
        };
        let access = r.access().clone().unwrap_or_else(|| "rwm".into());
        if access.is_empty() || !access.chars().all(|c| "rwm".contains(c)) {
            bail!("linux.resources.devices: invalid access {access:?} (want a subset of \"rwm\")");
        }
        // "-1" is how some tools spell the wildcard
        let wild = |n: Option<i64>| n.filter(|&n| n >= 0);
        Ok(Some(Rule::new(
            r.allow(),
            kind,
            wild(r.major()),
            wild(r.minor()),
            &access,
        )))
    }

    pub(crate) fn access_bits(&self) -> u32 {
        self.access.chars().fold(0, |acc, c| {
            acc | match c {
                'm' => ACC_MKNOD,
                'r' => ACC_READ,
                'w' => ACC_WRITE,
                _ => 0,
            }
        })
    }
}

// --- cgroup v1: updating an allow-list in place ---------------------

/// Exceptions of a default-deny v1 devices cgroup: "c 1:3" -> access bits.
pub type AllowList = std::collections::BTreeMap<String, u32>;

fn bits_of(access: &str) -> u32 {
    Rule::new(true, 'a', None, None, access).access_bits()
}

/// Access bits as devices.list prints them ("rwm" order).
pub(crate) fn access_of(bits: u32) -> String {
    [(ACC_READ, 'r'), (ACC_WRITE, 'w'), (ACC_MKNOD, 'm')]
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, c)| *c)
        .collect()
}

/// What `rules` leave in a v1 devices cgroup when they are a deny-all
/// followed by allows only (the usual shape); None otherwise. Exceptions
/// for the same device merge, as the kernel merges them.
pub fn v1_allow_list(rules: &[Rule]) -> Option<AllowList> {
    let start = rules.iter().rposition(|r| !r.allow && r.v1_line() == "a")?;
    let mut list = AllowList::new();
    for r in &rules[start + 1..] {
        if !r.allow {
            return None;
        }
        let line = r.v1_line();
        let (dev, _) = line.rsplit_once(' ')?;
        *list.entry(dev.to_string()).or_default() |= r.access_bits();
    }
    Some(list)
}

/// devices.list as an allow-list; None when it allows everything.
pub fn parse_v1_list(s: &str) -> Option<AllowList> {
    let mut list = AllowList::new();
    for l in s.lines() {
        let (dev, access) = l.trim().rsplit_once(' ')?;
        if dev == "a *:*" {
            return None;
        }
        *list.entry(dev.to_string()).or_default() |= bits_of(access);
    }
    Some(list)
}

/// Writes that turn `current` into `target`: (allow?, line), denials
/// first. Devices allowed in both keep their access throughout.
pub fn v1_diff(current: &AllowList, target: &AllowList) -> Vec<(bool, String)> {
    let mut out = Vec::new();
    for (dev, &bits) in current {
        let gone = bits & !target.get(dev).copied().unwrap_or(0);
        if gone != 0 {
            out.push((false, format!("{dev} {}", access_of(gone))));
        }
    }
    for (dev, &bits) in target {
        let new = bits & !current.get(dev).copied().unwrap_or(0);
        if new != 0 {
            out.push((true, format!("{dev} {}", access_of(new))));
        }
    }
    out
}

/// The device rules a container gets: the spec's
/// `linux.resources.devices`, then the defaults every runtime allows,
/// then one rule per `linux.devices` entry, as runc orders them.
pub fn effective_rules(
    spec_rules: Option<&[LinuxDeviceCgroup]>,
    linux_devices: Option<&[LinuxDevice]>,
) -> Result<Vec<Rule>> {
    let mut rules = Vec::new();
    for r in spec_rules.unwrap_or_default() {
        rules.extend(Rule::from_spec(r)?);
    }
    rules.extend(default_rules());
    rules.extend(node_rules(linux_devices.unwrap_or_default()));
    Ok(rules)
}

/// mknod of anything; null, zero, full, tty, urandom, random, ptmx, the
/// ptys and tun: what runc allows every container.
pub fn default_rules() -> Vec<Rule> {
    let mut rules = vec![
        Rule::new(true, 'c', None, None, "m"),
        Rule::new(true, 'b', None, None, "m"),
    ];
    for (major, minor) in [(1, 3), (1, 8), (1, 7), (5, 0), (1, 5), (1, 9), (5, 2)] {
        rules.push(Rule::new(true, 'c', Some(major), Some(minor), "rwm"));
    }
    rules.push(Rule::new(true, 'c', Some(136), None, "rwm"));
    rules.push(Rule::new(true, 'c', Some(10), Some(200), "rwm"));
    rules
}

/// Full access to the device nodes the container was given (linux.devices).
pub fn node_rules(nodes: &[LinuxDevice]) -> Vec<Rule> {
    nodes
        .iter()
        .filter_map(|d| {
            let kind = match d.typ() {
                LinuxDeviceType::B => 'b',
                LinuxDeviceType::C | LinuxDeviceType::U => 'c',
                _ => return None,
            };
            Some(Rule::new(
                true,
                kind,
                Some(d.major()),
                Some(d.minor()),
                "rwm",
            ))
        })
        .collect()
}

// --- cgroup v2: eBPF device filter -------------------------------------

// include/uapi/linux/bpf.h
const BPF_DEVCG_ACC_MKNOD: u32 = 1;
const ACC_MKNOD: u32 = BPF_DEVCG_ACC_MKNOD;
const ACC_READ: u32 = 2;
const ACC_WRITE: u32 = 4;
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

// opcodes used below (class | op | source)
const LDX_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const AND32_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const RSH32_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
const MOV32_X: u8 = 0xbc; // BPF_ALU | BPF_MOV | BPF_X
const MOV64_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const JEQ_K: u8 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JNE_X: u8 = 0x5d; // BPF_JMP | BPF_JNE | BPF_X
const EXIT: u8 = 0x95;

/// Assemble the filter. The context is struct bpf_cgroup_dev_ctx
/// { u32 access_type /* access << 16 | type */; u32 major; u32 minor; }.
/// Rules are checked last to first so the last matching rule decides, as
/// with successive writes to v1's devices.allow/deny; an allow rule
/// matches when it grants every requested access bit, a deny rule when it
/// denies any of them. No match: deny.
pub fn assemble(rules: &[Rule]) -> Vec<Insn> {
    let mut p = vec![
        insn(LDX_W, 2, 1, 0, 0),
        insn(AND32_K, 2, 0, 0, 0xffff), // r2 = device type
        insn(LDX_W, 3, 1, 0, 0),
        insn(RSH32_K, 3, 0, 0, 16), // r3 = requested access
        insn(LDX_W, 4, 1, 4, 0),    // r4 = major
        insn(LDX_W, 5, 1, 8, 0),    // r5 = minor
    ];
    for rule in rules.iter().rev() {
        let mut block = Vec::new();
        match rule.kind {
            'b' => block.push(insn(JNE_K, 2, 0, 0, DEV_BLOCK)),
            'c' => block.push(insn(JNE_K, 2, 0, 0, DEV_CHAR)),
            _ => {}
        }
        let bits = rule.access_bits();
        if bits != ACC_MKNOD | ACC_READ | ACC_WRITE {
            block.push(insn(MOV32_X, 1, 3, 0, 0));
            block.push(insn(AND32_K, 1, 0, 0, bits as i32));
            if rule.allow {
                block.push(insn(JNE_X, 1, 3, 0, 0)); // not all requested bits granted
            } else {
                block.push(insn(JEQ_K, 1, 0, 0, 0)); // no requested bit denied
            }
        }
        if let Some(major) = rule.major {
            block.push(insn(JNE_K, 4, 0, 0, major as i32));
        }
        if let Some(minor) = rule.minor {
            block.push(insn(JNE_K, 5, 0, 0, minor as i32));
        }
        let unconditional = block.is_empty();
        block.push(insn(MOV64_K, 0, 0, 0, i32::from(rule.allow)));
        block.push(insn(EXIT, 0, 0, 0, 0));
        // every jump so far skips to the end of this rule's block
        let len = block.len();
        for (i, ins) in block.iter_mut().enumerate() {
            if matches!(ins.code, JNE_K | JEQ_K | JNE_X) {
                ins.off = (len - i - 1) as i16;
            }
        }
        p.extend(block);
        if unconditional {
            // it decides everything: the verifier rejects code after it
            return p;
        }
    }
    p.push(insn(MOV64_K, 0, 0, 0, 0));
    p.push(insn(EXIT, 0, 0, 0, 0));
    p
}

fn load(prog: &[Insn]) -> Result<OwnedFd> {
    let mut log = vec![0u8; 64 * 1024];
    bpf::load_device_prog(prog, c"Apache-2.0", &mut log).map_err(|e| {
        let end = log.iter().position(|&b| b == 0).unwrap_or(0);
        anyhow!(
            "bpf(BPF_PROG_LOAD) of the device filter ({} instructions): {e}: {}",
            prog.len(),
            String::from_utf8_lossy(&log[..end]).trim()
        )
    })
}

/// Load the filter for `rules` and make it the cgroup's only device
/// program: the new one is attached before the old ones are detached, so
/// no access is ever allowed by an absent filter in between.
pub fn apply_v2(cgroup: BorrowedFd, rules: &[Rule]) -> Result<()> {
    let old = bpf::query_device_progs(cgroup, 64)
        .context("bpf(BPF_PROG_QUERY) of the cgroup's device programs")?;
    let prog = load(&assemble(rules))?;
    bpf::attach_device_prog(cgroup, prog.as_fd(), bpf::F_ALLOW_MULTI)
        .context("bpf(BPF_PROG_ATTACH) of the device filter")?;
    for id in old {
        let old_prog = bpf::prog_fd_by_id(id)
            .with_context(|| format!("bpf(BPF_PROG_GET_FD_BY_ID) for old device program {id}"))?;
        bpf::detach_device_prog(cgroup, old_prog.as_fd())
            .with_context(|| format!("bpf(BPF_PROG_DETACH) of old device program {id}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny interpreter for exactly the instructions `assemble` emits, so
    /// the program's decisions can be checked without the kernel.
    fn run(prog: &[Insn], typ: u32, access: u32, major: u32, minor: u32) -> u64 {
        let ctx = [access << 16 | typ, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            let imm = i.imm as i64 as u64;
            let mut jump = |cond: bool| {
                if cond {
                    pc = (pc as i64 + i64::from(i.off)) as usize;
                }
            };
            match i.code {
                LDX_W => r[dst] = u64::from(ctx[i.off as usize / 4]),
                AND32_K => r[dst] = (r[dst] as u32 & i.imm as u32) as u64,
                RSH32_K => r[dst] = ((r[dst] as u32) >> i.imm) as u64,
                MOV32_X => r[dst] = r[src] as u32 as u64,
                MOV64_K => r[dst] = imm,
                JNE_K => jump(r[dst] != imm),
                JEQ_K => jump(r[dst] == imm),
                JNE_X => jump(r[dst] != r[src]),
                EXIT => return r[0],
                c => panic!("unexpected opcode {c:#x}"),
            }
            pc += 1;
        }
    }

    /// The kernel verifier refuses programs with unreachable instructions.
    fn assert_all_reachable(prog: &[Insn]) {
        let mut seen = vec![false; prog.len()];
        let mut todo = vec![0usize];
        while let Some(pc) = todo.pop() {
            if pc >= prog.len() || seen[pc] {
                continue;
            }
            seen[pc] = true;
            match prog[pc].code {
                EXIT => {}
                JNE_K | JEQ_K | JNE_X => todo.extend([pc + 1, pc + 1 + prog[pc].off as usize]),
                _ => todo.push(pc + 1),
            }
        }
        assert!(
            seen.iter().all(|&s| s),
            "unreachable instructions in {prog:?}"
        );
    }

    fn spec_rule(
        allow: bool,
        typ: LinuxDeviceType,
        major: Option<i64>,
        access: &str,
    ) -> LinuxDeviceCgroup {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(allow);
        r.set_typ(Some(typ));
        r.set_major(major);
        r.set_access(Some(access.into()));
        r
    }

    #[test]
    fn default_rules_follow_a_deny_all() {
        let deny_all = spec_rule(false, LinuxDeviceType::A, None, "rwm");
        let rules = effective_rules(Some(&[deny_all]), None).unwrap();
        assert_eq!(rules[0].v1_line(), "a");
        assert!(!rules[0].allow);
        let lines: Vec<String> = rules[1..].iter().map(Rule::v1_line).collect();
        assert!(lines.contains(&"c 1:3 rwm".to_string()));
        assert!(lines.contains(&"c 136:* rwm".to_string()));
        assert!(lines.contains(&"b *:* m".to_string()));
    }

    #[test]
    fn filter_decisions() {
        let rules = effective_rules(
            Some(&[
                spec_rule(false, LinuxDeviceType::A, None, "rwm"),
                spec_rule(true, LinuxDeviceType::B, Some(8), "r"),
            ]),
            None,
        )
        .unwrap();
        let p = assemble(&rules);
        assert_all_reachable(&p);
        let (c, b) = (DEV_CHAR as u32, DEV_BLOCK as u32);
        assert_eq!(run(&p, c, ACC_READ | ACC_WRITE, 1, 3), 1); // /dev/null rw
        assert_eq!(run(&p, c, ACC_READ, 1, 1), 0); // /dev/mem
        assert_eq!(run(&p, c, ACC_MKNOD, 4, 4), 1); // mknod of anything
        assert_eq!(run(&p, c, ACC_READ, 136, 7), 1); // a pty
        assert_eq!(run(&p, b, ACC_READ, 8, 0), 1);
        assert_eq!(run(&p, b, ACC_READ | ACC_WRITE, 8, 0), 0); // only r granted
        assert_eq!(run(&p, b, ACC_READ, 9, 0), 0);
    }

    #[test]
    fn last_rule_wins_and_deny_matches_any_bit() {
        let rules = vec![
            Rule::new(true, 'a', None, None, "rwm"),
            Rule::new(false, 'c', Some(1), Some(3), "w"),
        ];
        let p = assemble(&rules);
        assert_all_reachable(&p);
        let c = DEV_CHAR as u32;
        assert_eq!(run(&p, c, ACC_READ, 1, 3), 1);
        assert_eq!(run(&p, c, ACC_READ | ACC_WRITE, 1, 3), 0);
        assert_eq!(run(&p, DEV_BLOCK as u32, ACC_WRITE, 1, 3), 1);
        assert_eq!(run(&p, c, ACC_WRITE, 1, 4), 1);
    }

    #[test]
    fn v1_update_writes_only_the_difference() {
        let deny_all = spec_rule(false, LinuxDeviceType::A, None, "rwm");
        let extra = spec_rule(true, LinuxDeviceType::C, Some(10), "rw");
        let rules = effective_rules(Some(&[deny_all.clone(), extra]), None).unwrap();
        let target = v1_allow_list(&rules).unwrap();
        assert_eq!(target.get("c 10:*"), Some(&(ACC_READ | ACC_WRITE)));
        assert_eq!(target.get("c 1:3"), Some(&7));
        // what the kernel lists after the create-time writes of the defaults
        let before = effective_rules(Some(&[deny_all]), None).unwrap();
        let listed: String = v1_allow_list(&before)
            .unwrap()
            .iter()
            .map(|(d, b)| format!("{d} {}\n", access_of(*b)))
            .collect();
        assert!(listed.contains("c 1:3 rwm\n"));
        let current = parse_v1_list(&listed).unwrap();
        assert_eq!(
            v1_diff(&current, &target),
            vec![(true, "c 10:* rw".to_string())]
        );
        assert_eq!(
            v1_diff(&target, &current),
            vec![(false, "c 10:* rw".to_string())]
        );
        let mut narrower = current.clone();
        narrower.insert("c 1:3".into(), ACC_READ);
        assert_eq!(
            v1_diff(&current, &narrower),
            vec![(false, "c 1:3 wm".to_string())]
        );
        assert!(parse_v1_list("a *:* rwm\n").is_none());
        // not a deny-all + allows shape: no shortcut
        assert!(v1_allow_list(&[Rule::new(true, 'a', None, None, "rwm")]).is_none());
        assert!(v1_allow_list(&[
            Rule::new(false, 'a', None, None, "rwm"),
            Rule::new(false, 'c', Some(1), Some(3), "w")
        ])
        .is_none());
    }

    #[test]
    fn bad_access_is_rejected() {
        let r = spec_rule(true, LinuxDeviceType::C, Some(1), "rwx");
        assert!(effective_rules(Some(&[r]), None).is_err());
    }
}
