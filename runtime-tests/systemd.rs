//! `--systemd-cgroup` on a host without systemd (the dev and CI machines):
//! one line, nothing made. The driver itself is tested in a systemd VM by
//! runtime-tests/vm-systemd.sh.

mod common;

use common::*;
use serde_json::json;
use std::path::Path;

/// Runs `run` with --systemd-cgroup and cgroupsPath `path`; expects one
/// stderr line containing `needle` and nothing left, no scope either.
fn refused(tag: &str, path: Option<&str>, needle: &str) {
    refused_with(tag, path, None, needle)
}

/// As `refused`, with one annotation (key, value) added to the config.
fn refused_with(tag: &str, path: Option<&str>, annotation: Option<(&str, &str)>, needle: &str) {
    let env = TestEnv::new(tag);
    if Path::new("/run/systemd/system").is_dir() {
        println!("skipped: this host runs systemd (runtime-tests/vm-systemd.sh tests the driver)");
        return;
    }
    let id = env.id(tag);
    let mut b = env.bundle(&["true"]);
    if let Some(p) = path {
        b.config["linux"]["cgroupsPath"] = json!(p);
    }
    if let Some((k, v)) = annotation {
        b.config["annotations"] = json!({ k: v });
    }
    b.save();
    let out = env.rt(&["--systemd-cgroup", "run", "--bundle", b.path(), &id]);
    assert!(
        !out.ok(),
        "{id}: --systemd-cgroup run succeeded without systemd"
    );
    let err = out.stderr.trim();
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(err.contains(needle), "{err:?} does not name {needle:?}");
    for root in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
        let scope = Path::new(root).join(format!("system.slice/rcontain-{id}.scope"));
        assert!(!scope.exists(), "{} left", scope.display());
    }
    env.assert_nothing_left();
}

#[test]
fn without_systemd_fails_cleanly() {
    refused("sdnone", None, "systemd is not running on this host");
}

#[test]
fn with_a_slice_prefix_name_cgroups_path_too() {
    refused(
        "sdpath",
        Some("system.slice:test:x"),
        "systemd is not running",
    );
}

#[test]
fn a_cgroups_path_not_in_slice_prefix_name_form_names_the_field() {
    refused("sdbad", Some("/a/b"), "linux.cgroupsPath");
    refused("sdslice", Some("a--b.slice:p:n"), "linux.cgroupsPath");
}

#[test]
fn an_unparseable_systemd_property_annotation_is_named() {
    // checked before anything else, so this host without systemd says it too
    refused_with(
        "sdannot",
        None,
        Some(("org.systemd.property.CollectMode", "inactive")),
        "annotation org.systemd.property.CollectMode: value \"inactive\"",
    );
    refused_with(
        "sdannot2",
        None,
        Some(("org.systemd.property.X-y", "1")),
        "annotation org.systemd.property.X-y",
    );
}
