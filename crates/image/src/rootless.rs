//! Images without root. An ordinary user cannot give files away, yet an
//! image's files belong to many ids. So `unpack` and the store's work run
//! in a child in a new user namespace whose root is the user and whose ids
//! 1..N are the user's subordinate ids (/etc/subuid and /etc/subgid,
//! mapped by the setuid helpers newuidmap and newgidmap, as podman and
//! buildah do). The container later runs in a user namespace with the same
//! mapping, so a file the image gives to uid 1000 belongs to subordinate
//! uid START+999 on the host and to 1000 in the container: the container
//! sees the image's real owners, and no one gains an id the user was not
//! given. Device nodes cannot be made there (see `layer`: skipped).

use std::fs;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;

use anyhow::{anyhow, bail, Context, Result};
use nix::fcntl::OFlag;
use nix::mount::{mount, MsFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use oci_spec::runtime::{
    LinuxIdMapping, LinuxIdMappingBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, Spec,
};

/// The user's ids and the subordinate ranges mapped above them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdMap {
    pub uid: u32,
    pub gid: u32,
    /// First subordinate uid and how many.
    pub subuid: (u32, u32),
    /// First subordinate gid and how many.
    pub subgid: (u32, u32),
}

/// The first `name:start:count` line of `text` (subuid(5) format) for the
/// user named `name` or numbered `id`.
fn sub_range(text: &str, name: Option<&str>, id: u32) -> Option<(u32, u32)> {
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.trim().split(':').collect();
        let me = f
            .first()
            .is_some_and(|u| Some(*u) == name || *u == id.to_string());
        if f.len() != 3 || !me {
            return None;
        }
        let (start, count) = (f[1].parse().ok()?, f[2].parse::<u32>().ok()?);
        (count > 0 && start > 0).then_some((start, count))
    })
}

impl IdMap {
    /// The calling user's: its euid/egid and its first ranges in
    /// /etc/subuid and /etc/subgid.
    pub fn of_caller() -> Result<IdMap> {
        let uid = nix::unistd::geteuid().as_raw();
        let gid = nix::unistd::getegid().as_raw();
        let name = nix::unistd::User::from_uid(uid.into())
            .ok()
            .flatten()
            .map(|u| u.name);
        let range = |file: &str| -> Result<(u32, u32)> {
            let text = fs::read_to_string(file).unwrap_or_default();
            sub_range(&text, name.as_deref(), uid).ok_or_else(|| {
                anyhow!(
                    "images without root need subordinate ids: {file} has no range for {} \
                     (e.g. usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {0})",
                    name.clone().unwrap_or_else(|| uid.to_string())
                )
            })
        };
        Ok(IdMap {
            uid,
            gid,
            subuid: range("/etc/subuid")?,
            subgid: range("/etc/subgid")?,
        })
    }

    fn maps(own: u32, (start, count): (u32, u32)) -> [(u32, u32, u32); 2] {
        [(0, own, 1), (1, start, count)]
    }

    /// (container id, host id, size) of the uid mapping: 0 is the user,
    /// 1.. its subordinate uids.
    pub fn uid_map(&self) -> [(u32, u32, u32); 2] {
        Self::maps(self.uid, self.subuid)
    }

    pub fn gid_map(&self) -> [(u32, u32, u32); 2] {
        Self::maps(self.gid, self.subgid)
    }

    /// `spec` with a user namespace of this mapping (replacing any other).
    pub fn apply(&self, spec: &mut Spec) {
        let to_oci = |m: [(u32, u32, u32); 2]| -> Vec<LinuxIdMapping> {
            m.iter()
                .map(|&(c, h, n)| {
                    LinuxIdMappingBuilder::default()
                        .container_id(c)
                        .host_id(h)
                        .size(n)
                        .build()
                        .expect("all fields set")
                })
                .collect()
        };
        let mut linux = spec.linux().clone().unwrap_or_default();
        let mut ns = linux.namespaces().clone().unwrap_or_default();
        if !ns.iter().any(|n| n.typ() == LinuxNamespaceType::User) {
            ns.push(
                LinuxNamespaceBuilder::default()
                    .typ(LinuxNamespaceType::User)
                    .build()
                    .expect("type set"),
            );
        }
        linux.set_namespaces(Some(ns));
        linux.set_uid_mappings(Some(to_oci(self.uid_map())));
        linux.set_gid_mappings(Some(to_oci(self.gid_map())));
        spec.set_linux(Some(linux));
    }

