//! Pointing the running process's exe link (/proc/PID/exe) at another view
//! of the same file, without an exec.
//!
//! The kernel changes a process's exe file on `prctl(PR_SET_MM,
//! PR_SET_MM_MAP)` with an `exe_fd` (CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE
//! in the caller's user namespace), but only once no mapping of the process
//! refers to the old file's path (EBUSY otherwise). So every mapping of the
//! binary is replaced first by one that does not refer to that path:
//!
//! - a mapping that holds no page of the process's own (no anonymous page
//!   in smaps, and not writable, so that none can appear before it is
//!   replaced: code and read-only data) is mapped again from the new view at
//!   the same address, offset and protection. The new view is the same
//!   inode, so the bytes are the page cache's same pages; the code running
//!   this replaces its own mapping, and faults the same bytes back in.
//! - any other mapping of the binary (data, and RELRO, which the startup
//!   relocated and then made read-only) is copied into anonymous memory,
//!   which replaces it in one `mremap`. Nothing may write to it between the
//!   copy and that `mremap`: the caller is single-threaded, and what runs in
//!   between is two syscalls, whose errno lives in thread-local storage,
//!   which a static binary allocates on the heap.
//! - code with pages of the process's own (a debugger's breakpoints, a
//!   uprobe's) is neither: mapped again it would lose them, and copied, a
//!   uprobe's trap would no longer find its probe. Nothing is changed then
//!   (EBUSY).
//!
//! Any later failure leaves the process running correctly (every mapping
//! replaced so far holds the same bytes as before) with its old exe link,
//! but one: an `mremap` the kernel fails for want of memory after it has
//! unmapped its target. The process then dies at its next use of that
//! data (a crash, never a wrong result).

use nix::errno::Errno;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;

/// struct prctl_mm_map of linux/prctl.h, which the libc crate lacks.
#[repr(C)]
struct MmMap {
    start_code: u64,
    end_code: u64,
    start_data: u64,
    end_data: u64,
    start_brk: u64,
    brk: u64,
    start_stack: u64,
    arg_start: u64,
    arg_end: u64,
    env_start: u64,
    env_end: u64,
    auxv: *mut u64,
    auxv_size: u32,
    exe_fd: u32,
}

/// A mapping of the binary, from its header line in /proc/self/smaps,
/// with the size of its anonymous pages.
struct Vma {
    start: usize,
    end: usize,
    prot: i32,
    offset: u64,
    anonymous_kib: u64,
}

/// The mappings in smaps text of the file mapped at address `anchor`.
/// The file is told by the device and inode the kernel shows there, not by
/// stat(2)'s, which differ on some filesystems (btrfs gives each subvolume
/// a device of its own).
fn vmas_of(smaps: &str, anchor: usize) -> Vec<Vma> {
    // (mapping, its device and inode fields)
    let mut all: Vec<(Vma, (&str, &str))> = Vec::new();
    for line in smaps.lines() {
        let mut f = line.split_ascii_whitespace();
        let Some(first) = f.next() else { continue };
        if first == "Anonymous:" {
            if let Some((v, _)) = all.last_mut() {
                v.anonymous_kib = f.next().and_then(|k| k.parse().ok()).unwrap_or(u64::MAX);
            }
            continue;
        }
        // A mapping's header: range perms offset dev inode [path].
        let Some((a, b)) = first.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
        else {
            continue;
        };
        let perms = f.next().unwrap_or("").as_bytes();
        let Some(offset) = f.next().and_then(|o| u64::from_str_radix(o, 16).ok()) else {
            continue;
        };
        let (Some(dev), Some(ino)) = (f.next(), f.next()) else {
            continue;
        };
        let mut prot = 0;
        for (c, p) in [
            (b'r', libc::PROT_READ),
            (b'w', libc::PROT_WRITE),
            (b'x', libc::PROT_EXEC),
        ] {
            if perms.contains(&c) {
                prot |= p;
            }
        }
        all.push((
            Vma {
                start,
                end,
                prot,
                offset,
                // unknown until its Anonymous line says: not none
                anonymous_kib: u64::MAX,
            },
            (dev, ino),
        ));
    }
    let Some(file) = all
        .iter()
        .find(|(v, _)| (v.start..v.end).contains(&anchor))
        .map(|(_, id)| *id)
        .filter(|(_, ino)| *ino != "0")
    else {
        return Vec::new();
    };
    all.into_iter()
        .filter(|(_, id)| *id == file)
        .map(|(v, _)| v)
        .collect()
}

/// How a mapping of the binary is replaced (module comment).
#[derive(Debug, PartialEq)]
enum Replacement {
    Remap,
    Copy,
}

