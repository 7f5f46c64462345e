//! runc-compatible command line: global flags, one subcommand per
//! lifecycle operation. Each handler is a few lines over `rcontain::*`.

/// print! to stdout, returning an error instead of panicking when the reader
/// has gone (`rcontain list | head -1`); main() ends quietly on that error,
/// as a C tool dying of SIGPIPE would.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::write_stdout(format_args!($($arg)*))
    };
}

/// println! through [`out!`].
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

mod check;
mod events;
mod exec;
mod images;
mod pause;
mod ps;
mod run;
mod unpack;
mod update;
mod update_flags;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use rcontain::container::{CreateOpts, IfRunning, Runtime};
use rcontain::image::rootless::IdMap;
use rcontain::logging;
use std::path::{Path, PathBuf};

/// `rcontain --version` in runc's layout ("NAME version X", commit, spec);
/// clap prints the name before this string.
fn version() -> String {
    let (maj, min, mic) = libseccomp::ScmpVersion::current()
        .map(|v| (v.major, v.minor, v.micro))
        .unwrap_or_default();
    format!(
        "version {}\ncommit: {}\nspec: {}\nlibseccomp: {maj}.{min}.{mic}",
        env!("CARGO_PKG_VERSION"),
        env!("RCONTAIN_COMMIT"),
        rcontain::oci::specgen::OCI_VERSION
    )
}

#[derive(Parser)]
#[command(name = "rcontain", version = version(), about = "An OCI container runtime, compatible with runc's command line")]
struct Cli {
    /// Directory for the containers' state (a tmpfs, ideally) [default:
    /// /run/rcontain as root, $XDG_RUNTIME_DIR/rcontain otherwise]
    #[arg(long)]
    root: Option<PathBuf>,
    /// Log file (default: stderr)
    #[arg(long)]
    log: Option<PathBuf>,
    /// Log format: text or json
    #[arg(long = "log-format", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Log debug messages
    #[arg(long)]
    debug: bool,
    /// Let systemd own the container's cgroup: a transient scope named by
    /// linux.cgroupsPath "slice:prefix:name" (create and run; later
    /// commands find it in the container's state)
    #[arg(long = "systemd-cgroup")]
    systemd_cgroup: bool,
    /// Rootless cgroups: true, false or auto (auto: true unless run as root
    /// of the host; root of a user namespace, as under rootless podman, is
    /// rootless).
    /// When true, a container whose cgroups cannot be created runs without
    /// a cgroup of its own, as long as it asks for no limits
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_parser = ["true", "false", "auto"])]
    rootless: Option<String>,
    /// Image store for running straight from images [default:
    /// /var/lib/rcontain as root, $XDG_DATA_HOME/rcontain (or
    /// ~/.local/share/rcontain) otherwise]
    #[arg(long, env = "RCONTAIN_STORE")]
    store: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Clone)]
struct CreateArgs {
    /// Path to the bundle directory
    #[arg(short, long, default_value = ".")]
    bundle: PathBuf,
    /// File to write the container's init pid to
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    /// Unix socket that receives the pty master when process.terminal is true
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    /// Use MS_MOVE + chroot instead of pivot_root (for ramfs roots)
    #[arg(long = "no-pivot")]
    no_pivot: bool,
    /// Do not create a new session keyring
    #[arg(long = "no-new-keyring")]
    no_new_keyring: bool,
    /// Pass N extra fds (3 .. 3+N-1) into the container
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: u32,
}

