//! OCI / Docker images to runtime bundles.
//!
//! `unpack` resolves an image (layout dir, OCI archive or docker archive,
//! see `layout`), applies its layers in order into `BUNDLE/rootfs` (see
//! `layer`) and writes `BUNDLE/config.json` from the image config (see
//! `config`). Blobs are verified while they stream (see `blob`); all
//! writes stay inside the rootfs (see `rootfs`). The bundle is built in a
//! temporary sibling directory and renamed into place only when complete.
//!
//! Layers are decoded (read and hashed, decompressed on a read-ahead
//! thread, hashed again) on one thread and applied on another (whose small
//! files go to writer threads, see `layer`), connected by small bounded
//! channels, so memory stays bounded whatever the layer size.

pub mod blob;
pub mod config;
pub mod inroot;
pub mod layer;
pub mod layout;
pub mod rootless;
pub mod store;

use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use oci_spec::runtime::Spec;

use blob::{Digest, VerifyingReader};
use inroot::Rootfs;
use layer::{LayerStats, SizeCap};
use layout::{Compression, Image, LayerRef, Platform};

/// Progress of an unpack, reported from the decoding thread.
pub trait Progress: Send + Sync {
    /// Before the first layer: how many layers and compressed bytes (where
    /// known) there are.
    fn start(&self, layers: usize, total_bytes: Option<u64>);
    /// Layer `index` (0-based) starts decoding.
    fn layer(&self, index: usize, label: &str);
    /// `n` more bytes of blob were read.
    fn advance(&self, n: u64);
    /// All layers applied (not called on error).
    fn finish(&self);
}

/// Set (e.g. from a SIGINT handler: a store is async-signal-safe) to make a
/// running unpack or import stop at the next chunk with an error, so the
/// normal error path removes its temporary directories.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// How far an image may expand when unpacked: against decompression
/// and sparse-file bombs (a 1.5 KiB layer can claim files of any size).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SizeLimits {
    /// Per layer: its uncompressed tar, and its regular files' sizes added
    /// up (a sparse file's holes included).
    pub layer: u64,
    /// All layers applied by one unpack or import, files' sizes as above.
    pub image: u64,
}

impl SizeLimits {
    pub const DEFAULT_LAYER: u64 = 16 << 30;
    pub const DEFAULT_IMAGE: u64 = 64 << 30;

    /// The cap on the next layer when the layers before it applied
    /// `used` bytes: the layer limit, or what is left of the image's.
    fn cap(&self, used: u64) -> SizeCap {
        let left = self.image.saturating_sub(used);
        if left < self.layer {
            SizeCap {
                bytes: left,
                what: format!(
                    "the image expands beyond {} (--max-image-size)",
                    human(self.image)
                ),
            }
        } else {
            SizeCap {
                bytes: self.layer,
                what: format!(
                    "the layer expands beyond {} (--max-layer-size)",
                    human(self.layer)
                ),
            }
        }
    }
}

impl Default for SizeLimits {
    fn default() -> Self {
        SizeLimits {
            layer: Self::DEFAULT_LAYER,
            image: Self::DEFAULT_IMAGE,
        }
    }
}

/// "16 GiB", "100 MiB" or "12345 bytes", for limit messages.
fn human(n: u64) -> String {
    match n {
        u64::MAX => "no limit".into(),
        n if n >= 1 << 30 && n % (1 << 30) == 0 => format!("{} GiB", n >> 30),
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n => format!("{n} bytes"),
    }
}

pub struct UnpackOptions {
    /// `IMAGE[:TAG|@DIGEST]`; IMAGE is a layout dir, OCI archive or docker archive.
    pub image: String,
    pub bundle: PathBuf,
    /// `OS/ARCH[/VARIANT]`; the host's when None.
    pub platform: Option<String>,
    pub progress: Option<Arc<dyn Progress>>,
    /// The runtime config the image's settings (user, env, entrypoint,
    /// cwd, ...) are applied to: the runtime's default config.
    pub base: Spec,
    pub limits: SizeLimits,
}

