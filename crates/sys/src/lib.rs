//! Thin wrappers over the raw syscalls that neither nix nor std cover.
//!
//! Every `unsafe` block of the runtime that talks to the kernel directly
//! lives here, each one small and documented with the invariant it relies
//! on. Callers get safe functions returning `nix::Result`.
//!
//! Beside them, the one parser of each system file that both the runtime
//! and the image crate read: mountinfo, passwd and group.

pub mod bpf;
pub mod exe;
pub mod mountinfo;
pub mod passwd;

use nix::errno::Errno;
use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// openat2(2) with the given flags and RESOLVE_* mask; the fd is CLOEXEC.
pub fn openat2(
    dir: BorrowedFd,
    path: &str,
    flags: i32,
    mode: u32,
    resolve: u64,
) -> nix::Result<OwnedFd> {
    let c = CString::new(path).map_err(|_| Errno::EINVAL)?;
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.mode = if flags & (libc::O_CREAT | libc::O_TMPFILE) != 0 {
        mode as u64
    } else {
        0
    };
    how.resolve = resolve;
    loop {
        // SAFETY: `c` is a valid NUL-terminated string and `how` a fully
        // initialised open_how that outlives the call; the size passed is its size.
        let r = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                c.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if r >= 0 {
            // SAFETY: the kernel returned a fresh fd that nothing else owns.
            return Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) });
        }
        match Errno::last() {
            // openat2 returns EAGAIN under RESOLVE_IN_ROOT when a rename raced
            // the lookup; retrying is what the kernel documentation asks for.
            Errno::EAGAIN | Errno::EINTR => continue,
            e => return Err(e),
        }
    }
}

/// Raw fork-like clone(2): no new stack, so the child continues from here
/// with a copy of the address space, exactly as fork() does, but with
/// namespace flags applied atomically. Returns 0 in the child.
///
/// Must only be called while the process is single-threaded (the CLI never
/// spawns threads): a multi-threaded fork could leave locks held forever.
pub fn clone_fork(flags: u64) -> nix::Result<i32> {
    // SAFETY: with a NULL stack clone behaves like fork; the caller guarantees
    // the process is single-threaded, so no lock can be held by a thread that
    // does not exist in the child.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD as u64) as libc::c_ulong,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_int>(),
            std::ptr::null_mut::<libc::c_int>(),
            0 as libc::c_ulong,
        )
    };
    Errno::result(r).map(|p| p as i32)
}

/// linux/sched.h; libc's constant is a c_int, too narrow for it.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// clone_fork through clone3(2) with CLONE_INTO_CGROUP: the child starts
/// life in the cgroup2 directory `cgroup`, so it never runs an instruction
/// outside it (nor is it charged to the caller's cgroup). Kernels before
/// 5.7 refuse it (ENOSYS, E2BIG or EINVAL); so may seccomp profiles.
///
/// Same rule as clone_fork: only while the process is single-threaded.
pub fn clone_into_cgroup(flags: u64, cgroup: BorrowedFd) -> nix::Result<i32> {
    // SAFETY: clone_args is plain integers; all-zero is its "nothing" value.
    let mut args: libc::clone_args = unsafe { std::mem::zeroed() };
    args.flags = flags | CLONE_INTO_CGROUP;
    args.exit_signal = libc::SIGCHLD as u64;
    args.cgroup = cgroup.as_raw_fd() as u64;
    // SAFETY: `args` is fully initialised and outlives the call; with no
    // stack given, clone3 behaves like fork, and the caller guarantees the
    // process is single-threaded (see clone_fork).
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const libc::clone_args,
            std::mem::size_of::<libc::clone_args>(),
        )
    };
    Errno::result(r).map(|p| p as i32)
}

