//! `rcontain check`: what this host offers a container, and for a bundle
//! or an image, each config field the host cannot honour (create will
//! fail) or that a container would observe differently from a current
//! pure cgroup-v2 host (the reference), with the reason.
//!
//! The bundle checks reuse what `create` runs before it forks (bundle and
//! spec validation, namespaces, process and seccomp compilation, cgroup
//! validation), so their verdicts cannot drift from create's; on top come
//! the checks create only meets when it writes a cgroup file or loads a
//! filter, made against a probe of the host: the files a new cgroup gets,
//! the kernel's seccomp actions.

use crate::cgroups::{self, Mode};
use crate::oci::spec::Bundle;
use anyhow::Result;
use oci_spec::runtime::{LinuxResources, LinuxSeccompAction, Spec};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// What this host offers, as `check` reports it.
#[derive(Debug, Serialize)]
pub struct Host {
    /// uname -r
    pub kernel: String,
    pub cgroup: CgroupHost,
    /// clone3(CLONE_INTO_CGROUP): the init is born in its cgroup
    #[serde(rename = "cloneIntoCgroup")]
    pub clone_into_cgroup: Support,
    /// overlayfs takes lower layers one by one ("lowerdir+", Linux 6.8):
    /// without it an image of more than ~14 layers cannot be mounted
    #[serde(rename = "overlayLowerdirPlus")]
    pub overlay_lowerdir_plus: Support,
    pub seccomp: SeccompHost,
    /// Namespace types the kernel has (/proc/self/ns)
    pub namespaces: BTreeMap<String, bool>,
    /// Root may create user namespaces (user.max_user_namespaces)
    #[serde(rename = "userNamespaces")]
    pub user_namespaces: Support,
    /// The kernel's mount_setattr(2) (idmapped mounts, Linux 5.12);
    /// rcontain itself does not implement idmapped mounts
    #[serde(rename = "idmappedMounts")]
    pub idmapped_mounts: Support,
    /// Active LSMs (/sys/kernel/security/lsm, or AppArmor/SELinux found in
    /// sysfs); rcontain applies no LSM label
    pub lsm: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Support {
    pub available: bool,
    /// Why not, or how it was found
    pub detail: String,
}

impl Support {
    fn yes(detail: impl Into<String>) -> Support {
        Support {
            available: true,
            detail: detail.into(),
        }
    }
    fn no(detail: impl Into<String>) -> Support {
        Support {
            available: false,
            detail: detail.into(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct CgroupHost {
    /// "v1", "hybrid" or "v2"
    pub mode: String,
    /// Controllers a container's cgroup can use
    pub controllers: Vec<String>,
    /// Files limits go to that only some kernels offer, and whether a
    /// container's cgroup gets them here
    pub files: BTreeMap<String, bool>,
    #[serde(rename = "hugepageSizes")]
    pub hugepage_sizes: Vec<String>,
    /// Every file a container's cgroup gets (for linux.resources.unified)
    #[serde(skip)]
    pub all_files: BTreeSet<String>,
    /// Controllers (of those a current v2 host hands down) the kernel has
    /// but the root cgroup does not hand down (v2: in the root's
    /// cgroup.controllers, not in its subtree_control).
    /// systemd enables a controller there only once a unit needs it;
    /// rcontain writes only the cgroups it creates, so a container's
    /// cgroup lacks these controllers' files.
    #[serde(rename = "notHandedDown", skip_serializing_if = "Vec::is_empty")]
    pub not_handed_down: Vec<String>,
    /// Why the files could not be probed (then none shows as present)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct SeccompHost {
    /// /proc/sys/kernel/seccomp/actions_avail
    pub actions: Vec<String>,
    /// libseccomp's API level (what it can use of this kernel)
    #[serde(rename = "apiLevel")]
    pub api_level: u32,
}

/// The cgroup files `check` looks for, by layout.
const V1_FILES: &[&str] = &[
    "blkio.weight",
    "blkio.bfq.weight",
    "blkio.leaf_weight",
    "blkio.throttle.read_bps_device",
    "memory.memsw.limit_in_bytes",
    "memory.kmem.tcp.limit_in_bytes",
    "memory.swappiness",
    "memory.oom_control",
    "cpu.cfs_burst_us",
    "cpu.rt_runtime_us",
    "cpu.idle",
    "rdma.max",
    "net_cls.classid",
    "net_prio.ifpriomap",
];
const V2_FILES: &[&str] = &[
    "io.weight",
    "io.bfq.weight",
    "io.max",
    "memory.swap.max",
    "memory.high",
    "cpu.max.burst",
    "cpu.idle",
    "rdma.max",
    "cgroup.kill",
];

/// Probe this host. Makes (and removes) one empty cgroup per hierarchy.
pub fn host() -> Result<Host> {
    let mode = cgroups::detect()?;
    Ok(Host {
        kernel: nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default(),
        cgroup: cgroup_host(mode)?,
        clone_into_cgroup: match (mode, crate::sys::clone_into_cgroup_probe()) {
            (Mode::V1, _) => Support::no("no cgroup2 hierarchy to be born in"),
            (_, Ok(())) => Support::yes("clone3 takes CLONE_INTO_CGROUP"),
            (_, Err(e)) => Support::no(format!("clone3 CLONE_INTO_CGROUP: {e}")),
        },
        overlay_lowerdir_plus: match crate::sys::fs_accepts_option("overlay", "lowerdir+", "/") {
            Ok(()) => Support::yes("overlayfs takes lowerdir+"),
            Err(nix::errno::Errno::EOPNOTSUPP) => {
                Support::no("overlayfs is on the legacy mount API (before Linux 6.5): no lowerdir+")
            }
            Err(e) => Support::no(format!("overlayfs lowerdir+: {e}")),
        },
        seccomp: SeccompHost {
            actions: std::fs::read_to_string("/proc/sys/kernel/seccomp/actions_avail")
                .unwrap_or_default()
                .split_whitespace()
                .map(String::from)
                .collect(),
            api_level: libseccomp::get_api(),
        },
        namespaces: crate::namespaces::JOIN_ORDER
            .iter()
            .map(|(_, n)| (n.to_string(), Path::new("/proc/self/ns").join(n).exists()))
            .collect(),
        user_namespaces: match crate::namespaces::kernel_offers(
            oci_spec::runtime::LinuxNamespaceType::User,
            Path::new("/proc/self/ns"),
            max_user_namespaces,
        ) {
            Ok(()) => Support::yes("user.max_user_namespaces allows them"),
            Err(e) => Support::no(e.to_string()),
        },
        idmapped_mounts: match crate::sys::mount_setattr_probe() {
            Ok(()) => Support::yes(
                "the kernel has mount_setattr; rcontain does not implement idmapped mounts",
            ),
            Err(e) => Support::no(format!("mount_setattr: {e}")),
        },
        lsm: lsms(),
    })
}

/// The cgroup half of [`host`]: the layout, the controllers rcontain's
/// cgroups get, and which interface files a new cgroup has.
fn cgroup_host(mode: Mode) -> Result<CgroupHost> {
    // without root (or with a read-only cgroupfs) nothing can be probed:
    // every file then shows as lacking, and `probe` says why
    let (files, probe) = match cgroups::probe_files("rcontain-check") {
        Ok(f) => (f, None),
        Err(e) => (BTreeSet::new(), Some(format!("{e:#}"))),
    };
    let wanted = if mode == Mode::V2 { V2_FILES } else { V1_FILES };
    let controllers: Vec<String> = match mode {
        Mode::V2 => {
            std::fs::read_to_string(Path::new(cgroups::ROOT).join("cgroup.subtree_control"))
                .unwrap_or_default()
                .split_whitespace()
                .map(String::from)
                .collect()
        }
        _ => cgroups::v1_hierarchies()?
            .into_iter()
            .flat_map(|h| h.controllers)
            .filter(|c| !c.starts_with("name="))
            .collect(),
    };
    // the controllers a current v2 host (systemd with units using them,
    // or the reference VM) hands down; rdma and misc stay with the root
    const HANDED_DOWN: &[&str] = &["cpu", "cpuset", "io", "memory", "pids", "hugetlb"];
    let not_handed_down = match mode {
        Mode::V2 => std::fs::read_to_string(Path::new(cgroups::ROOT).join("cgroup.controllers"))
            .unwrap_or_default()
            .split_whitespace()
            .filter(|c| HANDED_DOWN.contains(c) && !controllers.iter().any(|x| x == c))
            .map(String::from)
            .collect(),
        _ => Vec::new(),
    };
    Ok(CgroupHost {
        mode: mode_name(mode).into(),
        controllers,
        files: wanted
            .iter()
            .map(|f| (f.to_string(), files.contains(*f)))
            .collect(),
        hugepage_sizes: cgroups::hugepage_sizes()?,
        all_files: files,
        not_handed_down,
        probe,
    })
}

fn max_user_namespaces() -> Option<String> {
    std::fs::read_to_string("/proc/sys/user/max_user_namespaces").ok()
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::V1 => "v1",
        Mode::Hybrid => "hybrid",
        Mode::V2 => "v2",
    }
}

/// Active LSMs: securityfs's list when mounted, else what sysfs shows.
fn lsms() -> Vec<String> {
    if let Ok(s) = std::fs::read_to_string("/sys/kernel/security/lsm") {
        return s.trim().split(',').map(String::from).collect();
    }
    let mut found = Vec::new();
    if std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim() == "Y")
    {
        found.push("apparmor".into());
    }
    if Path::new("/sys/fs/selinux/enforce").exists() {
        found.push("selinux".into());
    }
    found
}

/// How a finding affects the bundle on this host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// create fails here
    Fails,
    /// it runs, but the container sees something else than on the reference
    Differs,
    /// worth knowing, the same on every host
    Note,
}

#[derive(Debug, Serialize)]
pub struct Finding {
    pub kind: Kind,
    /// The config field ("linux.resources.blockIO.weight"), or "(host)"
    pub field: String,
    pub reason: String,
}

fn finding(kind: Kind, field: impl Into<String>, reason: impl Into<String>) -> Finding {
    Finding {
        kind,
        field: field.into(),
        reason: reason.into(),
    }
}

fn needs_root(out: &mut Vec<Finding>) {
    if !nix::unistd::geteuid().is_root() {
        out.push(finding(
            Kind::Fails,
            "(host)",
            "rcontain needs root (rootless mode is not implemented)",
        ));
    }
}

/// The findings for the bundle in `dir` on `host`.
pub fn bundle(dir: &Path, host: &Host) -> Vec<Finding> {
    let mut out = Vec::new();
    needs_root(&mut out);
    let b = match Bundle::load(dir) {
        Ok(b) => b,
        Err(e) => {
            out.push(finding(Kind::Fails, "config.json", format!("{e:#}")));
            return out;
        }
    };
    check_spec(&b.spec, host, &mut out);
    out
}

/// How many layers the image store's overlay takes without overlayfs's
/// "lowerdir+" (Linux 6.8): all lower directories then go in one option
/// value, which fsconfig(2) cuts at 256 bytes, each named by a
/// `/proc/self/fd/N` link of 15 to 17 bytes plus a separator. 15 fit
/// whatever N is between 3 and 90; 16 never do from fd 3 on. Measured in
/// the host matrix on Linux 6.1 (docs/hosts.md: the `layers` image).
pub const LAYERS_WITHOUT_LOWERDIR_PLUS: usize = 15;

/// The findings for the image `arg` (as `run IMAGE` takes it) on `host`:
/// what `run IMAGE` would do with it here, without importing it (only
/// the index, manifest and config are read and verified).
pub fn image(arg: &str, host: &Host) -> Vec<Finding> {
    use crate::image::{config, layout};
    let mut out = Vec::new();
    needs_root(&mut out);
    let img = layout::parse_image_arg(arg).and_then(|(path, reference)| {
        let limits = crate::image::SizeLimits::default();
        layout::resolve(
            &path,
            &reference,
            &layout::Platform::host(),
            false,
            limits.image,
        )
    });
    let img = match img {
        Ok(i) => i,
        Err(e) => {
            out.push(finding(Kind::Fails, "image", format!("{e:#}")));
            return out;
        }
    };
    let layers = img.layers.len();
    if layers > LAYERS_WITHOUT_LOWERDIR_PLUS && !host.overlay_lowerdir_plus.available {
        out.push(finding(
            Kind::Fails,
            "rootfs.diff_ids",
            format!(
                "{layers} layers: without overlayfs's lowerdir+ (Linux 6.8; here: {}) the store's overlay takes at most {LAYERS_WITHOUT_LOWERDIR_PLUS}; `rcontain unpack` and `run --bundle` have no such limit",
                host.overlay_lowerdir_plus.detail
            ),
        ));
    }
    let mut cfg = img.config;
    let user = config_notes(cfg.config.get_or_insert_with(Default::default), &mut out);
    // what run IMAGE runs: the default config with the image's settings
    // (a user is only resolved there, so the rootfs is not read)
    let rootfs = match crate::image::inroot::Rootfs::open(Path::new("/")) {
        Ok(r) => r,
        Err(e) => {
            out.push(finding(Kind::Fails, "image", format!("{e:#}")));
            return out;
        }
    };
    match config::runtime_spec(crate::oci::specgen::default_spec(), &cfg, &rootfs) {
        Ok(mut spec) => {
            if let (Some(u), Some(p)) = (user, spec.process_mut()) {
                p.set_user(u);
            }
            check_spec(&spec, host, &mut out);
        }
        Err(e) => out.push(finding(Kind::Fails, "config", format!("{e:#}"))),
    }
    out
}

/// The notes on an image config's settings that run IMAGE treats alike on
/// every host; takes its user out, returned when it is numeric.
fn config_notes(
    c: &mut crate::image::config::ContainerConfig,
    out: &mut Vec<Finding>,
) -> Option<oci_spec::runtime::User> {
    use crate::image::config;
    // a user by name is looked up in the image's own /etc/passwd when it
    // runs: not read here (that needs the layers), the same on every host
    let user = c.user.take().filter(|u| !u.is_empty());
    let user = match user
        .as_deref()
        .map(|u| (u, config::resolve_user(u, &Default::default())))
    {
        None => None,
        Some((_, Ok(u))) => Some(u),
        Some((u, Err(_))) => {
            out.push(finding(
                Kind::Note,
                "config.User",
                format!("{u:?} names a user or group: run IMAGE looks it up in the image's /etc/passwd and /etc/group, the same on every host"),
            ));
            None
        }
    };
    if c.volumes.as_ref().is_some_and(|v| !v.is_empty()) {
        out.push(finding(
            Kind::Note,
            "config.Volumes",
            "rcontain mounts nothing there (they are recorded in the io.rcontain.image.volumes annotation): the container sees the image's own directories, or none, on every host",
        ));
    }
    if c.exposed_ports.as_ref().is_some_and(|p| !p.is_empty()) {
        out.push(finding(
            Kind::Note,
            "config.ExposedPorts",
            "recorded in an annotation only: the container gets the default config's network namespace (loopback only) on every host",
        ));
    }
    user
}

fn check_spec(spec: &Spec, host: &Host, out: &mut Vec<Finding>) {
    let fails = |out: &mut Vec<Finding>, field: &str, e: anyhow::Error| {
        out.push(finding(Kind::Fails, field, format!("{e:#}")));
    };
    let process = spec.process().as_ref().expect("validated");
    let linux = spec.linux().as_ref().expect("validated");
    if let Err(e) = crate::namespaces::Namespaces::from_spec(linux) {
        fails(out, "linux.namespaces", e);
    }
    if let Err(e) = crate::container::prepare_process(process, linux) {
        fails(out, "process", e);
    }
    if let Some(s) = linux.seccomp() {
        seccomp_actions(s, host, out);
    }
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let idmap = m
            .options()
            .iter()
            .flatten()
            .any(|o| o == "idmap" || o == "ridmap")
            || m.uid_mappings().is_some();
        if idmap {
            out.push(finding(
                Kind::Fails,
                format!("mounts[{i}]"),
                "id-mapped mounts are not implemented by rcontain",
            ));
        }
    }
    if process.apparmor_profile().is_some() || process.selinux_label().is_some() {
        out.push(finding(
            Kind::Note,
            "process.apparmorProfile/selinuxLabel",
            "rcontain applies no LSM label: the process runs with the runtime's own LSM context on every host",
        ));
    }
    cgroup_host_notes(linux, host, out);
}

/// The seccomp actions of `s` that this kernel does not have.
fn seccomp_actions(s: &oci_spec::runtime::LinuxSeccomp, host: &Host, out: &mut Vec<Finding>) {
    let actions = s
        .syscalls()
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, r)| (format!("linux.seccomp.syscalls[{i}].action"), r.action()))
        .chain([(
            "linux.seccomp.defaultAction".to_string(),
            s.default_action(),
        )]);
    for (field, a) in actions {
        let name = kernel_action(a);
        if !host.seccomp.actions.iter().any(|x| x == name) {
            out.push(finding(
                Kind::Fails,
                field,
                format!("this kernel has no seccomp action {name} (not in /proc/sys/kernel/seccomp/actions_avail)"),
            ));
        }
    }
}

