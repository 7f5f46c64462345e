//! Finding an image: OCI image layout directories, OCI archives (a tar of a
//! layout) and docker archives (`docker save`); index/manifest walking with
//! reference and platform selection. Everything read here is verified
//! against the digest that names it.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use nix::fcntl::OFlag;
use serde::Deserialize;

use super::blob::{read_verified, Digest};
use super::config::ImageConfig;
use super::inroot::open_in_root;

/// Largest manifest, index or config we read into memory.
const MAX_JSON: u64 = 16 << 20;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const CONFIG_TYPES: &[&str] = &[
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

/// How a layer blob is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// The compression a layer media type declares; `None` for a media
    /// type that is not a layer we know.
    pub fn from_media_type(mt: &str) -> Option<Compression> {
        Some(match mt {
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.docker.image.rootfs.diff.tar" => Compression::None,
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Compression::Gzip,
            "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
            | "application/vnd.docker.image.rootfs.diff.tar.zstd" => Compression::Zstd,
            _ => return None,
        })
    }

    /// Guess from the first bytes; docker archives do not say.
    pub fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// `os/arch[/variant]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    pub fn parse(s: &str) -> Result<Platform> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] if !os.is_empty() && !arch.is_empty() => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: None,
            }),
            [os, arch, v] if !os.is_empty() && !arch.is_empty() && !v.is_empty() => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: Some(v.to_string()),
            }),
            _ => bail!("platform {s:?} is not of the form OS/ARCH[/VARIANT]"),
        }
    }

    /// The platform this binary runs on, in OCI (GOARCH) spelling.
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "x86" => "386",
            "aarch64" => "arm64",
            "powerpc64" => "ppc64le",
            "loongarch64" => "loong64",
            other => other,
        };
        Platform {
            os: "linux".into(),
            architecture: arch.into(),
            variant: None,
        }
    }

    fn matches(&self, p: &PlatformJson) -> bool {
        p.os == self.os
            && p.architecture == self.architecture
            && match (&self.variant, &p.variant) {
                (Some(want), Some(have)) => want == have,
                _ => true,
            }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Deserialize)]
struct PlatformJson {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
    variant: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    platform: Option<PlatformJson>,
}

