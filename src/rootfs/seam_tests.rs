//! The rootfs phase through the kernel seam: which mount calls a config
//! leads to, and in which order, recorded on a temp dir without root.

use super::*;
use crate::kernel::{Call, Recorder};
use crate::testutil::TempDir;
use std::path::PathBuf;

/// A temp dir with rootfs/ (holding `dirs`) and a bind source src/.
struct Bundle {
    dir: TempDir,
}

impl Bundle {
    fn new(tag: &str, dirs: &[&str]) -> Bundle {
        let dir = TempDir::new(tag);
        for d in dirs {
            std::fs::create_dir_all(dir.path().join("rootfs").join(d)).unwrap();
        }
        std::fs::create_dir_all(dir.path().join("rootfs")).unwrap();
        std::fs::create_dir_all(dir.path().join("src")).unwrap();
        Bundle { dir }
    }

    fn path(&self, p: &str) -> PathBuf {
        // What the fds' links say: the temp dir without symlinks.
        std::fs::canonicalize(self.dir.path()).unwrap().join(p)
    }

    fn spec(&self, json: serde_json::Value) -> Spec {
        let mut v = serde_json::json!({"ociVersion": "1.0.2", "root": {"path": "rootfs"}});
        v.as_object_mut()
            .unwrap()
            .extend(json.as_object().unwrap().clone());
        serde_json::from_value(v).unwrap()
    }

    /// `prepare` with a Recorder; the mount calls it made (device nodes,
    /// which rootfs::dev's tests cover, left out).
    fn prepare(&self, spec: &Spec, mount_ns: MountNs) -> Result<Vec<Call>, String> {
        self.prepare_with(spec, mount_ns, &CgroupView::default())
    }

    fn prepare_with(
        &self,
        spec: &Spec,
        mount_ns: MountNs,
        cg: &CgroupView,
    ) -> Result<Vec<Call>, String> {
        let proc = crate::rootfs::safepath::host_proc().unwrap();
        let setup = Setup {
            spec,
            rootfs: &self.path("rootfs"),
            bundle: &self.path(""),
            cgroups: cg,
            nodes: dev::Nodes::Made,
            mount_ns,
            image: None,
            proc: proc.as_fd(),
        };
        let k = Recorder::default();
        prepare(&k, &setup).map_err(|e| format!("{e:#}"))?;
        Ok(k.calls()
            .into_iter()
            .filter(|c| !matches!(c, Call::Mknod { .. } | Call::Chown { .. }))
            .collect())
    }
}

const RDONLY: u64 = libc::MOUNT_ATTR_RDONLY;
/// What a bind remount clears that it does not set (see bind_remount_attrs).
const OTHERS: u64 = libc::MOUNT_ATTR_NOSUID
    | libc::MOUNT_ATTR_NODEV
    | libc::MOUNT_ATTR_NOEXEC
    | libc::MOUNT_ATTR_NODIRATIME;

fn set_root(flags: MsFlags) -> Call {
    Call::Mount {
        source: None,
        target: "/".into(),
        fstype: None,
        flags,
        data: None,
    }
}

fn open_tree(source: PathBuf, recursive: bool) -> Call {
    Call::OpenTree { source, recursive }
}

fn attach(mount: PathBuf, target: PathBuf) -> Call {
    Call::Attach { mount, target }
}

#[test]
fn bind_with_readonly_and_propagation() {
    let b = Bundle::new("seam-bind", &[]);
    let spec = b.spec(serde_json::json!({"mounts": [{
        "destination": "/data", "type": "bind", "source": "src",
        "options": ["rbind", "ro", "rprivate"]
    }]}));
    let (rootfs, src) = (b.path("rootfs"), b.path("src"));
    assert_eq!(
        b.prepare(&spec, MountNs::Own).unwrap(),
        [
            // The host's events kept out before anything is mounted.
            set_root(MsFlags::MS_SLAVE | MsFlags::MS_REC),
            open_tree(rootfs.clone(), true),
            attach(rootfs.clone(), rootfs.clone()),
            // The relative source is the bundle's; the mount made through
            // open_tree's fd is the one made read-only (only it: not
            // recursive) and then given its propagation.
            open_tree(src.clone(), true),
            attach(src.clone(), rootfs.join("data")),
            Call::SetAttr {
                path: src.clone(),
                recursive: false,
                set: RDONLY,
                clear: OTHERS,
            },
            Call::Propagation {
                path: src,
                propagation: MsFlags::MS_PRIVATE.bits(),
                recursive: true,
            },
        ]
    );
}