/// What was unpacked.
#[derive(Debug)]
pub struct Unpacked {
    pub manifest_digest: Option<Digest>,
    pub config_digest: Digest,
    pub layers: usize,
    pub entries: u64,
    pub bytes: u64,
}

/// Unpacks an image into a new runtime bundle (config.json + rootfs/).
/// On error nothing is left at `bundle` (or beside it).
pub fn unpack(opts: &UnpackOptions) -> Result<Unpacked> {
    let (path, reference) = layout::parse_image_arg(&opts.image)?;
    let (platform, explicit) = match &opts.platform {
        Some(p) => (Platform::parse(p)?, true),
        None => (Platform::host(), false),
    };
    let img = layout::resolve(&path, &reference, &platform, explicit, opts.limits.image)?;

    let staging = Staging::new(&opts.bundle)?;
    let rootfs_path = staging.path.join("rootfs");
    std::fs::DirBuilder::new()
        .mode(0o755)
        .create(&rootfs_path)
        .with_context(|| format!("creating {}", rootfs_path.display()))?;
    let root = Rootfs::open(&rootfs_path)?;

    let stats = apply_layers(&img, &root, opts.progress.as_deref(), &opts.limits)
        .with_context(|| format!("image {}", img.name))?;
    let spec = config::runtime_spec(opts.base.clone(), &img.config, &root)
        .with_context(|| format!("image {}", img.name))?;
    let cfg = staging.path.join("config.json");
    let json = serde_json::to_vec_pretty(&spec).context("serializing config.json")?;
    std::fs::write(&cfg, json).with_context(|| format!("writing {}", cfg.display()))?;
    staging.commit()?;
    if let Some(p) = &opts.progress {
        p.finish();
    }
    Ok(Unpacked {
        manifest_digest: img.manifest_digest.clone(),
        config_digest: img.config_digest.clone(),
        layers: img.layers.len(),
        entries: stats.entries,
        bytes: stats.bytes,
    })
}

/// A suffix for temporary names no other process or thread uses at the
/// same time: pid, a per-process counter and the clock.
pub(crate) fn unique() -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{}-{n}-{t:x}", std::process::id())
}