#[derive(Deserialize)]
struct IndexJson {
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct ManifestJson {
    config: Descriptor,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

/// `docker save` manifest.json entry.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// What the user asked for after the image path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reference {
    Any,
    Tag(String),
    Digest(Digest),
}

/// Splits `IMAGE[:TAG|@DIGEST]`. A path that exists as written is taken
/// whole, so directories with ':' in their names still work.
pub fn parse_image_arg(arg: &str) -> Result<(PathBuf, Reference)> {
    if Path::new(arg).exists() {
        return Ok((arg.into(), Reference::Any));
    }
    // The shortest existing prefix before a ':' or '@' is the image, so a
    // docker archive can be named with a full reference: a.tar:repo/x:tag.
    for (i, c) in arg.char_indices().filter(|(_, c)| *c == ':' || *c == '@') {
        if i > 0 && Path::new(&arg[..i]).exists() {
            let rest = &arg[i + 1..];
            let r = if c == '@' {
                let d = Digest::parse(rest).with_context(|| format!("image reference {arg:?}"))?;
                Reference::Digest(d)
            } else if rest.is_empty() {
                bail!("image reference {arg:?}: empty tag");
            } else {
                Reference::Tag(rest.to_string())
            };
            return Ok((arg[..i].into(), r));
        }
    }
    if let Some((path, d)) = arg.rsplit_once('@') {
        let d = Digest::parse(d).with_context(|| format!("image reference {arg:?}"))?;
        return Ok((path.into(), Reference::Digest(d)));
    }
    if let Some((path, tag)) = arg.rsplit_once(':') {
        if !tag.contains('/') && !tag.is_empty() && !path.is_empty() {
            return Ok((path.into(), Reference::Tag(tag.to_string())));
        }
    }
    Ok((arg.into(), Reference::Any))
}

/// Where blobs come from: a directory or members of a tar file.
pub enum Store {
    Dir(PathBuf),
    Tar {
        file: Arc<File>,
        /// Member name (no leading "./") -> (data offset, size).
        members: HashMap<String, (u64, u64)>,
        /// Member name -> symlink target, already made archive-relative.
        links: HashMap<String, String>,
    },
}

/// A byte range of the archive file, read with pread so several readers
/// (one per layer, possibly on other threads) can share the file.
struct Section {
    file: Arc<File>,
    pos: u64,
    end: u64,
}

impl Read for Section {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end - self.pos;
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if n == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..n], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

fn normalize_member(name: &str) -> String {
    name.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect::<Vec<_>>()
        .join("/")
}

impl Store {
    fn open_tar(path: &Path, max_decompressed: u64) -> Result<Store> {
        let mut file = File::open(path)?;
        let mut head = [0u8; 4];
        let n = file.read_at(&mut head, 0)?;
        let compression = Compression::sniff(&head[..n]);
        if compression != Compression::None {
            // `docker save | gzip`: blobs need random access, so the archive
            // is decompressed once into an unnamed temporary file.
            file = decompress_to_tmpfile(file, compression, max_decompressed)
                .context("decompressing the archive into a temporary file")?;
        }
        let mut members = HashMap::new();
        let mut links = HashMap::new();
        let mut ar = tar::Archive::new(&file);
        for e in ar.entries_with_seek().context("reading archive")? {
            let e = e.context("reading archive")?;
            let name = normalize_member(&String::from_utf8_lossy(&e.path_bytes()));
            match e.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    members.insert(name, (e.raw_file_position(), e.size()));
                }
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    let target = e.link_name_bytes().unwrap_or_default();
                    let target = String::from_utf8_lossy(&target).into_owned();
                    let target = if e.header().entry_type() == tar::EntryType::Symlink {
                        let dir = name.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                        resolve_relative(dir, &target)
                    } else {
                        normalize_member(&target)
                    };
                    links.insert(name, target);
                }
                _ => {}
            }
        }
        Ok(Store::Tar {
            file: Arc::new(file),
            members,
            links,
        })
    }

    fn has(&self, name: &str) -> bool {
        match self {
            Store::Dir(d) => {
                !matches!(open_in_dir(d, name), Err(e) if e.kind() == io::ErrorKind::NotFound)
            }
            Store::Tar { members, links, .. } => {
                members.contains_key(name) || links.contains_key(name)
            }
        }
    }

    /// Opens a file of the layout/archive by relative name, unverified.
    pub fn open(&self, name: &str) -> io::Result<Box<dyn Read + Send>> {
        match self {
            Store::Dir(d) => Ok(Box::new(open_in_dir(d, name)?)),
            Store::Tar {
                file,
                members,
                links,
            } => {
                let mut name = normalize_member(name);
                for _ in 0..8 {
                    if let Some(&(pos, size)) = members.get(&name) {
                        return Ok(Box::new(Section {
                            file: file.clone(),
                            pos,
                            end: pos + size,
                        }));
                    }
                    match links.get(&name) {
                        Some(t) => name = t.clone(),
                        None => break,
                    }
                }
                Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{name}: not in the archive"),
                ))
            }
        }
    }

    pub fn blob_name(d: &Digest) -> String {
        format!("blobs/{}/{}", d.algorithm_name(), d.hex())
    }

    pub fn open_blob(&self, d: &Digest) -> Result<Box<dyn Read + Send>> {
        self.open(&Store::blob_name(d))
            .map_err(|e| anyhow!("blob {d} is missing: {e}"))
    }

    fn read_json_blob(&self, d: &Digest, size: Option<u64>, what: &str) -> Result<Vec<u8>> {
        let r = self.open_blob(d)?;
        read_verified(r, d, size, MAX_JSON, &format!("{what} {d}"))
    }
}

