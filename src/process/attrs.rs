//! Attributes of the container process that the init applies to itself
//! just before execve: rlimits, scheduling, I/O priority, personality,
//! identity and capabilities, no_new_privs.
//!
//! A working order in the init (each step needs privileges the next ones
//! give up): `set_rlimits`, `set_scheduler`, `set_io_priority`,
//! `set_personality`, (seccomp load here if noNewPrivileges is false),
//! `set_identity`, `set_no_new_privs`, (seccomp load here otherwise), exec.

use crate::oci::names::json_name;
use crate::process::capabilities::CapSets;
use crate::sys::{self, SchedAttr};
use anyhow::{bail, Context, Result};
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
use oci_spec::runtime::{
    IOPriorityClass, Linux, LinuxIOPriority, LinuxPersonality, LinuxPersonalityDomain,
    LinuxSchedulerFlag, LinuxSchedulerPolicy, PosixRlimit, PosixRlimitType, Process, Scheduler,
    User,
};

/// Checks, in the runtime before the init is forked, every attribute this
/// module applies later, so bad values fail `create` cleanly: rlimits,
/// scheduler, ioPriority and linux.personality.
pub fn validate(process: &Process, linux: Option<&Linux>) -> Result<()> {
    check_rlimits(process.rlimits().as_deref().unwrap_or_default())?;
    if let Some(s) = process.scheduler() {
        sched_attr(s)?;
    }
    if let Some(p) = process.io_priority() {
        io_priority_value(p)?;
    }
    if let Some(p) = linux.and_then(|l| l.personality().as_ref()) {
        personality_value(p)?;
    }
    Ok(())
}

/// Checks `process.rlimits` without applying them: each type at most once
/// (the spec requires an error for duplicates) and soft <= hard.
pub fn check_rlimits(r: &[PosixRlimit]) -> Result<()> {
    for (i, l) in r.iter().enumerate() {
        let name = json_name(&l.typ());
        if r[..i].iter().any(|o| o.typ() == l.typ()) {
            bail!("process.rlimits[{i}]: {name} is listed more than once");
        }
        if l.soft() > l.hard() {
            bail!(
                "process.rlimits[{i}]: {name}: soft limit {} is above hard limit {}",
                l.soft(),
                l.hard()
            );
        }
    }
    Ok(())
}

/// Applies `process.rlimits` to the calling process. Raising a hard limit
/// needs CAP_SYS_RESOURCE in the initial user namespace, so call this
/// before dropping capabilities; without that capability every runtime
/// fails the same way, and the error says so.
pub fn set_rlimits(r: &[PosixRlimit]) -> Result<()> {
    check_rlimits(r)?;
    for (i, l) in r.iter().enumerate() {
        let name = json_name(&l.typ());
        let res = resource(l.typ());
        if let Err(e) = setrlimit(res, l.soft(), l.hard()) {
            let current = getrlimit(res).map(|(_, hard)| hard).unwrap_or(u64::MAX);
            if e == nix::errno::Errno::EPERM && l.hard() > current {
                bail!(
                    "process.rlimits[{i}]: {name}: raising the hard limit from {current} to {} needs CAP_SYS_RESOURCE: {e}",
                    l.hard()
                );
            }
            bail!(
                "process.rlimits[{i}]: {name}: setting soft {} hard {}: {e}",
                l.soft(),
                l.hard()
            );
        }
    }
    Ok(())
}

fn resource(t: PosixRlimitType) -> Resource {
    match t {
        PosixRlimitType::RlimitCpu => Resource::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => Resource::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => Resource::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => Resource::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => Resource::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => Resource::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => Resource::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => Resource::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => Resource::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => Resource::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => Resource::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => Resource::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => Resource::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => Resource::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => Resource::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => Resource::RLIMIT_RTTIME,
    }
}

