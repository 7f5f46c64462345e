//! Helpers for the image tests: the binary, the example images, a raw tar
//! writer that can express hostile names, a tiny OCI layout writer and a
//! filesystem tree snapshot for differential comparisons.

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

pub fn rcontain_bin() -> PathBuf {
    crate::common::require_root();
    std::env::var_os("RCONTAIN_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_rcontain")))
}

pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    out
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `rcontain unpack ARGS...`, returning the output.
pub fn unpack(args: &[&str]) -> Output {
    let mut c = Command::new(rcontain_bin());
    c.arg("unpack").args(args);
    run(&mut c)
}

pub fn unpack_ok(args: &[&str]) {
    let o = unpack(args);
    assert!(
        o.status.success(),
        "rcontain unpack {args:?} failed: {}",
        stderr(&o)
    );
}

/// The example images of bundles/make-images.sh, built once per test run,
/// or the script's output named by RCONTAIN_TEST_IMAGES: built beforehand
/// where its tools (python3, zstd) are missing, as in the host matrix's
/// VMs (the script makes the same bytes wherever it runs).
pub fn images() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        crate::common::require_root();
        if let Some(dir) = std::env::var_os("RCONTAIN_TEST_IMAGES") {
            return PathBuf::from(dir);
        }
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("image-tests-images");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bundles/make-images.sh");
        let o = run(Command::new("bash").arg(script).arg(&out));
        assert!(o.status.success(), "make-images.sh failed: {}", stderr(&o));
        out
    })
}

pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A ustar writer that writes names and link targets verbatim.
#[derive(Default)]
pub struct RawTar(Vec<u8>);

impl RawTar {
    pub fn entry(self, name: &str, kind: u8, link: &str, mode: u32, data: &[u8]) -> Self {
        self.entry_dev(name, kind, link, mode, data, (0, 0))
    }

    pub fn entry_dev(
        self,
        name: &str,
        kind: u8,
        link: &str,
        mode: u32,
        data: &[u8],
        dev: (u64, u64),
    ) -> Self {
        self.entry_full(name, kind, link, mode, data, dev, (0, 0))
    }

    /// A member owned by `owner` (uid, gid).
    #[allow(dead_code)] // rootless.rs's; image.rs, which includes this too, has no use for it
    pub fn owned(self, name: &str, kind: u8, mode: u32, data: &str, owner: (u32, u32)) -> Self {
        self.entry_full(name, kind, "", mode, data.as_bytes(), (0, 0), owner)
    }

    #[allow(clippy::too_many_arguments)]
    fn entry_full(
        mut self,
        name: &str,
        kind: u8,
        link: &str,
        mode: u32,
        data: &[u8],
        dev: (u64, u64),
        owner: (u32, u32),
    ) -> Self {
        assert!(name.len() < 100 && link.len() < 100);
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        let octal = |h: &mut [u8; 512], off: usize, len: usize, v: u64| {
            let s = format!("{v:0width$o}", width = len - 1);
            h[off..off + len - 1].copy_from_slice(s.as_bytes());
        };
        octal(&mut h, 100, 8, mode.into());
        octal(&mut h, 108, 8, owner.0.into());
        octal(&mut h, 116, 8, owner.1.into());
        octal(&mut h, 124, 12, data.len() as u64);
        octal(&mut h, 136, 12, 1_000_000);
        h[156] = kind;
        h[157..157 + link.len()].copy_from_slice(link.as_bytes());
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        octal(&mut h, 329, 8, dev.0);
        octal(&mut h, 337, 8, dev.1);
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        let s = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(s.as_bytes());
        self.0.extend_from_slice(&h);
        self.0.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.0.extend(std::iter::repeat_n(0u8, pad));
        self
    }
    pub fn dir(self, name: &str) -> Self {
        self.entry(name, b'5', "", 0o755, b"")
    }
    pub fn file(self, name: &str, data: &str) -> Self {
        self.entry(name, b'0', "", 0o644, data.as_bytes())
    }
    pub fn symlink(self, name: &str, target: &str) -> Self {
        self.entry(name, b'2', target, 0o777, b"")
    }
    pub fn hardlink(self, name: &str, target: &str) -> Self {
        self.entry(name, b'1', target, 0o644, b"")
    }
    /// 1:3 like /dev/null: unlike 0:0 (an overlayfs whiteout), user
    /// namespaces may not create it.
    pub fn chardev(self, name: &str) -> Self {
        self.entry_dev(name, b'3', "", 0o666, b"", (1, 3))
    }
    pub fn finish(mut self) -> Vec<u8> {
        self.0.extend(std::iter::repeat_n(0u8, 1024));
        self.0
    }
}

pub const GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const PLAIN: &str = "application/vnd.oci.image.layer.v1.tar";

pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// One layer of a test layout; the `bad_*` fields break it on purpose.
pub struct TestLayer {
    pub tar: Vec<u8>,
    pub media_type: String,
    /// Blob stored instead of the real one (digest still of the real one).
    pub stored: Option<Vec<u8>>,
    pub declared_size: Option<u64>,
    pub wrong_diff_id: bool,
    pub omit_blob: bool,
}

