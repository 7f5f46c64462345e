//! OOM notifications for `events`: v1 through an eventfd registered in
//! cgroup.event_control for memory.oom_control, v2 by watching
//! memory.events with inotify and counting its oom_kill entry.

use super::fsutil::{read_opt, write};
use super::stats::parse_keyed;
use anyhow::{Context, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};

pub struct OomNotifier {
    kind: Kind,
}

enum Kind {
    V1 {
        efd: EventFd,
        // registered with the eventfd: must stay open as long as it
        _oom_control: File,
        dir: PathBuf,
    },
    V2 {
        inotify: Inotify,
        dir: PathBuf,
        seen: u64,
    },
}

fn oom_kills(dir: &Path) -> Result<u64> {
    let events = read_opt(dir, "memory.events")?.unwrap_or_default();
    Ok(parse_keyed(&events).get("oom_kill").copied().unwrap_or(0))
}

impl OomNotifier {
    pub(super) fn v1(memory_dir: &Path) -> Result<OomNotifier> {
        let efd = EventFd::from_flags(EfdFlags::EFD_CLOEXEC).context("eventfd")?;
        let path = memory_dir.join("memory.oom_control");
        let oom_control = File::open(&path).with_context(|| format!("open {}", path.display()))?;
        let line = format!("{} {}", efd.as_raw_fd(), oom_control.as_raw_fd());
        write(
            memory_dir,
            "cgroup.event_control",
            &line,
            "the OOM notification",
        )?;
        Ok(OomNotifier {
            kind: Kind::V1 {
                efd,
                _oom_control: oom_control,
                dir: memory_dir.to_path_buf(),
            },
        })
    }

    pub(super) fn v2(dir: &Path) -> Result<OomNotifier> {
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC).context("inotify_init1")?;
        let path = dir.join("memory.events");
        inotify
            .add_watch(&path, AddWatchFlags::IN_MODIFY)
            .with_context(|| format!("inotify_add_watch {}", path.display()))?;
        Ok(OomNotifier {
            kind: Kind::V2 {
                inotify,
                seen: oom_kills(dir)?,
                dir: dir.to_path_buf(),
            },
        })
    }

    /// Becomes readable when `wait` has something to report (poll it
    /// together with a timer for periodic stats).
    pub fn fd(&self) -> BorrowedFd<'_> {
        match &self.kind {
            Kind::V1 { efd, .. } => efd.as_fd(),
            Kind::V2 { inotify, .. } => inotify.as_fd(),
        }
    }

    /// `wait` with a bound: None when nothing arrived within `timeout`
    /// (how `events` interleaves OOM events with periodic stats).
    pub fn wait_timeout(&mut self, timeout: std::time::Duration) -> Result<Option<u64>> {
        let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(self.fd(), PollFlags::POLLIN)];
        let ready = match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => 0,
            Err(e) => return Err(e).context("poll the OOM notifier"),
        };
        if ready == 0 {
            return Ok(None);
        }
        self.wait().map(Some)
    }

    /// Block until the next notification; returns how many OOM events
    /// happened since the last call (0: the cgroup changed or went away
    /// without an OOM; the caller checks whether the container still runs).
    pub fn wait(&mut self) -> Result<u64> {
        match &mut self.kind {
            Kind::V1 { efd, dir, .. } => {
                let n = efd.read().context("read the OOM eventfd")?;
                // the eventfd also fires when the cgroup is removed
                Ok(if dir.exists() { n } else { 0 })
            }
            Kind::V2 { inotify, dir, seen } => {
                inotify
                    .read_events()
                    .context("read inotify events for memory.events")?;
                let now = oom_kills(dir)?;
                let new = now.saturating_sub(*seen);
                *seen = now;
                Ok(new)
            }
        }
    }
}