// Only the subcommand given gets its arguments built: building all of
// them was half of clap's work at every start.
#[derive(Subcommand)]
#[command(defer = true)]
enum Cmd {
    /// Create a container (its process waits for `start`)
    Create {
        #[command(flatten)]
        opts: CreateArgs,
        id: String,
    },
    /// Run the user process of a created container
    Start { id: String },
    /// Print a container's state as JSON
    State { id: String },
    /// Send a signal (default SIGTERM) to a container's init
    Kill {
        /// Send to every process of the container
        #[arg(short, long)]
        all: bool,
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Delete a container and everything it holds
    Delete {
        /// Kill the container first if it is still running
        #[arg(short, long)]
        force: bool,
        id: String,
    },
    /// Create and start a container; in the foreground, wait for it and delete it
    Run {
        #[command(flatten)]
        opts: CreateArgs,
        /// Do not wait for the container; leave it running
        #[arg(short, long)]
        detach: bool,
        /// Run this image (layout dir, OCI or docker archive, [:TAG|@DIGEST])
        /// from the store instead of a bundle
        #[arg(long, value_name = "IMAGE")]
        image: Option<String>,
        /// Platform to pick from a multi-platform image
        #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
        platform: Option<String>,
        #[command(flatten)]
        limits: unpack::SizeArgs,
        /// Container id, a bundle directory (a path with '/', or '.'), or an
        /// image (a layout directory or an archive)
        id: String,
    },
    /// Run a new process inside a running container
    Exec(exec::ExecArgs),
    /// List containers
    List {
        #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
        /// Only print the ids
        #[arg(short, long)]
        quiet: bool,
    },
    /// Write a default config.json
    Spec {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        /// A spec for running without root privileges
        #[arg(long)]
        rootless: bool,
    },
    /// Print what this runtime implements (runtime-spec features JSON)
    Features,
    /// Unpack an OCI image layout, OCI archive or docker archive into a bundle
    Unpack(unpack::UnpackArgs),
    /// List the images in the store
    Images {
        /// Only print the image ids
        #[arg(short, long)]
        quiet: bool,
    },
    /// Remove images and layers no container uses from the store
    Prune,
    /// List the processes of a container
    Ps(ps::PsArgs),
    /// Freeze every process of a container
    Pause { id: String },
    /// Thaw a paused container
    Resume { id: String },
    /// Change the resource limits of a running container
    Update(update::UpdateArgs),
    /// Print resource usage and OOM events as JSON, one per line
    Events(events::EventsArgs),
    /// Report what this host offers; with --bundle, what of the bundle it
    /// cannot honour or shows differently from a pure cgroup-v2 host
    Check(check::CheckArgs),
    /// Without root: run a command (default $SHELL) as root of a user
    /// namespace of the user's subordinate ids, where the files `unpack`
    /// gave to them are the user's to change or remove
    Unshare {
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "COMMAND"
        )]
        command: Vec<std::ffi::OsString>,
    },
}

impl Cmd {
    /// The `--preserve-fds` of the commands that take it, else 0.
    fn preserve_fds(&self) -> u32 {
        match self {
            Cmd::Create { opts, .. } | Cmd::Run { opts, .. } => opts.preserve_fds,
            Cmd::Exec(a) => a.preserve_fds,
            _ => 0,
        }
    }
}

impl CreateArgs {
    fn opts(&self, id: &str) -> CreateOpts {
        CreateOpts {
            id: id.to_string(),
            bundle: self.bundle.clone(),
            pid_file: self.pid_file.clone(),
            console_socket: self.console_socket.clone(),
            no_pivot: self.no_pivot,
            no_new_keyring: self.no_new_keyring,
            preserve_fds: self.preserve_fds,
            image_rootfs: None,
        }
    }
}

/// The reader of stdout went away: the end of the output, not a failure.
#[derive(Debug)]
struct StdoutClosed;

impl std::fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stdout closed")
    }
}

impl std::error::Error for StdoutClosed {}

fn write_stdout(args: std::fmt::Arguments) -> Result<()> {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    match o.write_fmt(args).and_then(|()| o.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        r => r.context("writing to stdout"),
    }
}