/// Whether clone3(CLONE_INTO_CGROUP) is usable here, without forking:
/// the call names a cgroup fd that cannot be open (INT_MAX is above any
/// fd limit), so a kernel that has the flag fails with EBADF before any
/// child exists. Any other answer (ENOSYS, E2BIG, EINVAL from kernels
/// before 5.7, or whatever a seccomp profile returns) is why `fork_into`
/// would fall back to a plain clone and a move. Safe in threaded callers.
pub fn clone_into_cgroup_probe() -> Result<(), Errno> {
    // SAFETY: clone_args is plain integers; all-zero is its "nothing" value.
    let mut args: libc::clone_args = unsafe { std::mem::zeroed() };
    args.flags = CLONE_INTO_CGROUP;
    args.exit_signal = libc::SIGCHLD as u64;
    args.cgroup = i32::MAX as u64;
    // SAFETY: `args` is initialised and outlives the call; the kernel looks
    // the cgroup fd up before the child is made, and it cannot exist, so
    // the call never returns twice.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const libc::clone_args,
            std::mem::size_of::<libc::clone_args>(),
        )
    };
    match Errno::result(r) {
        Err(Errno::EBADF) => Ok(()),
        Err(e) => Err(e),
        Ok(_) => unreachable!("clone3 with a cgroup fd that cannot be open succeeded"),
    }
}

/// Whether the kernel has mount_setattr(2) (Linux 5.12, what idmapped
/// mounts are made with): a call with a too small attribute size fails
/// with EINVAL where the syscall exists, ENOSYS where not; nothing changes.
pub fn mount_setattr_probe() -> Result<(), Errno> {
    // SAFETY: a NULL attribute pointer with size 0 is rejected before the
    // kernel reads anything or looks the (invalid) fd up.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            -1,
            c"".as_ptr(),
            0,
            std::ptr::null::<libc::mount_attr>(),
            0usize,
        )
    };
    match Errno::result(r) {
        Err(Errno::EINVAL) => Ok(()),
        Err(e) => Err(e),
        Ok(_) => Ok(()),
    }
}

/// Whether filesystem `fstype` accepts the string option `key`=`value`
/// (fsopen + fsconfig, nothing is mounted): e.g. overlay's "lowerdir+"
/// (Linux 6.8), which `detached_mount` users rely on. A filesystem still
/// on the legacy mount API (overlay before 6.5) takes any key until the
/// mount is made; it is recognised by also taking a key no filesystem has,
/// and answered EOPNOTSUPP: such a kernel has none of the new keys.
pub fn fs_accepts_option(fstype: &str, key: &str, value: &str) -> nix::Result<()> {
    let fs = fsopen(fstype)?;
    let (key, value) = (cstring(key)?, cstring(value)?);
    if fsconfig_string(fs.as_fd(), c"rcontain-no-such-option", &value).is_ok() {
        return Err(Errno::EOPNOTSUPP);
    }
    fsconfig_string(fs.as_fd(), &key, &value)
}

fn cstring(s: &str) -> nix::Result<CString> {
    CString::new(s).map_err(|_| Errno::EINVAL)
}

/// fsopen(2): a filesystem context of `fstype`, to configure and create.
fn fsopen(fstype: &str) -> nix::Result<OwnedFd> {
    let fstype = cstring(fstype)?;
    // SAFETY: a valid C string; the returned fd is new and owned here.
    unsafe {
        let fs = Errno::result(libc::syscall(
            libc::SYS_fsopen,
            fstype.as_ptr(),
            libc::FSOPEN_CLOEXEC,
        ))?;
        Ok(OwnedFd::from_raw_fd(fs as RawFd))
    }
}

/// fsconfig(2) of one option on a context: FSCONFIG_SET_STRING, or
/// FSCONFIG_SET_FLAG for an empty value.
fn fsconfig_string(
    fs: BorrowedFd,
    key: &std::ffi::CStr,
    value: &std::ffi::CStr,
) -> nix::Result<()> {
    // A flag takes no value: the kernel refuses one given as a string.
    let (cmd, value) = if value.is_empty() {
        (libc::FSCONFIG_SET_FLAG, std::ptr::null())
    } else {
        (libc::FSCONFIG_SET_STRING, value.as_ptr())
    };
    // SAFETY: valid C strings (or NULL for a flag) and an fd borrowed for
    // the call's duration.
    Errno::result(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            cmd,
            key.as_ptr(),
            value,
            0,
        )
    })
    .map(drop)
}

/// fsconfig(2) FSCONFIG_SET_FLAG of one option (no value) on a context.
fn fsconfig_flag(fs: BorrowedFd, key: &std::ffi::CStr) -> nix::Result<()> {
    // SAFETY: a valid C string and an fd borrowed for the call's duration;
    // SET_FLAG takes a null value and aux 0.
    Errno::result(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            libc::FSCONFIG_SET_FLAG,
            key.as_ptr(),
            std::ptr::null::<libc::c_char>(),
            0,
        )
    })
    .map(drop)
}