/// Switches to `process.user` and sets the capability sets, in the only
/// order that works for a non-root uid: shrink the bounding set (needs
/// CAP_SETPCAP), set supplementary groups and gid, set uid with
/// PR_SET_KEEPCAPS so permitted survives, then set effective, inheritable,
/// permitted and ambient (`capabilities::none()` when config.json has no
/// `process.capabilities`: no capabilities at all, as with runc). Finally
/// sets the umask (0022 when not given, as runc).
///
/// Supplementary groups: where setgroups(2) is refused (a user namespace
/// whose setgroups says "deny") the process may keep only exactly the
/// groups it asked for; any it still has from the runtime fail the start.
/// Nothing is read from /proc here: inside the container that is whatever
/// the image or the container put there.
pub fn set_identity(user: &User, caps: &CapSets) -> Result<()> {
    caps.drop_bounding()?;
    nix::sys::prctl::set_keepcaps(true).context("process.user: PR_SET_KEEPCAPS")?;

    let gids: Vec<Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|&g| Gid::from_raw(g))
        .collect();
    set_groups(&gids)?;
    let (uid, gid) = (Uid::from_raw(user.uid()), Gid::from_raw(user.gid()));
    // EINVAL: the id has no mapping in the container's user namespace.
    let unmapped = |e: nix::errno::Errno, map: &str| {
        if e == nix::errno::Errno::EINVAL {
            format!(" (not mapped by linux.{map}?)")
        } else {
            String::new()
        }
    };
    setresgid(gid, gid, gid).map_err(|e| {
        anyhow::anyhow!(
            "process.user.gid: setgid({gid}): {e}{}",
            unmapped(e, "gidMappings")
        )
    })?;
    setresuid(uid, uid, uid).map_err(|e| {
        anyhow::anyhow!(
            "process.user.uid: setuid({uid}): {e}{}",
            unmapped(e, "uidMappings")
        )
    })?;

    caps.apply()?;
    nix::sys::prctl::set_keepcaps(false).context("process.user: PR_SET_KEEPCAPS")?;
    // Without process.user.umask, 0022 like runc, not the caller's umask.
    let mask = user.umask().unwrap_or(0o022);
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask & 0o777));
    Ok(())
}

