//! POSIX-platform hooks: each runs with the container state on stdin, in
//! order, with its own env and an optional timeout. Its output is captured
//! into an anonymous file (no threads needed to drain pipes, which matters
//! because hooks also run in the single-threaded init) and quoted on failure.

use anyhow::{anyhow, bail, Context, Result};
use oci_spec::runtime::{Hook, Spec};
use std::io::{Read, Seek, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Whether the config has prestart or createRuntime hooks: the runtime
/// runs those while the init waits (a step of the sync channel both sides
/// take from this).
pub fn has_runtime_hooks(spec: &Spec) -> bool {
    spec.hooks().as_ref().is_some_and(|h| {
        h.prestart().as_ref().is_some_and(|v| !v.is_empty())
            || h.create_runtime().as_ref().is_some_and(|v| !v.is_empty())
    })
}

pub fn run_all(kind: &str, hooks: Option<&Vec<Hook>>, state: &[u8]) -> Result<()> {
    for (i, h) in hooks.into_iter().flatten().enumerate() {
        run(h, state).with_context(|| format!("hooks.{kind}[{i}] ({})", h.path().display()))?;
    }
    Ok(())
}

/// poststart and poststop: a failing hook is a warning and the remaining
/// hooks still run ("the remaining hooks and lifecycle continue as if the
/// hook had succeeded").
pub fn run_all_warning(kind: &str, hooks: Option<&Vec<Hook>>, state: &[u8]) {
    for (i, h) in hooks.into_iter().flatten().enumerate() {
        if let Err(e) = run(h, state) {
            crate::logging::warn(&format!(
                "hooks.{kind}[{i}] ({}): {e:#}",
                h.path().display()
            ));
        }
    }
}

fn run(h: &Hook, state: &[u8]) -> Result<()> {
    let out = memfd()?;
    let mut cmd = Command::new(h.path());
    if let Some(args) = h.args() {
        if let Some((a0, rest)) = args.split_first() {
            cmd.arg0(a0).args(rest);
        }
    }
    cmd.env_clear();
    for kv in h.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(out.try_clone()?)
        .stderr(out.try_clone()?);
    let mut child = cmd.spawn().map_err(|e| anyhow!("starting: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook may exit without reading its stdin: EPIPE is not an error.
        let _ = stdin.write_all(state);
    }
    let deadline = h
        .timeout()
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    let mut pause = Duration::from_micros(200);
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            bail!("timed out after {}s", h.timeout().unwrap_or(0));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    };
    if !status.success() {
        let mut text = String::new();
        let mut f = out;
        f.rewind()?;
        f.take(4096).read_to_string(&mut text)?;
        let text = text.trim().replace('\n', "; ");
        bail!(
            "{status}{}{text}",
            if text.is_empty() { "" } else { ", output: " }
        );
    }
    Ok(())
}

fn memfd() -> Result<std::fs::File> {
    let fd = nix::sys::memfd::memfd_create(
        c"rcontain-hook",
        nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC,
    )
    .context("memfd_create")?;
    Ok(std::fs::File::from(fd))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(v: serde_json::Value) -> Hook {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn state_on_stdin_and_env() {
        let dir = std::env::temp_dir().join(format!("rcontain-hooktest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("out");
        let h = hook(
            serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {} && echo $FOO >> {}", out.display(), out.display())], "env": ["FOO=bar"]}),
        );
        run_all("prestart", Some(&vec![h]), b"{\"id\":\"x\"}").unwrap();
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "{\"id\":\"x\"}bar\n"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn failure_and_timeout_are_named() {
        let fail = hook(
            serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c", "echo oops >&2; exit 3"]}),
        );
        let e = format!(
            "{:#}",
            run_all("poststart", Some(&vec![fail]), b"{}").unwrap_err()
        );
        assert!(
            e.contains("hooks.poststart[0]") && e.contains("exit status: 3") && e.contains("oops"),
            "{e}"
        );
        let slow =
            hook(serde_json::json!({"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}));
        let e = format!(
            "{:#}",
            run_all("prestart", Some(&vec![slow]), b"{}").unwrap_err()
        );
        assert!(e.contains("timed out"), "{e}");
    }
}
