//! `rcontain check`: its host report agrees with the tests' own probes
//! (runtime-tests/common/host.rs), and for each bundle it predicts create,
//! for each image `run IMAGE`: a `fails` finding exactly when that fails
//! here, naming the field, and exit status 0 exactly when nothing fails or
//! differs from a pure cgroup-v2 host.

mod common;
#[allow(dead_code)] // shared with image.rs, which uses the rest
#[path = "image/util.rs"]
mod util;

use common::host;
use common::*;
use rcontain::cgroups::Mode;
use serde_json::{json, Value};

/// `check --format json [--bundle DIR]`: its exit code and JSON.
fn check(env: &TestEnv, bundle: Option<&Bundle>) -> (i32, Value) {
    let mut args = vec!["check", "--format", "json"];
    if let Some(b) = bundle {
        args.extend(["--bundle", b.path()]);
    }
    check_args(env, &args)
}

fn check_args(env: &TestEnv, args: &[&str]) -> (i32, Value) {
    let out = env.rt(args);
    let v = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("check output is not JSON ({e}): {out:?}"));
    (out.code(), v)
}

fn runtime_is_rcontain(env: &TestEnv) -> bool {
    if !env.rt.is_rcontain() {
        eprintln!(
            "check is rcontain's own command: nothing to test with {}",
            env.rt.name()
        );
    }
    env.rt.is_rcontain()
}

#[test]
fn host_report_agrees_with_the_tests_probes() {
    let env = TestEnv::new("checkhost");
    if !runtime_is_rcontain(&env) {
        return;
    }
    let (code, v) = check(&env, None);
    assert_eq!(code, 0, "{v}");
    let h = &v["host"];
    let mode = match host::cgroup_mode() {
        Mode::V1 => "v1",
        Mode::Hybrid => "hybrid",
        Mode::V2 => "v2",
    };
    assert_eq!(h["cgroup"]["mode"], mode);
    let files = h["cgroup"]["files"].as_object().unwrap();
    assert!(!files.is_empty());
    for (f, has) in files {
        assert_eq!(has.as_bool(), Some(host::cgroup_has(f)), "{f}");
    }
    for ns in ["cgroup", "time", "user", "net"] {
        assert_eq!(
            h["namespaces"][ns].as_bool(),
            Some(host::has_namespace(ns)),
            "{ns}"
        );
    }
    assert_eq!(
        h["cloneIntoCgroup"]["available"].as_bool(),
        Some(host::has_cgroup2() && host::has_clone_into_cgroup())
    );
    assert_eq!(
        h["overlayLowerdirPlus"]["available"].as_bool(),
        Some(host::has_overlay_lowerdir_plus())
    );
    assert_eq!(
        h["userNamespaces"]["available"].as_bool(),
        Some(host::has_user_namespaces())
    );
    let actions = h["seccomp"]["actions"].as_array().unwrap();
    assert_eq!(
        actions.iter().any(|a| a == "user_notif"),
        host::has_seccomp_action("user_notif")
    );
    // the probe cgroups are gone again
    assert!(cgroups_named("rcontain-check-").is_empty());
    env.assert_nothing_left();
}

/// Bundles covering what a host may lack, each with whether this host is
/// expected to run it (by the tests' own probes); check must predict
/// create's outcome and name the field when it fails.
#[test]
fn check_predicts_create() {
    let env = TestEnv::new("checkpredict");
    if !runtime_is_rcontain(&env) {
        return;
    }
    let mode = host::cgroup_mode();
    let v2 = mode == Mode::V2;
    let (_, swap) = host::swap_file();
    let burst = if v2 {
        "cpu.max.burst"
    } else {
        "cpu.cfs_burst_us"
    };
    type Edit = Box<dyn Fn(&mut Value)>;
    // (name, edit, runs here, field a failure must name)
    let cases: Vec<(&str, Edit, bool, &str)> = vec![
        ("default", Box::new(|_| {}), true, ""),
        (
            "blkioweight",
            Box::new(|c| c["linux"]["resources"] = json!({"blockIO": {"weight": 300}})),
            !host::blkio_weight_files().is_empty(),
            "linux.resources.blockIO.weight",
        ),
        (
            "swappiness",
            Box::new(|c| c["linux"]["resources"] = json!({"memory": {"swappiness": 500}})),
            false,
            "linux.resources.memory",
        ),
        (
            "swap",
            Box::new(|c| {
                c["linux"]["resources"] = json!({"memory": {"limit": 67108864, "swap": 134217728}})
            }),
            swap,
            "linux.resources.memory.swap",
        ),
        (
            "burst",
            Box::new(|c| {
                c["linux"]["resources"] =
                    json!({"cpu": {"quota": 50000, "period": 100000, "burst": 10000}})
            }),
            host::cgroup_has(burst),
            "linux.resources.cpu.burst",
        ),
        (
            "unified",
            Box::new(|c| c["linux"]["resources"] = json!({"unified": {"pids.max": "10"}})),
            v2,
            "linux.resources.unified",
        ),
        (
            "timens",
            Box::new(|c| add_namespace(c, "time")),
            host::has_namespace("time"),
            "linux.namespaces",
        ),
        (
            "seccomplog",
            Box::new(|c| {
                c["linux"]["seccomp"] = json!({
                    "defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_LOG"}]
                })
            }),
            host::has_seccomp_action("log"),
            "linux.seccomp",
        ),
        (
            "idmap",
            Box::new(|c| {
                c["mounts"].as_array_mut().unwrap().push(json!({
                    "destination": "/mnt", "type": "bind", "source": "/tmp",
                    "options": ["rbind", "idmap"]
                }))
            }),
            false,
            "mounts[",
        ),
    ];
    for (name, edit, runs, field) in cases {
        let mut b = env.bundle(&["true"]);
        edit(&mut b.config);
        b.save();
        let (code, v) = check(&env, Some(&b));
        let findings = v["findings"].as_array().unwrap();
        let failing: Vec<&Value> = findings.iter().filter(|f| f["kind"] == "fails").collect();
        let differs = findings.iter().any(|f| f["kind"] == "differs");
        assert_eq!(failing.is_empty(), runs, "{name}: check says {findings:#?}");
        if !runs {
            assert!(
                failing
                    .iter()
                    .any(|f| f["field"].as_str().unwrap().starts_with(field)),
                "{name}: no failure names {field}: {findings:#?}"
            );
        }
        // exit 0 only when it runs as on the reference
        assert_eq!(code == 0, runs && !differs, "{name}: exit {code}: {v}");
        assert_eq!(v["asOnReference"], json!(code == 0));

        // ... and create agrees
        let id = env.id(name);
        let out = env.rt(&["create", "-b", b.path(), &id]);
        assert_eq!(
            out.ok(),
            runs,
            "{name}: create disagrees with check: {out:?}"
        );
        if out.ok() {
            env.rt(&["delete", "-f", &id]).expect_ok("delete");
        }
        env.assert_nothing_left();
    }
    // a bundle check cannot even read
    let b = env.bundle(&["true"]);
    std::fs::write(b.dir.join("config.json"), "{").unwrap();
    let (code, v) = check(&env, Some(&b));
    assert_eq!(code, 1);
    assert_eq!(v["findings"][0]["field"], "config.json", "{v}");
}

