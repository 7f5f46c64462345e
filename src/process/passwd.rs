//! Lookups in passwd(5) text the caller has read: the host's (the owner
//! name `state` reports) or the container's (HOME for a process without
//! one). Not through NSS: the release binary is static, where NSS would
//! dlopen the host's shared glibc, and the container's file must be read
//! as a file anyway.

/// Each line's fields (name, password, uid, gid, gecos, home, shell) with
/// its uid parsed; lines without one are skipped.
pub fn entries(text: &str) -> impl Iterator<Item = (u32, Vec<&str>)> {
    text.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        Some((f.get(2)?.parse().ok()?, f))
    })
}

/// The name of `uid`.
pub fn name(text: &str, uid: u32) -> Option<String> {
    entries(text).find_map(|(u, f)| (u == uid && !f[0].is_empty()).then(|| f[0].to_string()))
}

/// The home directory of `uid`.
pub fn home(text: &str, uid: u32) -> Option<String> {
    entries(text)
        .find_map(|(u, f)| (u == uid && f.len() >= 6 && !f[5].is_empty()).then(|| f[5].to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let pw = "root:x:0:0:root:/root:/bin/bash\n# comment\n:x:5::\nnobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\nbad:x:zz:1\n";
        assert_eq!(name(pw, 0).as_deref(), Some("root"));
        assert_eq!(name(pw, 65534).as_deref(), Some("nobody"));
        assert_eq!(name(pw, 5), None);
        assert_eq!(name(pw, 1000), None);
    }

    #[test]
    fn homes() {
        let pw = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/nonexistent:/bin/false\nnohome:x:7:7::::\n";
        assert_eq!(home(pw, 0).as_deref(), Some("/root"));
        assert_eq!(home(pw, 65534).as_deref(), Some("/nonexistent"));
        assert_eq!(home(pw, 7), None);
        assert_eq!(home(pw, 1000), None);
    }
}
