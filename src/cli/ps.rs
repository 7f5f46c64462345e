//! `ps [-f table|json] ID [-- PS_ARGS]`: the container's processes, as
//! runc prints them (ps(1)'s own lines filtered to the container's pids,
//! or the pids as a JSON array).

use anyhow::{bail, Context, Result};
use clap::Args;
use rcontain::container::Runtime;
use std::process::Command;

#[derive(Args)]
pub struct PsArgs {
    /// Output format: table (ps's columns) or json (the pids)
    #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
    format: String,
    id: String,
    /// Options for ps(1) (default: -ef)
    #[arg(last = true)]
    ps_args: Vec<String>,
}

pub fn run(rt: &Runtime, a: PsArgs) -> Result<()> {
    let (st, _) = rt.load(&a.id)?;
    let pids = match rcontain::container::cgroup_of(&st)? {
        Some(cg) => cg.pids()?,
        // rootless without a cgroup of its own: its pid namespace has them
        None => rcontain::container::container_pids(st.pid),
    };
    if a.format == "json" {
        outln!("{}", serde_json::to_string(&pids)?)?;
        return Ok(());
    }
    let args = if a.ps_args.is_empty() {
        vec!["-ef".to_string()]
    } else {
        a.ps_args
    };
    let out = Command::new("ps")
        .args(&args)
        .output()
        .context("running ps")?;
    if !out.status.success() {
        bail!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    out!("{}", filter(&String::from_utf8_lossy(&out.stdout), &pids)?)?;
    Ok(())
}

/// ps's header and the lines whose PID column names one of `pids`.
fn filter(ps_out: &str, pids: &[i32]) -> Result<String> {
    let mut lines = ps_out.lines();
    let header = lines.next().context("ps printed nothing")?;
    let col = header
        .split_whitespace()
        .position(|c| c == "PID")
        .context("ps output has no PID column (keep it in the ps options)")?;
    let mut s = format!("{header}\n");
    for l in lines {
        let pid = l
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            s.push_str(l);
            s.push('\n');
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::filter;

    #[test]
    fn keeps_header_and_container_lines() {
        let out = "UID PID PPID C STIME TTY TIME CMD\nroot 1 0 0 10:00 ? 00:00:01 /sbin/init\nroot 42 1 0 10:01 ? 00:00:00 sleep 100\n";
        assert_eq!(
            filter(out, &[42]).unwrap(),
            "UID PID PPID C STIME TTY TIME CMD\nroot 42 1 0 10:01 ? 00:00:00 sleep 100\n"
        );
        assert!(filter("UID CMD\nroot x\n", &[1]).is_err());
        assert_eq!(
            filter("  PID TTY CMD\n    7 ? sh\n", &[7]).unwrap(),
            "  PID TTY CMD\n    7 ? sh\n"
        );
    }
}