/// Opens `name` (from index.json, manifest.json, ...: the image's word)
/// in the layout or archive directory `dir` the way a tar archive's
/// members are found: resolved with `dir` as `/`, so absolute names, `..`
/// and symlinks cannot leave it; and only a regular file, as a FIFO would
/// block and a device feed without end.
fn open_in_dir(dir: &Path, name: &str) -> io::Result<File> {
    let d = File::open(dir)?;
    let fd = open_in_root(
        d.as_raw_fd(),
        Path::new(name),
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY,
    )
    .map_err(|e| io::Error::new(io::Error::from(e).kind(), format!("{name}: {}", e.desc())))?;
    let f = File::from(fd);
    if !f.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name}: not a regular file"),
        ));
    }
    Ok(f)
}

/// Decompresses into an unnamed temporary file, at most `max` bytes (it is
/// a bomb like any other).
fn decompress_to_tmpfile(file: File, compression: Compression, max: u64) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut tmp = File::options()
        .read(true)
        .write(true)
        .custom_flags(libc::O_TMPFILE)
        .mode(0o600)
        .open(std::env::temp_dir())?;
    let input = io::BufReader::new(file);
    let r: Box<dyn Read> = match compression {
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(input)?),
        Compression::None => Box::new(input),
    };
    if io::copy(&mut r.take(max.saturating_add(1)), &mut tmp)? > max {
        bail!(
            "it decompresses to more than {} (--max-image-size)",
            super::human(max)
        );
    }
    io::Seek::rewind(&mut tmp)?;
    Ok(tmp)
}

/// Archive symlink targets are relative to the link's directory.
fn resolve_relative(dir: &str, target: &str) -> String {
    let mut parts: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        dir.split('/').filter(|c| !c.is_empty()).collect()
    };
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

/// One layer to apply, with everything needed to verify it.
pub struct LayerRef {
    /// "layer 2/3 (sha256:...)", for messages.
    pub label: String,
    /// Member name in the store.
    pub member: String,
    /// Digest and size of the blob as stored (None for docker archives,
    /// where only the uncompressed diff_id is known).
    pub blob: Option<(Digest, u64)>,
    /// None: sniff the first bytes.
    pub compression: Option<Compression>,
    /// Digest of the uncompressed tar, from the config's rootfs.diff_ids.
    pub diff_id: Option<Digest>,
}

/// An image resolved down to its config and layers.
pub struct Image {
    /// What the user named, for messages: "PATH[:TAG]".
    pub name: String,
    pub store: Store,
    pub manifest_digest: Option<Digest>,
    pub config_digest: Digest,
    pub config: ImageConfig,
    /// The config blob as verified, for keeping it in a store.
    pub config_raw: Vec<u8>,
    pub layers: Vec<LayerRef>,
}

/// Opens the image at `path` and resolves `reference` and `platform` to
/// one manifest. `platform_explicit` says whether the user chose the
/// platform (then a config for another platform is an error even when it
/// is the only image). A compressed archive may decompress to at most
/// `max_archive` bytes.
pub fn resolve(
    path: &Path,
    reference: &Reference,
    platform: &Platform,
    platform_explicit: bool,
    max_archive: u64,
) -> Result<Image> {
    let name = match reference {
        Reference::Any => path.display().to_string(),
        Reference::Tag(t) => format!("{}:{t}", path.display()),
        Reference::Digest(d) => format!("{}@{d}", path.display()),
    };
    let md = std::fs::metadata(path)
        .with_context(|| format!("image {name}: cannot access {}", path.display()))?;
    let store = if md.is_dir() {
        Store::Dir(path.to_path_buf())
    } else {
        Store::open_tar(path, max_archive).with_context(|| format!("image {name}"))?
    };
    let img = if store.has("index.json") {
        resolve_oci(store, &name, reference, platform)
    } else if store.has("manifest.json") {
        resolve_docker(store, &name, reference)
    } else {
        Err(anyhow!(
            "neither an OCI image layout (no index.json) nor a docker archive (no manifest.json)"
        ))
    }
    .with_context(|| format!("image {name}"))?;
    let (os, arch) = (&img.config.os, &img.config.architecture);
    if (!os.is_empty() && *os != platform.os)
        || (!arch.is_empty() && *arch != platform.architecture)
    {
        if platform_explicit {
            bail!("image {name}: is for {os}/{arch}, not the requested {platform}");
        }
        bail!(
            "image {name}: is for {os}/{arch}, this host is {platform}; \
             pass --platform {os}/{arch} to unpack it anyway"
        );
    }
    Ok(img)
}