impl TestLayer {
    pub fn plain(tar: Vec<u8>) -> Self {
        TestLayer {
            tar,
            media_type: PLAIN.into(),
            stored: None,
            declared_size: None,
            wrong_diff_id: false,
            omit_blob: false,
        }
    }
}

fn put_blob(dir: &Path, data: &[u8]) -> String {
    let hex = sha256_hex(data);
    std::fs::write(dir.join("blobs/sha256").join(&hex), data).unwrap();
    format!("sha256:{hex}")
}

/// Writes an OCI layout at `dir` with the given layers and `Cmd ["sh"]`,
/// tagged "latest". Compressed media types get gzip.
pub fn write_layout(dir: &Path, layers: Vec<TestLayer>) {
    write_layout_cmd(dir, layers, &["sh"]);
}

/// `write_layout` with the image config's `Cmd` given.
pub fn write_layout_cmd(dir: &Path, layers: Vec<TestLayer>, cmd: &[&str]) {
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for l in layers {
        let blob = if l.media_type.ends_with("+gzip") {
            gzip(&l.tar)
        } else {
            l.tar.clone()
        };
        let digest = format!("sha256:{}", sha256_hex(&blob));
        if !l.omit_blob {
            let stored = l.stored.clone().unwrap_or_else(|| blob.clone());
            std::fs::write(dir.join("blobs/sha256").join(&digest[7..]), stored).unwrap();
        }
        descs.push(serde_json::json!({
            "mediaType": l.media_type, "digest": digest,
            "size": l.declared_size.unwrap_or(blob.len() as u64),
        }));
        let diff = if l.wrong_diff_id {
            sha256_hex(b"other")
        } else {
            sha256_hex(&l.tar)
        };
        diff_ids.push(format!("sha256:{diff}"));
    }
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": cmd},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let cd = put_blob(dir, &config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": cd, "size": config.len()},
        "layers": descs,
    }))
    .unwrap();
    let md = put_blob(dir, &manifest);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": md, "size": manifest.len(),
                       "annotations": {"org.opencontainers.image.ref.name": "latest"}}],
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

/// Everything the issue says must match between two unpacks.
#[derive(Debug, PartialEq, Eq)]
pub struct Node {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u64,
    pub link: Option<String>,
    pub content: Option<String>,
    pub nlink: u64,
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

fn xattrs(p: &Path) -> BTreeMap<String, Vec<u8>> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    let mut names = vec![0u8; 65536];
    // SAFETY: buffer pointer and length describe `names`.
    let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    assert!(n >= 0, "llistxattr {}", p.display());
    let mut out = BTreeMap::new();
    for name in names[..n as usize]
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
    {
        let cn = CString::new(name).unwrap();
        let mut v = vec![0u8; 65536];
        // SAFETY: as above, for `v`.
        let k = unsafe { libc::lgetxattr(c.as_ptr(), cn.as_ptr(), v.as_mut_ptr().cast(), v.len()) };
        assert!(k >= 0, "lgetxattr {}", p.display());
        v.truncate(k as usize);
        out.insert(String::from_utf8_lossy(name).into_owned(), v);
    }
    out
}

/// Path (relative) -> Node for everything under `root`, root excluded.
pub fn snapshot(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let md = std::fs::symlink_metadata(&p).unwrap();
            let ft = md.file_type();
            let kind = if ft.is_dir() {
                stack.push(p.clone());
                "dir"
            } else if ft.is_symlink() {
                "symlink"
            } else if ft.is_file() {
                "file"
            } else if ft.is_char_device() {
                "char"
            } else if ft.is_block_device() {
                "block"
            } else if ft.is_fifo() {
                "fifo"
            } else {
                "other"
            };
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            out.insert(
                rel,
                Node {
                    kind,
                    mode: md.mode(),
                    uid: md.uid(),
                    gid: md.gid(),
                    rdev: md.rdev(),
                    link: ft
                        .is_symlink()
                        .then(|| std::fs::read_link(&p).unwrap().display().to_string()),
                    content: ft
                        .is_file()
                        .then(|| sha256_hex(&std::fs::read(&p).unwrap())),
                    nlink: if ft.is_dir() { 0 } else { md.nlink() },
                    xattrs: xattrs(&p),
                },
            );
        }
    }
    out
}

/// Panics with every difference between two snapshots.
pub fn assert_same_tree(a: &Path, b: &Path) {
    let n = assert_same_small_tree(a, b);
    assert!(n > 10, "suspiciously small tree at {}", a.display());
}

/// `assert_same_tree` for trees that may be small; returns their size.
pub fn assert_same_small_tree(a: &Path, b: &Path) -> usize {
    let (sa, sb) = (snapshot(a), snapshot(b));
    let mut diffs = Vec::new();
    for (k, v) in &sa {
        match sb.get(k) {
            None => diffs.push(format!("only in {}: {k}", a.display())),
            Some(w) if w != v => diffs.push(format!("{k}: {v:?} != {w:?}")),
            _ => {}
        }
    }
    for k in sb.keys().filter(|k| !sa.contains_key(*k)) {
        diffs.push(format!("only in {}: {k}", b.display()));
    }
    assert!(diffs.is_empty(), "trees differ:\n{}", diffs.join("\n"));
    sa.len()
}

/// Names in `dir` (to check nothing was left behind).
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

pub fn sha512_hex(data: &[u8]) -> String {
    sha2::Sha512::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
