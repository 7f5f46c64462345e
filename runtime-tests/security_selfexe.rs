//! The runtime binary cannot be written through /proc/PID/exe of a
//! container's init (CVE-2019-5736), seen from the host with every
//! privilege: with the exe switched in place, through the re-exec taken
//! where the kernel refuses that, and through the fallback for kernels
//! without open_tree.
//!
//! runtime-tests/security.rs (a) runs the attack from inside a container
//! holding every capability, CAP_SYS_PTRACE included; here the attacker is
//! the test itself, root on the host: more privileged than any container,
//! so what stops it is the mount the init's exe is on, not a capability.

mod common;

use common::*;
use std::fs;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;

/// The note rcontain's fallback logs with --debug (src/process/selfexe.rs).
const FALLBACK_NOTE: &str = "private mount namespace";
/// The note rcontain logs with --debug when it re-executed from the clone
/// because its exe could not be switched in place.
const REEXEC_NOTE: &str = "switching to it in place failed";

/// Whether this kernel lets a process change its exe link
/// (PR_SET_MM_MAP, which needs CONFIG_CHECKPOINT_RESTORE): where it does
/// not, rcontain re-executes instead of switching in place.
fn kernel_has_pr_set_mm_map() -> bool {
    let mut size: u32 = 0;
    // SAFETY: PR_SET_MM_MAP_SIZE only writes the struct's size to `size`.
    let r = unsafe {
        libc::prctl(
            libc::PR_SET_MM,
            libc::PR_SET_MM_MAP_SIZE,
            &mut size as *mut u32,
            0,
            0,
        )
    };
    r == 0 && size > 0
}

/// Open /proc/PID/exe the way the attack does: read-only, to be reopened
/// for writing once nothing executes the file any more (ETXTBSY before).
fn hold_exe(pid: i64) -> fs::File {
    fs::File::open(format!("/proc/{pid}/exe")).unwrap()
}

/// The attack's second half: reopen the held file through its fd's magic
/// link, for writing, and append to it.
fn write_through(held: &fs::File) -> std::io::Result<()> {
    fs::OpenOptions::new()
        .append(true)
        .open(format!("/proc/self/fd/{}", held.as_raw_fd()))?
        .write_all(b"pwned")
}

fn read_only(path: &str) -> bool {
    nix::sys::statvfs::statvfs(path)
        .unwrap()
        .flags()
        .contains(nix::sys::statvfs::FsFlags::ST_RDONLY)
}

/// The mount id of what `path` resolves to (magic links followed).
fn mount_id(path: &str) -> String {
    let f = fs::File::open(path).unwrap();
    let info = fs::read_to_string(format!("/proc/self/fdinfo/{}", f.as_raw_fd())).unwrap();
    status_field(&info, "mnt_id").unwrap()
}

/// The mount ids (first field) of a mountinfo file.
fn mount_ids(mountinfo: &str) -> Vec<String> {
    fs::read_to_string(mountinfo)
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').next().map(String::from))
        .collect()
}

/// A private copy of the runtime for `env`, so that once its container runs
/// nothing executes that copy (no ETXTBSY to hide a writable binary) and a
/// successful attack cannot wreck the real one. Returns its contents.
fn private_runtime(env: &mut TestEnv) -> Vec<u8> {
    let copy = env.dir.join(format!("victim-{}", env.rt.name()));
    fs::copy(&env.rt.bin, &copy).unwrap();
    env.rt.bin = copy;
    fs::read(&env.rt.bin).unwrap()
}

/// The (device, inode) of a file.
fn file_id(m: &fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (m.dev(), m.ino())
}