/// Close every fd from `first` upwards except those in `keep`, for real:
/// an fd merely marked close-on-exec is still open while execve resolves
/// its path, so `/proc/self/fd/N/..` could still reach the host through it
/// (CVE-2024-21626 class).
///
/// The caller must not use any closed fd afterwards: an `OwnedFd` that
/// still holds one would close whatever later gets its number. Callers
/// only do this right before execve, or before anything was opened.
pub fn close_from(first: u32, keep: &[RawFd]) -> nix::Result<()> {
    let mut keep: Vec<u32> = keep
        .iter()
        .filter_map(|&fd| u32::try_from(fd).ok())
        .filter(|&fd| fd >= first)
        .collect();
    keep.sort_unstable();
    keep.dedup();
    let mut from = first;
    for k in keep.into_iter().chain([u32::MAX]) {
        if k > from {
            let last = if k == u32::MAX { u32::MAX } else { k - 1 };
            // SAFETY: closing fds affects no memory; the caller guarantees
            // (see above) that nothing uses the closed fds afterwards.
            Errno::result(unsafe { libc::close_range(from, last, 0) })?;
        }
        from = k.saturating_add(1);
    }
    Ok(())
}

/// chmod of `name` in `dir`, not following a symlink there: one
/// fchmodat2 (Linux 6.6), else glibc's emulation (an O_PATH open, fstat
/// and chmod of its /proc/self/fd link). A seccomp filter that does not
/// know fchmodat2 may answer EPERM rather than ENOSYS: the emulation then
/// gives the real answer.
pub fn chmod_nofollow(dir: BorrowedFd, name: &str, mode: u32) -> nix::Result<()> {
    let c = cstring(name)?;
    // SAFETY: `c` is a NUL-terminated string that outlives the call.
    let r = Errno::result(unsafe {
        libc::syscall(
            libc::SYS_fchmodat2,
            dir.as_raw_fd(),
            c.as_ptr(),
            mode,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    });
    match r {
        Err(Errno::ENOSYS | Errno::EPERM) => nix::sys::stat::fchmodat(
            Some(dir.as_raw_fd()),
            name,
            nix::sys::stat::Mode::from_bits_truncate(mode),
            nix::sys::stat::FchmodatFlags::NoFollowSymlink,
        ),
        r => r.map(drop),
    }
}

/// prctl with integer arguments.
pub fn prctl(option: i32, arg2: u64) -> nix::Result<()> {
    // SAFETY: every option used by the runtime takes plain integer arguments.
    Errno::result(unsafe { libc::prctl(option, arg2, 0u64, 0u64, 0u64) }).map(drop)
}

/// Create a detached, private procfs instance (fsopen/fsconfig/fsmount)
/// for the caller's pid namespace. Nothing in the container's mount tree
/// can be mounted over it, so writes through it reach real procfs files.
pub fn fresh_procfs() -> nix::Result<OwnedFd> {
    detached_mount(
        "proc",
        &[],
        libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV | libc::MOUNT_ATTR_NOEXEC,
    )
}

/// Whether this process runs in a user namespace other than the host's
/// (the initial one maps every id to itself: "0 0 4294967295"), e.g. as
/// root inside rootless podman's namespace.
pub fn in_user_namespace() -> bool {
    read_proc("/proc/self/uid_map")
        .is_ok_and(|m| m.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"])
}

/// `uid` of this process's user namespace as the parent namespace sees
/// it (the id a peer on a socket outside sees), from /proc/self/uid_map;
/// `uid` itself where that cannot be read or maps nothing.
pub fn outer_uid(uid: u32) -> u32 {
    read_proc("/proc/self/uid_map")
        .ok()
        .and_then(|m| map_id(&m, uid))
        .unwrap_or(uid)
}

/// `id` through the lines "inside outside count" of a uid_map or gid_map;
/// None if no line maps it.
pub fn map_id(map: &str, id: u32) -> Option<u32> {
    map.lines().find_map(|l| {
        let f: Vec<u64> = l
            .split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect();
        let [inside, outside, count] = f[..] else {
            return None;
        };
        let id = u64::from(id);
        (id >= inside && id - inside < count)
            .then(|| u32::try_from(outside + (id - inside)).ok())
            .flatten()
    })
}

/// A new `fstype` filesystem with string options `opts` (an empty value
/// sets a flag option, such as overlay's `userxattr`), mounted nowhere:
/// the returned fd is its root, and the mount goes away with the last fd,
/// also when the process dies.
pub fn detached_mount(fstype: &str, opts: &[(&str, &str)], attrs: u64) -> nix::Result<OwnedFd> {
    let opts: Vec<FsOption> = opts.iter().map(|&(k, v)| FsOption::String(k, v)).collect();
    new_mount(fstype, &opts, attrs)
}

/// One fsconfig(2) option of a filesystem context, as mount(2) passes each
/// comma-separated item of its data string: `key=value` or a bare `key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsOption<'a> {
    String(&'a str, &'a str),
    Flag(&'a str),
}

/// A new `fstype` filesystem configured with `opts` in order (fsopen,
/// fsconfig, FSCONFIG_CMD_CREATE) and mounted nowhere with the mount
/// attributes `attrs` (fsmount MOUNT_ATTR_*): the returned fd names that
/// mount, for move_mount and mount_setattr, and the mount goes away with
/// the last fd unless it gets attached. Kernels before 5.2 (or a seccomp
/// profile) answer ENOSYS.
pub fn new_mount(fstype: &str, opts: &[FsOption], attrs: u64) -> nix::Result<OwnedFd> {
    let fs = fsopen(fstype)?;
    for o in opts {
        match *o {
            FsOption::String(k, v) => fsconfig_string(fs.as_fd(), &cstring(k)?, &cstring(v)?)?,
            FsOption::Flag(k) => fsconfig_flag(fs.as_fd(), &cstring(k)?)?,
        }
    }
    // SAFETY: an fd borrowed for the calls' duration and null pointers the
    // CMD_CREATE command ignores; the returned fd is new and owned here.
    unsafe {
        Errno::result(libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            libc::FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        ))?;
        let m = Errno::result(libc::syscall(
            libc::SYS_fsmount,
            fs.as_raw_fd(),
            libc::FSMOUNT_CLOEXEC,
            attrs,
        ))?;
        Ok(OwnedFd::from_raw_fd(m as RawFd))
    }
}

/// move_mount(2): attaches the detached mount `m` (from `detached_mount`)
/// at `target`, as mount(2) would have mounted it there.
pub fn attach_mount(m: BorrowedFd, target: &std::path::Path) -> nix::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let target = CString::new(target.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    let empty = c"";
    // SAFETY: valid C strings and an fd borrowed for the call's duration.
    Errno::result(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            m.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            libc::MOVE_MOUNT_F_EMPTY_PATH,
        )
    })
    .map(drop)
}