fn is_index(mt: &str) -> bool {
    mt == OCI_INDEX || mt == DOCKER_LIST
}

fn is_manifest(mt: &str) -> bool {
    mt == OCI_MANIFEST || mt == DOCKER_MANIFEST
}

fn ref_names(d: &Descriptor) -> Vec<&str> {
    [
        "org.opencontainers.image.ref.name",
        "io.containerd.image.name",
    ]
    .iter()
    .filter_map(|k| d.annotations.get(*k).map(String::as_str))
    .collect()
}

/// Docker Hub names are written both ways: `docker.io/library/app:1`
/// and `app:1`.
fn normalize_name(n: &str) -> &str {
    [
        "docker.io/library/",
        "index.docker.io/library/",
        "docker.io/",
        "index.docker.io/",
    ]
    .iter()
    .find_map(|p| n.strip_prefix(p))
    .unwrap_or(n)
}

/// `want` names `have` if equal (up to the docker.io prefix), if `want` is
/// just the tag of `have` (`latest` vs `localhost/busybox:latest`), or if
/// `want` is `have`'s name without the `:latest` tag.
fn name_matches(want: &str, have: &str) -> bool {
    let (w, h) = (normalize_name(want), normalize_name(have));
    if w == h {
        return true;
    }
    match h.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => {
            tag == w || (tag == "latest" && name == w && !w.contains(':'))
        }
        _ => false,
    }
}

/// An OCI image layout: index.json → the manifests `reference` names →
/// the one for `platform` → its config and layers.
fn resolve_oci(
    store: Store,
    name: &str,
    reference: &Reference,
    platform: &Platform,
) -> Result<Image> {
    let top = select(read_index(&store)?, reference)?;
    let mut candidates = Vec::new();
    for d in top {
        expand(&store, d, &mut candidates, 0)?;
    }
    let chosen = choose_platform(candidates, platform)?;
    let mbytes = store.read_json_blob(&chosen.digest, Some(chosen.size), "manifest")?;
    let manifest: ManifestJson = serde_json::from_slice(&mbytes)
        .with_context(|| format!("parsing manifest {}", chosen.digest))?;
    let (config, config_raw) = read_config(&store, &manifest.config)?;
    let layers = layer_refs(&manifest, &chosen.digest, &config)?;
    Ok(Image {
        name: name.to_string(),
        store,
        manifest_digest: Some(chosen.digest.clone()),
        config_digest: manifest.config.digest.clone(),
        config,
        config_raw,
        layers,
    })
}

fn read_index(store: &Store) -> Result<IndexJson> {
    let mut index_bytes = Vec::new();
    store
        .open("index.json")?
        .take(MAX_JSON)
        .read_to_end(&mut index_bytes)
        .context("reading index.json")?;
    serde_json::from_slice(&index_bytes).context("parsing index.json")
}

/// The descriptors of index.json that `reference` names (all for `Any`).
fn select(index: IndexJson, reference: &Reference) -> Result<Vec<Descriptor>> {
    let (v, what): (Vec<_>, _) = match reference {
        Reference::Any => return Ok(index.manifests),
        Reference::Tag(t) => (
            index
                .manifests
                .into_iter()
                .filter(|d| ref_names(d).iter().any(|n| name_matches(t, n)))
                .collect(),
            format!("tagged {t:?}"),
        ),
        Reference::Digest(want) => (
            index
                .manifests
                .into_iter()
                .filter(|d| &d.digest == want)
                .collect(),
            format!("with digest {want}"),
        ),
    };
    if v.is_empty() {
        bail!("no manifest {what} in index.json");
    }
    Ok(v)
}