fn replacement(v: &Vma) -> nix::Result<Replacement> {
    let own_pages = v.anonymous_kib != 0 || v.prot & libc::PROT_WRITE != 0;
    match (own_pages, v.prot & libc::PROT_EXEC != 0) {
        (false, _) => Ok(Replacement::Remap),
        (true, false) => Ok(Replacement::Copy),
        (true, true) => Err(Errno::EBUSY),
    }
}

/// Map `vma` again from `file`, in place.
fn remap_from(vma: &Vma, file: &File) -> nix::Result<()> {
    // SAFETY: MAP_FIXED over exactly this mapping of the same inode at the
    // same offset and protection: every address stays mapped, to the same
    // bytes (the mapping holds no anonymous page and is not writable, so
    // the file's bytes are all it has). The fd is valid for the call.
    let r = unsafe {
        libc::mmap(
            vma.start as *mut libc::c_void,
            vma.end - vma.start,
            vma.prot,
            libc::MAP_PRIVATE | libc::MAP_FIXED,
            file.as_raw_fd(),
            vma.offset as libc::off_t,
        )
    };
    if r == libc::MAP_FAILED {
        return Err(Errno::last());
    }
    Ok(())
}

/// Replace `vma` by an anonymous copy of its bytes.
fn copy_to_anonymous(vma: &Vma) -> nix::Result<()> {
    if vma.prot & libc::PROT_READ == 0 {
        return Err(Errno::EACCES);
    }
    let len = vma.end - vma.start;
    // SAFETY: a fresh private anonymous mapping, used only below. Every
    // page of it is written next: populated here at once rather than in a
    // fault per page.
    let new = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
            -1,
            0,
        )
    };
    if new == libc::MAP_FAILED {
        return Err(Errno::last());
    }
    // SAFETY: both ranges are `len` bytes, mapped and readable (the old one
    // has PROT_READ, checked above) or writable (the new one), and distinct
    // mappings, so they do not overlap. From here to the mremap nothing
    // writes to the old range (module comment).
    let moved = unsafe {
        std::ptr::copy_nonoverlapping(vma.start as *const u8, new.cast::<u8>(), len);
        libc::mprotect(new, len, vma.prot) == 0
            && libc::mremap(
                new,
                len,
                len,
                libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
                vma.start as *mut libc::c_void,
            ) != libc::MAP_FAILED
    };
    if !moved {
        let e = Errno::last();
        // SAFETY: the anonymous mapping made above, not moved: nothing
        // else refers to it.
        unsafe { libc::munmap(new, len) };
        return Err(e);
    }
    Ok(())
}

/// The values PR_SET_MM_MAP sets, as the kernel has them now (fields 26-28
/// and 45-51 of /proc/self/stat), brk left for the caller.
fn mm_map_from_stat(stat: &str) -> Option<MmMap> {
    // The command name (field 2) may hold spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_ascii_whitespace().collect();
    // `rest` starts at field 3.
    let field = |n: usize| f.get(n - 3)?.parse::<u64>().ok();
    Some(MmMap {
        start_code: field(26)?,
        end_code: field(27)?,
        start_stack: field(28)?,
        start_data: field(45)?,
        end_data: field(46)?,
        start_brk: field(47)?,
        brk: 0,
        arg_start: field(48)?,
        arg_end: field(49)?,
        env_start: field(50)?,
        env_end: field(51)?,
        auxv: std::ptr::null_mut(),
        auxv_size: 0,
        exe_fd: 0,
    })
}

