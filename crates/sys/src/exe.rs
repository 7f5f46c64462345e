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
//!   in /proc/self/pagemap, and not writable, so that none can appear
//!   before it is replaced: code and read-only data) is mapped again from
//!   the new view at the same address, offset and protection. The new
//!   view is the same inode, so the bytes are the page cache's same pages;
//!   the code running this replaces its own mapping, and faults the same
//!   bytes back in.
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

/// A mapping of the binary, from its line in /proc/self/maps, and whether
/// it holds pages of the process's own (anonymous ones: the copies that
/// writes, a debugger's breakpoints or uprobes make).
struct Vma {
    start: usize,
    end: usize,
    prot: i32,
    offset: u64,
    own_pages: bool,
}

/// The mappings in maps text of the file mapped at address `anchor`.
/// The file is told by the device and inode the kernel shows there, not by
/// stat(2)'s, which differ on some filesystems (btrfs gives each subvolume
/// a device of its own).
fn vmas_of(maps: &str, anchor: usize) -> Vec<Vma> {
    // (mapping, its device and inode fields)
    let mut all: Vec<(Vma, (&str, &str))> = Vec::new();
    for line in maps.lines() {
        let mut f = line.split_ascii_whitespace();
        let Some(first) = f.next() else { continue };
        // range perms offset dev inode [path]
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
                own_pages: false,
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

/// Whether a pagemap entry is a page of the process's own: present and
/// not the file's page (bit 61 clear), or swapped out (only anonymous
/// pages are).
fn own_page(entry: u64) -> bool {
    let (present, swapped, file) = (entry >> 63 & 1, entry >> 62 & 1, entry >> 61 & 1);
    (present == 1 && file == 0) || swapped == 1
}

/// Whether the pages of `[start, end)` include one of the process's own,
/// read from its /proc/self/pagemap (one 8-byte entry a page; only the
/// page tables of this range are walked, where smaps would format every
/// mapping of the process).
fn holds_own_pages(pagemap: &File, start: usize, end: usize) -> nix::Result<bool> {
    use std::os::unix::fs::FileExt;
    // SAFETY: sysconf has no memory effects.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    let mut entries = vec![0u8; (end - start) / page * 8];
    pagemap
        .read_exact_at(&mut entries, (start / page * 8) as u64)
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
    Ok(entries
        .chunks_exact(8)
        .any(|e| own_page(u64::from_ne_bytes(e.try_into().unwrap()))))
}

/// How a mapping of the binary is replaced (module comment).
#[derive(Debug, PartialEq)]
enum Replacement {
    Remap,
    Copy,
}

fn replacement(v: &Vma) -> nix::Result<Replacement> {
    let own_pages = v.own_pages || v.prot & libc::PROT_WRITE != 0;
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
    let maps = crate::read_proc("/proc/self/maps").map_err(|_| Errno::ENOENT)?;
    // An address in this very code, which is the binary's.
    let mut vmas = vmas_of(&maps, switch_exe as *const () as usize);
    if vmas.is_empty() {
        return Err(Errno::ENOENT);
    }
    let pagemap = File::open("/proc/self/pagemap").map_err(|_| Errno::ENOENT)?;
    for v in vmas.iter_mut().filter(|v| v.prot & libc::PROT_WRITE == 0) {
        v.own_pages = holds_own_pages(&pagemap, v.start, v.end)?;
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

    const MAPS: &str = "\
5555d7000000-5555d7001000 r--p 00000000 08:01 42 /usr/bin/x
5555d7001000-5555d7003000 r-xp 00001000 08:01 42 /usr/bin/x
5555d7003000-5555d7004000 r--p 00003000 08:01 42 /usr/bin/x
5555d7004000-5555d7005000 rw-p 00004000 08:01 42 /usr/bin/x
5555d7005000-5555d7006000 rw-p 00000000 00:00 0
7f0000000000-7f0000001000 r-xp 00000000 08:01 43 /usr/lib/y
7f0000001000-7f0000002000 r--p 00000000 00:2a 42 /mnt/other-fs-same-inode
7f0000002000-7f0000003000 r--p 00001000 08:01 42 /usr/bin/x
";
    /// An address in the code of /usr/bin/x.
    const IN_X: usize = 0x5555d7002345;

    #[test]
    fn finds_the_files_mappings() {
        let v = vmas_of(MAPS, IN_X);
        let got: Vec<_> = v
            .iter()
            .map(|v| (v.start, v.end - v.start, v.prot, v.offset))
            .collect();
        let (r, x, w) = (libc::PROT_READ, libc::PROT_EXEC, libc::PROT_WRITE);
        assert_eq!(
            got,
            [
                (0x5555d7000000, 0x1000, r, 0),
                (0x5555d7001000, 0x2000, r | x, 0x1000),
                (0x5555d7003000, 0x1000, r, 0x3000),
                (0x5555d7004000, 0x1000, r | w, 0x4000),
                (0x7f0000002000, 0x1000, r, 0x1000),
            ]
        );
        // an anchor in anonymous memory, or in no mapping, finds nothing
        assert!(vmas_of(MAPS, 0x5555d7005800).is_empty());
        assert!(vmas_of(MAPS, 0x1000).is_empty());
    }

    #[test]
    fn code_and_read_only_data_are_remapped_what_holds_own_pages_copied() {
        let mut v = vmas_of(MAPS, IN_X);
        // read-only data relocated at start (RELRO)
        v[2].own_pages = true;
        let how: Vec<_> = v.iter().map(replacement).collect();
        use Replacement::*;
        assert_eq!(how, [Ok(Remap), Ok(Remap), Ok(Copy), Ok(Copy), Ok(Remap)]);
        // code holding a breakpoint's page
        v[1].own_pages = true;
        assert_eq!(replacement(&v[1]), Err(Errno::EBUSY));
    }

    #[test]
    fn pagemap_entries() {
        let (present, swapped, file) = (1u64 << 63, 1u64 << 62, 1u64 << 61);
        assert!(!own_page(0), "not present");
        assert!(!own_page(present | file | 1234), "the file's page");
        assert!(own_page(present | 1234), "an anonymous copy");
        assert!(own_page(swapped | 77), "swapped out");
    }

    /// A private mapping of a file holds pages of its own once written to,
    /// as this process's pagemap tells.
    #[test]
    fn own_pages_of_a_real_mapping() {
        // this test's own binary, opened read-only: four pages of it
        let f = File::open("/proc/self/exe").unwrap();
        // SAFETY: sysconf has no memory effects.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let len = 4 * page;
        // SAFETY: a fresh private mapping of the file's start, unmapped below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE,
                f.as_raw_fd(),
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        let (start, end) = (p as usize, p as usize + len);
        let pagemap = File::open("/proc/self/pagemap").unwrap();
        // SAFETY: reading inside the mapping (ELF: its first byte is 0x7f).
        assert_eq!(unsafe { std::ptr::read_volatile(p.cast::<u8>()) }, 0x7f);
        assert!(!holds_own_pages(&pagemap, start, end).unwrap());
        // SAFETY: writing inside the writable mapping, in its third page.
        unsafe { std::ptr::write_volatile(p.cast::<u8>().add(2 * page), 1) };
        assert!(holds_own_pages(&pagemap, start, end).unwrap());
        assert!(!holds_own_pages(&pagemap, start, start + 2 * page).unwrap());
        assert!(holds_own_pages(&pagemap, start + 2 * page, start + 3 * page).unwrap());
        // SAFETY: the mapping made above, no longer used.
        unsafe { libc::munmap(p, len) };
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