/// The one manifest for `platform`: a lone manifest without a platform is
/// taken as is; otherwise exactly one must match.
fn choose_platform(mut candidates: Vec<Descriptor>, platform: &Platform) -> Result<Descriptor> {
    if candidates.len() == 1 && candidates[0].platform.is_none() {
        return Ok(candidates.pop().expect("one"));
    }
    let matching: Vec<_> = candidates
        .iter()
        .filter(|d| d.platform.as_ref().is_none_or(|p| platform.matches(p)))
        .cloned()
        .collect();
    match matching.len() {
        1 => Ok(matching.into_iter().next().expect("one")),
        0 => {
            let have: Vec<String> = candidates
                .iter()
                .filter_map(|d| d.platform.as_ref())
                .map(|p| format!("{}/{}", p.os, p.architecture))
                .collect();
            bail!(
                "no manifest for platform {platform} (available: {})",
                if have.is_empty() {
                    "none".into()
                } else {
                    have.join(", ")
                }
            );
        }
        _ => {
            let names: Vec<String> = matching
                .iter()
                .map(|d| match ref_names(d).first() {
                    Some(n) => format!("{n} ({})", d.digest),
                    None => d.digest.to_string(),
                })
                .collect();
            bail!(
                "{} manifests match platform {platform}; choose one with IMAGE:TAG or IMAGE@DIGEST: {}",
                names.len(),
                names.join(", ")
            );
        }
    }
}

/// The image config `cd` names, parsed, and its bytes as stored.
fn read_config(store: &Store, cd: &Descriptor) -> Result<(ImageConfig, Vec<u8>)> {
    if !cd.media_type.is_empty() && !CONFIG_TYPES.contains(&cd.media_type.as_str()) {
        bail!(
            "config {}: unknown media type {:?} (not a container image?)",
            cd.digest,
            cd.media_type
        );
    }
    let cbytes = store.read_json_blob(&cd.digest, Some(cd.size), "config")?;
    let config: ImageConfig =
        serde_json::from_slice(&cbytes).with_context(|| format!("parsing config {}", cd.digest))?;
    Ok((config, cbytes))
}

/// The manifest's layers, each with the config's diff id for it.
fn layer_refs(
    manifest: &ManifestJson,
    manifest_digest: &Digest,
    config: &ImageConfig,
) -> Result<Vec<LayerRef>> {
    let diff_ids = &config.rootfs.diff_ids;
    if diff_ids.len() != manifest.layers.len() {
        bail!(
            "manifest {manifest_digest} lists {} layers but config {} has {} rootfs.diff_ids",
            manifest.layers.len(),
            manifest.config.digest,
            diff_ids.len()
        );
    }
    let n = manifest.layers.len();
    let mut layers = Vec::with_capacity(n);
    for (i, (l, diff_id)) in manifest.layers.iter().zip(diff_ids).enumerate() {
        let label = format!("layer {}/{n} ({})", i + 1, l.digest);
        let compression = Compression::from_media_type(&l.media_type)
            .ok_or_else(|| anyhow!("{label}: unknown media type {:?}", l.media_type))?;
        layers.push(LayerRef {
            label,
            member: Store::blob_name(&l.digest),
            blob: Some((l.digest.clone(), l.size)),
            compression: Some(compression),
            diff_id: Some(diff_id.clone()),
        });
    }
    Ok(layers)
}

