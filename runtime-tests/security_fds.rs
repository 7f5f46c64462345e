//! The fd class of CVE-2024-21626 ("attack 3"): when the container's
//! process is exec'd, an fd the runtime or its caller left open to a host
//! directory lets `/proc/self/fd/N/../..` reach the host, so a
//! `process.args[0]` or a `PATH` entry through it runs a host binary.
//!
//! Every attack here uses a host-only directory holding a marker file and
//! `busybox-hostonly`, a copy of the static busybox that exists nowhere in
//! the container: if the container's output shows what that binary echoes,
//! a host binary ran. The directory is reached through fds the caller
//! leaked (inherited, not close-on-exec, not in --preserve-fds) and through
//! whatever fds the runtime itself holds (every fd number is tried).
//! Positive controls show each mechanism works where it is legitimate: an
//! fd passed with --preserve-fds does reach the host directory, and PATH
//! lookups inside the container still work.

mod common;

use common::*;
use serde_json::json;
use std::fs;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What busybox-hostonly is asked to echo.
const ESCAPED: &str = "HOST-BINARY-RAN";
/// Content of the host-only marker file.
const MARKER: &str = "HOST-ONLY-MARKER";
/// The fd number the caller leaks (neither stdio nor preserved).
const LEAKED: RawFd = 9;
/// Highest fd number the attacks go through.
const MAX_FD: RawFd = 24;
/// Numbers the output files of `rt_with_fds`.
static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A host directory the container must never reach: marker + binary.
fn host_only_dir(env: &TestEnv) -> PathBuf {
    let dir = env.dir.join("hostonly");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("marker"), format!("{MARKER}\n")).unwrap();
    // busybox runs as itself for any name starting with "busybox".
    fs::copy(
        base_rootfs().join("bin/busybox"),
        dir.join("busybox-hostonly"),
    )
    .unwrap();
    dir
}

fn open_dir(dir: &Path) -> fs::File {
    fs::File::open(dir).unwrap()
}

/// `/proc/self/fd/N` then enough `..` to reach `/`, then `host`: reaches
/// `host` whenever fd N is a directory on the host's tree.
fn through_fd(n: RawFd, host: &Path) -> String {
    format!("/proc/self/fd/{n}/{}{}", "../".repeat(40), host.display())
}

/// A PATH trying `host` through every fd 3..=MAX_FD, then the container's /bin.
fn poisoned_path(host: &Path) -> String {
    let mut dirs: Vec<String> = (3..=MAX_FD).map(|n| through_fd(n, host)).collect();
    dirs.push("/bin".into());
    format!("PATH={}", dirs.join(":"))
}

/// Run the runtime with `args`; the caller's fds `fds` (target number,
/// file) are inherited without close-on-exec, as a careless caller would
/// leave them.
fn rt_with_fds(env: &TestEnv, args: &[&str], fds: &[(RawFd, &fs::File)]) -> Out {
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let (so, se) = (
        env.dir.join(format!("fdout{n}")),
        env.dir.join(format!("fderr{n}")),
    );
    let mut cmd = env.command(args);
    cmd.stdout(fs::File::create(&so).unwrap())
        .stderr(fs::File::create(&se).unwrap());
    let pairs: Vec<(RawFd, RawFd)> = fds.iter().map(|(t, f)| (f.as_raw_fd(), *t)).collect();
    // SAFETY: between fork and exec only fcntl, dup2 and close, which are
    // async-signal-safe; the sources are owned by `fds`, alive until spawn
    // returns. Every source first goes above 100, so no dup2 target can
    // clobber a source not yet moved; dup2 leaves the target without
    // O_CLOEXEC.
    unsafe {
        cmd.pre_exec(move || {
            let mut high = Vec::new();
            for (src, _) in &pairs {
                let h = libc::fcntl(*src, libc::F_DUPFD_CLOEXEC, 100);
                if h < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                high.push(h);
            }
            for (h, (_, to)) in high.iter().zip(&pairs) {
                if libc::dup2(*h, *to) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(*h);
            }
            Ok(())
        });
    }
    let child = cmd.spawn().unwrap();
    let status = wait_child(child, &args.join(" "));
    Out {
        status,
        stdout: fs::read_to_string(so).unwrap_or_default(),
        stderr: fs::read_to_string(se).unwrap_or_default(),
    }
}

