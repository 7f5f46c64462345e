//! `linux.seccomp`: compiled by libseccomp into a BPF program in the
//! runtime before the container init is forked (so bad input fails early
//! and cleanly), loaded by the init just before it execs the container
//! process. Loading is one seccomp(2) call: libseccomp's own load would
//! generate the program again, in the init, between `start` and execve
//! (several ms for a typical engine profile).

use crate::oci::names::json_name;
use anyhow::{bail, Context, Result};
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    Arch, ContainerProcessState, LinuxSeccomp, LinuxSeccompAction as Action,
    LinuxSeccompFilterFlag as Flag, LinuxSeccompOperator as Op, State, SECCOMP_FD_NAME,
};
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

/// Seccomp allows six syscall arguments, indexed 0 to 5.
const MAX_ARG_INDEX: usize = 5;

/// A filter compiled from `linux.seccomp`, ready to load.
pub struct Filter {
    program: Vec<libc::sock_filter>,
    /// SECCOMP_FILTER_FLAG_* for seccomp(2).
    flags: libc::c_ulong,
    notify: bool,
    skipped: Vec<String>,
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filter")
            .field("instructions", &self.program.len())
            .field("flags", &self.flags)
            .field("notify", &self.notify)
            .field("skipped", &self.skipped)
            .finish()
    }
}

impl Filter {
    /// Syscall names that neither libseccomp nor the kernel know; their
    /// rules were left out (as runc does), so the caller can warn.
    pub fn skipped_syscalls(&self) -> &[String] {
        &self.skipped
    }

    /// Whether a rule uses `SCMP_ACT_NOTIFY`: then `load` returns the
    /// listener fd, to be sent to `linux.seccomp.listenerPath`.
    pub fn uses_notify(&self) -> bool {
        self.notify
    }

    /// Installs the filter on the calling process. It needs either
    /// no_new_privs set or CAP_SYS_ADMIN: load it before dropping
    /// capabilities unless `noNewPrivileges` is true. Returns the
    /// (close-on-exec) notification fd when the filter uses
    /// `SCMP_ACT_NOTIFY`.
    pub fn load(&self) -> Result<Option<OwnedFd>> {
        crate::sys::seccomp_set_filter(&self.program, self.flags).map_err(|e| match e {
            nix::errno::Errno::EACCES => anyhow::anyhow!(
                "linux.seccomp: loading the filter: {e} (needs noNewPrivileges or CAP_SYS_ADMIN)"
            ),
            // a kernel without a flag or action the filter uses (e.g. no
            // SCMP_ACT_NOTIFY before Linux 5.0): say where it comes from
            e => anyhow::anyhow!("linux.seccomp: loading the filter: {e}"),
        })
    }
}