/// What the host's cgroup layout changes for the container, and the
/// resources it cannot honour.
fn cgroup_host_notes(linux: &oci_spec::runtime::Linux, host: &Host, out: &mut Vec<Finding>) {
    let mode = match host.cgroup.mode.as_str() {
        "v2" => Mode::V2,
        "hybrid" => Mode::Hybrid,
        _ => Mode::V1,
    };
    if mode != Mode::V2 {
        out.push(finding(
            Kind::Differs,
            "(host)",
            format!(
                "cgroup {}: the container sees cgroup v1 hierarchies (/proc/self/cgroup, a cgroup mount), a pure cgroup-v2 host one cgroup2 tree",
                host.cgroup.mode
            ),
        ));
    }
    if !host.cgroup.not_handed_down.is_empty() {
        out.push(finding(
            Kind::Note,
            "(host)",
            format!(
                "the root cgroup does not hand down {} (not in its cgroup.subtree_control: systemd enables controllers as its units need them); create enables them down to the container's cgroup, as runc does",
                host.cgroup.not_handed_down.join(" ")
            ),
        ));
    }
    if let Some(r) = linux.resources() {
        check_resources(r, linux, mode, host, out);
    }
}

/// The name of a spec action in the kernel's actions_avail.
fn kernel_action(a: LinuxSeccompAction) -> &'static str {
    match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => "kill_thread",
        LinuxSeccompAction::ScmpActKillProcess => "kill_process",
        LinuxSeccompAction::ScmpActTrap => "trap",
        LinuxSeccompAction::ScmpActErrno => "errno",
        LinuxSeccompAction::ScmpActNotify => "user_notif",
        LinuxSeccompAction::ScmpActTrace => "trace",
        LinuxSeccompAction::ScmpActLog => "log",
        LinuxSeccompAction::ScmpActAllow => "allow",
    }
}