pub fn main() -> i32 {
    let reexec_note = match rcontain::process::selfexe::after_reexec() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("rcontain: {e:#}");
            return 1;
        }
    };
    // create and exec run from a read-only view of the binary (selfexe;
    // run decides once it has read the config). Doing it before clap
    // builds its command tree spares building that tree twice where the
    // runtime has to re-exec. Any argument spelled like one of the two
    // triggers it (`state exec` does it needlessly, harmlessly); dispatch
    // checks again on the parsed command, which costs one statfs once the
    // binary is read-only. An error is reported after parsing, through the
    // log an engine reads.
    let early = std::env::args_os()
        .skip(1)
        .any(|a| a == "create" || a == "exec")
        .then(rcontain::process::selfexe::ensure_read_only_exe);
    let cli = parse_args();
    // Before the runtime opens anything (the log file included): what the
    // caller leaked beyond --preserve-fds goes now.
    let fds = rcontain::start::callerfds::keep_only_preserved(cli.cmd.preserve_fds());
    let format = match cli.log_format.as_str() {
        "json" => logging::Format::Json,
        _ => logging::Format::Text,
    };
    let min = if cli.debug {
        logging::Level::Debug
    } else {
        logging::Level::Info
    };
    if let Err(e) = logging::init(cli.log.as_deref(), format, min) {
        eprintln!(
            "rcontain: --log {}: {e}",
            cli.log
                .as_deref()
                .unwrap_or(std::path::Path::new(""))
                .display()
        );
        return 1;
    }
    if let Some(note) = reexec_note {
        logging::debug(&note);
    }
    let result = match (early, fds) {
        (Some(Err(e)), _) | (_, Err(e)) => Err(e),
        _ => dispatch(cli),
    };
    match result {
        Ok(code) => code,
        Err(e) if e.downcast_ref::<StdoutClosed>().is_some() => 0,
        Err(e) => {
            let msg = one_line(&format!("{e:#}"));
            if logging::has_file() {
                logging::error(&msg);
            }
            eprintln!("rcontain: {msg}");
            1
        }
    }
}

/// `Cli::parse()`, except that the command tree is left for the exit to
/// reclaim: dropping it piece by piece costs a start more than it frees.
///
/// Global flags come before the command, as runc and crun take them: clap
/// would otherwise copy each into every subcommand at every start (0.5M
/// instructions). One given after the command is refused in one line that
/// says where it goes.
fn parse_args() -> Cli {
    use clap::{CommandFactory, FromArgMatches};
    let mut cmd = Cli::command();
    let mut matches = cmd
        .try_get_matches_from_mut(std::env::args_os())
        .unwrap_or_else(|e| {
            if let Some(flag) = misplaced_global(&cmd, &e) {
                eprintln!("rcontain: {flag} is a global flag: give it before the command (rcontain {flag} ... COMMAND)");
                std::process::exit(2);
            }
            e.exit()
        });
    let cli = Cli::from_arg_matches_mut(&mut matches).unwrap_or_else(|e| e.format(&mut cmd).exit());
    std::mem::forget(cmd);
    cli
}

/// The global flag (`--root`, `--log=x` ...) that `e`, an unknown argument
/// of a subcommand, is.
fn misplaced_global(cmd: &clap::Command, e: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() != ErrorKind::UnknownArgument {
        return None;
    }
    let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) else {
        return None;
    };
    let flag = arg.split('=').next()?;
    cmd.get_arguments()
        .filter(|a| !matches!(a.get_id().as_str(), "help" | "version"))
        .filter_map(|a| a.get_long())
        .any(|l| flag.strip_prefix("--") == Some(l))
        .then(|| flag.to_string())
}

/// An error as one printable line: messages quote image and bundle
/// content (a tar header field, a member name) verbatim, so a newline
/// would forge log lines and an escape sequence would drive the
/// operator's terminal. Newlines become spaces, other control
/// characters their `\u{..}` escapes.
fn one_line(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    for c in msg.chars() {
        match c {
            '\n' => out.push(' '),
            c if c.is_control() => out.extend(c.escape_default()),
            c => out.push(c),
        }
    }
    out
}

