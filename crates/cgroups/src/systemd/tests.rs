use super::*;
use oci_spec::runtime::LinuxResources;

fn parse(p: &str, id: &str) -> Result<(Unit, PathBuf)> {
    Unit::parse(Some(Path::new(p)), id, false)
}

#[test]
fn cgroups_path_forms() {
    let (u, p) = parse("system.slice:runc:test", "x").unwrap();
    assert_eq!(u.name, "runc-test.scope");
    assert_eq!(u.slice, "system.slice");
    assert_eq!(p, Path::new("/system.slice/runc-test.scope"));
    let (u, p) = parse("machine-pod-a.slice:crio:abc", "x").unwrap();
    assert_eq!(u.slice, "machine-pod-a.slice");
    assert_eq!(
        p,
        Path::new("/machine.slice/machine-pod.slice/machine-pod-a.slice/crio-abc.scope")
    );
    // empty slice: system.slice; "-.slice": the root
    let (_, p) = parse(":p:n", "x").unwrap();
    assert_eq!(p, Path::new("/system.slice/p-n.scope"));
    let (_, p) = parse("-.slice:p:n", "x").unwrap();
    assert_eq!(p, Path::new("/p-n.scope"));
    // absent or empty: :rcontain:<id>
    for given in [None, Some(Path::new(""))] {
        let (u, p) = Unit::parse(given, "c1", false).unwrap();
        assert_eq!(u.name, "rcontain-c1.scope");
        assert_eq!(p, Path::new("/system.slice/rcontain-c1.scope"));
    }
}

#[test]
fn bad_cgroups_paths_name_the_field() {
    for bad in [
        "/a/b",
        "a:b",
        "a:b:c:d",
        "system:p:n",
        "a--b.slice:p:n",
        "-a.slice:p:n",
        ".slice:p:n",
        "a/b.slice:p:n",
        "system.slice:p:",
        "system.slice:p:n.slice",
        "system.slice:p:a b",
        "system.slice:p/q:n",
    ] {
        let e = parse(bad, "x").unwrap_err().to_string();
        assert!(e.starts_with("linux.cgroupsPath"), "{bad}: {e}");
        assert!(!e.contains('\n'), "{bad}: {e}");
    }
    let long = format!("system.slice:p:{}", "n".repeat(260));
    assert!(parse(&long, "x").is_err());
}

#[test]
fn expands_nested_slices() {
    assert_eq!(
        expand_slice("a-b-c.slice").unwrap(),
        Path::new("/a.slice/a-b.slice/a-b-c.slice")
    );
    assert_eq!(expand_slice("-.slice").unwrap(), Path::new("/"));
    assert!(expand_slice("a-.slice").is_err());
    assert!(expand_slice("a.scope").is_err());
}

#[test]
fn cpu_bitmask_is_lowest_byte_first() {
    assert_eq!(range_to_bits("0").unwrap(), vec![1]);
    assert_eq!(range_to_bits("0-3,8").unwrap(), vec![0x0f, 0x01]);
    assert_eq!(range_to_bits("9").unwrap(), vec![0, 2]);
    assert!(range_to_bits("3-1").is_err());
}

fn res(json: &str) -> LinuxResources {
    serde_json::from_str(json).unwrap()
}

fn get(p: &[Property], key: &str) -> Option<Value> {
    p.iter().find(|(k, _)| *k == key).map(|(_, v)| v.clone())
}

#[test]
fn v2_properties_use_runcs_conversions() {
    let r = res(
        r#"{"memory":{"limit":104857600,"reservation":52428800,"swap":209715200},
        "cpu":{"shares":1024,"quota":12345,"period":100000,"cpus":"0-1","mems":"0"},
        "pids":{"limit":42},"blockIO":{"weight":500}}"#,
    );
    let p = resource_properties(&r, Mode::V2, 252).unwrap();
    assert_eq!(get(&p, "MemoryMax"), Some(Value::U64(104857600)));
    assert_eq!(get(&p, "MemoryLow"), Some(Value::U64(52428800)));
    assert_eq!(get(&p, "MemorySwapMax"), Some(Value::U64(104857600)));
    assert_eq!(get(&p, "CPUWeight"), Some(Value::U64(39)));
    assert_eq!(get(&p, "CPUQuotaPeriodUSec"), Some(Value::U64(100000)));
    // 123450 us per second, rounded up to whole percents
    assert_eq!(get(&p, "CPUQuotaPerSecUSec"), Some(Value::U64(130000)));
    assert_eq!(get(&p, "AllowedCPUs"), Some(Value::Bytes(vec![3])));
    assert_eq!(get(&p, "AllowedMemoryNodes"), Some(Value::Bytes(vec![1])));
    assert_eq!(get(&p, "TasksMax"), Some(Value::U64(42)));
    // v1 names are not used on v2, nor IOWeight (runc writes io.weight itself)
    for k in ["MemoryLimit", "CPUShares", "BlockIOWeight", "IOWeight"] {
        assert_eq!(get(&p, k), None, "{k}");
    }
    // old systemd: no period, no cpuset properties
    let p = resource_properties(&r, Mode::V2, 240).unwrap();
    assert_eq!(get(&p, "CPUQuotaPeriodUSec"), None);
    assert_eq!(get(&p, "AllowedCPUs"), None);
}