    /// One line naming the mapping, as kept in a rootless store.
    pub fn describe(&self) -> String {
        let fmt = |m: [(u32, u32, u32); 2]| {
            m.iter()
                .map(|(c, h, n)| format!("{c} {h} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!("uid {}; gid {}", fmt(self.uid_map()), fmt(self.gid_map()))
    }
}

/// Runs `helper` (newuidmap or newgidmap) to write the mapping `maps`
/// ((container id, host id, size) triples) of process `pid`'s user
/// namespace. Errors are the helper's own words, without context.
pub fn run_id_helper(helper: &str, pid: i32, maps: &[(u32, u32, u32)]) -> Result<()> {
    let out = std::process::Command::new(helper)
        .arg(pid.to_string())
        .args(
            maps.iter()
                .flat_map(|&(c, h, n)| [c, h, n])
                .map(|n| n.to_string()),
        )
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| anyhow!("{helper} (package uidmap): {e}"))?;
    if !out.status.success() {
        bail!(
            "{helper} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Runs `f` in a child process that is root of a new user namespace with
/// mapping `map` and has a mount namespace of its own (so overlays can be
/// mounted there: Linux 5.11). Its error comes back as this one's; on
/// success it returned Ok. `what` names the work in errors.
///
/// Must be called while the process is single-threaded (a fork); `f`
/// itself may start threads.
pub fn in_user_namespace(map: &IdMap, what: &str, f: impl FnOnce() -> Result<()>) -> Result<()> {
    match in_child(map, what, f)? {
        (WaitStatus::Exited(_, 0), _) => Ok(()),
        (_, msg) if !msg.is_empty() => Err(anyhow!(msg)),
        (s, _) => bail!("{what}: the user namespace helper ended with {s:?}"),
    }
}

/// `rcontain unshare`: runs `cmd` (program and arguments) as root of a
/// user namespace with mapping `map`, as `podman unshare` does, so that
/// the user can work on files owned by its subordinate ids (remove an
/// unpacked bundle). Returns the command's exit status, 128+N when signal
/// N killed it. Single-threaded callers only (a fork).
pub fn run_in_user_namespace(map: &IdMap, cmd: &[std::ffi::OsString]) -> Result<i32> {
    use std::os::unix::process::CommandExt;
    let (prog, args) = cmd.split_first().context("unshare: no command")?;
    let (status, msg) = in_child(map, "unshare", || {
        // Returns only on failure; the error pipe closes on exec.
        let e = std::process::Command::new(prog).args(args).exec();
        bail!("unshare: {}: {e}", prog.to_string_lossy())
    })?;
    if !msg.is_empty() {
        bail!(msg);
    }
    match status {
        WaitStatus::Exited(_, code) => Ok(code),
        WaitStatus::Signaled(_, sig, _) => Ok(128 + sig as i32),
        s => bail!("unshare: the command ended with {s:?}"),
    }
}

/// The fork behind in_user_namespace: how the child ended and the error
/// it wrote, if any, once the mapping is written.
fn in_child(
    map: &IdMap,
    what: &str,
    f: impl FnOnce() -> Result<()>,
) -> Result<(WaitStatus, String)> {
    let pipe = || nix::unistd::pipe2(OFlag::O_CLOEXEC).context("pipe");
    let (go_r, go_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    let flags = (libc::CLONE_NEWUSER | libc::CLONE_NEWNS) as u64;
    let pid = rcontain_sys::clone_fork(flags).map_err(|e| {
        anyhow!(
            "{what}: creating a user namespace: {e} (are unprivileged user namespaces allowed?)"
        )
    })?;
    if pid == 0 {
        drop((go_w, err_r));
        let code = match child(go_r, f) {
            Ok(()) => 0,
            Err(e) => {
                let _ = fs::File::from(err_w).write_all(format!("{e:#}").as_bytes());
                1
            }
        };
        std::process::exit(code);
    }
    drop((go_r, err_w));
    let mapped = run_id_helper("newuidmap", pid, &map.uid_map())
        .and_then(|()| run_id_helper("newgidmap", pid, &map.gid_map()))
        .and_then(|()| Ok(fs::File::from(go_w).write_all(b"1")?));
    let mut msg = String::new();
    let _ = fs::File::from(err_r).read_to_string(&mut msg);
    let status = loop {
        match waitpid(Pid::from_raw(pid), None) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => break r.context("waiting for the user namespace helper")?,
        }
    };
    mapped.with_context(|| {
        format!(
            "{what}: mapping the subordinate ids ({}) of /etc/subuid and /etc/subgid",
            map.describe()
        )
    })?;
    Ok((status, msg))
}

/// The child's side: wait for the mapping, become its root, keep mounts
/// private, run `f`.
fn child(go: OwnedFd, f: impl FnOnce() -> Result<()>) -> Result<()> {
    // If the runtime dies, so does the helper, rather than finish alone.
    rcontain_sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as u64)?;
    let mut b = [0u8; 1];
    if fs::File::from(go).read(&mut b)? != 1 {
        // The parent failed to map us and says why.
        std::process::exit(1);
    }
    rcontain_sys::become_userns_root()?;
    // Already slaves of the host's (a mount namespace made with a user
    // namespace never propagates back); private, so nothing arrives either.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .context("making mounts private")?;
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subordinate_ranges_by_name_or_uid() {
        let t = "# comment\nalice:100000:65536\n1002:200000:1000\nbob:0:5\ncarol:300000:0\n";
        assert_eq!(sub_range(t, Some("alice"), 1001), Some((100000, 65536)));
        assert_eq!(sub_range(t, Some("dave"), 1002), Some((200000, 1000)));
        // Ranges starting at 0 (root's ids) or empty are no use.
        assert_eq!(sub_range(t, Some("bob"), 7), None);
        assert_eq!(sub_range(t, Some("carol"), 8), None);
        assert_eq!(sub_range(t, None, 9), None);
    }

    #[test]
    fn the_spec_gets_a_user_namespace_with_both_ranges() {
        let map = IdMap {
            uid: 1001,
            gid: 1002,
            subuid: (100000, 65536),
            subgid: (200000, 65536),
        };
        let mut spec = Spec::default();
        map.apply(&mut spec);
        map.apply(&mut spec);
        let v = serde_json::to_value(&spec).unwrap();
        let users = v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["type"] == "user")
            .count();
        assert_eq!(users, 1);
        assert_eq!(
            v["linux"]["gidMappings"],
            serde_json::json!([
                {"containerID": 0, "hostID": 1002, "size": 1},
                {"containerID": 1, "hostID": 200000, "size": 65536},
            ])
        );
        assert_eq!(
            map.describe(),
            "uid 0 1001 1, 1 100000 65536; gid 0 1002 1, 1 200000 65536"
        );
    }
}