fn check_resources(
    r: &LinuxResources,
    linux: &oci_spec::runtime::Linux,
    mode: Mode,
    host: &Host,
    out: &mut Vec<Finding>,
) {
    let Some(refused) = refused_sections(r, linux, out) else {
        return;
    };
    let f = Files {
        host,
        v2: mode == Mode::V2,
        refused,
    };
    if f.v2 {
        controller_findings(r, &f, out);
    }
    if let Some(m) = r.memory() {
        memory_findings(m, &f, out);
    }
    if let Some(c) = r.cpu() {
        cpu_findings(c, &f, out);
    }
    if let Some(b) = r.block_io() {
        block_io_findings(b, &f, out);
    }
    if f.v2 && !f.refused.contains("unified") {
        for key in r.unified().iter().flatten().map(|(k, _)| k) {
            if !f.has(key) {
                out.push(finding(
                    Kind::Fails,
                    format!("linux.resources.unified[{key:?}]"),
                    "this host's cgroups have no such file",
                ));
            }
        }
    }
    if !f.v2
        && r.network()
            .as_ref()
            .is_some_and(|n| n.class_id().is_some() || n.priorities().is_some())
        && !f.refused.contains("network")
    {
        out.push(finding(
            Kind::Differs,
            "linux.resources.network",
            "net_cls/net_prio apply on this cgroup v1 host; cgroup v2 refuses them",
        ));
    }
}