/// Adds `d` to `out` if it is a manifest, or the manifests of the index it
/// names (recursively).
fn expand(store: &Store, d: Descriptor, out: &mut Vec<Descriptor>, depth: u32) -> Result<()> {
    if depth > 8 {
        bail!("indexes nested more than 8 deep");
    }
    let mut mt = d.media_type.clone();
    let mut bytes = None;
    if mt.is_empty() {
        // Older layouts omit mediaType in index.json: look inside.
        let b = store.read_json_blob(&d.digest, Some(d.size), "manifest")?;
        let v: serde_json::Value =
            serde_json::from_slice(&b).with_context(|| format!("parsing {}", d.digest))?;
        mt = match v.get("mediaType").and_then(|m| m.as_str()) {
            Some(m) => m.to_string(),
            None if v.get("manifests").is_some() => OCI_INDEX.into(),
            None => OCI_MANIFEST.into(),
        };
        bytes = Some(b);
    }
    if is_manifest(&mt) {
        out.push(d);
        return Ok(());
    }
    if !is_index(&mt) {
        bail!("{}: unknown media type {mt:?}", d.digest);
    }
    let b = match bytes {
        Some(b) => b,
        None => store.read_json_blob(&d.digest, Some(d.size), "index")?,
    };
    let idx: IndexJson =
        serde_json::from_slice(&b).with_context(|| format!("parsing index {}", d.digest))?;
    for m in idx.manifests {
        expand(store, m, out, depth + 1)?;
    }
    Ok(())
}

fn resolve_docker(store: Store, name: &str, reference: &Reference) -> Result<Image> {
    let mut bytes = Vec::new();
    store
        .open("manifest.json")?
        .take(MAX_JSON)
        .read_to_end(&mut bytes)
        .context("reading manifest.json")?;
    let entries: Vec<DockerEntry> =
        serde_json::from_slice(&bytes).context("parsing manifest.json")?;
    let entry = docker_entry(&entries, reference)?;
    // The config is named by its own sha256: "<hex>.json" or "blobs/sha256/<hex>".
    let hex = entry
        .config
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .trim_end_matches(".json");
    let config_digest = Digest::parse(&format!("sha256:{hex}"))
        .with_context(|| format!("config file name {:?}", entry.config))?;
    let cbytes = read_verified(
        store
            .open(&entry.config)
            .with_context(|| format!("config {}", entry.config))?,
        &config_digest,
        None,
        MAX_JSON,
        &format!("config {}", entry.config),
    )?;
    let config: ImageConfig = serde_json::from_slice(&cbytes)
        .with_context(|| format!("parsing config {}", entry.config))?;
    let layers = docker_layers(entry, &config)?;
    Ok(Image {
        name: name.to_string(),
        store,
        manifest_digest: None,
        config_digest,
        config,
        config_raw: cbytes,
        layers,
    })
}

/// The one entry of a docker-archive manifest.json that `reference` names.
fn docker_entry<'a>(entries: &'a [DockerEntry], reference: &Reference) -> Result<&'a DockerEntry> {
    let tags = |e: &DockerEntry| e.repo_tags.clone().unwrap_or_default();
    let mut chosen: Vec<&DockerEntry> = match reference {
        Reference::Any => entries.iter().collect(),
        Reference::Tag(t) => entries
            .iter()
            .filter(|e| tags(e).iter().any(|n| name_matches(t, n)))
            .collect(),
        Reference::Digest(d) => entries
            .iter()
            .filter(|e| e.config.contains(d.hex()))
            .collect(),
    };
    match chosen.len() {
        1 => Ok(chosen.pop().expect("one")),
        0 => bail!("no image matching the reference in manifest.json"),
        _ => {
            let all: Vec<String> = chosen.iter().flat_map(|e| tags(e)).collect();
            bail!(
                "manifest.json holds {} images; choose one with IMAGE:TAG ({})",
                chosen.len(),
                all.join(", ")
            );
        }
    }
}