fn dispatch(cli: Cli) -> Result<i32> {
    // Everything that forks a process into a container runs from a sealed
    // binary nothing can write to (see rcontain::process::selfexe); `run`
    // where the container could reach its init in time, which only the
    // config tells (container::foreground).
    if matches!(cli.cmd, Cmd::Create { .. } | Cmd::Exec(_)) {
        rcontain::process::selfexe::ensure_read_only_exe()?;
    }
    // Chosen only for the commands that work on containers: choosing the
    // default root may make (or refuse) a private directory in /tmp, which
    // `spec`, `unpack` or `features` have no business with.
    let rt = || {
        runtime(
            cli.root.as_deref(),
            cli.rootless.as_deref(),
            cli.systemd_cgroup,
        )
    };
    match cli.cmd {
        Cmd::Create { opts, id } => {
            rt()?.create(&opts.opts(&id), None)?;
        }
        Cmd::Start { id } => rt()?.start(&id)?,
        Cmd::State { id } => outln!("{}", rt()?.state_json(&id)?)?,
        Cmd::Kill { all, id, signal } => {
            let sig = rcontain::signals::parse_signal(&signal)?;
            rt()?.kill(&id, sig, all)?
        }
        Cmd::Delete { force, id } => {
            let running = if force {
                IfRunning::Kill
            } else {
                IfRunning::Refuse
            };
            rt()?.delete(&id, running)?;
            if cfg!(feature = "image") {
                run::release_image_bundle(&store_path(cli.store)?, &id)?;
            }
        }
        Cmd::Run {
            opts,
            detach,
            image,
            platform,
            limits,
            id,
        } => {
            let store = store_path(cli.store)?;
            let img = run::ImageRun {
                store: &store,
                image,
                platform,
                limits: limits.limits()?,
            };
            return run::run(&rt()?, &opts, detach, &id, img);
        }
        Cmd::Exec(a) => return exec::run(&rt()?, a),
        Cmd::List { format, quiet } => list(&rt()?, &format, quiet)?,
        Cmd::Spec { bundle, rootless } => {
            let spec = if rootless {
                rcontain::oci::specgen::rootless_spec()
            } else {
                rcontain::oci::specgen::default_spec()
            };
            write_spec(&bundle, &spec)?
        }
        Cmd::Unpack(_) | Cmd::Images { .. } | Cmd::Prune | Cmd::Unshare { .. }
            if !cfg!(feature = "image") =>
        {
            return Err(without_image());
        }
        Cmd::Unpack(a) => unpack::run(a)?,
        Cmd::Images { quiet } => images::images(&store_path(cli.store)?, quiet)?,
        Cmd::Prune => images::prune(&store_path(cli.store)?)?,
        Cmd::Features => outln!(
            "{}",
            serde_json::to_string_pretty(&rcontain::oci::features::features(Some(
                rcontain::cgroups::features()
            )))?
        )?,
        Cmd::Ps(a) => ps::run(&rt()?, a)?,
        Cmd::Pause { id } => pause::pause(&rt()?, &id)?,
        Cmd::Resume { id } => pause::resume(&rt()?, &id)?,
        Cmd::Update(a) => update::run(&rt()?, a)?,
        Cmd::Events(a) => events::run(&rt()?, a)?,
        Cmd::Check(a) => return check::run(a),
        Cmd::Unshare { command } => return unshare(command),
    }
    Ok(0)
}

/// The runtime the global options ask for: its state root, and how it
/// makes cgroups.
fn runtime(root: Option<&Path>, rootless: Option<&str>, systemd_cgroup: bool) -> Result<Runtime> {
    let who = rcontain::namespaces::Invoker::current();
    let root = match root {
        Some(r) => r.to_path_buf(),
        None => rcontain::container::state::default_root(&who)?,
    };
    let rootless_cgroups = match rootless {
        Some("true") => true,
        Some("false") => false,
        _ => who.rootless(),
    };
    Ok(Runtime::new(&root, who)
        .rootless_cgroups(rootless_cgroups)
        .systemd_cgroup(systemd_cgroup))
}

/// `spec`: writes `spec` as `bundle`'s config.json, which must not exist.
fn write_spec(bundle: &std::path::Path, spec: &oci_spec::runtime::Spec) -> Result<()> {
    let path = bundle.join("config.json");
    if path.exists() {
        bail!("{}: already exists; remove it first", path.display());
    }
    std::fs::write(&path, rcontain::oci::specgen::to_pretty_json(spec)?)
        .with_context(|| format!("writing {}", path.display()))
}

