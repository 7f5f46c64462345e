//! Bad input: each case must fail with a non-zero exit, exactly one line on
//! stderr naming the file, field or id at fault, and leave nothing behind
//! (state entry, mount, process, cgroup). One test per case.

mod common;

use common::*;
use serde_json::json;
use std::fs;

/// Check the single stderr line and that it names one of `needles`.
///
/// Naming the culprit is rcontain's contract (issue 3, point 4); runc and
/// crun often say only "invalid container ID format" or "container does not
/// exist". So that the suite can be validated against them, the naming check
/// is enforced for rcontain (or with RCONTAIN_STRICT=1) and only reported
/// for the reference runtimes; everything else is enforced for all.
#[track_caller]
fn one_line_naming(env: &TestEnv, out: &Out, needles: &[&str]) {
    let err = out.stderr.trim();
    assert_eq!(
        err.lines().count(),
        1,
        "stderr must be exactly one line, got: {:?}",
        out.stderr
    );
    if !needles.iter().any(|n| err.contains(n)) {
        let msg = format!("stderr does not name any of {needles:?}: {err}");
        if env.rt.is_rcontain() || std::env::var_os("RCONTAIN_STRICT").is_some() {
            panic!("{msg}");
        }
        eprintln!("NOTE ({}): {msg}", env.rt.name());
    }
}

/// Assert a clean failure: non-zero, one stderr line naming the culprit,
/// and nothing left behind by this test.
#[track_caller]
fn clean_failure(env: &TestEnv, out: &Out, needles: &[&str]) {
    assert!(!out.ok(), "expected failure, got success: {out:#?}");
    one_line_naming(env, out, needles);
    env.assert_nothing_left();
}

/// `create` a bundle whose config was edited by `edit`; expect a clean failure.
#[track_caller]
fn create_fails(name: &str, edit: impl FnOnce(&mut serde_json::Value), needles: &[&str]) {
    let env = TestEnv::new(name);
    let mut b = env.bundle(&["true"]);
    edit(&mut b.config);
    b.save();
    let id = env.id("e");
    let out = env.rt(&["create", "-b", b.path(), &id]);
    clean_failure(&env, &out, needles);
}

#[test]
fn malformed_config_json() {
    let env = TestEnv::new("malformed");
    let b = env.bundle(&["true"]);
    fs::write(b.dir.join("config.json"), "{ \"ociVersion\": \"1.0.2\", ").unwrap();
    let id = env.id("e");
    let out = env.rt(&["create", "-b", b.path(), &id]);
    clean_failure(&env, &out, &["config.json"]);
}

/// Global flags come before the command, as with runc and crun; one
/// given after it is refused, in one line naming it.
#[test]
fn global_flag_after_the_command() {
    let env = TestEnv::new("lateglobal");
    let b = env.bundle(&["true"]);
    let id = env.id("e");
    let log = env.dir.join("late.log");
    let out = env.rt(&["run", "--log", log.to_str().unwrap(), "-b", b.path(), &id]);
    clean_failure(&env, &out, &["--log"]);
    assert!(!log.exists(), "the flag after the command was used");
}

#[test]
fn wrongly_typed_field() {
    create_fails("wrongtype", |c| c["hostname"] = json!(42), &["hostname"]);
}

#[test]
fn unsupported_oci_version() {
    create_fails(
        "ociversion",
        |c| c["ociVersion"] = json!("2.0.0"),
        &["ociVersion", "2.0.0"],
    );
}

#[test]
fn missing_rootfs() {
    create_fails(
        "norootfs",
        |c| c["root"]["path"] = json!("no-such-rootfs"),
        &["no-such-rootfs"],
    );
}

#[test]
fn missing_bundle() {
    let env = TestEnv::new("nobundle");
    let missing = env.dir.join("no-such-bundle");
    let id = env.id("e");
    let out = env.rt(&["create", "-b", missing.to_str().unwrap(), &id]);
    clean_failure(&env, &out, &["no-such-bundle"]);
}

#[test]
fn missing_process_args() {
    create_fails(
        "noargs",
        |c| {
            c["process"].as_object_mut().unwrap().remove("args");
        },
        &["args"],
    );
}

#[test]
fn empty_process_args() {
    create_fails("emptyargs", |c| c["process"]["args"] = json!([]), &["args"]);
}

#[test]
fn relative_mount_destination() {
    create_fails(
        "relmount",
        |c| {
            c["mounts"].as_array_mut().unwrap().push(json!({
                "destination": "relative/mnt", "type": "tmpfs", "source": "tmpfs"
            }))
        },
        &["relative/mnt"],
    );
}

#[test]
fn relative_process_cwd() {
    create_fails("relcwd", |c| c["process"]["cwd"] = json!("tmp"), &["cwd"]);
}

#[test]
fn relative_hook_path() {
    create_fails(
        "relhook",
        |c| c["hooks"] = json!({"createRuntime": [{"path": "relative/hook"}]}),
        &["relative/hook"],
    );
}

