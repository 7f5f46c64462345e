//! bpf(2), restricted to what cgroup v2 device filters need: loading a
//! BPF_PROG_TYPE_CGROUP_DEVICE program and attaching, listing and
//! detaching such programs on a cgroup. Each call builds its own attribute
//! block, so no caller can hand the kernel a structure of the wrong shape.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

// include/uapi/linux/bpf.h
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
/// Attach beside the programs already there (they are detached after).
pub const F_ALLOW_MULTI: u32 = 2;

/// struct bpf_insn
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// dst in the low nibble, src in the high one
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
}

#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
}

#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

#[repr(C)]
#[derive(Default)]
struct GetFdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

/// Private: only the typed calls below choose `T` and `cmd` together.
fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: every caller passes the repr(C) attribute block that `cmd`
    // expects, fully initialised, with its size, so the kernel reads and
    // writes only inside it; pointers inside it point to live buffers of
    // the lengths given next to them.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>(),
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Wraps the new fd a successful bpf(2) returned.
fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: the kernel just returned this fd; nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

/// Loads a cgroup device program; the verifier's log goes to `log`
/// (NUL-terminated by the kernel).
pub fn load_device_prog(prog: &[Insn], license: &CStr, log: &mut [u8]) -> io::Result<OwnedFd> {
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: prog.len() as u32,
        insns: prog.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: u32::from(!log.is_empty()),
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
    };
    bpf(BPF_PROG_LOAD, &mut attr).map(owned)
}

/// Ids of the device programs attached to `cgroup` (at most `max`).
pub fn query_device_progs(cgroup: BorrowedFd, max: usize) -> io::Result<Vec<u32>> {
    let mut ids = vec![0u32; max];
    let mut attr = QueryAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Default::default()
    };
    bpf(BPF_PROG_QUERY, &mut attr)?;
    ids.truncate(attr.prog_cnt as usize);
    Ok(ids)
}

/// Attaches a device program to `cgroup` (`flags`: 0 or F_ALLOW_MULTI).
pub fn attach_device_prog(cgroup: BorrowedFd, prog: BorrowedFd, flags: u32) -> io::Result<()> {
    let mut attr = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: flags,
    };
    bpf(BPF_PROG_ATTACH, &mut attr).map(drop)
}

/// Detaches a device program from `cgroup`.
pub fn detach_device_prog(cgroup: BorrowedFd, prog: BorrowedFd) -> io::Result<()> {
    let mut attr = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: 0,
    };
    bpf(BPF_PROG_DETACH, &mut attr).map(drop)
}

/// An fd for the loaded program with id `id`.
pub fn prog_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut attr = GetFdAttr {
        prog_id: id,
        ..Default::default()
    };
    bpf(BPF_PROG_GET_FD_BY_ID, &mut attr).map(owned)
}