/// What an image command says in a binary built without the `image`
/// feature. The commands stay in the CLI, so that they fail with this and
/// not as unknown ones.
fn without_image() -> anyhow::Error {
    anyhow!("built without images (cargo feature `image`): no `run IMAGE`, `unpack`, `images`, `prune`, `unshare` or `check IMAGE`")
}

/// Images keep their files' owners, which only root can set. Anyone else
/// works on images in a user namespace of its subordinate ids (see
/// rcontain::image::rootless): their mapping, or None for root.
fn rootless_images() -> Result<Option<IdMap>> {
    if nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    IdMap::of_caller().map(Some)
}

/// `unshare [COMMAND...]`: COMMAND, or the user's shell, in the user
/// namespace `unpack` uses; its exit status.
fn unshare(mut command: Vec<std::ffi::OsString>) -> Result<i32> {
    let Some(map) = rootless_images()? else {
        bail!("unshare: only without root (root owns an unpacked bundle's files already)");
    };
    if command.is_empty() {
        command.push(std::env::var_os("SHELL").unwrap_or_else(|| "/bin/sh".into()));
    }
    rcontain::image::rootless::run_in_user_namespace(&map, &command)
}

/// The runtime config an image's settings are applied to: the default
/// one, or without root `spec --rootless`'s with the user namespace of
/// the store's mapping (so the container sees the owners the image gave).
fn image_base_spec(map: Option<&IdMap>) -> oci_spec::runtime::Spec {
    match map {
        None => rcontain::oci::specgen::default_spec(),
        Some(m) => {
            let mut s = rcontain::oci::specgen::rootless_spec();
            m.apply(&mut s);
            s
        }
    }
}

/// --store, else /var/lib/rcontain for root and the user's data
/// directory for anyone else.
fn store_path(given: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(s) = given {
        return Ok(s);
    }
    if nix::unistd::geteuid().is_root() {
        return Ok(rcontain::image::store::DEFAULT_STORE.into());
    }
    let abs = |v: Option<std::ffi::OsString>| v.map(PathBuf::from).filter(|p| p.is_absolute());
    if let Some(d) = abs(std::env::var_os("XDG_DATA_HOME")) {
        return Ok(d.join("rcontain"));
    }
    match abs(std::env::var_os("HOME")) {
        Some(h) => Ok(h.join(".local/share/rcontain")),
        None => {
            bail!("--store: neither XDG_DATA_HOME nor HOME is set to find this user's image store")
        }
    }
}

/// The cgroup manager saved with a container.
fn container_cgroup(rt: &Runtime, id: &str) -> Result<rcontain::cgroups::Manager> {
    let (st, _) = rt.load(id)?;
    rcontain::container::cgroup_of(&st)?.with_context(|| {
        format!("container {id:?} has no cgroup of its own (created rootless, without cgroups delegated to the user)")
    })
}

fn list(rt: &Runtime, format: &str, quiet: bool) -> Result<()> {
    let all = rt.list()?;
    if quiet {
        for (st, _) in &all {
            outln!("{}", st.id)?;
        }
        return Ok(());
    }
    if format == "json" {
        let v: Vec<_> = all
            .iter()
            .map(|(st, s)| rcontain::container::report(st, *s))
            .collect();
        outln!("{}", serde_json::to_string(&v)?)?;
        return Ok(());
    }
    let rows: Vec<[String; 6]> =
        std::iter::once(["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from))
            .chain(all.iter().map(|(st, s)| {
                let r = rcontain::container::report(st, *s);
                [
                    r.id.to_string(),
                    r.pid.to_string(),
                    r.status,
                    r.bundle.display().to_string(),
                    r.created.to_string(),
                    r.owner.to_string(),
                ]
            }))
            .collect();
    let widths: Vec<usize> = (0..6)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}", w = w + 3))
            .collect();
        outln!("{}", line.concat().trim_end())?;
    }
    Ok(())
}