#[test]
fn unlimited_values_are_infinity() {
    let r = res(r#"{"memory":{"limit":-1},"cpu":{"quota":-1},"pids":{"limit":-1}}"#);
    let p = resource_properties(&r, Mode::V2, 252).unwrap();
    assert_eq!(get(&p, "MemoryMax"), Some(Value::U64(u64::MAX)));
    assert_eq!(get(&p, "MemorySwapMax"), Some(Value::U64(u64::MAX)));
    assert_eq!(get(&p, "CPUQuotaPerSecUSec"), Some(Value::U64(u64::MAX)));
    assert_eq!(get(&p, "TasksMax"), Some(Value::U64(u64::MAX)));
    assert!(resource_properties(&res("{}"), Mode::V2, 252)
        .unwrap()
        .is_empty());
}

#[test]
fn v1_properties() {
    let r = res(
        r#"{"memory":{"limit":1048576,"swap":2097152},"cpu":{"shares":512,"quota":50000},
        "blockIO":{"weight":300}}"#,
    );
    let p = resource_properties(&r, Mode::Hybrid, 252).unwrap();
    assert_eq!(get(&p, "MemoryLimit"), Some(Value::U64(1048576)));
    assert_eq!(get(&p, "CPUShares"), Some(Value::U64(512)));
    assert_eq!(get(&p, "CPUQuotaPerSecUSec"), Some(Value::U64(500000)));
    assert_eq!(get(&p, "BlockIOWeight"), Some(Value::U64(300)));
    assert_eq!(get(&p, "MemoryMax"), None);
    assert_eq!(get(&p, "MemorySwapMax"), None);
}

#[test]
fn start_properties_are_runcs() {
    let (u, _) = parse("system.slice:p:n", "c").unwrap();
    let p = start_properties(&u, "c", 42, Mode::V2);
    assert_eq!(get(&p, "Slice"), Some(Value::Str("system.slice".into())));
    assert_eq!(get(&p, "PIDs"), Some(Value::U32s(vec![42])));
    assert_eq!(get(&p, "Delegate"), Some(Value::Bool(true)));
    assert_eq!(get(&p, "DefaultDependencies"), Some(Value::Bool(false)));
    assert_eq!(get(&p, "IOAccounting"), Some(Value::Bool(true)));
    let p = start_properties(&u, "c", 42, Mode::V1);
    assert_eq!(get(&p, "BlockIOAccounting"), Some(Value::Bool(true)));
}

fn allow_list(props: &[Property]) -> Vec<String> {
    match &props.last().unwrap().1 {
        Value::DeviceAllow(a) => a.iter().map(|(p, m)| format!("{p} {m}")).collect(),
        v => panic!("{v:?}"),
    }
}

#[test]
fn device_rules_as_runc_lists_them() {
    use crate::devices::{effective_rules, node_rules};
    use oci_spec::runtime::{LinuxDeviceBuilder, LinuxDeviceCgroupBuilder, LinuxDeviceType};
    // docker's shape: deny all, then the defaults, then a node (sda, 8:0)
    let deny = LinuxDeviceCgroupBuilder::default()
        .allow(false)
        .access("rwm")
        .build()
        .unwrap();
    let mut rules = effective_rules(Some(&[deny]), None).unwrap();
    let sda = LinuxDeviceBuilder::default()
        .path("/dev/sda")
        .typ(LinuxDeviceType::B)
        .major(8)
        .minor(0)
        .build()
        .unwrap();
    rules.extend(node_rules(&[sda]));
    let never = || -> Result<String> { panic!("/proc/devices read on systemd >= 240") };
    let p = device_properties(&rules, 252, never, |_| true).unwrap();
    assert_eq!(p[0], ("DevicePolicy", Value::Str("strict".into())));
    assert_eq!(p[1], ("DeviceAllow", Value::DeviceAllow(vec![])));
    // wildcards first, then (major, minor), block before char
    assert_eq!(
        allow_list(&p),
        [
            "block-* m",
            "char-* m",
            "/dev/char/1:3 rwm",
            "/dev/char/1:5 rwm",
            "/dev/char/1:7 rwm",
            "/dev/char/1:8 rwm",
            "/dev/char/1:9 rwm",
            "/dev/char/5:0 rwm",
            "/dev/char/5:2 rwm",
            "/dev/block/8:0 rwm",
            "/dev/char/10:200 rwm",
            "char-136 rwm",
        ]
    );
    // before 240: a group name from /proc/devices, and paths that exist
    let proc =
        || Ok("Character devices:\n  1 mem\n136 pts\n\nBlock devices:\n  8 sd\n".to_string());
    let p = device_properties(&rules, 239, proc, |p| p != "/dev/block/8:0").unwrap();
    let l = allow_list(&p);
    assert!(l.contains(&"char-pts rwm".to_string()), "{l:?}");
    assert!(!l.iter().any(|e| e.starts_with("/dev/block/8:0")), "{l:?}");
}