/// A temporary directory beside the bundle, removed unless committed.
struct Staging {
    path: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl Staging {
    fn new(target: &Path) -> Result<Staging> {
        match std::fs::read_dir(target) {
            Ok(mut d) => {
                if d.next().is_some() {
                    bail!(
                        "bundle {} already exists and is not empty",
                        target.display()
                    );
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => bail!("bundle {}: {e}", target.display()),
        }
        let name = target
            .file_name()
            .ok_or_else(|| anyhow!("bundle path {} has no final component", target.display()))?;
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent)
            .with_context(|| format!("creating {}", parent.display()))?;
        let path = parent.join(format!(
            ".{}.unpacking-{}",
            name.to_string_lossy(),
            unique()
        ));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        Ok(Staging {
            path,
            target: target.to_path_buf(),
            committed: false,
        })
    }

    fn commit(mut self) -> Result<()> {
        // rename(2) replaces an empty directory atomically.
        std::fs::rename(&self.path, &self.target).with_context(|| {
            format!(
                "moving {} to {}",
                self.path.display(),
                self.target.display()
            )
        })?;
        std::fs::set_permissions(&self.target, std::fs::Permissions::from_mode(0o700))?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = inroot::remove_tree(&self.path);
        }
    }
}

/// Size of the decoded chunks handed from the decoder to the applier, and
/// how many may be in flight: this bounds memory to CHUNK * (DEPTH + 2).
const CHUNK: usize = 256 * 1024;
const DEPTH: usize = 16;

enum Msg {
    Data(Vec<u8>),
    /// End of the current layer; Err if decoding or verification failed.
    End(Result<()>),
}

/// Applies all layers of `img` in order onto `root`, decoding on a
/// second thread.
pub fn apply_layers(
    img: &Image,
    root: &Rootfs,
    progress: Option<&dyn Progress>,
    limits: &SizeLimits,
) -> Result<LayerStats> {
    let all = vec![true; img.layers.len()];
    pipeline(img, &all, progress, limits, |_, tar, cap| {
        layer::apply_layer(root, tar, cap)
    })
}

/// Decodes the layers of `img` for which `wanted` is true, in order, on a
/// second thread, and hands each decoded tar stream to `apply` with the
/// layer's index and the size cap it must stay within (`limits`; the
/// image limit counts the layers applied here). Returns the summed stats.
pub(crate) fn pipeline(
    img: &Image,
    wanted: &[bool],
    progress: Option<&dyn Progress>,
    limits: &SizeLimits,
    mut apply: impl FnMut(usize, &mut dyn Read, &SizeCap) -> Result<LayerStats>,
) -> Result<LayerStats> {
    let todo: Vec<usize> = (0..img.layers.len()).filter(|&i| wanted[i]).collect();
    if let Some(p) = progress {
        let total = todo
            .iter()
            .map(|&i| img.layers[i].blob.as_ref().map(|b| b.1))
            .sum::<Option<u64>>();
        p.start(todo.len(), total);
    }
    std::thread::scope(|s| {
        let (tx, rx) = sync_channel::<Msg>(DEPTH);
        let (recycle_tx, recycle_rx) = channel::<Vec<u8>>();
        let order = todo.clone();
        let decoder = s.spawn(move || {
            for (n, i) in order.into_iter().enumerate() {
                let l = &img.layers[i];
                if let Some(p) = progress {
                    p.layer(n, &l.label);
                }
                let r = decode_layer(img, l, &tx, &recycle_rx, progress, limits.layer);
                let failed = r.is_err();
                if tx.send(Msg::End(r)).is_err() || failed {
                    return;
                }
            }
        });
        let mut total = LayerStats::default();
        let mut result = Ok(());
        for i in todo {
            let mut reader = ChannelReader {
                rx: &rx,
                recycle: &recycle_tx,
                cur: Vec::new(),
                pos: 0,
                end: None,
            };
            let applied = apply(i, &mut reader, &limits.cap(total.bytes));
            // Read the layer to its end even after an apply error: a digest
            // mismatch found there is the real cause of e.g. a garbled header.
            let decoded = reader.finish();
            let label = &img.layers[i].label;
            match (applied, decoded) {
                (Ok(s), Ok(())) => total.add(&s),
                (_, Err(e)) | (Err(e), Ok(())) => {
                    result = Err(e.context(label.clone()));
                    break;
                }
            }
        }
        // Hanging up stops a decoder blocked on a full queue.
        drop(rx);
        decoder
            .join()
            .map_err(|_| anyhow!("layer decoder thread panicked"))?;
        if result.is_ok() && total.skipped_devices > 0 {
            eprintln!(
                "rcontain: note: {} device node(s) of image {} left out: creating them needs \
                 root (the container's /dev is made by the runtime)",
                total.skipped_devices, img.name
            );
        }
        result.map(|()| total)
    })
}

/// The applier's view of one layer's decoded bytes.
struct ChannelReader<'a> {
    rx: &'a Receiver<Msg>,
    recycle: &'a Sender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
    /// Set once End arrived; the error text is kept for repeated reads.
    end: Option<std::result::Result<(), String>>,
}

impl ChannelReader<'_> {
    /// Consumes the rest of the layer; returns how decoding ended.
    fn finish(&mut self) -> Result<()> {
        while self.end.is_none() {
            self.pos = self.cur.len();
            if self.next().is_err() {
                break;
            }
        }
        match self.end.take() {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(anyhow!(e)),
            None => Err(anyhow!("layer decoder stopped early")),
        }
    }

    /// Fetches the next message; false at the end of the layer.
    fn next(&mut self) -> io::Result<bool> {
        match self.rx.recv() {
            Ok(Msg::Data(v)) => {
                let old = std::mem::replace(&mut self.cur, v);
                let _ = self.recycle.send(old);
                self.pos = 0;
                Ok(true)
            }
            Ok(Msg::End(r)) => {
                self.end = Some(r.map_err(|e| format!("{e:#}")));
                Ok(false)
            }
            Err(_) => Err(io::Error::other("layer decoder stopped early")),
        }
    }
}