/// Compiles `linux.seccomp` without touching the current process. Errors
/// name the offending field, e.g.
/// `linux.seccomp.syscalls[3].errnoRet: ...`.
pub fn compile(s: &LinuxSeccomp) -> Result<Filter> {
    let default =
        action(s.default_action(), s.default_errno_ret()).context("linux.seccomp.defaultAction")?;
    if default == ScmpAction::Notify {
        bail!("linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default action: the runtime's own syscalls before exec would wait for a listener");
    }
    let mut ctx = ScmpFilterContext::new(default).context("linux.seccomp: creating filter")?;

    for (i, &arch) in s.architectures().iter().flatten().enumerate() {
        // Fails for architectures libseccomp does not know, and for those
        // that cannot share a filter with the native one (other endianness).
        ctx.add_arch(scmp_arch(arch)).with_context(|| {
            format!(
                "linux.seccomp.architectures[{i}]: adding {} to a filter for {:?}",
                json_name(&arch),
                ScmpArch::native()
            )
        })?;
    }

    let mut flags = filter_flags(s)?;

    let mut notify = false;
    let mut skipped: Vec<String> = Vec::new();
    for (i, rule) in s.syscalls().iter().flatten().enumerate() {
        let field = format!("linux.seccomp.syscalls[{i}]");
        let act = action(rule.action(), rule.errno_ret()).with_context(|| field.clone())?;
        // libseccomp refuses rules whose action is the default one; they
        // are no-ops anyway.
        if act == default {
            continue;
        }
        notify |= act == ScmpAction::Notify;
        let conds = conditions(rule.args().as_deref().unwrap_or_default(), &field)?;
        for name in rule.names() {
            let Ok(nr) = ScmpSyscall::from_name(name) else {
                if !skipped.contains(name) {
                    skipped.push(name.clone());
                }
                continue;
            };
            for group in &conds {
                ctx.add_rule_conditional(act, nr, group)
                    .with_context(|| format!("{field}: adding the rule for {name}"))?;
            }
        }
    }
    if notify && s.listener_path().is_none() {
        bail!("linux.seccomp.listenerPath: required when a rule uses SCMP_ACT_NOTIFY");
    }
    if notify {
        flags |= libc::SECCOMP_FILTER_FLAG_NEW_LISTENER;
        // The kernel refuses TSYNC with a listener unless told to fail
        // with ESRCH rather than return a thread id.
        if flags & libc::SECCOMP_FILTER_FLAG_TSYNC != 0 {
            flags |= libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH;
        }
    }
    Ok(Filter {
        program: export_bpf(&ctx)?,
        flags,
        notify,
        skipped,
    })
}

/// `linux.seccomp.flags` as seccomp(2) takes them; refuses those this
/// kernel and libseccomp do not support.
fn filter_flags(s: &LinuxSeccomp) -> Result<libc::c_ulong> {
    let supported = supported_flags();
    let mut flags: libc::c_ulong = 0;
    for (i, &flag) in s.flags().iter().flatten().enumerate() {
        if !supported.contains(&flag) {
            bail!(
                "linux.seccomp.flags[{i}]: {} is not supported by this kernel and libseccomp",
                json_name(&flag)
            );
        }
        flags |= match flag {
            Flag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
            Flag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            Flag::SeccompFilterFlagSpecAllow => libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
            Flag::SeccompFilterFlagWaitKillableRecv => libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
        };
    }
    Ok(flags)
}

