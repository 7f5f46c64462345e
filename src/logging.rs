//! The runtime's log: `--log FILE` (default stderr) in runc's formats, text
//! or JSON lines with `level`, `msg` and `time`, which containerd's shim
//! parses to report why a runtime call failed.

use std::io::Write;
use std::sync::OnceLock;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

/// runc's two log formats.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Format {
    Text,
    Json,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warning",
            Level::Error => "error",
        }
    }
}

struct Logger {
    file: Option<std::fs::File>,
    format: Format,
    min: Level,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Configure the log once, from the global CLI flags; messages below
/// `min` are dropped.
pub fn init(path: Option<&std::path::Path>, format: Format, min: Level) -> std::io::Result<()> {
    let file = match path {
        Some(p) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)?,
        ),
        None => None,
    };
    let _ = LOGGER.set(Logger { file, format, min });
    Ok(())
}

pub fn log(level: Level, msg: &str) {
    let Some(l) = LOGGER.get() else {
        if level >= Level::Warn {
            eprintln!("{}: {msg}", level.name());
        }
        return;
    };
    if level < l.min {
        return;
    }
    let time = crate::container::state::rfc3339_now();
    let line = if l.format == Format::Json {
        format!(
            "{}\n",
            serde_json::json!({"level": level.name(), "msg": msg, "time": time})
        )
    } else {
        format!("time=\"{time}\" level={} msg={:?}\n", level.name(), msg)
    };
    match &l.file {
        // One write(2) per line: O_APPEND keeps concurrent writers' lines whole.
        Some(f) => {
            let _ = (&*f).write_all(line.as_bytes());
        }
        None => {
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
    }
}

/// Whether messages also go to a log file (then errors are printed to
/// stderr separately by the CLI).
pub fn has_file() -> bool {
    LOGGER.get().is_some_and(|l| l.file.is_some())
}

pub fn warn(msg: &str) {
    log(Level::Warn, msg)
}

pub fn debug(msg: &str) {
    log(Level::Debug, msg)
}

pub fn error(msg: &str) {
    log(Level::Error, msg)
}