#[test]
fn rootfs_propagation_before_and_after_the_switch() {
    let b = Bundle::new("seam-prop", &[]);
    let rootfs = b.path("rootfs");
    let spec = |p: &str| b.spec(serde_json::json!({"linux": {"rootfsPropagation": p}}));

    // Shared: the rootfs's parent mount made private, for pivot_root.
    let calls = b.prepare(&spec("rshared"), MountNs::Own).unwrap();
    assert_eq!(calls[0], set_root(MsFlags::MS_SHARED | MsFlags::MS_REC));
    match &calls[1] {
        Call::Mount { target, flags, .. } => {
            assert!(rootfs.starts_with(target), "{target:?}");
            assert_eq!(*flags, MsFlags::MS_PRIVATE);
        }
        c => panic!("{c:?}"),
    }
    assert_eq!(calls[2], open_tree(rootfs.clone(), true));

    // Unbindable: private until the switch, or the rootfs could not be
    // bound; then the new / unbindable, and read-only when asked.
    let calls = b.prepare(&spec("unbindable"), MountNs::Own).unwrap();
    assert_eq!(calls[0], set_root(MsFlags::MS_PRIVATE | MsFlags::MS_REC));
    assert_eq!(calls[1], open_tree(rootfs, true));
    let mut spec = spec("unbindable");
    spec.set_root(Some(
        serde_json::from_value(serde_json::json!({"path": "rootfs", "readonly": true})).unwrap(),
    ));
    let k = Recorder::default();
    finalize(&k, &spec).unwrap();
    let calls = k.calls();
    assert_eq!(calls[0], set_root(MsFlags::MS_UNBINDABLE));
    match &calls[1] {
        Call::Mount { target, flags, .. } => {
            assert_eq!(target, Path::new("/"));
            let ro = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
            assert!(flags.contains(ro), "{flags:?}");
        }
        c => panic!("{c:?}"),
    }
    assert_eq!(calls.len(), 2);
}

#[test]
fn host_mount_namespace_is_left_alone() {
    let b = Bundle::new("seam-host", &[]);
    let rootfs = b.path("rootfs");
    let spec = b.spec(serde_json::json!({}));
    assert_eq!(
        b.prepare(&spec, MountNs::Host).unwrap(),
        [
            // No propagation change of the host's /: only the rootfs's own
            // bind is made private.
            open_tree(rootfs.clone(), true),
            attach(rootfs.clone(), rootfs.clone()),
            Call::Mount {
                source: None,
                target: rootfs,
                fstype: None,
                flags: MsFlags::MS_PRIVATE | MsFlags::MS_REC,
                data: None,
            },
        ]
    );
}

#[test]
fn readonly_and_masked_paths() {
    let b = Bundle::new("seam-paths", &["ro", "masked"]);
    let rootfs = b.path("rootfs");
    let spec = b.spec(serde_json::json!({"linux": {
        "readonlyPaths": ["/ro", "/absent"],
        "maskedPaths": ["/masked", "/absent"]
    }}));
    let calls = b.prepare(&spec, MountNs::Own).unwrap();
    assert_eq!(
        calls[3..7],
        [
            // Read-only: a recursive bind onto itself, made read-only with
            // everything below it. Absent paths are skipped.
            open_tree(rootfs.join("ro"), true),
            attach(rootfs.join("ro"), rootfs.join("ro")),
            Call::SetAttr {
                path: rootfs.join("ro"),
                recursive: true,
                set: RDONLY,
                clear: 0,
            },
            // A masked directory: an empty read-only tmpfs over it.
            Call::NewFs {
                fstype: "tmpfs".into(),
                options: vec!["source=tmpfs".into(), "ro".into()],
                attrs: RDONLY,
            },
        ]
    );
    assert!(
        matches!(&calls[7], Call::Attach { target, .. } if *target == rootfs.join("masked")),
        "{:?}",
        calls[7]
    );
    assert_eq!(calls.len(), 8);
}