/// The fds the shell running `FD_PROBE` holds, from its `ls -l` output.
fn fds(listing: &str) -> Vec<String> {
    listing
        .lines()
        .filter(|l| l.starts_with('l'))
        .filter_map(|l| l.split_whitespace().nth(8).map(String::from))
        .collect()
}

/// Lists the fds of the exec'd process itself (the shell, not ls).
const FD_PROBE: &str = "ls -l /proc/$$/fd; true";

#[track_caller]
fn assert_not_escaped(out: &Out, what: &str) {
    assert!(
        !out.stdout.contains(ESCAPED) && !out.stderr.contains(ESCAPED),
        "{what}: a host binary ran in the container: {out:#?}"
    );
}

/// The container's process sees only stdio when the caller leaked a host
/// directory fd; with --preserve-fds 1 it also sees fd 3, which does reach
/// the host directory (positive control: the caller's deliberate choice).
#[test]
fn run_probe_sees_only_expected_fds() {
    let env = TestEnv::new("fdprobe");
    let host = host_only_dir(&env);
    let d = open_dir(&host);
    let b = env.bundle(&["sh", "-c", FD_PROBE]);
    let id = env.id("probe");
    let out = rt_with_fds(&env, &["run", "-b", b.path(), &id], &[(LEAKED, &d)]);
    out.expect_ok("run");
    assert_eq!(fds(&out.stdout), ["0", "1", "2"], "{}", out.stdout);

    let b = env.bundle(&["sh", "-c", "ls -l /proc/$$/fd; cat /proc/self/fd/3/marker"]);
    let id = env.id("probe");
    let out = rt_with_fds(
        &env,
        &["run", "--preserve-fds", "1", "-b", b.path(), &id],
        &[(3, &d), (LEAKED, &d)],
    );
    out.expect_ok("run --preserve-fds 1");
    assert_eq!(fds(&out.stdout), ["0", "1", "2", "3"], "{}", out.stdout);
    assert!(
        out.stdout.contains(MARKER),
        "preserved fd unusable: {out:#?}"
    );
    env.assert_nothing_left();
}

/// process.args[0] = /proc/self/fd/N/../../<host dir>/busybox-hostonly for
/// every N: neither the caller's leaked fd nor any fd of the runtime may
/// lead to the host binary, not even a preserved one (the executable comes
/// from the container's root).
#[test]
fn run_args0_through_fd_stays_in_root() {
    let env = TestEnv::new("fdargs0");
    let host = host_only_dir(&env);
    let d = open_dir(&host);
    let mut ran = Vec::new();
    for n in 3..=MAX_FD {
        let exe = format!("{}/busybox-hostonly", through_fd(n, &host));
        let b = env.bundle(&[&exe, "echo", ESCAPED]);
        let id = env.id("a0");
        let out = rt_with_fds(
            &env,
            &["run", "--preserve-fds", "1", "-b", b.path(), &id],
            &[(3, &d), (LEAKED, &d)],
        );
        if out.stdout.contains(ESCAPED) || out.ok() {
            ran.push(n);
        }
    }
    assert!(ran.is_empty(), "args[0] through these fds ran: {ran:?}");
    // Positive control: a path with `..` inside the container is fine.
    let b = env.bundle(&["/bin/../bin/busybox", "echo", "ARGS0-OK"]);
    let id = env.id("a0");
    let out = rt_with_fds(&env, &["run", "-b", b.path(), &id], &[(LEAKED, &d)]);
    out.expect_ok("control run");
    assert_eq!(out.stdout, "ARGS0-OK\n");
    env.assert_nothing_left();
}

/// A bare args[0] looked up through a PATH whose first entries go through
/// every fd: the lookup skips them and never finds the host binary; the
/// same PATH still finds the container's own programs.
#[test]
fn run_path_through_fd_stays_in_root() {
    let env = TestEnv::new("fdpath");
    let host = host_only_dir(&env);
    let d = open_dir(&host);
    let path = poisoned_path(&host);
    let with_path = |args: &[&str]| {
        let mut b = env.bundle(args);
        b.config["process"]["env"] = json!([path]);
        b.save();
        b
    };
    let b = with_path(&["busybox-hostonly", "echo", ESCAPED]);
    let id = env.id("path");
    let out = rt_with_fds(&env, &["run", "-b", b.path(), &id], &[(LEAKED, &d)]);
    eprintln!("PATH through fds: {out:?}");
    assert_not_escaped(&out, "PATH through fds");
    assert!(!out.ok(), "{out:#?}");
    assert!(out.stderr.contains("not found in $PATH"), "{out:#?}");

    let b = with_path(&["busybox", "echo", "PATH-OK"]);
    let id = env.id("path");
    let out = rt_with_fds(&env, &["run", "-b", b.path(), &id], &[(LEAKED, &d)]);
    out.expect_ok("control run");
    assert_eq!(out.stdout, "PATH-OK\n");
    env.assert_nothing_left();
}