/// open_tree(2) with OPEN_TREE_CLONE: a new bind mount of whatever `path`
/// resolves to (magic links such as /proc/self/exe followed), with the
/// mounts below it when `recursive`, attached nowhere. It lives as long as
/// the returned fd, or anything opened or executed through it; once
/// attached with `attach_mount_at`, the fd keeps naming that mount, whatever
/// later happens to the path it went to. Kernels before 5.2 answer ENOSYS.
pub fn open_tree_clone(path: &std::ffi::CStr, recursive: bool) -> nix::Result<OwnedFd> {
    let mut flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: `path` is a valid C string for the call; the flags ask for a
    // close-on-exec fd, returned to the caller who then owns it.
    let r = Errno::result(unsafe {
        libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags)
    })?;
    // SAFETY: open_tree just returned this fd; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// open_tree(2) clone of what the fd `src` names (AT_EMPTY_PATH: no path
/// is looked up, not even through /proc/self/fd), with the mounts below it
/// when `recursive`: a detached copy for `attach_mount_at`.
pub fn open_tree_clone_fd(src: BorrowedFd, recursive: bool) -> nix::Result<OwnedFd> {
    let mut flags =
        libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC | libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: an fd borrowed for the call and a valid (empty) C string; the
    // flags ask for a close-on-exec fd, returned to the caller who owns it.
    let r = Errno::result(unsafe {
        libc::syscall(libc::SYS_open_tree, src.as_raw_fd(), c"".as_ptr(), flags)
    })?;
    // SAFETY: open_tree just returned this fd; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// listmount(2)'s number (Linux 6.8), which the libc crate does not have
/// yet: the same in the common syscall table of these architectures.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const SYS_LISTMOUNT: libc::c_long = 458;

/// How many mounts this process's mount namespace has, counted up to
/// `limit` (a result of `limit` means at least that many), with
/// listmount(2): mount ids only, nothing formatted, so the count costs
/// next to nothing even where reading mountinfo would not. ENOSYS before
/// Linux 6.8 (and on architectures this does not know the number of).
pub fn count_mounts(limit: usize) -> nix::Result<usize> {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        // struct mnt_id_req, its first version (MNT_ID_REQ_SIZE_VER0):
        // list the mounts below the namespace's root (LSMT_ROOT).
        #[repr(C)]
        struct MntIdReq {
            size: u32,
            spare: u32,
            mnt_id: u64,
            param: u64,
        }
        let req = MntIdReq {
            size: std::mem::size_of::<MntIdReq>() as u32,
            spare: 0,
            mnt_id: u64::MAX,
            param: 0,
        };
        let mut ids = vec![0u64; limit];
        // SAFETY: `req` is a valid mnt_id_req of the size it says, `ids` a
        // buffer of exactly `limit` u64s the kernel writes at most that
        // many ids into; both outlive the call.
        let n = Errno::result(unsafe {
            libc::syscall(
                SYS_LISTMOUNT,
                &req as *const MntIdReq,
                ids.as_mut_ptr(),
                limit,
                0,
            )
        })?;
        Ok(n as usize)
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = limit;
        Err(Errno::ENOSYS)
    }
}