/// Set by an unprivileged runtime before it forks. Its supplementary
/// groups are the user's own: it cannot drop them, nor can the container
/// once its user namespace denies setgroups (a single mapping written
/// without newgidmap). They then stay, as runc leaves them: they give the
/// container nothing the user lacks, while dropping them could get round a
/// permission that denies one of those groups (why the kernel denies
/// setgroups there).
static KEEP_USER_GROUPS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// See [`KEEP_USER_GROUPS`].
pub fn keep_user_groups() {
    KEEP_USER_GROUPS.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Sets the supplementary groups to `gids`. When the kernel refuses
/// (EPERM: setgroups denied in this user namespace), that is fine only if
/// the process already has exactly those groups, e.g. none because they
/// were dropped before joining the namespace (`drop_groups`).
fn set_groups(gids: &[Gid]) -> Result<()> {
    let e = match setgroups(gids) {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    let sorted = |g: &[Gid]| {
        let mut v: Vec<u32> = g.iter().map(|g| g.as_raw()).collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    let held = nix::unistd::getgroups().context("getgroups")?;
    if e == nix::errno::Errno::EPERM && sorted(&held) == sorted(gids) {
        return Ok(());
    }
    if e == nix::errno::Errno::EPERM
        && gids.is_empty()
        && KEEP_USER_GROUPS.load(std::sync::atomic::Ordering::Relaxed)
    {
        return Ok(());
    }
    if !gids.is_empty() {
        if e == nix::errno::Errno::EPERM {
            bail!("process.user.additionalGids: setgroups is denied in this user namespace");
        }
        bail!(
            "process.user.additionalGids: setgroups({:?}): {e}",
            sorted(gids)
        );
    }
    bail!(
        "process.user: cannot drop the runtime's supplementary groups {:?}: setgroups: {e}",
        sorted(&held)
    )
}

/// Drops every supplementary group, ignoring a refusal: called before
/// joining a user namespace, where setgroups(2) may be denied, so that the
/// runtime's groups do not follow into it (`set_groups` then checks).
pub fn drop_groups() {
    let _ = setgroups(&[]);
}

/// `process.noNewPrivileges: true`.
pub fn set_no_new_privs() -> Result<()> {
    nix::sys::prctl::set_no_new_privs().context("process.noNewPrivileges: PR_SET_NO_NEW_PRIVS")
}

/// Where ioprio(2) values keep the class (not in libc).
const IOPRIO_CLASS_SHIFT: u32 = 13;

/// The ioprio_set(2) value for `process.ioPriority`.
pub fn io_priority_value(p: &LinuxIOPriority) -> Result<libc::c_int> {
    let class: libc::c_int = match p.class() {
        IOPriorityClass::IoprioClassRt => 1,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    if !(0..=7).contains(&p.priority()) {
        bail!(
            "process.ioPriority.priority: {} is out of range (0-7)",
            p.priority()
        );
    }
    // The range check above makes the cast lossless.
    Ok(class << IOPRIO_CLASS_SHIFT | p.priority() as libc::c_int)
}

/// `process.ioPriority` for the calling process (IOPRIO_CLASS_RT needs
/// CAP_SYS_ADMIN or CAP_SYS_NICE: call before dropping capabilities).
pub fn set_io_priority(p: &LinuxIOPriority) -> Result<()> {
    let value = io_priority_value(p)?;
    if let Err(e) = sys::ioprio_set(value) {
        bail!(
            "process.ioPriority: ioprio_set({}, {}): {}",
            json_name(&p.class()),
            p.priority(),
            e
        );
    }
    Ok(())
}

/// The highest utilization clamp, i.e. no clamping (SCHED_CAPACITY_SCALE).
const UTIL_NO_CLAMP: u32 = 1024;

/// Checks `process.scheduler` and builds the sched_setattr(2) argument.
pub fn sched_attr(s: &Scheduler) -> Result<SchedAttr> {
    let policy = match s.policy() {
        LinuxSchedulerPolicy::SchedOther => libc::SCHED_OTHER,
        LinuxSchedulerPolicy::SchedFifo => libc::SCHED_FIFO,
        LinuxSchedulerPolicy::SchedRr => libc::SCHED_RR,
        LinuxSchedulerPolicy::SchedBatch => libc::SCHED_BATCH,
        LinuxSchedulerPolicy::SchedIdle => libc::SCHED_IDLE,
        LinuxSchedulerPolicy::SchedDeadline => libc::SCHED_DEADLINE,
        LinuxSchedulerPolicy::SchedIso => {
            bail!("process.scheduler.policy: SCHED_ISO is not implemented by Linux")
        }
    };
    let deadline = *s.policy() == LinuxSchedulerPolicy::SchedDeadline;
    for (field, v) in [
        ("runtime", s.runtime()),
        ("deadline", s.deadline()),
        ("period", s.period()),
    ] {
        if v.is_some() && !deadline {
            bail!("process.scheduler.{field}: only valid with SCHED_DEADLINE");
        }
    }
    let nice = s.nice().unwrap_or(0);
    if !(-20..=19).contains(&nice) {
        bail!("process.scheduler.nice: {nice} is out of range (-20 to 19)");
    }
    let priority = s.priority().unwrap_or(0);
    let priority = u32::try_from(priority)
        .map_err(|_| anyhow::anyhow!("process.scheduler.priority: {priority} is negative"))?;
    let flags = s.flags().iter().flatten().fold(0, |acc, f| {
        acc | match f {
            LinuxSchedulerFlag::SchedResetOnFork => libc::SCHED_FLAG_RESET_ON_FORK,
            LinuxSchedulerFlag::SchedFlagReclaim => libc::SCHED_FLAG_RECLAIM,
            LinuxSchedulerFlag::SchedFlagDLOverrun => libc::SCHED_FLAG_DL_OVERRUN,
            LinuxSchedulerFlag::SchedFlagKeepPolicy => libc::SCHED_FLAG_KEEP_POLICY,
            LinuxSchedulerFlag::SchedFlagKeepParams => libc::SCHED_FLAG_KEEP_PARAMS,
            LinuxSchedulerFlag::SchedFlagUtilClampMin => libc::SCHED_FLAG_UTIL_CLAMP_MIN,
            LinuxSchedulerFlag::SchedFlagUtilClampMax => libc::SCHED_FLAG_UTIL_CLAMP_MAX,
        }
    });
    Ok(SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        // The libc constants are small non-negative numbers.
        policy: policy as u32,
        flags: flags as u64,
        nice,
        priority,
        runtime: s.runtime().unwrap_or(0),
        deadline: s.deadline().unwrap_or(0),
        period: s.period().unwrap_or(0),
        util_min: 0,
        util_max: UTIL_NO_CLAMP,
    })
}

/// `process.scheduler` for the calling process. Real-time and deadline
/// policies need CAP_SYS_NICE: call before dropping capabilities.
pub fn set_scheduler(s: &Scheduler) -> Result<()> {
    let attr = sched_attr(s)?;
    if let Err(e) = sys::sched_setattr(&attr) {
        bail!(
            "process.scheduler: sched_setattr({}): {}",
            serde_json::to_string(s).unwrap_or_default(),
            e
        );
    }
    Ok(())
}

/// personality(2) flags, by their <sys/personality.h> names.
const PERSONALITY_FLAGS: &[(&str, libc::c_int)] = &[
    ("UNAME26", 0x0020000),
    ("ADDR_NO_RANDOMIZE", libc::ADDR_NO_RANDOMIZE),
    ("FDPIC_FUNCPTRS", 0x0080000),
    ("MMAP_PAGE_ZERO", libc::MMAP_PAGE_ZERO),
    ("ADDR_COMPAT_LAYOUT", libc::ADDR_COMPAT_LAYOUT),
    ("READ_IMPLIES_EXEC", libc::READ_IMPLIES_EXEC),
    ("ADDR_LIMIT_32BIT", libc::ADDR_LIMIT_32BIT),
    ("SHORT_INODE", libc::SHORT_INODE),
    ("WHOLE_SECONDS", libc::WHOLE_SECONDS),
    ("STICKY_TIMEOUTS", libc::STICKY_TIMEOUTS),
    ("ADDR_LIMIT_3GB", libc::ADDR_LIMIT_3GB),
];

/// The personality(2) value for `linux.personality`.
pub fn personality_value(p: &LinuxPersonality) -> Result<libc::c_ulong> {
    // PER_LINUX and PER_LINUX32 from <sys/personality.h>.
    let mut value: libc::c_int = match p.domain() {
        LinuxPersonalityDomain::PerLinux => 0x0000,
        LinuxPersonalityDomain::PerLinux32 => 0x0008,
    };
    for (i, flag) in p.flags().iter().flatten().enumerate() {
        let Some(&(_, bit)) = PERSONALITY_FLAGS.iter().find(|(n, _)| n == flag) else {
            bail!("linux.personality.flags[{i}]: unknown flag {flag:?}");
        };
        value |= bit;
    }
    // All values are small positive flags: the cast is lossless.
    Ok(value as libc::c_ulong)
}

/// `linux.personality` for the calling process (inherited across exec).
pub fn set_personality(p: &LinuxPersonality) -> Result<()> {
    let value = personality_value(p)?;
    if let Err(e) = sys::personality(value) {
        bail!("linux.personality: personality({value:#x}): {e}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::capabilities;
    use crate::testutil::{in_child, is_root, rerun_alone};

    fn from_json<T: serde::de::DeserializeOwned>(json: &str) -> T {
        serde_json::from_str(json).unwrap()
    }

    fn status(field: &str) -> String {
        let s = std::fs::read_to_string("/proc/self/status").unwrap();
        s.lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .unwrap()
            .trim()
            .to_string()
    }

    #[test]
    fn validate_checks_everything_before_the_fork() {
        let ok: oci_spec::runtime::Spec = from_json(
            r#"{"ociVersion":"1.1.0","process":{"cwd":"/","user":{"uid":0,"gid":0},
                "rlimits":[{"type":"RLIMIT_NOFILE","hard":10,"soft":10}],
                "scheduler":{"policy":"SCHED_BATCH"},
                "ioPriority":{"class":"IOPRIO_CLASS_BE","priority":4}},
              "linux":{"personality":{"domain":"LINUX32"}}}"#,
        );
        let process = ok.process().as_ref().unwrap();
        validate(process, ok.linux().as_ref()).unwrap();
        for (patch, want) in [
            (
                r#"{"process":{"rlimits":[{"type":"RLIMIT_CORE","hard":1,"soft":2}]}}"#,
                "process.rlimits[0]: RLIMIT_CORE: soft limit 2 is above hard limit 1",
            ),
            (
                r#"{"process":{"scheduler":{"policy":"SCHED_ISO"}}}"#,
                "process.scheduler.policy: SCHED_ISO is not implemented by Linux",
            ),
            (
                r#"{"process":{"ioPriority":{"class":"IOPRIO_CLASS_RT","priority":9}}}"#,
                "process.ioPriority.priority: 9 is out of range (0-7)",
            ),
            (
                r#"{"linux":{"personality":{"domain":"LINUX","flags":["X"]}}}"#,
                "linux.personality.flags[0]: unknown flag \"X\"",
            ),
        ] {
            let mut v = serde_json::to_value(&ok).unwrap();
            let patch: serde_json::Value = serde_json::from_str(patch).unwrap();
            for (section, fields) in patch.as_object().unwrap() {
                for (k, x) in fields.as_object().unwrap() {
                    v[section][k] = x.clone();
                }
            }
            let bad: oci_spec::runtime::Spec = serde_json::from_value(v).unwrap();
            let e = validate(bad.process().as_ref().unwrap(), bad.linux().as_ref()).unwrap_err();
            assert_eq!(e.to_string(), want);
        }
    }

    #[test]
    fn rlimit_types_map_to_their_kernel_resources() {
        let all: Vec<PosixRlimit> = from_json(
            r#"[{"type":"RLIMIT_CPU"},{"type":"RLIMIT_FSIZE"},{"type":"RLIMIT_DATA"},
                {"type":"RLIMIT_STACK"},{"type":"RLIMIT_CORE"},{"type":"RLIMIT_RSS"},
                {"type":"RLIMIT_NPROC"},{"type":"RLIMIT_NOFILE"},{"type":"RLIMIT_MEMLOCK"},
                {"type":"RLIMIT_AS"},{"type":"RLIMIT_LOCKS"},{"type":"RLIMIT_SIGPENDING"},
                {"type":"RLIMIT_MSGQUEUE"},{"type":"RLIMIT_NICE"},{"type":"RLIMIT_RTPRIO"},
                {"type":"RLIMIT_RTTIME"}]"#,
        );
        let want = [
            libc::RLIMIT_CPU,
            libc::RLIMIT_FSIZE,
            libc::RLIMIT_DATA,
            libc::RLIMIT_STACK,
            libc::RLIMIT_CORE,
            libc::RLIMIT_RSS,
            libc::RLIMIT_NPROC,
            libc::RLIMIT_NOFILE,
            libc::RLIMIT_MEMLOCK,
            libc::RLIMIT_AS,
            libc::RLIMIT_LOCKS,
            libc::RLIMIT_SIGPENDING,
            libc::RLIMIT_MSGQUEUE,
            libc::RLIMIT_NICE,
            libc::RLIMIT_RTPRIO,
            libc::RLIMIT_RTTIME,
        ];
        for (l, w) in all.iter().zip(want) {
            assert_eq!(resource(l.typ()) as u32, w, "{:?}", l.typ());
        }
        assert!(check_rlimits(&all).is_ok());
    }

    #[test]
    fn bad_rlimits_name_the_entry() {
        let dup: Vec<PosixRlimit> = from_json(
            r#"[{"type":"RLIMIT_NOFILE","hard":10,"soft":10},{"type":"RLIMIT_CORE"},
                {"type":"RLIMIT_NOFILE","hard":20,"soft":20}]"#,
        );
        assert_eq!(
            check_rlimits(&dup).unwrap_err().to_string(),
            "process.rlimits[2]: RLIMIT_NOFILE is listed more than once"
        );
        let inverted: Vec<PosixRlimit> = from_json(r#"[{"type":"RLIMIT_CORE","hard":1,"soft":2}]"#);
        assert_eq!(
            set_rlimits(&inverted).unwrap_err().to_string(),
            "process.rlimits[0]: RLIMIT_CORE: soft limit 2 is above hard limit 1"
        );
    }

    #[test]
    fn rlimits_are_applied_in_a_child() {
        if rerun_alone() {
            return;
        }
        let out = in_child(|| {
            let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
            let lower = hard.min(4096) - 1;
            let r: Vec<PosixRlimit> = from_json(&format!(
                r#"[{{"type":"RLIMIT_NOFILE","hard":{lower},"soft":100}},
                    {{"type":"RLIMIT_CORE","hard":0,"soft":0}}]"#
            ));
            set_rlimits(&r)?;
            let nofile = getrlimit(Resource::RLIMIT_NOFILE)?;
            let core = getrlimit(Resource::RLIMIT_CORE)?;
            // One above the hard limit just set: only CAP_SYS_RESOURCE can.
            let raise: Vec<PosixRlimit> = from_json(&format!(
                r#"[{{"type":"RLIMIT_NOFILE","hard":{},"soft":100}}]"#,
                lower + 1
            ));
            let can = caps::has_cap(
                None,
                caps::CapSet::Effective,
                caps::Capability::CAP_SYS_RESOURCE,
            )?;
            let raised = set_rlimits(&raise).map_err(|e| e.to_string());
            Ok(format!("{lower} {nofile:?} {core:?} {can} {raised:?}"))
        })
        .unwrap();
        let (lower, rest) = out.split_once(' ').unwrap();
        let lower: u64 = lower.parse().unwrap();
        let prefix = format!("(100, {lower}) (0, 0) ");
        assert!(rest.starts_with(&prefix), "{out}");
        match &rest[prefix.len()..] {
            "true Ok(())" => {}
            other => assert_eq!(
                other,
                format!(
                    "false Err(\"process.rlimits[0]: RLIMIT_NOFILE: raising the hard limit from {lower} to {} needs CAP_SYS_RESOURCE: EPERM: Operation not permitted\")",
                    lower + 1
                )
            ),
        }
    }

    #[test]
    fn identity_and_capabilities_for_a_non_root_user() {
        if !is_root() || rerun_alone() {
            return;
        }
        let user: User = from_json(r#"{"uid":1000,"gid":1001,"additionalGids":[5,6],"umask":23}"#);
        let caps = capabilities::parse(&from_json(
            r#"{"bounding":["CAP_AUDIT_WRITE","CAP_KILL","CAP_NET_BIND_SERVICE"],
                "effective":["CAP_AUDIT_WRITE","CAP_KILL","CAP_NET_BIND_SERVICE"],
                "permitted":["CAP_AUDIT_WRITE","CAP_KILL","CAP_NET_BIND_SERVICE"],
                "inheritable":["CAP_AUDIT_WRITE","CAP_KILL","CAP_NET_BIND_SERVICE"],
                "ambient":["CAP_KILL","CAP_NET_BIND_SERVICE"]}"#,
        ))
        .unwrap();
        let out = in_child(|| {
            set_identity(&user, &caps)?;
            let before = ["Uid", "Gid", "Groups", "Umask", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"]
                .map(status)
                .join("|");
            // What the program sees after exec (no file capabilities).
            let after = std::process::Command::new("/bin/sh")
                .args(["-c", "grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status | cut -f2 | tr '\\n' '|'"])
                .output()?;
            Ok(format!("{before}\n{}", String::from_utf8_lossy(&after.stdout)))
        })
        .unwrap();
        // CAP_KILL 5, CAP_NET_BIND_SERVICE 10, CAP_AUDIT_WRITE 29.
        let all3 = "0000000020000420";
        let amb = "0000000000000420";
        assert_eq!(
            out,
            format!(
                "1000\t1000\t1000\t1000|1001\t1001\t1001\t1001|5 6|0027|{all3}|{all3}|{all3}|{all3}|{amb}\n\
                 {all3}|{amb}|{amb}|{all3}|{amb}|"
            )
        );
    }

    #[test]
    fn user_namespace_limits_are_explained() {
        if !is_root() || rerun_alone() {
            return;
        }
        // A user namespace mapping only root, with setgroups denied, as
        // an unprivileged user would set it up, entered holding groups 0
        // and 6, dropped first or not.
        let in_userns = |drop: bool| {
            in_child(move || {
                setgroups(&[Gid::from_raw(0), Gid::from_raw(6)])?;
                if drop {
                    drop_groups();
                }
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER)?;
                std::fs::write("/proc/self/uid_map", "0 0 1")?;
                std::fs::write("/proc/self/setgroups", "deny")?;
                std::fs::write("/proc/self/gid_map", "0 0 1")?;
                let groups: User = from_json(r#"{"uid":0,"gid":0,"additionalGids":[5]}"#);
                let unmapped: User = from_json(r#"{"uid":1000,"gid":0}"#);
                let none = capabilities::none();
                let a = set_identity(&groups, &none).unwrap_err();
                let b = set_identity(&unmapped, &none).unwrap_err();
                Ok(format!("{a:#}\n{b:#}"))
            })
            .unwrap()
        };
        assert_eq!(
            in_userns(true),
            "process.user.additionalGids: setgroups is denied in this user namespace\n\
             process.user.uid: setuid(1000): EINVAL: Invalid argument (not mapped by linux.uidMappings?)"
        );
        // Groups from before the namespace cannot be dropped in it: an error,
        // never a process that keeps them (6 is unmapped: the overflow gid).
        let kept = "process.user: cannot drop the runtime's supplementary groups [0, 65534]: \
                    setgroups: EPERM: Operation not permitted";
        assert_eq!(
            in_userns(false),
            format!(
                "process.user.additionalGids: setgroups is denied in this user namespace\n{kept}"
            )
        );
    }

    #[test]
    fn absent_capabilities_and_umask_follow_runc() {
        if !is_root() || rerun_alone() {
            return;
        }
        let user: User = from_json(r#"{"uid":0,"gid":0}"#);
        let out = in_child(|| {
            nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
            set_identity(&user, &capabilities::none())?;
            Ok([
                "Uid", "Groups", "Umask", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb",
            ]
            .map(status)
            .join("|"))
        })
        .unwrap();
        let zero = "0000000000000000";
        assert_eq!(
            out,
            format!("0\t0\t0\t0||0022|{zero}|{zero}|{zero}|{zero}|{zero}")
        );
    }

    #[test]
    fn no_new_privs_is_set() {
        if rerun_alone() {
            return;
        }
        let out = in_child(|| {
            set_no_new_privs()?;
            Ok(status("NoNewPrivs"))
        });
        assert_eq!(out.unwrap(), "1");
    }

    #[test]
    fn io_priority_values() {
        let p: LinuxIOPriority = from_json(r#"{"class":"IOPRIO_CLASS_RT","priority":3}"#);
        assert_eq!(io_priority_value(&p).unwrap(), 1 << 13 | 3);
        let p: LinuxIOPriority = from_json(r#"{"class":"IOPRIO_CLASS_IDLE","priority":0}"#);
        assert_eq!(io_priority_value(&p).unwrap(), 3 << 13);
        let p: LinuxIOPriority = from_json(r#"{"class":"IOPRIO_CLASS_BE","priority":8}"#);
        assert_eq!(
            io_priority_value(&p).unwrap_err().to_string(),
            "process.ioPriority.priority: 8 is out of range (0-7)"
        );
    }

    #[test]
    fn io_priority_is_applied_in_a_child() {
        if rerun_alone() {
            return;
        }
        let p: LinuxIOPriority = from_json(r#"{"class":"IOPRIO_CLASS_BE","priority":6}"#);
        let out = in_child(|| {
            set_io_priority(&p)?;
            // SAFETY: ioprio_get takes two integers and no memory
            // (1: IOPRIO_WHO_PROCESS, 0: the calling process).
            let got = unsafe { libc::syscall(libc::SYS_ioprio_get, 1, 0) };
            Ok(got.to_string())
        });
        assert_eq!(out.unwrap(), (2 << 13 | 6).to_string());
    }

    #[test]
    fn scheduler_checks() {
        // oci-spec 0.10 misspells two flags: the runtime-spec's
        // SCHED_FLAG_RESET_ON_FORK and SCHED_FLAG_DL_OVERRUN.
        let s: Scheduler = from_json(
            r#"{"policy":"SCHED_DEADLINE","runtime":10000000,"deadline":20000000,"period":30000000,
                "flags":["SCHED_RESET_ON_FORK","SCHED_FLAG_D_L_OVERRUN"]}"#,
        );
        let a = sched_attr(&s).unwrap();
        assert_eq!((a.size, a.policy, a.flags), (56, 6, 0x05));
        assert_eq!(
            (a.runtime, a.deadline, a.period),
            (10000000, 20000000, 30000000)
        );
        let bad = [
            (
                r#"{"policy":"SCHED_ISO"}"#,
                "process.scheduler.policy: SCHED_ISO is not implemented by Linux",
            ),
            (
                r#"{"policy":"SCHED_OTHER","period":5}"#,
                "process.scheduler.period: only valid with SCHED_DEADLINE",
            ),
            (
                r#"{"policy":"SCHED_BATCH","nice":20}"#,
                "process.scheduler.nice: 20 is out of range (-20 to 19)",
            ),
            (
                r#"{"policy":"SCHED_FIFO","priority":-1}"#,
                "process.scheduler.priority: -1 is negative",
            ),
        ];
        for (json, want) in bad {
            assert_eq!(sched_attr(&from_json(json)).unwrap_err().to_string(), want);
        }
    }

    #[test]
    fn scheduler_is_applied_in_a_child() {
        if rerun_alone() {
            return;
        }
        let s: Scheduler = from_json(r#"{"policy":"SCHED_BATCH","nice":7}"#);
        let out = in_child(|| {
            set_scheduler(&s)?;
            // SAFETY: plain queries about the calling process.
            let (policy, nice) = unsafe {
                (
                    libc::sched_getscheduler(0),
                    libc::getpriority(libc::PRIO_PROCESS, 0),
                )
            };
            Ok(format!("{policy} {nice}"))
        });
        assert_eq!(out.unwrap(), format!("{} 7", libc::SCHED_BATCH));
        // The kernel's own refusals are reported with the attributes.
        let s: Scheduler = from_json(r#"{"policy":"SCHED_FIFO","priority":1000}"#);
        let e = in_child(|| set_scheduler(&s).map(|_| String::new())).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("process.scheduler: sched_setattr("),
            "{e}"
        );
    }

    #[test]
    fn personality_values() {
        let p: LinuxPersonality =
            from_json(r#"{"domain":"LINUX32","flags":["ADDR_NO_RANDOMIZE","UNAME26"]}"#);
        assert_eq!(
            personality_value(&p).unwrap(),
            0x0008 | 0x0040000 | 0x0020000
        );
        let p: LinuxPersonality = from_json(r#"{"domain":"LINUX"}"#);
        assert_eq!(personality_value(&p).unwrap(), 0);
        let p: LinuxPersonality = from_json(r#"{"domain":"LINUX","flags":["NO_SUCH"]}"#);
        assert_eq!(
            personality_value(&p).unwrap_err().to_string(),
            "linux.personality.flags[0]: unknown flag \"NO_SUCH\""
        );
        assert!(serde_json::from_str::<LinuxPersonality>(r#"{"domain":"LINUX64"}"#).is_err());
    }

    #[test]
    fn personality_is_applied_in_a_child() {
        if rerun_alone() {
            return;
        }
        let p: LinuxPersonality =
            from_json(r#"{"domain":"LINUX32","flags":["ADDR_NO_RANDOMIZE"]}"#);
        let out = in_child(|| {
            set_personality(&p)?;
            let machine = nix::sys::utsname::uname()?;
            // SAFETY: 0xffffffff only queries the personality.
            let now = unsafe { libc::personality(0xffff_ffff) };
            Ok(format!("{} {now:#x}", machine.machine().to_string_lossy()))
        });
        assert_eq!(out.unwrap(), "i686 0x40008");
    }
}