/// Images covering what `run IMAGE` may meet, each with whether this host
/// is expected to run it: check IMAGE must predict `run IMAGE` and name
/// the field when it fails, reading no layer (nothing goes to a store).
#[test]
fn check_predicts_run_image() {
    use util::{write_layout_cmd, RawTar, TestLayer};
    let env = TestEnv::new("checkimage");
    if !runtime_is_rcontain(&env) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let busybox = std::fs::read("/bin/busybox").expect("busybox-static at /bin/busybox");
    let base = || {
        TestLayer::plain(
            RawTar::default()
                .dir("bin")
                .entry("bin/busybox", b'0', "", 0o755, &busybox)
                .symlink("bin/sh", "busybox")
                .finish(),
        )
    };
    let cmd = ["sh", "-c", "exit 0"];
    let one = t.path().join("one");
    write_layout_cmd(&one, vec![base()], &cmd);
    // one more layer than overlayfs takes without lowerdir+
    let many = t.path().join("many");
    let layers = std::iter::once(base())
        .chain(
            (2..=16)
                .map(|i| TestLayer::plain(RawTar::default().file(&format!("l{i}"), "x").finish())),
        )
        .collect();
    write_layout_cmd(&many, layers, &cmd);
    let nocmd = t.path().join("nocmd");
    write_layout_cmd(&nocmd, vec![base()], &[]);
    let lowerdir_plus = host::has_overlay_lowerdir_plus();
    if lowerdir_plus {
        eprintln!("skipped: host lacks a kernel before 6.8 (overlayfs without lowerdir+): the 16-layer image runs here (the host matrix sees it fail on Linux 6.1)");
    }
    let missing = t.path().join("missing");
    // (name, image, runs here, field a failure must name)
    let cases = [
        ("one", one, true, ""),
        ("many", many, lowerdir_plus, "rootfs.diff_ids"),
        ("nocmd", nocmd, false, "config"),
        ("missing", missing, false, "image"),
    ];
    let store = t.path().join("store");
    for (name, dir, runs, field) in cases {
        let image = format!("{}:latest", dir.display());
        let (code, v) = check_args(&env, &["check", "--format", "json", &image]);
        let findings = v["findings"].as_array().unwrap();
        let failing: Vec<&Value> = findings.iter().filter(|f| f["kind"] == "fails").collect();
        let differs = findings.iter().any(|f| f["kind"] == "differs");
        assert_eq!(failing.is_empty(), runs, "{name}: check says {findings:#?}");
        if !runs {
            assert!(
                failing.iter().any(|f| f["field"] == field),
                "{name}: no failure names {field}: {findings:#?}"
            );
        }
        assert_eq!(code == 0, runs && !differs, "{name}: exit {code}: {v}");
        // check read no layer: the store is not even made
        assert!(!store.exists(), "{name}: check made a store");

        let id = env.id(name);
        let out = env.rt(&[
            "--store",
            store.to_str().unwrap(),
            "run",
            "--image",
            &image,
            &id,
        ]);
        assert_eq!(
            out.ok(),
            runs,
            "{name}: run IMAGE disagrees with check: {out:?}"
        );
        std::fs::remove_dir_all(&store).ok();
        env.assert_nothing_left();
    }
}