impl Read for ChannelReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            match &self.end {
                Some(Ok(())) => return Ok(0),
                Some(Err(e)) => return Err(io::Error::other(e.clone())),
                None => {}
            }
            self.next()?;
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Counts blob bytes for the progress display.
struct Counted<'a, R> {
    inner: R,
    progress: Option<&'a dyn Progress>,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(p) = self.progress {
            p.advance(n as u64);
        }
        Ok(n)
    }
}

/// Reads, verifies and decompresses one layer, sending the tar stream in
/// chunks. Returns early (Ok) if the applier hung up.
fn decode_layer(
    img: &Image,
    l: &LayerRef,
    tx: &SyncSender<Msg>,
    recycle: &Receiver<Vec<u8>>,
    progress: Option<&dyn Progress>,
    max_tar: u64,
) -> Result<()> {
    std::thread::scope(|s| {
        let (raw, blob_ok) = open_layer(img, l, progress)?;
        let mut buffered = BufReader::with_capacity(CHUNK, raw);
        let compression = match l.compression {
            Some(c) => c,
            None => Compression::sniff(buffered.fill_buf().context("reading layer")?),
        };
        let tar: Box<dyn Read + Send> = match compression {
            Compression::None => Box::new(buffered),
            Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
            Compression::Zstd => Box::new(
                zstd::stream::read::Decoder::with_buffer(buffered).context("starting zstd")?,
            ),
        };
        // Decompressing (the slowest step) and hashing what it produces run
        // on two threads: this one hashes.
        let tar = read_ahead(s, tar);
        let mut diff_ok = None;
        let mut tar: Box<dyn Read + Send> = match &l.diff_id {
            Some(d) => {
                let v = VerifyingReader::new(
                    tar,
                    d,
                    None,
                    format!("uncompressed content (diff_id {d})"),
                );
                diff_ok = Some(v.verified_flag());
                Box::new(v)
            }
            None => Box::new(tar),
        };
        let mut tar_bytes = 0u64;
        loop {
            let mut buf = recycle.try_recv().unwrap_or_else(|_| vec![0; CHUNK]);
            buf.resize(CHUNK, 0);
            let filled = fill(&mut tar, &mut buf)
                .map_err(|e| decode_error(img, l, compression, blob_ok.as_deref(), anyhow!(e)))?;
            if filled == 0 {
                break;
            }
            tar_bytes += filled as u64;
            if tar_bytes > max_tar {
                bail!(
                    "the layer's uncompressed tar is over {} (--max-layer-size)",
                    human(max_tar)
                );
            }
            if INTERRUPTED.load(Ordering::Relaxed) {
                bail!("interrupted");
            }
            buf.truncate(filled);
            if tx.send(Msg::Data(buf)).is_err() {
                return Ok(());
            }
        }
        for flag in [blob_ok, diff_ok].into_iter().flatten() {
            if !flag.load(Ordering::Acquire) {
                bail!("layer stream ended before it was fully verified");
            }
        }
        Ok(())
    })
}

/// The layer's raw (compressed) bytes, counted for `progress` and, when
/// it is a content-addressed blob, verified against its digest: the
/// reader, and the flag it sets once the digest matched.
fn open_layer<'a>(
    img: &Image,
    l: &LayerRef,
    progress: Option<&'a dyn Progress>,
) -> Result<(Box<dyn Read + Send + 'a>, Option<VerifiedFlag>)> {
    let raw = match &l.blob {
        Some((d, _)) => img.store.open_blob(d)?,
        None => img.store.open(&l.member).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => anyhow!("layer {} is missing: {e}", l.member),
            _ => anyhow!("layer {}: {e}", l.member),
        })?,
    };
    let raw = Counted {
        inner: raw,
        progress,
    };
    Ok(match &l.blob {
        Some((d, size)) => {
            let v = VerifyingReader::new(raw, d, Some(*size), format!("blob {d}"));
            let ok = v.verified_flag();
            (Box::new(v), Some(ok))
        }
        None => (Box::new(raw), None),
    })
}