/// A docker-archive entry's layer members, each with the config's diff id
/// for it.
fn docker_layers(entry: &DockerEntry, config: &ImageConfig) -> Result<Vec<LayerRef>> {
    let diff_ids = &config.rootfs.diff_ids;
    if diff_ids.len() != entry.layers.len() {
        bail!(
            "manifest.json lists {} layers but the config has {} rootfs.diff_ids",
            entry.layers.len(),
            diff_ids.len()
        );
    }
    let n = entry.layers.len();
    Ok(entry
        .layers
        .iter()
        .zip(diff_ids)
        .enumerate()
        .map(|(i, (member, diff_id))| LayerRef {
            label: format!("layer {}/{n} ({member})", i + 1),
            member: member.clone(),
            blob: None,
            compression: None,
            diff_id: Some(diff_id.clone()),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_arg_parsing() {
        let (p, r) = parse_image_arg("/nonexistent/oci:latest").unwrap();
        assert_eq!(p, Path::new("/nonexistent/oci"));
        assert_eq!(r, Reference::Tag("latest".into()));
        let d = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        let (p, r) = parse_image_arg(&format!("/x/oci@{d}")).unwrap();
        assert_eq!(p, Path::new("/x/oci"));
        assert_eq!(r, Reference::Digest(Digest::parse(d).unwrap()));
        assert_eq!(parse_image_arg("/x/y").unwrap().1, Reference::Any);
        assert!(parse_image_arg("/x/oci@sha256:zz").is_err());
        let t = tempfile::tempdir().unwrap();
        let odd = t.path().join("a:b");
        std::fs::create_dir(&odd).unwrap();
        assert_eq!(
            parse_image_arg(odd.to_str().unwrap()).unwrap().1,
            Reference::Any
        );
    }

    #[test]
    fn platform_parsing_and_matching() {
        let p = Platform::parse("linux/arm64/v8").unwrap();
        assert_eq!(p.variant.as_deref(), Some("v8"));
        assert!(Platform::parse("linux").is_err());
        assert!(Platform::parse("linux//v8").is_err());
        let j = |os: &str, a: &str, v: Option<&str>| PlatformJson {
            os: os.into(),
            architecture: a.into(),
            variant: v.map(Into::into),
        };
        assert!(p.matches(&j("linux", "arm64", None)));
        assert!(p.matches(&j("linux", "arm64", Some("v8"))));
        assert!(!p.matches(&j("linux", "arm64", Some("v9"))));
        assert!(!p.matches(&j("linux", "amd64", None)));
        let any = Platform::parse("linux/arm").unwrap();
        assert!(any.matches(&j("linux", "arm", Some("v7"))));
    }

    #[test]
    fn names_match_tags() {
        assert!(name_matches("latest", "latest"));
        assert!(name_matches("latest", "localhost/busybox:latest"));
        assert!(name_matches(
            "localhost/busybox:latest",
            "localhost/busybox:latest"
        ));
        assert!(!name_matches("v1", "localhost/busybox:latest"));
        assert!(!name_matches("busybox", "localhost:5000/busybox"));
        assert!(name_matches("app:1.0", "docker.io/library/app:1.0"));
        assert!(name_matches("app", "docker.io/library/app:latest"));
        assert!(name_matches(
            "localhost/busybox",
            "localhost/busybox:latest"
        ));
        assert!(!name_matches("app", "docker.io/library/app:1.0"));
        assert!(!name_matches("other:1.0", "docker.io/library/app:1.0"));
    }

    #[test]
    fn media_types() {
        assert_eq!(
            Compression::from_media_type("application/vnd.oci.image.layer.v1.tar+zstd"),
            Some(Compression::Zstd)
        );
        assert_eq!(
            Compression::from_media_type("application/vnd.docker.image.rootfs.diff.tar.gzip"),
            Some(Compression::Gzip)
        );
        assert_eq!(Compression::from_media_type("application/x-tar"), None);
        assert_eq!(Compression::sniff(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(Compression::sniff(b"./\0\0"), Compression::None);
    }

    #[test]
    fn archive_links_resolve() {
        assert_eq!(resolve_relative("a/b", "../c/layer.tar"), "a/c/layer.tar");
        assert_eq!(resolve_relative("x", "/y"), "y");
    }
}