/// move_mount(2) of the detached mount `m` onto the directory or file
/// `target` is an fd of (no path lookup at all).
pub fn attach_mount_at(m: BorrowedFd, target: BorrowedFd) -> nix::Result<()> {
    let empty = c"";
    // SAFETY: a valid C string and fds borrowed for the call's duration.
    Errno::result(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            m.as_raw_fd(),
            empty.as_ptr(),
            target.as_raw_fd(),
            empty.as_ptr(),
            libc::MOVE_MOUNT_F_EMPTY_PATH | libc::MOVE_MOUNT_T_EMPTY_PATH,
        )
    })
    .map(drop)
}

/// mount_setattr(2) on a path relative to `dir`, recursively when asked.
pub fn mount_setattr(
    dir: BorrowedFd,
    path: &str,
    recursive: bool,
    set: u64,
    clear: u64,
) -> nix::Result<()> {
    let c = CString::new(path).map_err(|_| Errno::EINVAL)?;
    // SAFETY: mount_attr is plain integers, for which all zeroes is valid.
    let mut attr: libc::mount_attr = unsafe { std::mem::zeroed() };
    attr.attr_set = set;
    attr.attr_clr = clear;
    mount_setattr_at(dir, &c, recursive, &attr)
}

/// mount_setattr(2) of the propagation type `propagation` (MS_SHARED,
/// MS_SLAVE, MS_PRIVATE or MS_UNBINDABLE) on the mount the fd `m` names
/// (AT_EMPTY_PATH), and on the mounts below it when `recursive`.
pub fn set_propagation(m: BorrowedFd, propagation: u64, recursive: bool) -> nix::Result<()> {
    // SAFETY: mount_attr is plain integers, for which all zeroes is valid.
    let mut attr: libc::mount_attr = unsafe { std::mem::zeroed() };
    attr.propagation = propagation;
    mount_setattr_at(m, c"", recursive, &attr)
}

fn mount_setattr_at(
    dir: BorrowedFd,
    path: &CStr,
    recursive: bool,
    attr: &libc::mount_attr,
) -> nix::Result<()> {
    let mut flags = libc::AT_EMPTY_PATH as u32;
    if recursive {
        flags |= libc::AT_RECURSIVE as u32;
    }
    // SAFETY: an fd borrowed for the call, a valid C string and a fully
    // initialised mount_attr of the size passed.
    Errno::result(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dir.as_raw_fd(),
            path.as_ptr(),
            flags,
            attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    })
    .map(drop)
}