#[test]
fn switch_root_pivot_move_or_chroot() {
    let b = Bundle::new("seam-switch", &[]);
    let rootfs = b.path("rootfs");
    let root = crate::sys::open(
        &rootfs,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY,
        nix::sys::stat::Mode::empty(),
    )
    .unwrap();
    let calls = |how| {
        let k = Recorder::default();
        switch_root(&k, &root, how).unwrap();
        k.calls()
    };
    let here = || PathBuf::from(".");
    let enter = Call::Chdir(rootfs.clone());
    let slash = Call::Chdir("/".into());
    assert_eq!(
        calls(Switch::Pivot),
        [
            enter.clone(),
            Call::PivotRoot,
            // The old root, stacked on the new one, is detached without
            // its unmount propagating to the host.
            Call::Mount {
                source: None,
                target: here(),
                fstype: None,
                flags: MsFlags::MS_SLAVE | MsFlags::MS_REC,
                data: None,
            },
            Call::Umount(here()),
            slash.clone(),
        ]
    );
    assert_eq!(
        calls(Switch::Move),
        [
            enter.clone(),
            Call::Mount {
                source: Some(here()),
                target: "/".into(),
                fstype: None,
                flags: MsFlags::MS_MOVE,
                data: None,
            },
            Call::Chroot(here()),
            slash.clone(),
        ]
    );
    assert_eq!(calls(Switch::Chroot), [enter, Call::Chroot(here()), slash]);
}

#[test]
fn cgroup_v1_hierarchies_bound_into_a_tmpfs() {
    let b = Bundle::new("seam-cgroup", &[]);
    let (memory, cpu) = (b.path("host/memory"), b.path("host/cpu,cpuacct"));
    for d in [&memory, &cpu] {
        std::fs::create_dir_all(d.join("ctr")).unwrap();
    }
    let cg = CgroupView {
        hierarchies: vec![
            (memory.clone(), "/ctr".into(), "memory".into()),
            (cpu.clone(), "/ctr".into(), "cpu,cpuacct".into()),
        ],
        pure_v2: false,
        own_ns: false,
    };
    let spec = b.spec(serde_json::json!({"mounts": [{
        "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
        "options": ["ro", "nosuid", "noexec", "nodev"]
    }]}));
    let calls = b.prepare_with(&spec, MountNs::Own, &cg).unwrap();
    let Call::NewFs {
        fstype, options, ..
    } = &calls[3]
    else {
        panic!("{:?}", calls[3]);
    };
    assert_eq!(fstype, "tmpfs");
    assert!(options.contains(&"mode=755".to_string()), "{options:?}");
    let tmpfs = match &calls[4] {
        Call::Attach { mount, target } => {
            assert_eq!(*target, b.path("rootfs/sys/fs/cgroup"));
            mount.clone()
        }
        c => panic!("{c:?}"),
    };
    // Each hierarchy: only the container's own cgroup, bound without what
    // is below it, read-only as asked and nosuid,nodev,noexec as the tmpfs.
    let all = RDONLY | libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV | libc::MOUNT_ATTR_NOEXEC;
    let mut expect = Vec::new();
    for (mp, name) in [(&memory, "memory"), (&cpu, "cpu,cpuacct")] {
        let src = mp.join("ctr");
        expect.extend([
            open_tree(src.clone(), false),
            attach(src.clone(), tmpfs.join(name)),
            Call::SetAttr {
                path: src,
                recursive: false,
                set: all,
                clear: libc::MOUNT_ATTR_NODIRATIME,
            },
        ]);
    }
    assert_eq!(calls[5..], expect);
}
