//! `exec`: the process comes from --process FILE, or from the container's
//! own process (env, user, capabilities, rlimits, …) with the command line
//! and flags applied on top, as runc does.

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use oci_spec::runtime::{Capability, Process, Spec};
use rcontain::container::Runtime;
use rcontain::start::exec::ExecOpts;
use std::path::PathBuf;
use std::str::FromStr;

#[derive(Args)]
pub struct ExecArgs {
    /// JSON file with the process to run (runtime-spec `process` object)
    #[arg(short, long)]
    process: Option<PathBuf>,
    /// Do not wait for the process
    #[arg(short, long)]
    detach: bool,
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    /// Allocate a pseudo-terminal
    #[arg(short, long)]
    tty: bool,
    /// Working directory inside the container
    #[arg(long)]
    cwd: Option<PathBuf>,
    /// Set an environment variable (KEY=VALUE), repeatable
    #[arg(short, long = "env")]
    env: Vec<String>,
    /// UID[:GID] to run as
    #[arg(short, long)]
    user: Option<String>,
    /// Additional gids, repeatable or comma-separated
    #[arg(short = 'g', long = "additional-gids", value_delimiter = ',')]
    additional_gids: Vec<u32>,
    /// Add a capability, repeatable
    #[arg(short = 'c', long = "cap")]
    cap: Vec<String>,
    /// Set no_new_privs for the process
    #[arg(long = "no-new-privs")]
    no_new_privs: bool,
    /// AppArmor profile (not supported)
    #[arg(short, long)]
    apparmor: Option<String>,
    /// SELinux process label (not supported)
    #[arg(short = 'l', long = "process-label")]
    process_label: Option<String>,
    /// Pass N extra fds (3 .. 3+N-1) into the process
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub(super) preserve_fds: u32,
    /// Exec even if the container is paused
    #[arg(long = "ignore-paused")]
    ignore_paused: bool,
    id: String,
    /// Command and arguments (unless --process)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

pub fn run(rt: &Runtime, a: ExecArgs) -> Result<i32> {
    if a.apparmor.as_deref().is_some_and(|p| !p.is_empty()) {
        bail!("--apparmor: AppArmor is not supported by this runtime");
    }
    if a.process_label.as_deref().is_some_and(|p| !p.is_empty()) {
        bail!("--process-label: SELinux is not supported by this runtime");
    }
    // The container's config.json, read once: --process needs it only
    // in exec itself.
    let mut saved_spec = None;
    let process = match &a.process {
        Some(f) => {
            let text = std::fs::read(f).with_context(|| format!("--process {}", f.display()))?;
            serde_json::from_slice::<Process>(&text)
                .map_err(|e| anyhow!("--process {}: {e}", f.display()))?
        }
        None => {
            if a.command.is_empty() {
                bail!("exec: a command is required (or --process FILE)");
            }
            let saved = rt.saved_spec(&a.id)?;
            let p = from_flags(&saved, &a)?;
            saved_spec = Some(saved);
            p
        }
    };
    let opts = ExecOpts {
        id: a.id,
        process,
        detach: a.detach,
        pid_file: a.pid_file,
        console_socket: a.console_socket,
        preserve_fds: a.preserve_fds,
        ignore_paused: a.ignore_paused,
    };
    let spec = match saved_spec {
        Some(s) => s,
        None => rt.saved_spec(&opts.id)?,
    };
    rcontain::start::exec::run(rt, &opts, &spec)
}

fn from_flags(spec: &Spec, a: &ExecArgs) -> Result<Process> {
    let mut p = spec.process().clone().unwrap_or_default();
    p.set_args(Some(a.command.clone()));
    p.set_terminal(Some(a.tty));
    p.set_console_size(None);
    if let Some(cwd) = &a.cwd {
        p.set_cwd(cwd.clone());
    }
    let mut env = p.env().clone().unwrap_or_default();
    for kv in &a.env {
        let key = kv.split('=').next().unwrap_or("");
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(if kv.contains('=') {
            kv.clone()
        } else {
            format!("{kv}=")
        });
    }
    p.set_env(Some(env));
    if let Some(u) = &a.user {
        let mut user = p.user().clone();
        let (uid, gid) = u
            .split_once(':')
            .map_or((u.as_str(), None), |(x, y)| (x, Some(y)));
        user.set_uid(
            uid.parse()
                .map_err(|_| anyhow!("--user {u:?}: the uid must be a number"))?,
        );
        if let Some(g) = gid {
            user.set_gid(
                g.parse()
                    .map_err(|_| anyhow!("--user {u:?}: the gid must be a number"))?,
            );
        }
        p.set_user(user);
    }
    if !a.additional_gids.is_empty() {
        let mut user = p.user().clone();
        user.set_additional_gids(Some(a.additional_gids.clone()));
        p.set_user(user);
    }
    if !a.cap.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        for c in &a.cap {
            let name = if c.to_uppercase().starts_with("CAP_") {
                c.to_uppercase()
            } else {
                format!("CAP_{}", c.to_uppercase())
            };
            let cap = Capability::from_str(&name)
                .map_err(|_| anyhow!("--cap {c:?}: unknown capability"))?;
            let with = |set: &Option<oci_spec::runtime::Capabilities>| {
                let mut s = set.clone().unwrap_or_default();
                s.insert(cap);
                Some(s)
            };
            caps.set_bounding(with(caps.bounding()));
            caps.set_effective(with(caps.effective()));
            caps.set_permitted(with(caps.permitted()));
            // Ambient needs the bit inheritable too; only add it where the
            // process already uses inheritable capabilities.
            if caps.inheritable().as_ref().is_some_and(|i| !i.is_empty()) {
                caps.set_ambient(with(caps.ambient()));
            }
        }
        p.set_capabilities(Some(caps));
    }
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    Ok(p)
}