/// The CLONE_NEW* type of the namespace an nsfs fd refers to
/// (ioctl NS_GET_NSTYPE, Linux 4.11).
pub fn ns_type(fd: BorrowedFd) -> nix::Result<i32> {
    // SAFETY: an ioctl without argument on an fd borrowed for the call.
    Errno::result(unsafe { libc::ioctl(fd.as_raw_fd(), libc::NS_GET_NSTYPE) })
}

/// setns(2) on a raw namespace fd.
pub fn setns(fd: BorrowedFd, nstype: i32) -> nix::Result<()> {
    // SAFETY: setns only reads the fd number and flag.
    Errno::result(unsafe { libc::setns(fd.as_raw_fd(), nstype) }).map(drop)
}

/// seccomp(SECCOMP_SET_MODE_FILTER) with `flags` (SECCOMP_FILTER_FLAG_*).
/// Returns the listener fd when `flags` asks for one (NEW_LISTENER).
pub fn seccomp_set_filter(
    program: &[libc::sock_filter],
    flags: libc::c_ulong,
) -> nix::Result<Option<OwnedFd>> {
    let prog = libc::sock_fprog {
        len: u16::try_from(program.len()).map_err(|_| Errno::E2BIG)?,
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: `prog` describes `program`, which outlives the call; the
    // kernel only reads (copies) the instructions.
    let r = Errno::result(unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &prog as *const libc::sock_fprog,
        )
    })?;
    if flags & libc::SECCOMP_FILTER_FLAG_NEW_LISTENER == 0 {
        return Ok(None);
    }
    // SAFETY: with NEW_LISTENER the kernel returns a new (close-on-exec)
    // fd for the filter's listener that nothing else owns.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(r as RawFd) }))
}

/// What std's runtime does before `main` that the runtime needs, for a
/// binary whose entry point is its own (`#![no_main]`): fds 0-2 that are
/// closed are opened on /dev/null, so that no file opened later becomes
/// the container's stdio or receives error messages; SIGPIPE is ignored,
/// so that a write to a closed pipe fails with EPIPE rather than killing
/// the runtime halfway through a start. Aborts, as std does, when
/// /dev/null cannot be opened.
pub fn init_process() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: `fds` is an array of 3 initialised pollfds that outlives the
    // call; a timeout of 0 only reports.
    let polled = unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) } >= 0;
    for p in fds {
        let closed = if polled {
            p.revents & libc::POLLNVAL != 0
        } else {
            nix::fcntl::fcntl(p.fd, nix::fcntl::FcntlArg::F_GETFD) == Err(Errno::EBADF)
        };
        // The lowest free fd is this one: those below it are open.
        if closed
            && nix::fcntl::open(
                "/dev/null",
                nix::fcntl::OFlag::O_RDWR,
                nix::sys::stat::Mode::empty(),
            )
            .map(std::os::fd::IntoRawFd::into_raw_fd)
                != Ok(p.fd)
        {
            std::process::abort();
        }
    }
    // SAFETY: SIG_IGN installs no handler code.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

/// Reset every signal to its default disposition and unblock all of them.
/// Ignored dispositions and the blocked mask survive execve, and the Rust
/// runtime ignores SIGPIPE: the container must not inherit either.
pub fn reset_signals() {
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: installing SIG_DFL is always valid; errors for signal
        // numbers the kernel reserves (32, 33) are irrelevant.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    let empty = nix::sys::signal::SigSet::empty();
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&empty),
        None,
    );
}

/// setdomainname(2) (the NIS domain name of the UTS namespace).
pub fn setdomainname(name: &str) -> nix::Result<()> {
    // SAFETY: pointer and length describe `name`'s bytes for the call.
    Errno::result(unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) }).map(drop)
}

/// A new fd for the slave side of the pty behind `master` (TIOCGPTPEER):
/// no path lookup in the container's /dev/pts is involved.
pub fn pty_peer(master: BorrowedFd) -> nix::Result<OwnedFd> {
    // SAFETY: TIOCGPTPEER takes open flags and returns a new fd we own.
    let fd = Errno::result(unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    })?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Unlock the slave of a pty master (unlockpt).