/// An OCI layout with one layer (the busybox rootfs) and two tags whose
/// configs have `Env` = [`path`] and `Cmd` = `attack` / `control`.
fn write_image(dir: &Path, env_path: &str, attack: &[&str], control: &[&str]) {
    use sha2::{Digest, Sha256};
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |data: &[u8]| -> (String, usize) {
        let hex: String = Sha256::digest(data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        fs::write(blobs.join(&hex), data).unwrap();
        (format!("sha256:{hex}"), data.len())
    };
    let tar = Command::new("tar")
        .args(["--numeric-owner", "-C"])
        .arg(base_rootfs())
        .args(["-cf", "-", "."])
        .output()
        .unwrap();
    assert!(tar.status.success(), "tar of the busybox rootfs failed");
    let (layer, layer_size) = put(&tar.stdout);
    let mut manifests = Vec::new();
    for (tag, cmd) in [("attack", attack), ("control", control)] {
        let config = serde_json::to_vec(&json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Env": [env_path], "Cmd": cmd},
            "rootfs": {"type": "layers", "diff_ids": [layer]},
        }))
        .unwrap();
        let (cd, cs) = put(&config);
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": cd, "size": cs},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": layer, "size": layer_size}],
        }))
        .unwrap();
        let (md, ms) = put(&manifest);
        manifests.push(json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": md, "size": ms,
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }));
    }
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": manifests})).unwrap(),
    )
    .unwrap();
}

/// `run IMAGE`: the image's Env PATH goes through every fd; its Cmd names
/// the host-only binary. The control tag runs `sh` through the same PATH.
#[test]
fn run_image_path_through_fd_stays_in_root() {
    let env = TestEnv::new("fdimage");
    let host = host_only_dir(&env);
    let d = open_dir(&host);
    let layout = env.dir.join("image");
    write_image(
        &layout,
        &poisoned_path(&host),
        &["busybox-hostonly", "echo", ESCAPED],
        &["sh", "-c", "echo IMAGE-OK"],
    );
    let store = env.dir.join("store");
    let run_tag = |tag: &str| {
        let id = env.id("img");
        let image = format!("{}:{tag}", layout.display());
        rt_with_fds(
            &env,
            &[
                "--store",
                store.to_str().unwrap(),
                "run",
                "--image",
                &image,
                &id,
            ],
            &[(LEAKED, &d)],
        )
    };
    let out = run_tag("attack");
    eprintln!("run IMAGE, PATH through fds: {out:?}");
    assert_not_escaped(&out, "run IMAGE with PATH through fds");
    assert!(!out.ok(), "{out:#?}");
    let out = run_tag("control");
    out.expect_ok("control run IMAGE");
    assert_eq!(out.stdout, "IMAGE-OK\n");
    env.assert_nothing_left();
}