/// The BPF program libseccomp generates for `ctx`, as seccomp(2) takes it.
fn export_bpf(ctx: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>> {
    use std::io::{Read, Seek};
    let fd = nix::sys::memfd::memfd_create(
        c"seccomp-bpf",
        nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC,
    )
    .context("linux.seccomp: memfd_create")?;
    ctx.export_bpf(std::os::fd::AsFd::as_fd(&fd))
        .context("linux.seccomp: generating the BPF program")?;
    let mut file = std::fs::File::from(fd);
    let mut bytes = Vec::new();
    file.rewind()
        .and_then(|_| file.read_to_end(&mut bytes))
        .context("linux.seccomp: reading the BPF program")?;
    // struct sock_filter { u16 code; u8 jt; u8 jf; u32 k; } in host order.
    let insn = std::mem::size_of::<libc::sock_filter>();
    if bytes.is_empty() || bytes.len() % insn != 0 {
        bail!(
            "linux.seccomp: libseccomp produced a {} byte BPF program",
            bytes.len()
        );
    }
    Ok(bytes
        .chunks_exact(insn)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect())
}

/// The filter flags this kernel and libseccomp can honour.
pub fn supported_flags() -> Vec<Flag> {
    // API levels from seccomp_api_get(3): 3 adds the LOG flag, 4 SPEC_ALLOW,
    // 7 WAIT_KILLABLE_RECV (libseccomp >= 2.6 only).
    let api = libseccomp::get_api();
    [
        (1, Flag::SeccompFilterFlagTsync),
        (3, Flag::SeccompFilterFlagLog),
        (4, Flag::SeccompFilterFlagSpecAllow),
        (7, Flag::SeccompFilterFlagWaitKillableRecv),
    ]
    .into_iter()
    .filter(|&(level, _)| api >= level)
    .map(|(_, flag)| flag)
    .collect()
}

/// The libseccomp action for a spec action; `errno_ret` is the value of
/// `SCMP_ACT_ERRNO` (default EPERM, as runc) or `SCMP_ACT_TRACE`.
fn action(a: Action, errno_ret: Option<u32>) -> Result<ScmpAction> {
    let data = match (a, errno_ret) {
        (Action::ScmpActErrno | Action::ScmpActTrace, v) => {
            let v = v.unwrap_or(libc::EPERM as u32);
            u16::try_from(v)
                .map_err(|_| anyhow::anyhow!("errnoRet {v} is out of range (0-{})", u16::MAX))?
        }
        (_, Some(_)) => bail!(
            "errnoRet is only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not {}",
            json_name(&a)
        ),
        (_, None) => 0,
    };
    Ok(match a {
        Action::ScmpActKill | Action::ScmpActKillThread => ScmpAction::KillThread,
        Action::ScmpActKillProcess => ScmpAction::KillProcess,
        Action::ScmpActTrap => ScmpAction::Trap,
        Action::ScmpActErrno => ScmpAction::Errno(i32::from(data)),
        Action::ScmpActTrace => ScmpAction::Trace(data),
        Action::ScmpActNotify => ScmpAction::Notify,
        Action::ScmpActLog => ScmpAction::Log,
        Action::ScmpActAllow => ScmpAction::Allow,
    })
}

/// Argument conditions, grouped into rules. Conditions on distinct
/// arguments must all match (one rule); several conditions on the same
/// argument cannot be ANDed by libseccomp, so like runc each becomes its
/// own rule and any may match. No args: one unconditional rule.
fn conditions(
    args: &[oci_spec::runtime::LinuxSeccompArg],
    field: &str,
) -> Result<Vec<Vec<ScmpArgCompare>>> {
    let mut conds = Vec::with_capacity(args.len());
    for (j, a) in args.iter().enumerate() {
        if a.index() > MAX_ARG_INDEX {
            bail!(
                "{field}.args[{j}].index: {} is out of range (0-{MAX_ARG_INDEX})",
                a.index()
            );
        }
        let (op, datum) = match a.op() {
            Op::ScmpCmpNe => (ScmpCompareOp::NotEqual, a.value()),
            Op::ScmpCmpLt => (ScmpCompareOp::Less, a.value()),
            Op::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, a.value()),
            Op::ScmpCmpEq => (ScmpCompareOp::Equal, a.value()),
            Op::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, a.value()),
            Op::ScmpCmpGt => (ScmpCompareOp::Greater, a.value()),
            // The spec's `value` is the mask, `valueTwo` the expected bits.
            Op::ScmpCmpMaskedEq => (
                ScmpCompareOp::MaskedEqual(a.value()),
                a.value_two().unwrap_or(0),
            ),
        };
        // The index fits in u32: it is at most MAX_ARG_INDEX.
        conds.push((a.index(), ScmpArgCompare::new(a.index() as u32, op, datum)));
    }
    let repeated = conds
        .iter()
        .enumerate()
        .any(|(k, (idx, _))| conds[..k].iter().any(|(other, _)| other == idx));
    Ok(if repeated {
        conds.into_iter().map(|(_, c)| vec![c]).collect()
    } else {
        vec![conds.into_iter().map(|(_, c)| c).collect()]
    })
}

fn scmp_arch(a: Arch) -> ScmpArch {
    match a {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchParisc => ScmpArch::Parisc,
        Arch::ScmpArchParisc64 => ScmpArch::Parisc64,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        Arch::ScmpArchLoongarch64 => ScmpArch::Loongarch64,
        Arch::ScmpArchM68k => ScmpArch::M68k,
        Arch::ScmpArchSh => ScmpArch::Sh,
        Arch::ScmpArchSheb => ScmpArch::Sheb,
    }
}

