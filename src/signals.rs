//! Signal names as `kill` accepts them on the command line.

use anyhow::{bail, Result};

/// Signal names without the `SIG` prefix, with their numbers on Linux.
/// Aliases (IOT, POLL, CLD, UNUSED) are accepted like the shells and runc do.
const NAMES: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("IOT", libc::SIGIOT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("POLL", libc::SIGPOLL),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
    ("UNUSED", libc::SIGSYS),
];

/// Parses a signal given as a number (`9`), a name with or without the
/// `SIG` prefix in any case (`SIGKILL`, `kill`, `sigKill`), or a realtime
/// signal relative to the C library's bounds (`RTMIN`, `RTMIN+3`,
/// `SIGRTMAX-1`). Returns the signal number; realtime signals have no
/// `nix::sys::signal::Signal` variant, hence the plain number.
pub fn parse_signal(s: &str) -> Result<i32> {
    let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
    if let Ok(n) = s.parse::<i32>() {
        if !(1..=max).contains(&n) {
            bail!("invalid signal {s:?}: numbers must be between 1 and {max}");
        }
        return Ok(n);
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(&(_, n)) = NAMES.iter().find(|(k, _)| *k == name) {
        return Ok(n);
    }
    let realtime = if let Some(rest) = name.strip_prefix("RTMIN") {
        offset(rest, '+').map(|o| min + o)
    } else if let Some(rest) = name.strip_prefix("RTMAX") {
        offset(rest, '-').map(|o| max - o)
    } else {
        None
    };
    match realtime {
        Some(n) if (min..=max).contains(&n) => Ok(n),
        _ => bail!("unknown signal {s:?}"),
    }
}

/// The `+N` / `-N` suffix of `RTMIN+N` / `RTMAX-N`; empty means 0.
fn offset(rest: &str, sign: char) -> Option<i32> {
    if rest.is_empty() {
        return Some(0);
    }
    rest.strip_prefix(sign)?.parse::<u8>().ok().map(i32::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_any_case_with_or_without_prefix() {
        for s in ["SIGKILL", "KILL", "kill", "sigkill", "SigKill"] {
            assert_eq!(parse_signal(s).unwrap(), libc::SIGKILL, "{s}");
        }
        assert_eq!(parse_signal("TERM").unwrap(), libc::SIGTERM);
        assert_eq!(parse_signal("SIGHUP").unwrap(), libc::SIGHUP);
        assert_eq!(parse_signal("winch").unwrap(), libc::SIGWINCH);
        assert_eq!(parse_signal("CLD").unwrap(), libc::SIGCHLD);
        assert_eq!(parse_signal("iot").unwrap(), libc::SIGABRT);
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_signal("9").unwrap(), 9);
        assert_eq!(parse_signal("15").unwrap(), 15);
        assert_eq!(parse_signal("64").unwrap(), libc::SIGRTMAX());
        for bad in ["0", "-1", "65", "1000"] {
            let e = parse_signal(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn realtime() {
        let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
        assert_eq!(parse_signal("RTMIN").unwrap(), min);
        assert_eq!(parse_signal("SIGRTMIN+1").unwrap(), min + 1);
        assert_eq!(parse_signal("rtmin+3").unwrap(), min + 3);
        assert_eq!(parse_signal("SIGRTMAX").unwrap(), max);
        assert_eq!(parse_signal("RTMAX-2").unwrap(), max - 2);
        assert_eq!(parse_signal(&format!("RTMIN+{}", max - min)).unwrap(), max);
        for bad in ["RTMIN+100", "RTMIN-1", "RTMAX+1", "RTMIN+", "RTMINX"] {
            assert!(parse_signal(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_names_are_named_in_the_error() {
        for bad in ["", "SIG", "FOO", "SIGFOO", "KILLL", " KILL"] {
            let e = parse_signal(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }
}