/// `exec` into a running container whose config's PATH goes through every
/// fd (as an image's Env would set it), with a leaked host directory fd:
/// neither a bare name nor an args[0] through an fd runs the host binary;
/// the exec'd process sees only stdio (and the preserved fd, which works);
/// the PATH still finds the container's programs.
#[test]
fn exec_through_fd_stays_in_root() {
    let env = TestEnv::new("fdexec");
    let host = host_only_dir(&env);
    let d = open_dir(&host);
    let mut b = env.bundle(&["sleep", "1000"]);
    b.config["process"]["env"] = json!([poisoned_path(&host)]);
    b.save();
    let id = env.id("exec");
    start_detached(
        &mut env.command(&["run", "-d", "-b", b.path(), &id]),
        &env.dir.join("run.log"),
        "run -d",
    );
    let exec = |args: &[&str]| {
        let mut a = vec!["exec", &id];
        a.extend_from_slice(args);
        rt_with_fds(&env, &a, &[(LEAKED, &d)])
    };

    let ran: Vec<RawFd> = (3..=MAX_FD)
        .filter(|n| {
            let exe = format!("{}/busybox-hostonly", through_fd(*n, &host));
            let out = exec(&[&exe, "echo", ESCAPED]);
            out.stdout.contains(ESCAPED) || out.ok()
        })
        .collect();
    assert!(
        ran.is_empty(),
        "exec args[0] through these fds ran: {ran:?}"
    );
    let out = exec(&["busybox-hostonly", "echo", ESCAPED]);
    eprintln!("exec, PATH through fds: {out:?}");
    assert_not_escaped(&out, "exec with PATH through fds");
    assert!(!out.ok(), "{out:#?}");

    let out = exec(&["busybox", "echo", "EXEC-OK"]);
    out.expect_ok("control exec");
    assert_eq!(out.stdout, "EXEC-OK\n");
    let out = exec(&["sh", "-c", FD_PROBE]);
    out.expect_ok("exec probe");
    assert_eq!(fds(&out.stdout), ["0", "1", "2"], "{}", out.stdout);
    let script = format!("{FD_PROBE}; cat /proc/self/fd/3/marker");
    let out = rt_with_fds(
        &env,
        &["exec", "--preserve-fds", "1", &id, "sh", "-c", &script],
        &[(3, &d), (LEAKED, &d)],
    );
    out.expect_ok("exec --preserve-fds 1");
    assert_eq!(fds(&out.stdout), ["0", "1", "2", "3"], "{}", out.stdout);
    assert!(
        out.stdout.contains(MARKER),
        "preserved fd unusable: {out:#?}"
    );

    env.kill_and_delete(&id, Some("KILL"));
    env.assert_nothing_left();
}

/// A refused --preserve-fds: one line naming the flag, nothing run.
#[track_caller]
fn assert_refused(out: &Out, what: &str) {
    assert!(!out.ok(), "{what} was accepted: {out:#?}");
    assert!(
        !out.stdout.contains("->"),
        "{what}: the container ran: {out:#?}"
    );
    let err = out.stderr.trim_end();
    assert!(
        err.lines().count() == 1 && err.contains("--preserve-fds"),
        "{what}: want one line naming --preserve-fds: {out:#?}"
    );
}

/// --preserve-fds N larger than what the caller passed (or with a gap)
/// would hand the runtime's own fds (state dir, cgroup dir, namespaces)
/// to the container: refused for create, run and exec, nothing left.
#[test]
fn preserve_fds_beyond_what_was_passed_is_refused() {
    let env = TestEnv::new("fdovershoot");
    let host = host_only_dir(&env);
    let d = open_dir(&host);
    let b = env.bundle(&["sh", "-c", FD_PROBE]);
    let id = env.id("over");
    let out = rt_with_fds(
        &env,
        &["run", "--preserve-fds", "6", "-b", b.path(), &id],
        &[(3, &d)],
    );
    eprintln!("run --preserve-fds 6 with only fd 3: {out:?}");
    assert_refused(&out, "run --preserve-fds 6 with only fd 3");
    let id = env.id("over");
    let out = rt_with_fds(
        &env,
        &["create", "--preserve-fds", "3", "-b", b.path(), &id],
        &[(3, &d), (5, &d)],
    );
    assert_refused(&out, "create --preserve-fds 3 with fds 3 and 5");
    env.assert_nothing_left();

    // Positive control: exactly what was passed crosses.
    let id = env.id("over");
    let out = rt_with_fds(
        &env,
        &["run", "--preserve-fds", "2", "-b", b.path(), &id],
        &[(3, &d), (4, &d)],
    );
    out.expect_ok("run --preserve-fds 2 with fds 3 and 4");
    assert_eq!(
        fds(&out.stdout),
        ["0", "1", "2", "3", "4"],
        "{}",
        out.stdout
    );

    let b = env.bundle(&["sleep", "1000"]);
    let id = env.id("over");
    start_detached(
        &mut env.command(&["run", "-d", "-b", b.path(), &id]),
        &env.dir.join("run.log"),
        "run -d",
    );
    let out = rt_with_fds(
        &env,
        &["exec", "--preserve-fds", "4", &id, "sh", "-c", FD_PROBE],
        &[],
    );
    eprintln!("exec --preserve-fds 4 with none: {out:?}");
    assert_refused(&out, "exec --preserve-fds 4 with none passed");
    env.kill_and_delete(&id, Some("KILL"));
    env.assert_nothing_left();
}