/// Whether this libseccomp build knows `arch` (a filter can combine it
/// with the native architecture only if their endianness matches).
pub fn arch_supported(arch: Arch) -> bool {
    ScmpFilterContext::new(ScmpAction::Allow)
        .and_then(|mut ctx| {
            ctx.remove_arch(ScmpArch::native())?;
            ctx.add_arch(scmp_arch(arch))?;
            Ok(())
        })
        .is_ok()
}

/// The JSON the runtime sends to the seccomp agent with the notify fd: the
/// runtime-spec "container process state" naming the fd `seccompFd`.
pub fn listener_state(state: &State, pid: i32, metadata: Option<&str>) -> Result<Vec<u8>> {
    let mut cps = ContainerProcessState::default();
    cps.set_version(state.version().clone())
        .set_fds(vec![SECCOMP_FD_NAME.to_string()])
        .set_pid(pid)
        .set_metadata(metadata.map(str::to_string))
        .set_state(state.clone());
    Ok(serde_json::to_vec(&cps)?)
}

/// Sends `state_json` (see [`listener_state`]) and the notify fd, as
/// SCM_RIGHTS, over one new connection to the agent at `path`
/// (`linux.seccomp.listenerPath`).
pub fn send_to_listener(path: &Path, fd: BorrowedFd<'_>, state_json: &[u8]) -> Result<()> {
    send_over(connect_listener(path)?, fd, state_json)
}

/// Connects to the agent at `linux.seccomp.listenerPath`; [`send_over`]
/// then sends on the connection.
pub fn connect_listener(path: &Path) -> Result<UnixStream> {
    UnixStream::connect(path)
        .with_context(|| format!("linux.seccomp.listenerPath: {}", path.display()))
}