#[test]
fn device_rules_systemd_cannot_list() {
    use crate::devices::effective_rules;
    use oci_spec::runtime::{LinuxDeviceCgroupBuilder, LinuxDeviceType};
    let rule = |allow: bool, typ, major: Option<i64>, minor: Option<i64>| {
        let mut b = LinuxDeviceCgroupBuilder::default()
            .allow(allow)
            .access("rwm")
            .typ(typ);
        if let Some(m) = major {
            b = b.major(m);
        }
        if let Some(m) = minor {
            b = b.minor(m);
        }
        b.build().unwrap()
    };
    let never = || -> Result<String> { unreachable!() };
    // privileged (allow all): systemd's default policy, no list
    let rules = effective_rules(Some(&[rule(true, LinuxDeviceType::A, None, None)]), None).unwrap();
    let p = device_properties(&rules, 252, never, |_| true).unwrap();
    assert_eq!(
        p,
        [
            ("DevicePolicy", Value::Str("auto".into())),
            ("DeviceAllow", Value::DeviceAllow(vec![]))
        ]
    );
    // a deny-list: systemd denies all, rcontain's own filter decides
    // (a deny of a default device would be undone by the defaults)
    let spec = [
        rule(true, LinuxDeviceType::A, None, None),
        rule(false, LinuxDeviceType::C, Some(4), Some(1)),
    ];
    let p = device_properties(
        &effective_rules(Some(&spec), None).unwrap(),
        252,
        never,
        |_| true,
    )
    .unwrap();
    assert_eq!(p.len(), 2);
    assert_eq!(p[0].1, Value::Str("strict".into()));
    // "*:n" has no spelling: left out
    let spec = [
        rule(false, LinuxDeviceType::A, None, None),
        rule(true, LinuxDeviceType::C, None, Some(7)),
    ];
    let p = device_properties(
        &effective_rules(Some(&spec), None).unwrap(),
        252,
        never,
        |_| true,
    )
    .unwrap();
    assert!(!allow_list(&p)
        .iter()
        .any(|e| e.contains(":7 ") && !e.contains("1:7")));
    // taking access from a wider allow rule: refused, naming the field
    let spec = [
        rule(false, LinuxDeviceType::A, None, None),
        rule(true, LinuxDeviceType::C, Some(4), None),
        rule(false, LinuxDeviceType::C, Some(4), Some(1)),
    ];
    let e = device_properties(
        &effective_rules(Some(&spec), None).unwrap(),
        252,
        never,
        |_| true,
    )
    .unwrap_err();
    assert!(e.to_string().contains("linux.resources.devices"), "{e}");
}