/// create's own validation, one resource section at a time so that every
/// section at fault is reported: the names of those refused, or `None`
/// when the cgroup itself is (a finding says why).
fn refused_sections(
    r: &LinuxResources,
    linux: &oci_spec::runtime::Linux,
    out: &mut Vec<Finding>,
) -> Option<BTreeSet<&'static str>> {
    let manager = cgroups::Manager::new(linux.cgroups_path().as_deref(), "check")
        .map(|m| m.with_devices(linux.devices().as_deref().unwrap_or(&[])));
    let manager = match manager {
        Ok(m) => m,
        Err(e) => {
            out.push(finding(Kind::Fails, "linux.cgroupsPath", format!("{e:#}")));
            return None;
        }
    };
    let sections: [(&str, LinuxResources); 9] = [
        ("memory", only(|x| x.set_memory(*r.memory()))),
        ("cpu", only(|x| x.set_cpu(r.cpu().clone()))),
        ("pids", only(|x| x.set_pids(*r.pids()))),
        ("blockIO", only(|x| x.set_block_io(r.block_io().clone()))),
        (
            "hugepageLimits",
            only(|x| x.set_hugepage_limits(r.hugepage_limits().clone())),
        ),
        ("network", only(|x| x.set_network(r.network().clone()))),
        ("rdma", only(|x| x.set_rdma(r.rdma().clone()))),
        ("unified", only(|x| x.set_unified(r.unified().clone()))),
        ("devices", only(|x| x.set_devices(r.devices().clone()))),
    ];
    let mut refused = BTreeSet::new();
    for (name, part) in &sections {
        if let Err(e) = manager.validate(part) {
            refused.insert(*name);
            out.push(finding(
                Kind::Fails,
                format!("linux.resources.{name}"),
                format!("{e:#}"),
            ));
        }
    }
    Some(refused)
}