#[test]
fn relative_namespace_path() {
    create_fails(
        "relns",
        |c| {
            for ns in c["linux"]["namespaces"].as_array_mut().unwrap() {
                if ns["type"] == "network" {
                    ns["path"] = json!("proc/1/ns/net");
                }
            }
        },
        &["proc/1/ns/net"],
    );
}

fn invalid_id(name: &str, id: &str, needles: &[&str]) {
    let env = TestEnv::new(name);
    let b = env.bundle(&["true"]);
    let out = env.rt(&["create", "-b", b.path(), id]);
    clean_failure(&env, &out, needles);
    // Nothing may have appeared next to --root either (e.g. for "..").
    let parent_entries: Vec<_> = fs::read_dir(&env.dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("bundle") && !n.starts_with("out") && !n.starts_with("err"))
        .filter(|n| n != "state")
        .collect();
    assert!(parent_entries.is_empty(), "created: {parent_entries:?}");
}

#[test]
fn invalid_id_empty() {
    invalid_id("idempty", "", &["id", "ID"]);
}

#[test]
fn invalid_id_slash() {
    invalid_id("idslash", "/", &["\"/\"", "'/'", " /", "id"]);
}

#[test]
fn invalid_id_dotdot() {
    invalid_id("iddotdot", "..", &[".."]);
}

#[test]
fn invalid_id_with_path_separator() {
    invalid_id("idsep", "a/b", &["a/b"]);
}

#[test]
fn duplicate_id() {
    let env = TestEnv::new("dupid");
    let b = env.bundle(&["true"]);
    let id = env.id("dup");
    env.rt(&["create", "-b", b.path(), &id])
        .expect_ok("first create");
    let pid = env.state(&id)["pid"].clone();
    let b2 = env.bundle(&["true"]);
    let out = env.rt(&["create", "-b", b2.path(), &id]);
    assert!(!out.ok(), "duplicate create succeeded");
    one_line_naming(&env, &out, &[&id]);
    // The first container is untouched by the failed attempt.
    let st = env.state(&id);
    assert_eq!(st["status"], "created", "{st}");
    assert_eq!(st["pid"], pid);
    assert_eq!(st["bundle"], json!(b.path()));
    env.rt(&["delete", "-f", &id]).expect_ok("delete");
    env.assert_nothing_left();
}

fn unknown_id(op: &str) {
    let env = TestEnv::new(&format!("unknown{op}"));
    let id = env.id("nosuch");
    let out = env.rt(&[op, &id]);
    clean_failure(&env, &out, &[&id]);
}

#[test]
fn unknown_id_state() {
    unknown_id("state");
}

#[test]
fn unknown_id_start() {
    unknown_id("start");
}

#[test]
fn unknown_id_kill() {
    unknown_id("kill");
}

#[test]
fn unknown_id_delete() {
    unknown_id("delete");
}

#[test]
fn bad_signal() {
    let env = TestEnv::new("badsig");
    let b = env.bundle(&["true"]);
    let id = env.id("sig");
    env.rt(&["create", "-b", b.path(), &id]).expect_ok("create");
    let out = env.rt(&["kill", &id, "SIGNOTREAL"]);
    assert!(!out.ok(), "kill with a bad signal succeeded");
    one_line_naming(&env, &out, &["NOTREAL"]);
    assert_eq!(env.state(&id)["status"], "created");
    env.rt(&["delete", "-f", &id]).expect_ok("delete");
    env.assert_nothing_left();
}

/// A detached container running `args`, waited until `status`.
fn container_in(env: &TestEnv, args: &[&str], status: &str) -> String {
    let b = env.bundle(args);
    let id = env.id("ws");
    env.rt(&["run", "-d", "-b", b.path(), &id])
        .expect_ok("run -d");
    env.wait_for(status, || env.state(&id)["status"] == status);
    id
}

/// `op` on a container in the wrong state fails with one line naming it
/// and leaves the container as it was.
fn wrong_state(name: &str, args: &[&str], status: &str, op: &[&str], needles: &[&str]) {
    let env = TestEnv::new(name);
    let id = container_in(&env, args, status);
    let mut argv: Vec<&str> = op.to_vec();
    argv.push(&id);
    let out = env.rt(&argv);
    assert!(!out.ok(), "{op:?} on a {status} container succeeded");
    let mut names: Vec<&str> = needles.to_vec();
    names.push(&id);
    one_line_naming(&env, &out, &names);
    assert_eq!(env.state(&id)["status"], status, "state changed");
    env.rt(&["delete", "-f", &id]).expect_ok("delete -f");
    env.assert_nothing_left();
}

#[test]
fn start_running_container() {
    wrong_state(
        "startrunning",
        &["sleep", "1000"],
        "running",
        &["start"],
        &["running"],
    );
}

#[test]
fn start_stopped_container() {
    wrong_state(
        "startstopped",
        &["true"],
        "stopped",
        &["start"],
        &["stopped"],
    );
}

#[test]
fn delete_running_without_force() {
    wrong_state(
        "delrunning",
        &["sleep", "1000"],
        "running",
        &["delete"],
        &["running"],
    );
}

#[test]
fn kill_stopped_container() {
    wrong_state(
        "killstopped",
        &["true"],
        "stopped",
        &["kill"],
        &["stopped", "not running"],
    );
}
