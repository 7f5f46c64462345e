//! The one parser of /proc/PID/mountinfo (proc(5)). The kernel writes a
//! space, tab, newline or backslash in a path or option as a `\ooo` octal
//! escape: every field is decoded here, so a bundle in "/srv/my bundle"
//! matches its own mount points.

/// One line of mountinfo, fields decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: u32,
    pub parent: u32,
    /// The root of the mount within its filesystem.
    pub root: String,
    pub mount_point: String,
    pub options: String,
    pub fstype: String,
    pub source: String,
    pub super_options: String,
}

/// This process's mount table, read now.
pub fn read() -> std::io::Result<String> {
    crate::read_proc("/proc/self/mountinfo")
}

/// This process's mount table read only as far as needed: `visit` gets
/// each entry in order and returns true once it has seen enough. The
/// kernel formats mountinfo as it is read (several µs a line), so a search
/// for mounts that come early (the cgroup hierarchies, mounted at boot)
/// costs the same on a node with thousands of mounts as on an empty one.
pub fn scan(visit: impl FnMut(Entry) -> bool) -> std::io::Result<()> {
    scan_from(std::fs::File::open("/proc/self/mountinfo")?, visit)
}

fn scan_from(
    mut f: impl std::io::Read,
    mut visit: impl FnMut(Entry) -> bool,
) -> std::io::Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut chunk = [0u8; 4096];
    loop {
        let n = f.read(&mut chunk)?;
        buf.extend_from_slice(&chunk[..n]);
        // Whole lines only (or the last one, at EOF).
        let end = if n == 0 {
            buf.len()
        } else {
            match buf.iter().rposition(|&c| c == b'\n') {
                Some(i) => i + 1,
                None => continue,
            }
        };
        let text = std::str::from_utf8(&buf[..end])
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        for e in parse(text) {
            if visit(e) {
                return Ok(());
            }
        }
        if n == 0 {
            return Ok(());
        }
        buf.drain(..end);
    }
}

/// The entries of mountinfo `text`, in its order; malformed lines skipped.
pub fn parse(text: &str) -> impl Iterator<Item = Entry> + '_ {
    text.lines().filter_map(entry)
}

fn entry(line: &str) -> Option<Entry> {
    // Optional fields (shared:N, master:N, …) sit between the mount options
    // and the " - " separator.
    let (pre, post) = line.split_once(" - ")?;
    let mut pre = pre.split(' ');
    let mut post = post.split(' ');
    let id = pre.next()?.parse().ok()?;
    let parent = pre.next()?.parse().ok()?;
    let _dev = pre.next()?;
    Some(Entry {
        id,
        parent,
        root: unescape(pre.next()?),
        mount_point: unescape(pre.next()?),
        options: unescape(pre.next()?),
        fstype: unescape(post.next()?),
        source: unescape(post.next()?),
        super_options: unescape(post.next().unwrap_or("")),
    })
}

/// Decode the kernel's `\ooo` escapes (mangle() in fs/proc_namespace.c).
pub fn unescape(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], oct) {
            (b'\\', Some(d)) => {
                let v = d.iter().fold(0u32, |a, c| a * 8 + u32::from(c - b'0'));
                match u8::try_from(v) {
                    Ok(v) => out.push(v),
                    Err(_) => out.extend_from_slice(&b[i..i + 4]),
                }
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mount point of the mount `path` is on: the longest mount point
/// above it.
pub fn mount_point_of(text: &str, path: &std::path::Path) -> Option<String> {
    parse(text)
        .map(|e| e.mount_point)
        .filter(|mp| path.starts_with(mp))
        .max_by_key(|mp| mp.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_escapes_in_every_field() {
        let mi = "36 35 98:0 /a\\040b /mnt/my\\040dir\\011x rw,noatime master:1 - ext3 /dev/root\\134x rw,errors=continue\n";
        let e: Vec<Entry> = parse(mi).collect();
        assert_eq!(
            e,
            [Entry {
                id: 36,
                parent: 35,
                root: "/a b".into(),
                mount_point: "/mnt/my dir\tx".into(),
                options: "rw,noatime".into(),
                fstype: "ext3".into(),
                source: "/dev/root\\x".into(),
                super_options: "rw,errors=continue".into(),
            }]
        );
    }

    #[test]
    fn unescape_leaves_what_is_not_an_escape() {
        assert_eq!(unescape("plain"), "plain");
        assert_eq!(unescape("a\\04"), "a\\04");
        assert_eq!(unescape("a\\09x"), "a\\09x");
        assert_eq!(unescape("\\134\\040"), "\\ ");
    }

    #[test]
    fn scan_stops_early_and_sees_every_line() {
        // Lines across the 4 KiB reads, and a last one without a newline.
        let text: String = (0..500)
            .map(|i| format!("{i} 1 0:{i} / /mnt/{i} rw - tmpfs tmpfs rw\n"))
            .collect::<String>()
            + "9999 1 0:9 / /last rw - tmpfs tmpfs rw";
        let mut seen = Vec::new();
        scan_from(text.as_bytes(), |e| {
            seen.push(e.id);
            false
        })
        .unwrap();
        assert_eq!(seen.len(), 501);
        assert!(seen[..500]
            .iter()
            .enumerate()
            .all(|(i, id)| *id == i as u32));
        assert_eq!(seen[500], 9999);
        let mut n = 0;
        scan_from(text.as_bytes(), |e| {
            n += 1;
            e.id == 7
        })
        .unwrap();
        assert_eq!(n, 8);
        // the real table
        scan(|_| true).unwrap();
    }

    #[test]
    fn skips_malformed_lines() {
        assert_eq!(parse("garbage\n1 2 3 / /x rw\n").count(), 0);
    }

    #[test]
    fn mount_point_of_longest_prefix_with_spaces() {
        let mi = "\
1 0 0:1 / / rw - ext4 /dev/sda rw
2 1 0:2 / /srv/my\\040bundles rw - tmpfs tmpfs rw
3 1 0:3 / /srv/my rw - tmpfs tmpfs rw";
        let of = |p: &str| mount_point_of(mi, std::path::Path::new(p));
        assert_eq!(
            of("/srv/my bundles/b/rootfs").as_deref(),
            Some("/srv/my bundles")
        );
        assert_eq!(of("/srv/my/x").as_deref(), Some("/srv/my"));
        assert_eq!(of("/srv/mybundles").as_deref(), Some("/"));
        let mi = "1 0 8:1 / / rw shared:1 - ext4 /dev/sda1 rw\n\
                  2 1 0:30 / /tmp rw shared:2 - tmpfs tmpfs rw\n\
                  3 2 0:31 / /tmp/b rw - tmpfs tmpfs rw\n\
                  4 2 0:32 / /tmp/b rw - tmpfs tmpfs rw\n";
        let of = |p: &str| mount_point_of(mi, std::path::Path::new(p));
        assert_eq!(of("/tmp/b/rootfs").as_deref(), Some("/tmp/b"));
        assert_eq!(of("/tmp/bundle").as_deref(), Some("/tmp"));
        assert_eq!(of("/tmp").as_deref(), Some("/tmp"));
        assert_eq!(of("/var/lib").as_deref(), Some("/"));
    }
}