/// What the resource checks share: this host's cgroup files, and the
/// sections create's validation refused already (not reported twice).
struct Files<'a> {
    host: &'a Host,
    v2: bool,
    refused: BTreeSet<&'static str>,
}

impl Files<'_> {
    /// A file create writes that only some kernels offer (on v2 also the
    /// files of a controller the root has but does not hand down yet:
    /// create enables it; BFQ's files depend on the disk's scheduler, not
    /// on a controller).
    fn has(&self, f: &str) -> bool {
        self.host.cgroup.all_files.contains(f)
            || (self.v2
                && !f.contains(".bfq.")
                && f.split('.')
                    .next()
                    .is_some_and(|c| self.host.cgroup.not_handed_down.iter().any(|x| x == c)))
    }

    /// A finding for `field` unless one of `files` is there (or `section`
    /// is refused already).
    fn need(&self, out: &mut Vec<Finding>, section: &str, field: &str, files: &[&str], why: &str) {
        if !self.refused.contains(section) && !files.iter().any(|f| self.has(f)) {
            out.push(finding(
                Kind::Fails,
                format!("linux.resources.{field}"),
                format!(
                    "this host's cgroups have no {} ({why})",
                    files.join(" nor ")
                ),
            ));
        }
    }
}

/// On v2, a limit needs its controller in the container's cgroup.
fn controller_findings(r: &LinuxResources, f: &Files, out: &mut Vec<Finding>) {
    // a limit needs its controller in the container's cgroup, which
    // gets what the root has (validate asked the root's
    // cgroup.controllers: what the kernel has)
    if r.memory()
        .is_some_and(|m| m.limit().is_some() || m.reservation().is_some() || m.swap().is_some())
    {
        f.need(
            out,
            "memory",
            "memory",
            &["memory.max"],
            "the memory controller is not available to new cgroups",
        );
    }
    if r.cpu()
        .as_ref()
        .is_some_and(|c| c.shares().is_some() || c.quota().is_some() || c.period().is_some())
    {
        f.need(
            out,
            "cpu",
            "cpu",
            &["cpu.max"],
            "the cpu controller is not available to new cgroups",
        );
    }
    if r.cpu()
        .as_ref()
        .is_some_and(|c| c.cpus().is_some() || c.mems().is_some())
    {
        f.need(
            out,
            "cpu",
            "cpu.cpus/mems",
            &["cpuset.cpus"],
            "the cpuset controller is not available to new cgroups",
        );
    }
    if r.pids().is_some() {
        f.need(
            out,
            "pids",
            "pids",
            &["pids.max"],
            "the pids controller is not available to new cgroups",
        );
    }
}

