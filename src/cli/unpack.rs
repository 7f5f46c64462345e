//! `rcontain unpack`: image -> bundle. All work is in `rcontain::image`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use rcontain::image::{self, Progress, SizeLimits, UnpackOptions};

/// Unpack an OCI image layout, OCI archive or docker archive into a bundle.
#[derive(Args, Debug)]
pub struct UnpackArgs {
    /// Platform to pick from a multi-platform image (default: the host's).
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<String>,
    /// No progress display.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub limits: SizeArgs,
    /// Image: layout directory, OCI archive or docker archive, optionally
    /// followed by :TAG or @DIGEST.
    #[arg(value_name = "IMAGE[:TAG|@DIGEST]")]
    pub image: String,
    /// Bundle directory to create (must not exist, or be empty).
    pub bundle: PathBuf,
}

// How far an image may expand (`unpack` and `run IMAGE`).
#[derive(Args, Debug, Clone)]
pub struct SizeArgs {
    /// Most a layer may expand to: its uncompressed tar and its files'
    /// sizes (holes of sparse files included), e.g. 512m, 20g; -1: no limit
    /// [default: 16g]
    #[arg(long = "max-layer-size", value_name = "SIZE")]
    pub max_layer_size: Option<String>,
    /// Most all layers of the image together may expand to, files' sizes as
    /// for --max-layer-size; -1: no limit [default: 64g]
    #[arg(long = "max-image-size", value_name = "SIZE")]
    pub max_image_size: Option<String>,
}

impl SizeArgs {
    pub fn limits(&self) -> Result<SizeLimits> {
        let parse = |flag: &str, v: &Option<String>, default: u64| -> Result<u64> {
            let Some(v) = v else { return Ok(default) };
            match super::update_flags::parse_bytes(v).with_context(|| format!("--{flag}"))? {
                -1 => Ok(u64::MAX),
                n if n > 0 => Ok(n as u64),
                _ => bail!("--{flag} {v:?}: must be positive (or -1 for no limit)"),
            }
        };
        Ok(SizeLimits {
            layer: parse(
                "max-layer-size",
                &self.max_layer_size,
                SizeLimits::DEFAULT_LAYER,
            )?,
            image: parse(
                "max-image-size",
                &self.max_image_size,
                SizeLimits::DEFAULT_IMAGE,
            )?,
        })
    }
}

/// Layers, bytes and rate on stderr.
struct Bar(ProgressBar);

impl Progress for Bar {
    fn start(&self, layers: usize, total_bytes: Option<u64>) {
        if let Some(t) = total_bytes {
            self.0.set_length(t);
        }
        self.0.set_message(format!("0/{layers} layers"));
    }
    fn layer(&self, _index: usize, label: &str) {
        // "layer 2/3 (sha256:0123456789ab…)": the full digest is too wide.
        let short = match label.find("sha256:") {
            Some(i) if label.len() > i + 19 => format!("{}…)", &label[..i + 19]),
            _ => label.to_string(),
        };
        self.0.set_message(short);
    }
    fn advance(&self, n: u64) {
        self.0.inc(n);
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

/// Ctrl-C, SIGTERM and SIGHUP stop the unpack through its error path,
/// which removes the staging directory.
fn stop_on_signals() -> Result<()> {
    use nix::sys::signal::Signal;
    rcontain::sys::set_flag_on_signals(
        &image::INTERRUPTED,
        &[Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP],
    )?;
    Ok(())
}

/// Without root the unpack runs in a user namespace of the user's
/// subordinate ids (the bundle's config.json gets that namespace), so
/// the layers' owners are kept; see rcontain::image::rootless.
pub fn run(args: UnpackArgs) -> Result<()> {
    let limits = args.limits.limits()?;
    stop_on_signals()?;
    match super::rootless_images()? {
        None => unpack(args, limits, super::image_base_spec(None)),
        Some(map) => {
            let base = super::image_base_spec(Some(&map));
            image::rootless::in_user_namespace(&map, "unpack", || unpack(args, limits, base))
        }
    }
}

fn unpack(args: UnpackArgs, limits: SizeLimits, base: oci_spec::runtime::Spec) -> Result<()> {
    let progress: Option<Arc<dyn Progress>> = if args.quiet || !std::io::stderr().is_terminal() {
        None
    } else {
        let pb = ProgressBar::new(0);
        pb.set_style(
            ProgressStyle::with_template(
                "{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec}",
            )?
            .progress_chars("=> "),
        );
        pb.enable_steady_tick(Duration::from_millis(120));
        Some(Arc::new(Bar(pb)))
    };
    let r = image::unpack(&UnpackOptions {
        image: args.image,
        bundle: args.bundle,
        platform: args.platform,
        progress: progress.clone(),
        base,
        limits,
    });
    if let (Err(_), Some(p)) = (&r, &progress) {
        p.finish();
    }
    r.map(|_| ())
}