pub fn unlockpt(master: BorrowedFd) -> nix::Result<()> {
    let zero: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int from the pointer, valid for the call.
    Errno::result(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &zero) }).map(drop)
}

/// Set a terminal's window size.
pub fn set_winsize(fd: BorrowedFd, rows: u16, cols: u16) -> nix::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize from the pointer, valid for the call.
    Errno::result(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) }).map(drop)
}

/// A terminal's window size, if it is one.
pub fn get_winsize(fd: BorrowedFd) -> Option<(u16, u16)> {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes a winsize into the pointer, valid for the call.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    (r == 0).then_some((ws.ws_row, ws.ws_col))
}

/// Make `fd` the controlling terminal of this (new session's) process.
pub fn set_controlling_tty(fd: BorrowedFd) -> nix::Result<()> {
    // SAFETY: TIOCSCTTY takes an integer argument.
    Errno::result(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) }).map(drop)
}

/// Join a new, named session keyring (keyctl KEYCTL_JOIN_SESSION_KEYRING),
/// so the container does not share the caller's keys.
pub fn join_session_keyring(name: &str) -> nix::Result<()> {
    let c = CString::new(name).map_err(|_| Errno::EINVAL)?;
    // SAFETY: KEYCTL_JOIN_SESSION_KEYRING takes a C string that outlives the call.
    Errno::result(unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            libc::KEYCTL_JOIN_SESSION_KEYRING,
            c.as_ptr(),
        )
    })
    .map(drop)
}

/// Read a file of procfs, cgroupfs or sysfs in one or two read(2)s. Such
/// files report size 0, for which std's read_to_string first asks statx
/// and lseek for the size, then starts with tiny probing reads.
pub fn read_proc(path: impl AsRef<std::path::Path>) -> std::io::Result<String> {
    read_whole(std::fs::File::open(path)?)
}