fn memory_findings(m: &oci_spec::runtime::LinuxMemory, f: &Files, out: &mut Vec<Finding>) {
    let swap = m.swap().unwrap_or(0);
    if f.v2 && swap != 0 {
        // as create translates it: a swap alone is relative to the
        // new cgroup's memory.max, which is "max"
        let limit = m.limit().unwrap_or(if swap > 0 { -1 } else { 0 });
        match cgroups::translate::swap_to_v2(swap, limit) {
            Err(e) => out.push(finding(
                Kind::Fails,
                "linux.resources.memory.swap",
                format!("{e:#}"),
            )),
            Ok(v) if v > 0 => {
                f.need(out, "memory", "memory.swap", &["memory.swap.max"], "no swap accounting")
            }
            Ok(0) if swap > 0 && !f.has("memory.swap.max") => out.push(finding(
                Kind::Differs,
                "linux.resources.memory.swap",
                "no swap accounting (no memory.swap.max): \"no swap\" cannot be enforced, the container may swap (runc alike)",
            )),
            Ok(_) => {}
        }
    } else if swap != 0 {
        f.need(
            out,
            "memory",
            "memory.swap",
            &["memory.memsw.limit_in_bytes"],
            "no swap accounting",
        );
    }
    if !f.v2 && m.kernel_tcp().is_some_and(|t| t != 0) {
        f.need(
            out,
            "memory",
            "memory.kernelTCP",
            &["memory.kmem.tcp.limit_in_bytes"],
            "kernel memory accounting",
        );
    }
    if !f.v2 && (m.swappiness().is_some() || m.disable_oom_killer() == Some(true)) {
        out.push(finding(
            Kind::Differs,
            "linux.resources.memory",
            "swappiness/disableOOMKiller apply on this cgroup v1 host; cgroup v2 refuses them",
        ));
    }
}