/// Sends `state_json` and the notify fd over a connection from
/// [`connect_listener`], then closes it: one state per connection, as the
/// spec requires.
pub fn send_over(mut stream: UnixStream, fd: BorrowedFd<'_>, state_json: &[u8]) -> Result<()> {
    let what = || "linux.seccomp.listenerPath: sending the notify fd".to_string();
    let sent = crate::start::fdpass::send(stream.as_fd(), state_json, fd).with_context(what)?;
    // The fd went with the first byte; the rest of a short send follows.
    stream.write_all(&state_json[sent..]).with_context(what)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{in_child, is_root, rerun_alone, TempDir};
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixListener;

    fn spec(json: &str) -> LinuxSeccomp {
        serde_json::from_str(json).unwrap()
    }

    fn err(json: &str) -> String {
        format!("{:#}", compile(&spec(json)).unwrap_err())
    }

    #[test]
    fn compiles_a_typical_profile() {
        let f = compile(&spec(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":38,
                "architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86","SCMP_ARCH_X32"],
                "flags":["SECCOMP_FILTER_FLAG_TSYNC"],
                "syscalls":[
                  {"names":["read","write","exit_group","no_such_syscall_xyz"],"action":"SCMP_ACT_ALLOW"},
                  {"names":["personality"],"action":"SCMP_ACT_ALLOW",
                   "args":[{"index":0,"value":0,"op":"SCMP_CMP_EQ"},{"index":0,"value":8,"op":"SCMP_CMP_EQ"}]},
                  {"names":["clone"],"action":"SCMP_ACT_ALLOW",
                   "args":[{"index":0,"value":2114060288,"valueTwo":0,"op":"SCMP_CMP_MASKED_EQ"}]},
                  {"names":["socket"],"action":"SCMP_ACT_KILL_PROCESS",
                   "args":[{"index":0,"value":16,"op":"SCMP_CMP_EQ"},{"index":2,"value":9,"op":"SCMP_CMP_EQ"}]},
                  {"names":["ptrace"],"action":"SCMP_ACT_TRACE","errnoRet":7},
                  {"names":["kexec_load"],"action":"SCMP_ACT_KILL"},
                  {"names":["reboot"],"action":"SCMP_ACT_KILL_THREAD"},
                  {"names":["acct"],"action":"SCMP_ACT_TRAP"},
                  {"names":["uname"],"action":"SCMP_ACT_LOG"},
                  {"names":["getpid"],"action":"SCMP_ACT_ERRNO","errnoRet":38},
                  {"names":["no_such_syscall_xyz","open_tree"],"action":"SCMP_ACT_ERRNO"}
                ]}"#,
        ))
        .unwrap();
        assert_eq!(f.skipped_syscalls(), ["no_such_syscall_xyz"]);
        assert!(!f.uses_notify());
        assert_eq!(f.flags, libc::SECCOMP_FILTER_FLAG_TSYNC);
        // The program checks for the i386 ABI and returns the default
        // action, ERRNO(38).
        assert!(f.program.iter().any(|i| i.k == AUDIT_ARCH_I386), "{f:?}");
        assert!(returns(&f, libc::SECCOMP_RET_ERRNO | 38), "{f:?}");
    }

    const AUDIT_ARCH_I386: u32 = 0x4000_0003;

    /// Whether the program has a `ret K` instruction.
    fn returns(f: &Filter, k: u32) -> bool {
        const BPF_RET_K: u16 = 0x06;
        f.program.iter().any(|i| i.code == BPF_RET_K && i.k == k)
    }

    #[test]
    fn default_action_errno_defaults_to_eperm() {
        let f = compile(&spec(r#"{"defaultAction":"SCMP_ACT_ERRNO"}"#)).unwrap();
        assert!(
            returns(&f, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32),
            "{f:?}"
        );
    }

    #[test]
    fn bad_input_names_the_field() {
        let cases = [
            (
                r#"{"defaultAction":"SCMP_ACT_ALLOW","defaultErrnoRet":1}"#,
                "linux.seccomp.defaultAction: errnoRet is only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not SCMP_ACT_ALLOW",
            ),
            (
                r#"{"defaultAction":"SCMP_ACT_NOTIFY","listenerPath":"/x"}"#,
                "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default action",
            ),
            (
                r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
                    {"names":["read"],"action":"SCMP_ACT_ERRNO"},
                    {"names":["mkdir"],"action":"SCMP_ACT_KILL","errnoRet":2}]}"#,
                "linux.seccomp.syscalls[1]: errnoRet is only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not SCMP_ACT_KILL",
            ),
            (
                r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
                    {"names":["read"],"action":"SCMP_ACT_ERRNO","errnoRet":70000}]}"#,
                "linux.seccomp.syscalls[0]: errnoRet 70000 is out of range (0-65535)",
            ),
            (
                r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
                    {"names":["read"],"action":"SCMP_ACT_ERRNO",
                     "args":[{"index":0,"value":1,"op":"SCMP_CMP_EQ"},{"index":6,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#,
                "linux.seccomp.syscalls[0].args[1].index: 6 is out of range (0-5)",
            ),
            (
                r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
                    {"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#,
                "linux.seccomp.listenerPath: required when a rule uses SCMP_ACT_NOTIFY",
            ),
        ];
        for (json, want) in cases {
            let got = err(json);
            assert!(got.starts_with(want), "got {got:?}, want {want:?}");
            assert!(!got.contains('\n'), "{got:?}");
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn foreign_endianness_is_refused() {
        let mips = err(r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_MIPS"]}"#);
        assert_eq!(
            mips,
            "linux.seccomp.architectures[0]: adding SCMP_ARCH_MIPS to a filter for X8664: Architecture/ABI specific failure"
        );
    }

    #[test]
    fn unknown_spellings_are_rejected_when_parsing() {
        // Unknown actions, operators, archs and flags never reach
        // `compile`: oci-spec's enums refuse them while config.json is read.
        for json in [
            r#"{"defaultAction":"SCMP_ACT_FOO"}"#,
            r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_FOO"]}"#,
            r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_FOO"]}"#,
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],
                "action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":1,"op":"SCMP_CMP_FOO"}]}]}"#,
        ] {
            let e = serde_json::from_str::<LinuxSeccomp>(json).unwrap_err();
            assert!(e.to_string().contains("FOO"), "{e}");
        }
    }

    #[test]
    fn flags_follow_what_is_supported() {
        let supported = supported_flags();
        assert!(supported.contains(&Flag::SeccompFilterFlagTsync));
        for flag in [
            "SECCOMP_FILTER_FLAG_LOG",
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
        ] {
            let json = format!(r#"{{"defaultAction":"SCMP_ACT_ALLOW","flags":["{flag}"]}}"#);
            let parsed = spec(&json);
            let want = parsed.flags().as_ref().unwrap()[0];
            match compile(&parsed) {
                Ok(f) => {
                    assert!(supported.contains(&want), "{flag}");
                    let bit = match want {
                        Flag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
                        Flag::SeccompFilterFlagSpecAllow => libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
                        _ => libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
                    };
                    assert_eq!(f.flags, bit, "{flag} not set on the filter");
                }
                Err(e) => {
                    assert!(!supported.contains(&want), "{flag}: {e:#}");
                    assert_eq!(
                        format!("{e:#}"),
                        format!("linux.seccomp.flags[0]: {flag} is not supported by this kernel and libseccomp")
                    );
                }
            }
        }
    }

    #[test]
    fn rules_equal_to_the_default_are_dropped() {
        let f = compile(&spec(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
                {"names":["read"],"action":"SCMP_ACT_ERRNO","errnoRet":1},
                {"names":["write"],"action":"SCMP_ACT_ERRNO","errnoRet":2}]}"#,
        ));
        assert!(f.is_ok(), "{:?}", f.err());
    }

    #[test]
    fn errno_rule_is_enforced_in_a_child() {
        if !is_root() || rerun_alone() {
            return;
        }
        let f = compile(&spec(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
                {"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":64},
                {"names":["getcwd"],"action":"SCMP_ACT_ERRNO"},
                {"names":["fchmod"],"action":"SCMP_ACT_ERRNO","errnoRet":22,
                 "args":[{"index":1,"value":448,"op":"SCMP_CMP_EQ"}]}]}"#,
        ))
        .unwrap();
        let tmp = TempDir::new("seccomp");
        // Only created if the filter failed to stop mkdir.
        let dir = tmp.path().join("never-created");
        let out = in_child(|| {
            let errno = || std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
            let mut buf = [0u8; 256];
            assert!(f.load()?.is_none());
            let mkdir = std::fs::create_dir(&dir).map_err(|e| e.raw_os_error());
            // SAFETY: buf is writable for its whole length.
            let getcwd = unsafe { libc::getcwd(buf.as_mut_ptr().cast(), buf.len()) };
            let getcwd = if getcwd.is_null() { errno() } else { 0 };
            // SAFETY: fchmod on an invalid fd passes no memory and changes
            // nothing; only the filter's answer matters.
            let masked = unsafe { libc::fchmod(-1, 0o700) };
            let masked = if masked == -1 { errno() } else { 0 };
            // SAFETY: as above.
            let unmatched = unsafe { libc::fchmod(-1, 0o600) };
            let unmatched = if unmatched == -1 { errno() } else { 0 };
            Ok(format!("{mkdir:?} {getcwd} {masked} {unmatched}"))
        })
        .unwrap();
        // mkdir gets errnoRet, getcwd the default EPERM, fchmod EINVAL only
        // when its mode argument matches, otherwise the kernel's EBADF.
        assert_eq!(
            out,
            format!(
                "Err(Some({})) {} {} {}",
                libc::ENONET,
                libc::EPERM,
                libc::EINVAL,
                libc::EBADF
            )
        );
    }

    #[test]
    fn load_without_privilege_says_why() {
        if !is_root() || rerun_alone() {
            return;
        }
        let f = compile(&spec(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["getppid"],"action":"SCMP_ACT_ERRNO"}]}"#,
        ))
        .unwrap();
        let e = in_child(|| {
            caps::drop(
                None,
                caps::CapSet::Effective,
                caps::Capability::CAP_SYS_ADMIN,
            )?;
            f.load().map(|_| String::new())
        })
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "linux.seccomp: loading the filter: EACCES: Permission denied (needs noNewPrivileges or CAP_SYS_ADMIN)"
        );
    }

    #[test]
    fn kill_process_rule_kills_with_sigsys() {
        if !is_root() || rerun_alone() {
            return;
        }
        let f = compile(&spec(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_TSYNC"],
                "syscalls":[{"names":["getppid"],"action":"SCMP_ACT_KILL_PROCESS"}]}"#,
        ))
        .unwrap();
        let e = in_child(|| {
            // No core dump of the killed child.
            nix::sys::prctl::set_dumpable(false)?;
            f.load()?;
            nix::unistd::getppid();
            Ok("survived getppid".to_string())
        })
        .unwrap_err();
        assert!(e.to_string().contains("SIGSYS"), "{e}");
    }

    #[test]
    fn notify_fd_reaches_the_listener() {
        if !is_root() || rerun_alone() {
            return;
        }
        let tmp = TempDir::new("notify");
        let sock = tmp.path().join("agent.sock");
        let listener = UnixListener::bind(&sock).unwrap();
        let f = compile(&spec(&format!(
            r#"{{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"{}","syscalls":[
                {{"names":["mkdirat","mkdir"],"action":"SCMP_ACT_NOTIFY"}}]}}"#,
            sock.display()
        )))
        .unwrap();
        assert!(f.uses_notify());
        let agent = std::thread::spawn(move || agent(listener));
        let target = tmp.path().join("never-created");
        let out = in_child(|| {
            // As an init would: connect while the path is reachable, load,
            // then send.
            let conn = connect_listener(&sock)?;
            let fd = f.load()?.expect("notify fd");
            let mut state = State::default();
            state.set_id("notify-test".to_string());
            let json = listener_state(&state, std::process::id() as i32, Some("meta"))?;
            send_over(conn, fd.as_fd(), &json)?;
            drop(fd);
            let e = std::fs::create_dir(&target).unwrap_err();
            Ok(format!("{:?}", e.raw_os_error()))
        });
        if out.is_err() {
            // Unblock the agent's accept() so the test reports instead of hanging.
            let _ = UnixStream::connect(&sock);
        }
        let seen = agent.join().unwrap();
        assert_eq!(out.unwrap(), format!("Some({})", libc::EXDEV));
        let seen = seen.unwrap();
        assert_eq!(seen["fds"], serde_json::json!(["seccompFd"]));
        assert_eq!(seen["metadata"], "meta");
        assert_eq!(seen["state"]["id"], "notify-test");
    }

    #[test]
    fn unreachable_listener_is_named() {
        let tmp = TempDir::new("nolistener");
        let path = tmp.path().join("none.sock");
        let e = send_to_listener(&path, std::io::stdin().as_fd(), b"{}").unwrap_err();
        assert_eq!(
            format!("{e:#}"),
            format!(
                "linux.seccomp.listenerPath: {}: No such file or directory (os error 2)",
                path.display()
            )
        );
    }

    /// A minimal seccomp agent: takes one connection, answers the first
    /// notification with EXDEV, returns the state it was sent.
    fn agent(listener: UnixListener) -> Result<serde_json::Value> {
        use libseccomp::{ScmpNotifReq, ScmpNotifResp, ScmpNotifRespFlags};
        use std::io::Read;

        let (mut conn, _) = listener.accept()?;
        let mut buf = vec![0u8; 4096];
        let (n, fd) = crate::start::fdpass::recv(conn.as_fd(), &mut buf)?;
        let fd = fd.context("no fd received")?;
        buf.truncate(n);
        conn.read_to_end(&mut buf)?;
        let req = ScmpNotifReq::receive(fd.as_raw_fd())?;
        ScmpNotifResp::new_error(req.id, -libc::EXDEV, ScmpNotifRespFlags::empty())
            .respond(fd.as_raw_fd())?;
        Ok(serde_json::from_slice(&buf)?)
    }
}