/// `read_proc` of `rel` beneath the procfs whose root is `proc` (an fd the
/// caller opened), not through whatever is mounted at /proc now.
pub fn read_proc_at(proc: BorrowedFd, rel: &str) -> std::io::Result<String> {
    let fd = openat(
        Some(proc.as_raw_fd()),
        rel,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    read_whole(std::fs::File::from(fd))
}

/// read(2) until end of file, into a buffer doubled whenever it fills.
fn read_whole(mut f: std::fs::File) -> std::io::Result<String> {
    use std::io::Read;
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(2 * len, 0);
        }
        match f.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(len);
    String::from_utf8(buf).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// open(2) returning an owned fd.
pub fn open<P: ?Sized + nix::NixPath>(
    path: &P,
    flags: nix::fcntl::OFlag,
    mode: nix::sys::stat::Mode,
) -> nix::Result<OwnedFd> {
    openat(None, path, flags, mode)
}

/// openat(2) returning an owned fd.
pub fn openat<P: ?Sized + nix::NixPath>(
    dir: Option<RawFd>,
    path: &P,
    flags: nix::fcntl::OFlag,
    mode: nix::sys::stat::Mode,
) -> nix::Result<OwnedFd> {
    let fd = nix::fcntl::openat(dir, path, flags, mode)?;
    // SAFETY: openat just returned this fd; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Becomes root of the user namespace just entered (created or joined),
/// so that what follows is checked against its root, not the unmapped ids
/// the process arrived with. The runtime's one way to do it (the init,
/// `exec`, the intermediate, the image crate's rootless helper); the
/// error names the call that failed.
pub fn become_userns_root() -> std::io::Result<()> {
    let zero = |what: &str, r: nix::Result<()>| {
        r.map_err(|e| std::io::Error::other(format!("{what}(0): {e}")))
    };
    zero(
        "setresgid",
        nix::unistd::setresgid(0.into(), 0.into(), 0.into()),
    )?;
    zero(
        "setresuid",
        nix::unistd::setresuid(0.into(), 0.into(), 0.into()),
    )
}

/// The flag `set_flag_on_signals` handlers set; null until one is installed.
static FLAG_ON_SIGNAL: std::sync::atomic::AtomicPtr<std::sync::atomic::AtomicBool> =
    std::sync::atomic::AtomicPtr::new(std::ptr::null_mut());

extern "C" fn set_flag(_: libc::c_int) {
    let p = FLAG_ON_SIGNAL.load(std::sync::atomic::Ordering::Relaxed);
    // SAFETY: p is null or was made from a &'static AtomicBool.
    if let Some(flag) = unsafe { p.as_ref() } {
        flag.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Makes each of `signals` set `flag` (with SA_RESTART) instead of its
/// default action: the only signal handler the runtime installs, so that
/// a long operation can stop through its error path, which cleans up.
pub fn set_flag_on_signals(
    flag: &'static std::sync::atomic::AtomicBool,
    signals: &[nix::sys::signal::Signal],
) -> nix::Result<()> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet};
    let ptr = std::ptr::from_ref(flag).cast_mut();
    FLAG_ON_SIGNAL.store(ptr, std::sync::atomic::Ordering::Relaxed);
    let act = SigAction::new(
        SigHandler::Handler(set_flag),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for &sig in signals {
        // SAFETY: the handler only loads a pointer and stores to an
        // atomic, both async-signal-safe.
        unsafe { sigaction(sig, &act) }?;
    }
    Ok(())
}

/// kill(2) with a raw signal number: realtime signals have no nix::Signal.
pub fn kill(pid: i32, sig: i32) -> nix::Result<()> {
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    Errno::result(unsafe { libc::kill(pid, sig) }).map(drop)
}

/// `struct sched_attr` of sched_setattr(2), SCHED_ATTR_SIZE_VER1 layout
/// (libc's lacks the utilization clamps that the UTIL_CLAMP flags need).
#[repr(C)]
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SchedAttr {
    pub size: u32,
    pub policy: u32,
    pub flags: u64,
    pub nice: i32,
    pub priority: u32,
    pub runtime: u64,
    pub deadline: u64,
    pub period: u64,
    pub util_min: u32,
    pub util_max: u32,
}

/// sched_setattr(2) for the calling thread.
pub fn sched_setattr(attr: &SchedAttr) -> std::io::Result<()> {
    // SAFETY: attr is a live SchedAttr whose size field the caller set to
    // the structure's size (at most what the kernel reads); the kernel does
    // not keep the pointer.
    let rc = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, attr as *const SchedAttr, 0) };
    if rc == -1 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// ioprio_set(2) of the calling process (IOPRIO_WHO_PROCESS, pid 0).
pub fn ioprio_set(value: libc::c_int) -> std::io::Result<()> {
    const IOPRIO_WHO_PROCESS: libc::c_int = 1;
    // SAFETY: ioprio_set takes three integers and no memory.
    let rc = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, value) };
    if rc == -1 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// personality(2): sets the execution domain (inherited across exec).
pub fn personality(value: libc::c_ulong) -> std::io::Result<()> {
    // SAFETY: personality takes one integer and no memory.
    if unsafe { libc::personality(value) } == -1 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// flock(2) on an open file (`op`: LOCK_SH, LOCK_EX, ...).
pub fn flock(f: BorrowedFd, op: libc::c_int) -> std::io::Result<()> {
    // SAFETY: flock on a live fd; no memory is involved.
    if unsafe { libc::flock(f.as_raw_fd(), op) } != 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Sets an extended attribute on the open file `fd`, or (None) on `path`
/// itself, not following a final symlink (lsetxattr).
pub fn set_xattr(
    fd: Option<RawFd>,
    path: &std::ffi::CStr,
    name: &std::ffi::CStr,
    value: &[u8],
) -> std::io::Result<()> {
    // SAFETY: all pointers come from live C strings and a slice whose
    // lengths are passed alongside; the calls only read them.
    let r = unsafe {
        match fd {
            Some(fd) => libc::fsetxattr(fd, name.as_ptr(), value.as_ptr().cast(), value.len(), 0),
            None => libc::lsetxattr(
                path.as_ptr(),
                name.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            ),
        }
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn map_id_through_a_uid_map() {
        assert_eq!(
            super::map_id("         0          0 4294967295\n", 1001),
            Some(1001)
        );
        // rootless podman: its root is the user, 1..65536 subordinate ids
        let map = "0 1001 1\n1 100000 65536\n";
        assert_eq!(super::map_id(map, 0), Some(1001));
        assert_eq!(super::map_id(map, 5), Some(100004));
        assert_eq!(super::map_id(map, 70000), None);
    }
}