#[test]
fn annotation_values_in_gvariant_text() {
    use annotations::parse;
    assert_eq!(parse("uint64 123456789").unwrap(), Value::U64(123456789));
    assert_eq!(
        parse("'inactive-or-failed'").unwrap(),
        Value::Str("inactive-or-failed".into())
    );
    assert_eq!(parse(r#""a\"b""#).unwrap(), Value::Str("a\"b".into()));
    assert_eq!(parse("true").unwrap(), Value::Bool(true));
    assert_eq!(parse("42").unwrap(), Value::I32(42));
    assert_eq!(parse("1.5").unwrap(), Value::Double(1.5));
    assert_eq!(parse("@t 7").unwrap(), Value::U64(7));
    assert_eq!(parse("uint32 0x10").unwrap(), Value::U32(16));
    assert_eq!(
        parse("['a', 'b']").unwrap(),
        Value::Array(
            "s".into(),
            vec![Value::Str("a".into()), Value::Str("b".into())]
        )
    );
    assert_eq!(parse("@as []").unwrap(), Value::Array("s".into(), vec![]));
    assert_eq!(
        parse("[uint64 1, 2]").unwrap(),
        Value::Array("t".into(), vec![Value::U64(1), Value::U64(2)])
    );
    for bad in [
        "inactive",
        "'open",
        "uint64 -1",
        "byte 256",
        "[]",
        "1 2",
        "(1, 'a')",
        "{'a': 1}",
        "[1, 'a']",
        "",
        "uint64 'x'",
    ] {
        assert!(parse(bad).is_err(), "{bad:?} parsed");
    }
}

#[test]
fn annotations_become_properties() {
    let a = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (format!("{}{k}", annotations::PREFIX), v.to_string()))
            .chain([("other.key".to_string(), "ignored".to_string())])
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let p = annotation_properties(&a(&[
        ("TimeoutStopUSec", "uint64 123456789"),
        ("CollectMode", "'inactive-or-failed'"),
        ("RuntimeMaxSec", "7"),
        ("TimeoutSec", "1.5"),
    ]))
    .unwrap();
    assert_eq!(
        p,
        [
            (
                "CollectMode".to_string(),
                Value::Str("inactive-or-failed".into())
            ),
            // "…Sec" after a lower-case letter: "…USec" in microseconds
            ("RuntimeMaxUSec".to_string(), Value::U64(7_000_000)),
            ("TimeoutUSec".to_string(), Value::U64(1_500_000)),
            ("TimeoutStopUSec".to_string(), Value::U64(123456789)),
        ]
    );
    for (k, v, says) in [
        ("CollectMode", "inactive", "value \"inactive\""),
        ("Bad-Name", "1", "3 or more ASCII letters"),
        ("Ab", "1", "3 or more ASCII letters"),
        ("RuntimeMaxSec", "'x'", "not a number"),
        ("RuntimeMaxSec", "-1", "negative"),
    ] {
        let e = annotation_properties(&a(&[(k, v)]))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!("annotation org.systemd.property.{k}")),
            "{e}"
        );
        assert!(e.contains(says), "{e}");
    }
}

#[test]
fn user_units_default_to_user_slice() {
    let (u, p) = Unit::parse(None, "c1", true).unwrap();
    assert_eq!(
        (u.name.as_str(), u.slice.as_str(), u.user),
        ("rcontain-c1.scope", "user.slice", true)
    );
    // relative to the user manager's own cgroup
    assert_eq!(p, Path::new("/user.slice/rcontain-c1.scope"));
    let (u, _) = Unit::parse(Some(Path::new("app.slice:p:n")), "c1", true).unwrap();
    assert_eq!(u.slice, "app.slice");
    // saved as "user": true, and absent for the system's
    let v = serde_json::to_value(&u).unwrap();
    assert_eq!(v["user"], true);
    let (sys, _) = Unit::parse(None, "c1", false).unwrap();
    assert!(serde_json::to_value(&sys).unwrap().get("user").is_none());
}

#[test]
fn user_bus_as_runc_finds_it() {
    let dir = tempfile::tempdir().unwrap();
    let os = |s: &str| Some(std::ffi::OsString::from(s));
    let rd = os(dir.path().to_str().unwrap());
    // the environment's address wins
    assert_eq!(
        user_bus_address(os("unix:path=/x/bus"), rd.clone()).unwrap(),
        "unix:path=/x/bus"
    );
    // no bus: one line naming both places
    for (env, run) in [(None, rd.clone()), (os(""), None), (None, None)] {
        let e = user_bus_address(env, run).unwrap_err().to_string();
        assert!(
            e.starts_with("--systemd-cgroup: rootless, and no user D-Bus"),
            "{e}"
        );
        assert!(
            e.contains("DBUS_SESSION_BUS_ADDRESS") && e.contains("$XDG_RUNTIME_DIR/bus"),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
    }
    // a socket nobody listens on any more
    let bus = dir.path().join("bus");
    drop(std::os::unix::net::UnixListener::bind(&bus).unwrap());
    let addr = user_bus_address(None, rd.clone()).unwrap();
    assert_eq!(addr, format!("unix:path={}", bus.display()));
    let e = check_user_bus(None, rd.clone()).unwrap_err().to_string();
    assert!(
        e.contains("does not answer") && e.contains(bus.to_str().unwrap()),
        "{e}"
    );
    assert!(!e.contains('\n'), "{e}");
    // one that listens
    std::fs::remove_file(&bus).unwrap();
    let _l = std::os::unix::net::UnixListener::bind(&bus).unwrap();
    check_user_bus(None, rd).unwrap();
    // other address forms are left to the connection itself
    assert_eq!(bus_socket("unix:abstract=/tmp/x,guid=1"), None);
    assert_eq!(
        bus_socket("unix:guid=1,path=/b;tcp:host=x"),
        Some(PathBuf::from("/b"))
    );
}