/// Make `file` the exe of the calling process, which must be
/// single-threaded and must be running from another view (another mount)
/// of the very same file: `file` must be the same device and inode as
/// /proc/self/exe, or nothing is done (EXDEV).
pub fn switch_exe(file: &File) -> nix::Result<()> {
    let meta = file.metadata().map_err(|_| Errno::EBADF)?;
    let exe = std::fs::metadata("/proc/self/exe").map_err(|_| Errno::ENOENT)?;
    if (exe.dev(), exe.ino()) != (meta.dev(), meta.ino()) {
        return Err(Errno::EXDEV);
    }
    let mut map = crate::read_proc("/proc/self/stat")
        .ok()
        .and_then(|s| mm_map_from_stat(&s))
        .ok_or(Errno::EINVAL)?;
    map.exe_fd = file.as_raw_fd() as u32;
    let smaps = crate::read_proc("/proc/self/smaps").map_err(|_| Errno::ENOENT)?;
    // An address in this very code, which is the binary's.
    let vmas = vmas_of(&smaps, switch_exe as *const () as usize);
    if vmas.is_empty() {
        return Err(Errno::ENOENT);
    }
    let plan = vmas
        .iter()
        .map(|v| Ok((v, replacement(v)?)))
        .collect::<nix::Result<Vec<_>>>()?;
    for (v, how) in plan {
        match how {
            Replacement::Remap => remap_from(v, file)?,
            Replacement::Copy => copy_to_anonymous(v)?,
        }
    }
    // SAFETY: brk(0) changes nothing and returns the current break. Read
    // last: nothing allocates between it and the prctl.
    map.brk = unsafe { libc::syscall(libc::SYS_brk, 0) } as u64;
    // SAFETY: `map` is a fully initialised prctl_mm_map holding the
    // kernel's own current values (brk just read, the rest from
    // /proc/self/stat, which only brk changes), no auxv, and an fd valid
    // for the call; the size passed is its size.
    Errno::result(unsafe {
        libc::prctl(
            libc::PR_SET_MM,
            libc::PR_SET_MM_MAP,
            &map as *const MmMap,
            std::mem::size_of::<MmMap>(),
            0,
        )
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
5555d7000000-5555d7001000 r--p 00000000 08:01 42 /usr/bin/x
Size:                  4 kB
Anonymous:             0 kB
5555d7001000-5555d7003000 r-xp 00001000 08:01 42 /usr/bin/x
Size:                  8 kB
Anonymous:             0 kB
5555d7003000-5555d7004000 r--p 00003000 08:01 42 /usr/bin/x
Anonymous:             4 kB
5555d7004000-5555d7005000 rw-p 00004000 08:01 42 /usr/bin/x
Anonymous:             0 kB
5555d7005000-5555d7006000 rw-p 00000000 00:00 0
Anonymous:             4 kB
7f0000000000-7f0000001000 r-xp 00000000 08:01 43 /usr/lib/y
Anonymous:             0 kB
7f0000001000-7f0000002000 r--p 00000000 00:2a 42 /mnt/other-fs-same-inode
Anonymous:             0 kB
7f0000002000-7f0000003000 r--p 00001000 08:01 42 /usr/bin/x
";
    /// An address in the code of /usr/bin/x.
    const IN_X: usize = 0x5555d7002345;

    #[test]
    fn finds_the_files_mappings_with_their_anonymous_pages() {
        let v = vmas_of(SMAPS, IN_X);
        let got: Vec<_> = v
            .iter()
            .map(|v| (v.start, v.end - v.start, v.prot, v.offset, v.anonymous_kib))
            .collect();
        assert_eq!(
            got,
            [
                (0x5555d7000000, 0x1000, libc::PROT_READ, 0, 0),
                (
                    0x5555d7001000,
                    0x2000,
                    libc::PROT_READ | libc::PROT_EXEC,
                    0x1000,
                    0
                ),
                (0x5555d7003000, 0x1000, libc::PROT_READ, 0x3000, 4),
                (
                    0x5555d7004000,
                    0x1000,
                    libc::PROT_READ | libc::PROT_WRITE,
                    0x4000,
                    0
                ),
                // no Anonymous line: counted as holding some
                (0x7f0000002000, 0x1000, libc::PROT_READ, 0x1000, u64::MAX),
            ]
        );
        // an anchor in anonymous memory, or in no mapping, finds nothing
        assert!(vmas_of(SMAPS, 0x5555d7005800).is_empty());
        assert!(vmas_of(SMAPS, 0x1000).is_empty());
    }

    #[test]
    fn code_and_read_only_data_are_remapped_what_holds_own_pages_copied() {
        let v = vmas_of(SMAPS, IN_X);
        let how: Vec<_> = v.iter().map(replacement).collect();
        use Replacement::*;
        assert_eq!(how, [Ok(Remap), Ok(Remap), Ok(Copy), Ok(Copy), Ok(Copy)]);
        // code holding a breakpoint's page
        let traced = Vma {
            anonymous_kib: 4,
            ..vmas_of(SMAPS, IN_X).swap_remove(1)
        };
        assert_eq!(replacement(&traced), Err(Errno::EBUSY));
    }

    #[test]
    fn reads_the_mm_fields_after_a_command_name_with_parentheses() {
        // 52 fields; field n holds n*1000 from field 3 on.
        let tail: Vec<String> = (3..=52).map(|n| (n * 1000).to_string()).collect();
        let stat = format!("7 (a) b) (c) {}", tail.join(" "));
        let m = mm_map_from_stat(&stat).unwrap();
        assert_eq!(
            (m.start_code, m.end_code, m.start_stack),
            (26000, 27000, 28000)
        );
        assert_eq!(
            (
                m.start_data,
                m.end_data,
                m.start_brk,
                m.arg_start,
                m.arg_end
            ),
            (45000, 46000, 47000, 48000, 49000)
        );
        assert_eq!((m.env_start, m.env_end), (50000, 51000));
        assert!(mm_map_from_stat("7 (x) S 1 2").is_none());
    }
}
