use super::*;
use oci_spec::runtime::LinuxResources;

fn parse(p: &str, id: &str) -> Result<(Unit, PathBuf)> {
    Unit::parse(Some(Path::new(p)), id)
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
        let (u, p) = Unit::parse(given, "c1").unwrap();
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