/// Set by a VerifyingReader once its digest matched.
type VerifiedFlag = Arc<AtomicBool>;

/// Reads into `buf` until it is full or the stream ends: how much it read.
fn fill(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The error `e` of reading a layer's tar stream, with its real cause.
fn decode_error(
    img: &Image,
    l: &LayerRef,
    compression: Compression,
    blob_ok: Option<&AtomicBool>,
    e: anyhow::Error,
) -> anyhow::Error {
    let e = e.context(match compression {
        Compression::None => "reading layer",
        Compression::Gzip => "decompressing layer (gzip)",
        Compression::Zstd => "decompressing layer (zstd)",
    });
    // A decompressor may fail (bad CRC) before the blob's end where its
    // digest is checked: name the real cause.
    match (&l.blob, blob_ok) {
        (Some((d, size)), Some(ok)) if !ok.load(Ordering::Acquire) => {
            match verify_blob(img, d, *size) {
                Err(bad) => bad.context(format!("{e:#}")),
                Ok(()) => e,
            }
        }
        _ => e,
    }
}

/// How many chunks a `read_ahead` stage may be ahead of its consumer.
const AHEAD: usize = 4;

/// Reads `inner` on a thread of `s`, a chunk at a time, up to AHEAD
/// chunks ahead of the returned reader: one more pipeline stage. Errors
/// arrive in order, after the data before them; the thread ends at EOF,
/// an error, or when the reader is dropped.
fn read_ahead<'s, R: Read + Send + 's>(s: &'s std::thread::Scope<'s, '_>, mut inner: R) -> Ahead {
    let (tx, rx) = sync_channel::<io::Result<Vec<u8>>>(AHEAD);
    let (recycle, spare) = channel::<Vec<u8>>();
    s.spawn(move || loop {
        let mut buf = spare.try_recv().unwrap_or_default();
        buf.resize(CHUNK, 0);
        let r = loop {
            match inner.read(&mut buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => break r,
            }
        };
        let last = !matches!(r, Ok(n) if n > 0);
        let msg = r.map(|n| {
            buf.truncate(n);
            buf
        });
        if tx.send(msg).is_err() || last {
            return;
        }
    });
    Ahead {
        rx,
        recycle,
        cur: Vec::new(),
        pos: 0,
        done: false,
    }
}

/// The consuming end of `read_ahead`. An empty chunk is the end.
struct Ahead {
    rx: Receiver<io::Result<Vec<u8>>>,
    recycle: Sender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
    done: bool,
}

impl BufRead for Ahead {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos == self.cur.len() && !self.done {
            // After an error, EOF, as VerifyingReader does.
            self.done = true;
            let next = self
                .rx
                .recv()
                .map_err(|_| io::Error::other("read-ahead thread stopped"))??;
            if !next.is_empty() {
                self.done = false;
                let old = std::mem::replace(&mut self.cur, next);
                let _ = self.recycle.send(old);
                self.pos = 0;
            }
        }
        Ok(&self.cur[self.pos..])
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.cur.len());
    }
}

impl Read for Ahead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let data = self.fill_buf()?;
        let n = buf.len().min(data.len());
        buf[..n].copy_from_slice(&data[..n]);
        self.consume(n);
        Ok(n)
    }
}

/// Reads a whole blob just to check its size and digest.
fn verify_blob(img: &Image, d: &Digest, size: u64) -> Result<()> {
    let r = img.store.open_blob(d)?;
    let mut v = VerifyingReader::new(r, d, Some(size), format!("blob {d}"));
    io::copy(&mut v, &mut io::sink())?;
    Ok(())
}