/// Positive control: the same attack, with the same privileges, on a
/// program run from a writable copy does write to that copy.
fn attack_works_on_a_writable_binary(env: &TestEnv) {
    let copy = env.dir.join("sleep-copy");
    fs::copy(which("sleep"), &copy).unwrap();
    let want = file_id(&fs::metadata(&copy).unwrap());
    // named sleep: where sleep is busybox (the VMs of the host matrix,
    // Alpine), the copy is the multi-call binary, which picks its applet
    // by argv[0]
    let mut child = spawn(std::process::Command::new(&copy).arg0("sleep").arg("1000")).unwrap();
    // spawn (posix_spawn: vfork) returns as soon as the child's execve lets
    // go of this process's memory, which the kernel does before it gives
    // the child the new program's: until then /proc/PID/exe is this test
    // binary, which runs and so cannot be opened for writing (ETXTBSY).
    // Seen under emulation (the host matrix's VMs), where that window is
    // long. Hold the exe once it is the copy.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let held = loop {
        let held = hold_exe(child.id().into());
        if file_id(&held.metadata().unwrap()) == want {
            break held;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "control: /proc/{}/exe never became the copy",
            child.id()
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    write_through(&held)
        .unwrap_or_else(|e| panic!("control: writing through a held /proc/PID/exe: {e}"));
    assert!(fs::read(&copy).unwrap().ends_with(b"pwned"));
}

/// Create a `sleep` container with `create` (edited by `tweak`), hold its
/// init's exe, start it and try to write through the held file. Returns
/// the error the attack met and the container's debug log.
fn attack_created_init(
    env: &mut TestEnv,
    tweak: impl FnOnce(&mut std::process::Command),
    check_init: impl FnOnce(i64),
) -> (std::io::Error, String) {
    let before = private_runtime(env);
    let b = env.bundle(&["sleep", "1000"]);
    let id = env.id("exe");
    let log = env.dir.join("debug.log");
    let mut create = env.command(&[
        "--debug",
        "--log",
        log.to_str().unwrap(),
        "create",
        "-b",
        b.path(),
        &id,
    ]);
    tweak(&mut create);
    start_detached(&mut create, &env.dir.join("create.err"), "create");
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    check_init(pid);
    let held = hold_exe(pid);
    if env.rt.is_rcontain() {
        // the init's exe is the runtime's copy itself (on another mount):
        // the error below is about writing to that file
        assert_eq!(
            file_id(&held.metadata().unwrap()),
            file_id(&fs::metadata(&env.rt.bin).unwrap()),
            "the init's exe is not the runtime's copy"
        );
    }
    env.rt(&["start", &id]).expect_ok("start");
    env.wait_for("container running", || {
        env.state(&id)["status"] == "running"
    });
    let err = write_through(&held).expect_err("wrote to the runtime through /proc/PID/exe");
    drop(held);
    assert!(
        fs::read(&env.rt.bin).unwrap() == before,
        "runtime binary modified"
    );
    env.rt(&["delete", "-f", &id]).expect_ok("delete");
    env.assert_nothing_left();
    (err, fs::read_to_string(&log).unwrap_or_default())
}

/// Skip (true) when the runtime binary is itself on a read-only mount:
/// then there is nothing for the runtime to protect.
fn binary_already_read_only(env: &TestEnv) -> bool {
    let ro = read_only(env.dir.to_str().unwrap());
    if ro {
        eprintln!("skipped: {} is on a read-only mount", env.dir.display());
    }
    ro
}

#[test]
fn host_root_cannot_write_the_runtime_through_a_created_init() {
    let mut env = TestEnv::new("selfexe");
    if binary_already_read_only(&env) {
        return;
    }
    attack_works_on_a_writable_binary(&env);
    let rcontain = env.rt.is_rcontain();
    // Control for "in no mount table": where the runtime's copy lives is.
    let copies = mount_id(env.dir.to_str().unwrap());
    assert!(mount_ids("/proc/self/mountinfo").contains(&copies));
    let (err, log) = attack_created_init(
        &mut env,
        |_| {},
        |pid| {
            if !rcontain {
                return;
            }
            // rcontain's init runs from a read-only clone of the binary
            // attached nowhere: in no mount table, the host's or its own.
            let exe = format!("/proc/{pid}/exe");
            assert!(read_only(&exe), "{exe} is on a writable mount");
            let id = mount_id(&exe);
            for table in [
                "/proc/self/mountinfo".to_string(),
                format!("/proc/{pid}/mountinfo"),
            ] {
                assert!(!mount_ids(&table).contains(&id), "mount {id} is in {table}");
            }
        },
    );
    eprintln!("attack refused: {err}");
    if rcontain {
        assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
        assert!(!log.contains(FALLBACK_NOTE), "fallback taken: {log}");
        if kernel_has_pr_set_mm_map() {
            assert!(!log.contains(REEXEC_NOTE), "re-executed: {log}");
        } else {
            eprintln!("this kernel has no PR_SET_MM_MAP: the runtime re-executed");
            assert!(log.contains(REEXEC_NOTE), "no re-exec in the log: {log}");
        }
    }
}

/// A seccomp filter on the runtime answering `errno` to `nr` (whose first
/// argument is `arg0`, if given), as an older or differently built kernel
/// would. Root needs no no_new_privs for it; the container inherits it,
/// harmlessly.
fn refusing(cmd: &mut std::process::Command, nr: i64, arg0: Option<u32>, errno: i32) {
    let stmt = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let jump_unless = |k: u32, skip: u8| libc::sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt: 0,
        jf: skip,
        k,
    };
    let allow = stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW);
    let refuse = stmt(
        libc::BPF_RET | libc::BPF_K,
        libc::SECCOMP_RET_ERRNO | errno as u32,
    );
    // seccomp_data: nr at offset 0, args[0] (its low half) at 16.
    let mut filter = vec![stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0)];
    match arg0 {
        None => filter.extend([jump_unless(nr as u32, 1), refuse, allow]),
        Some(a) => filter.extend([
            jump_unless(nr as u32, 3),
            stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 16),
            jump_unless(a, 1),
            refuse,
            allow,
        ]),
    }
    // SAFETY: the closure only calls prctl, which is async-signal-safe, with
    // a program that lives in the closure (moved there) for the call.
    unsafe {
        cmd.pre_exec(move || {
            let prog = libc::sock_fprog {
                len: filter.len() as u16,
                filter: filter.as_ptr().cast_mut(),
            };
            if libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &prog) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// The attack on rcontain's created init with the kernel refusing `nr`
/// (`arg0`, `errno`: see `refusing`) to the runtime: it must fail all the
/// same. Returns the runtime's debug log; None when skipped.
fn attack_with_the_kernel_refusing(
    name: &str,
    nr: i64,
    arg0: Option<u32>,
    errno: i32,
) -> Option<String> {
    let mut env = TestEnv::new(name);
    if !env.rt.is_rcontain() {
        eprintln!("skipped: the ways to a read-only exe tested here are rcontain's");
        return None;
    }
    if binary_already_read_only(&env) {
        return None;
    }
    attack_works_on_a_writable_binary(&env);
    let (err, log) = attack_created_init(
        &mut env,
        |cmd| refusing(cmd, nr, arg0, errno),
        |pid| {
            let exe = format!("/proc/{pid}/exe");
            assert!(read_only(&exe), "{exe} is on a writable mount");
        },
    );
    eprintln!("attack refused: {err}");
    assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
    Some(log)
}

#[test]
fn refused_the_switch_in_place_the_runtime_reexecutes_from_a_read_only_mount() {
    let pr_set_mm = Some(libc::PR_SET_MM as u32);
    let Some(log) =
        attack_with_the_kernel_refusing("selfexe-reexec", libc::SYS_prctl, pr_set_mm, libc::EPERM)
    else {
        return;
    };
    assert!(log.contains(REEXEC_NOTE), "no re-exec in the log: {log}");
    assert!(!log.contains(FALLBACK_NOTE), "fallback taken: {log}");
}

#[test]
fn without_open_tree_the_fallback_still_runs_from_a_read_only_mount() {
    let Some(log) = attack_with_the_kernel_refusing(
        "selfexe-fallback",
        libc::SYS_open_tree,
        None,
        libc::ENOSYS,
    ) else {
        return;
    };
    assert!(log.contains(FALLBACK_NOTE), "no fallback in the log: {log}");
}
