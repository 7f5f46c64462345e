//! `events [--stats] [--interval D] ID`: resource usage and OOM
//! notifications as runc's JSON events, one per line.

use anyhow::{bail, Context, Result};
use clap::Args;
use rcontain::container::state::Status;
use rcontain::container::Runtime;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct EventsArgs {
    /// Print one stats event and exit
    #[arg(long)]
    stats: bool,
    /// Time between stats events (a Go duration: 5s, 500ms, 1m30s)
    #[arg(long, default_value = "5s")]
    interval: String,
    id: String,
}

pub fn run(rt: &Runtime, a: EventsArgs) -> Result<()> {
    let interval =
        parse_duration(&a.interval).with_context(|| format!("--interval {:?}", a.interval))?;
    if interval.is_zero() {
        bail!("--interval: must be greater than 0");
    }
    if rt.load(&a.id)?.1 == Status::Stopped {
        bail!("container {:?} is not running", a.id);
    }
    let cg = super::container_cgroup(rt, &a.id)?;
    let event = |typ: &str, data: Option<Value>| -> Result<()> {
        let mut e = json!({"type": typ, "id": a.id});
        if let Some(d) = data {
            e["data"] = d;
        }
        outln!("{e}")
    };
    if a.stats {
        event("stats", Some(cg.stats()?))?;
        return Ok(());
    }
    // no memory controller: stats only
    let mut oom = cg.oom_events().ok();
    let mut next = Instant::now() + interval;
    loop {
        let wait = next.saturating_duration_since(Instant::now());
        match oom.as_mut() {
            Some(n) => {
                if let Some(count) = n.wait_timeout(wait)? {
                    for _ in 0..count {
                        event("oom", None)?;
                    }
                }
            }
            None => std::thread::sleep(wait),
        }
        if rt
            .load(&a.id)
            .map(|(_, s)| s == Status::Stopped)
            .unwrap_or(true)
        {
            return Ok(());
        }
        if Instant::now() >= next {
            event("stats", Some(cg.stats()?))?;
            next += interval;
        }
    }
}

/// A Go duration string: one or more <number><unit>, units ns us µs ms s m h.
fn parse_duration(s: &str) -> Result<Duration> {
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = s;
    let mut total = 0f64;
    if rest.is_empty() {
        bail!("empty duration");
    }
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(n);
        let u = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(u);
        let v: f64 = num
            .parse()
            .with_context(|| format!("invalid duration {s:?}"))?;
        let secs = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => bail!("invalid duration {s:?}: unit {unit:?} (want ns, us, ms, s, m or h)"),
        };
        total += v * secs;
        rest = tail;
    }
    Ok(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("100ms").unwrap(), Duration::from_millis(100));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        for bad in ["", "5", "s", "5x", "1..2s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
