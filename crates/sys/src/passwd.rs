//! The one parser of passwd(5) and group(5) text the caller has read: the
//! host's (the owner name `state` reports), the container's (HOME for a
//! process without one) or an image's (its config's `User`). Not through
//! NSS: the release binary is static, where NSS would dlopen the host's
//! shared glibc, and a container's file must be read as a file anyway.
//!
//! Lines are trimmed; blank lines and `#` comments are skipped in both
//! files, as glibc's files database does. A line whose id fields are not
//! numbers is skipped rather than read as id 0 (which would be root).

/// One passwd line with its ids parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User<'a> {
    pub name: &'a str,
    pub uid: u32,
    pub gid: u32,
    /// Empty when the line has none.
    pub home: &'a str,
}

/// One group line with its gid parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group<'a> {
    pub name: &'a str,
    pub gid: u32,
    /// The member list, blanks around names dropped.
    pub members: Vec<&'a str>,
}

/// The fields of each line that is not blank or a comment.
fn lines(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').collect())
}

/// The users of passwd text: lines with at least name, password, uid and gid.
pub fn users(text: &str) -> impl Iterator<Item = User<'_>> {
    lines(text).filter_map(|f| {
        Some(User {
            name: f[0],
            uid: f.get(2)?.parse().ok()?,
            gid: f.get(3)?.parse().ok()?,
            home: f.get(5).copied().unwrap_or_default(),
        })
    })
}

/// The groups of group text: lines with at least name, password and gid.
pub fn groups(text: &str) -> impl Iterator<Item = Group<'_>> {
    lines(text).filter_map(|f| {
        let members = f
            .get(3)
            .map(|m| {
                m.split(',')
                    .map(str::trim)
                    .filter(|m| !m.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Some(Group {
            name: f[0],
            gid: f.get(2)?.parse().ok()?,
            members,
        })
    })
}

/// The name of `uid`.
pub fn name(text: &str, uid: u32) -> Option<String> {
    field_of(text, uid, |u| u.name)
}

/// The home directory of `uid`.
pub fn home(text: &str, uid: u32) -> Option<String> {
    field_of(text, uid, |u| u.home)
}

/// `field` of the first line of `uid` where it is not empty.
fn field_of(text: &str, uid: u32, field: impl for<'a> Fn(&User<'a>) -> &'a str) -> Option<String> {
    users(text).find_map(|u| {
        let f = field(&u);
        (u.uid == uid && !f.is_empty()).then(|| f.to_string())
    })
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

    /// Where the two former parsers differed: the image's skipped comments,
    /// trimmed lines and needed a gid; the runtime's did none of these.
    #[test]
    fn comments_blanks_and_short_lines() {
        let pw =
            "#old:x:1000:1000::/old:/bin/sh\n  app:x:1000:1000::/home/app:/bin/sh\t\nshort:x:7\n";
        assert_eq!(name(pw, 1000).as_deref(), Some("app"));
        assert_eq!(home(pw, 1000).as_deref(), Some("/home/app"));
        assert_eq!(name(pw, 7), None);
        let gr = "# wheel:x:10:app\n wheel:x:11: app ,web,\nbad:x\n";
        let g: Vec<Group> = groups(gr).collect();
        assert_eq!(
            g,
            vec![Group {
                name: "wheel",
                gid: 11,
                members: vec!["app", "web"]
            }]
        );
    }
}