fn cpu_findings(c: &oci_spec::runtime::LinuxCpu, f: &Files, out: &mut Vec<Finding>) {
    if c.burst().is_some() {
        let file = if f.v2 {
            "cpu.max.burst"
        } else {
            "cpu.cfs_burst_us"
        };
        f.need(out, "cpu", "cpu.burst", &[file], "CFS burst, Linux 5.14");
    }
    if c.idle().is_some() {
        f.need(
            out,
            "cpu",
            "cpu.idle",
            &["cpu.idle"],
            "SCHED_IDLE groups, Linux 5.15",
        );
    }
    let rt =
        c.realtime_runtime().is_some_and(|v| v != 0) || c.realtime_period().is_some_and(|v| v != 0);
    if !f.v2 && rt {
        f.need(
            out,
            "cpu",
            "cpu.realtimeRuntime",
            &["cpu.rt_runtime_us"],
            "realtime group scheduling, CONFIG_RT_GROUP_SCHED",
        );
        out.push(finding(
            Kind::Differs,
            "linux.resources.cpu.realtimeRuntime",
            "realtime limits apply on this cgroup v1 host; cgroup v2 refuses them",
        ));
    }
}

fn block_io_findings(b: &oci_spec::runtime::LinuxBlockIo, f: &Files, out: &mut Vec<Finding>) {
    let weights = b.weight().is_some_and(|w| w != 0)
        || b.weight_device()
            .iter()
            .flatten()
            .any(|w| w.weight().is_some());
    if weights {
        let files: &[&str] = if f.v2 {
            &["io.bfq.weight", "io.weight"]
        } else {
            &["blkio.bfq.weight", "blkio.weight"]
        };
        f.need(
            out,
            "blockIO",
            "blockIO.weight",
            files,
            "I/O weights need the BFQ scheduler, or io.cost on v2",
        );
    }
    let leaf = b.leaf_weight().is_some()
        || b.weight_device()
            .iter()
            .flatten()
            .any(|w| w.leaf_weight().is_some());
    if leaf && !f.v2 {
        f.need(
            out,
            "blockIO",
            "blockIO.leafWeight",
            &["blkio.leaf_weight"],
            "CFQ leaf weights, gone since Linux 5.0",
        );
    }
    let throttles = [
        b.throttle_read_bps_device(),
        b.throttle_write_bps_device(),
        b.throttle_read_iops_device(),
        b.throttle_write_iops_device(),
    ]
    .iter()
    .any(|t| t.as_ref().is_some_and(|t| !t.is_empty()));
    if throttles {
        let file = if f.v2 {
            "io.max"
        } else {
            "blkio.throttle.read_bps_device"
        };
        f.need(
            out,
            "blockIO",
            "blockIO.throttle*",
            &[file],
            "block I/O throttling, CONFIG_BLK_DEV_THROTTLING",
        );
    }
}

/// Resources with only what `set` puts in.
fn only(set: impl FnOnce(&mut LinuxResources) -> &mut LinuxResources) -> LinuxResources {
    let mut r = LinuxResources::default();
    set(&mut r);
    r
}

/// Whether the bundle runs here and behaves as on the reference.
pub fn as_on_reference(findings: &[Finding]) -> bool {
    findings.iter().all(|f| f.kind == Kind::Note)
}
