//! Fuzzing the parsers an attacker feeds: config.json (`spec::Bundle::load`),
//! image layouts, OCI and docker archives (`image::unpack`: index,
//! manifest, config, docker manifest.json) and tar layers
//! (`image::layer::apply_layer`: headers, PAX, GNU long names and sparse
//! maps, links, whiteouts, device nodes).
//!
//! Why a small deterministic mutation fuzzer rather than proptest or
//! cargo-fuzz: it runs on stable Rust inside `make test` with no new
//! dependency, every run tries the very same inputs (a failure reproduces
//! by re-running the test, and the input is also saved, see `failure`), and
//! its mutators know the formats: tar header checksums are recomputed after
//! a mutation (else the tar reader rejects nearly every input at the first
//! header), JSON is mutated as a tree, and the content digests that link
//! index -> manifest -> config -> layer are recomputed, so mutations reach
//! the code behind the digest checks. Seeds: the committed corpus under
//! runtime-tests/fuzz-corpus/ plus tar layers built here (they must name
//! this run's temporary directories). `RCONTAIN_FUZZ_ITERS=N` multiplies
//! the iteration counts for a longer local run.
//!
//! Properties, for every input: no panic (on any thread), no hang (inputs
//! are bounded in size and count; no timing is asserted), an `Err` with a
//! one-line message naming what is wrong, and nothing written or left
//! outside the target directory.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};

use rcontain::image::layer::{apply_layer, SizeCap};
// remove_tree, not fs::remove_dir_all: that recurses once per level, and
// layers here can build trees thousands of levels deep.
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use rcontain::image::inroot::{remove_tree, Rootfs};
use rcontain::image::{unpack, SizeLimits, UnpackOptions};
use rcontain::oci::spec::Bundle;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/runtime-tests/fuzz-corpus");
/// Largest mutated input: keeps each run short whatever the mutation.
const MAX_INPUT: usize = 64 * 1024;
/// How far a layer may expand (SizeCap): small, so that a mutated size
/// or sparse map costs little and the limit itself is exercised.
const MAX_EXPANSION: u64 = 8 << 20;

// ---------------------------------------------------------------- harness

/// splitmix64: tiny, and the same sequence on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}

fn iterations(base: usize) -> usize {
    let k = std::env::var("RCONTAIN_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1);
    base * k.max(1)
}

/// Panic messages with the name of the thread they happened on. The
/// layer applier has writer threads and unpack a decoder thread, where a
/// panic may surface as an ordinary error: the hook is what sees it.
static PANICS: Mutex<Vec<(Option<String>, String)>> = Mutex::new(Vec::new());

fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current().name().map(str::to_string);
            PANICS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((thread, info.to_string()));
            prev(info);
        }));
    });
}

/// Panics of this test's thread or of an unnamed (runtime-spawned)
/// thread; other tests' threads are named after their test.
fn take_panics() -> Vec<String> {
    let me = std::thread::current().name().map(str::to_string);
    let mut all = PANICS.lock().unwrap_or_else(|e| e.into_inner());
    let (mine, others): (Vec<_>, Vec<_>) =
        all.drain(..).partition(|(t, _)| t.is_none() || *t == me);
    *all = others;
    mine.into_iter().map(|p| p.1).collect()
}

/// Saves a failing input where it can be replayed or added to the corpus,
/// and fails the test naming it.
fn failure(target: &str, iter: usize, input: &[u8], why: &str) -> ! {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failures");
    let _ = fs::create_dir_all(&dir);
    let file = dir.join(format!("{target}-{iter}.bin"));
    let _ = fs::write(&file, input);
    panic!(
        "fuzz {target}: input {iter} ({} bytes, saved to {}): {why}",
        input.len(),
        file.display()
    );
}

/// Runs `f` on one input: no panic anywhere, and an error must say
/// something. (Attacker bytes inside a message, a newline in a tar field,
/// are the CLI's to make safe for a terminal and a log line.)
fn run_one<T>(
    target: &str,
    iter: usize,
    input: &[u8],
    f: impl FnOnce() -> anyhow::Result<T>,
) -> Option<T> {
    take_panics();
    let r = catch_unwind(AssertUnwindSafe(f));
    let panics = take_panics();
    if !panics.is_empty() {
        failure(
            target,
            iter,
            input,
            &format!("panicked: {}", panics.join(" | ")),
        );
    }
    match r {
        Err(_) => failure(target, iter, input, "panicked"),
        Ok(Ok(v)) => Some(v),
        Ok(Err(e)) => {
            let msg = format!("{e:#}");
            if msg.trim().is_empty() {
                failure(target, iter, input, &format!("unclear error {msg:?}"));
            }
            None
        }
    }
}

// ---------------------------------------------------------------- mutators

const INTERESTING_TEXT: &[&str] = &[
    "0",
    "-1",
    "1",
    "7777777",
    "77777777777",
    "99999999999",
    "4294967295",
    "18446744073709551615",
    "../",
    "..",
    "/",
    "./",
    "/etc/passwd",
    ".wh.",
    ".wh..wh..opq",
    "a/../../b",
    "%",
    "=",
    "\u{0}",
    " ",
    "\n",
];

fn mutate_bytes(rng: &mut Rng, data: &mut Vec<u8>, others: &[Vec<u8>]) {
    for _ in 0..1 + rng.below(4) {
        let len = data.len();
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                data[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                data[i] = *rng.pick(&[0u8, 0xff, 0x80, b'/', b'.', b'0', b'7', b' ', b'\n']);
            }
            2 if len > 0 => {
                let i = rng.below(len);
                let s = rng.pick(INTERESTING_TEXT).as_bytes();
                let end = (i + s.len()).min(len);
                data[i..end].copy_from_slice(&s[..end - i]);
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let n = rng.below((len - i).min(1024)) + 1;
                data.drain(i..i + n);
            }
            4 if len > 0 => {
                let i = rng.below(len);
                let n = rng.below((len - i).min(1024)) + 1;
                let chunk = data[i..i + n].to_vec();
                let at = rng.below(len + 1);
                data.splice(at..at, chunk);
            }
            5 if !others.is_empty() => {
                let o = rng.pick(others);
                if !o.is_empty() {
                    let i = rng.below(o.len());
                    let n = rng.below((o.len() - i).min(2048)) + 1;
                    let at = rng.below(len + 1);
                    data.splice(at..at, o[i..i + n].iter().copied());
                }
            }
            6 if len > 0 => data.truncate(rng.below(len)),
            7 => {
                let at = rng.below(len + 1);
                let s = rng.pick(INTERESTING_TEXT).as_bytes();
                data.splice(at..at, s.iter().copied());
            }
            _ => {
                // Several random bytes in a row.
                if len > 0 {
                    let i = rng.below(len);
                    for b in data.iter_mut().skip(i).take(1 + rng.below(16)) {
                        *b = rng.next() as u8;
                    }
                }
            }
        }
    }
    data.truncate(MAX_INPUT);
}

/// Tar header fields (offset, length) worth aiming at.
const FIELDS: &[(usize, usize)] = &[
    (0, 100),   // name
    (100, 8),   // mode
    (108, 8),   // uid
    (116, 8),   // gid
    (124, 12),  // size
    (136, 12),  // mtime
    (156, 1),   // typeflag
    (157, 100), // linkname
    (257, 8),   // magic + version
    (329, 8),   // devmajor
    (337, 8),   // devminor
    (345, 155), // ustar prefix
    (386, 96),  // GNU sparse map
    (482, 1),   // GNU isextended
    (483, 12),  // GNU realsize
];

fn is_header(block: &[u8]) -> bool {
    &block[257..262] == b"ustar"
}

/// Recomputes the checksum of every block that looks like a header, so a
/// mutation is judged by the code behind the checksum test.
fn fix_checksums(data: &mut [u8]) {
    for block in data.chunks_exact_mut(512) {
        if !is_header(block) {
            continue;
        }
        block[148..156].fill(b' ');
        let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
        let s = format!("{sum:06o}\0 ");
        block[148..156].copy_from_slice(s.as_bytes());
    }
}

fn mutate_tar(rng: &mut Rng, data: &mut Vec<u8>, others: &[Vec<u8>]) {
    for _ in 0..1 + rng.below(3) {
        let headers: Vec<usize> = (0..data.len() / 512)
            .filter(|&i| is_header(&data[i * 512..i * 512 + 512]))
            .collect();
        match rng.below(6) {
            0..=2 if !headers.is_empty() => {
                let h = *rng.pick(&headers) * 512;
                let &(off, len) = rng.pick(FIELDS);
                let field = &mut data[h + off..h + off + len];
                let value: Vec<u8> = match rng.below(5) {
                    0 => vec![*rng.pick(b"0125367LKxgSDVMN\0")],
                    1 => format!("{:o}", rng.next() >> rng.below(64)).into_bytes(),
                    2 => {
                        // base-256 number, as GNU writes large values.
                        let mut v = vec![0x80 | (rng.next() as u8 & 0x7f)];
                        v.extend(rng.next().to_be_bytes());
                        v
                    }
                    _ => rng.pick(INTERESTING_TEXT).as_bytes().to_vec(),
                };
                let n = value.len().min(len);
                field[..n].copy_from_slice(&value[..n]);
                if n < len && rng.one_in(2) {
                    field[n] = 0;
                }
            }
            3 if data.len() >= 1024 => {
                // Drop, repeat or move a whole block.
                let blocks = data.len() / 512;
                let b = rng.below(blocks) * 512;
                let block = data[b..b + 512].to_vec();
                if rng.one_in(2) {
                    data.drain(b..b + 512);
                }
                let at = rng.below(data.len() / 512 + 1) * 512;
                data.splice(at..at, block);
            }
            _ => mutate_bytes(rng, data, others),
        }
    }
    data.truncate(MAX_INPUT);
    fix_checksums(data);
}

const STRINGS: &[&str] = &[
    "",
    "/",
    "rootfs",
    "relative/path",
    "../../..",
    "/proc/self/fd/3",
    "/proc/self/exe",
    "a=b",
    "noequals",
    "\u{0}",
    "1.0.2",
    "2.0.0",
    "1.0",
    "1.0.0-rc1+dev",
    "mount",
    "pid",
    "user",
    "network",
    "uts",
    "ipc",
    "cgroup",
    "time",
    "net.ipv4.ip_forward",
    "kernel.shmmax",
    "vm.swappiness",
    "latest",
    "linux",
    "amd64",
    "arm64",
    "sha256:",
    "sha512:00",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "root",
    "0:0",
    "65535:65535",
    "nobody:nogroup",
    "4294967296",
    "SIGKILL",
    "RLIMIT_NOFILE",
    "CAP_SYS_ADMIN",
    "SCMP_ACT_KILL",
    "layer.tar",
    "../layer.tar",
    "/etc/passwd",
    "blobs/sha256/../../index.json",
];

const KEYS: &[&str] = &[
    "ociVersion",
    "root",
    "path",
    "readonly",
    "process",
    "args",
    "cwd",
    "env",
    "user",
    "uid",
    "gid",
    "additionalGids",
    "umask",
    "terminal",
    "consoleSize",
    "capabilities",
    "bounding",
    "rlimits",
    "type",
    "hard",
    "soft",
    "mounts",
    "destination",
    "source",
    "options",
    "linux",
    "namespaces",
    "uidMappings",
    "gidMappings",
    "containerID",
    "hostID",
    "size",
    "sysctl",
    "maskedPaths",
    "readonlyPaths",
    "devices",
    "major",
    "minor",
    "fileMode",
    "hooks",
    "prestart",
    "createRuntime",
    "poststart",
    "timeout",
    "hostname",
    "domainname",
    "timeOffsets",
    "resources",
    "memory",
    "limit",
    "cpu",
    "shares",
    "pids",
    "seccomp",
    "defaultAction",
    "syscalls",
    "names",
    "action",
    "annotations",
    "rootfsPropagation",
    "cgroupsPath",
    "noNewPrivileges",
    "oomScoreAdj",
    "ioPriority",
    "scheduler",
    "personality",
    "intelRdt",
    "Config",
    "RepoTags",
    "Layers",
    "manifests",
    "mediaType",
    "digest",
    "layers",
    "config",
    "rootfs",
    "diff_ids",
    "Entrypoint",
    "Cmd",
    "Env",
    "User",
    "WorkingDir",
    "Labels",
    "ExposedPorts",
    "Volumes",
    "StopSignal",
    "architecture",
    "os",
    "variant",
    "platform",
    "schemaVersion",
];

fn random_value(rng: &mut Rng, doc: &Value) -> Value {
    match rng.below(12) {
        0 => Value::Null,
        1 => Value::Bool(rng.one_in(2)),
        2 => json!(*rng.pick(&[
            0i64,
            -1,
            1,
            255,
            65536,
            4_294_967_295,
            4_294_967_296,
            i64::MIN,
            i64::MAX
        ])),
        3 => json!(u64::MAX),
        4 => json!(*rng.pick(&[1.5f64, -0.0, 1e300])),
        5 => json!([]),
        6 => json!({}),
        7 => json!("a".repeat(rng.below(2048))),
        8 => {
            // A copy of some other part of the document.
            let mut paths = Vec::new();
            all_paths(doc, &mut Vec::new(), &mut paths);
            let p = rng.pick(&paths).clone();
            get(doc, &p).cloned().unwrap_or(Value::Null)
        }
        _ => json!(*rng.pick(STRINGS)),
    }
}

/// A step into a JSON document.
#[derive(Clone)]
enum Step {
    Key(String),
    Index(usize),
}

fn all_paths(v: &Value, cur: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    out.push(cur.clone());
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                cur.push(Step::Key(k.clone()));
                all_paths(c, cur, out);
                cur.pop();
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                cur.push(Step::Index(i));
                all_paths(c, cur, out);
                cur.pop();
            }
        }
        _ => {}
    }
}

fn get<'a>(v: &'a Value, path: &[Step]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, s| match s {
        Step::Key(k) => v.get(k),
        Step::Index(i) => v.get(i),
    })
}

fn get_mut<'a>(v: &'a mut Value, path: &[Step]) -> Option<&'a mut Value> {
    path.iter().try_fold(v, |v, s| match s {
        Step::Key(k) => v.get_mut(k),
        Step::Index(i) => v.get_mut(i),
    })
}

/// Tree mutations: replace, delete, add, duplicate or reorder nodes.
fn mutate_json(rng: &mut Rng, doc: &mut Value) {
    for _ in 0..1 + rng.below(3) {
        let mut paths = Vec::new();
        all_paths(doc, &mut Vec::new(), &mut paths);
        let path = rng.pick(&paths).clone();
        let new = random_value(rng, doc);
        let Some(node) = get_mut(doc, &path) else {
            continue;
        };
        match (rng.below(4), node) {
            (0, Value::Object(m)) if !m.is_empty() => {
                let k = m.keys().nth(rng.below(m.len())).cloned().expect("nonempty");
                m.remove(&k);
            }
            (1, Value::Object(m)) => {
                m.insert(rng.pick(KEYS).to_string(), new);
            }
            (0, Value::Array(a)) if !a.is_empty() => {
                let i = rng.below(a.len());
                a.remove(i);
            }
            (1, Value::Array(a)) => {
                let dup = if a.is_empty() || rng.one_in(2) {
                    new
                } else {
                    a[rng.below(a.len())].clone()
                };
                a.push(dup);
            }
            (2, Value::Array(a)) if a.len() > 1 => a.reverse(),
            (_, node) => *node = new,
        }
    }
}

/// A seed document, tree-mutated, serialized, and sometimes byte-mutated.
fn mutated_json(rng: &mut Rng, seed: &Value, others: &[Vec<u8>]) -> Vec<u8> {
    let mut doc = seed.clone();
    if !rng.one_in(8) {
        mutate_json(rng, &mut doc);
    }
    let mut bytes = serde_json::to_vec(&doc).expect("serializable");
    if rng.one_in(4) {
        mutate_bytes(rng, &mut bytes, others);
    }
    bytes
}

fn corpus(dir: &str) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = fs::read_dir(Path::new(CORPUS).join(dir))
        .unwrap_or_else(|e| panic!("{CORPUS}/{dir}: {e}"))
        .map(|e| {
            let p = e.expect("corpus entry").path();
            let name = p.file_name().expect("name").to_string_lossy().into_owned();
            (name, fs::read(&p).expect("corpus file"))
        })
        .collect();
    v.sort();
    v
}

fn corpus_json(name: &str) -> Value {
    let p = Path::new(CORPUS).join(name);
    serde_json::from_slice(&fs::read(&p).expect("corpus file")).expect("corpus json")
}

// ---------------------------------------------------------------- checks

/// What a directory tree holds, to show nothing changed in it.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).expect("readable") {
            let p = e.expect("entry").path();
            let md = fs::symlink_metadata(&p).expect("stat");
            let content = if md.is_file() {
                String::from_utf8_lossy(&fs::read(&p).expect("read")).into_owned()
            } else if md.is_symlink() {
                fs::read_link(&p).expect("readlink").display().to_string()
            } else {
                String::new()
            };
            out.insert(
                p.strip_prefix(root).expect("below").to_path_buf(),
                format!(
                    "{:o} {}:{} nlink {} mtime {} {content}",
                    md.mode(),
                    md.uid(),
                    md.gid(),
                    md.nlink(),
                    md.mtime()
                ),
            );
            if md.is_dir() {
                stack.push(p);
            }
        }
    }
    out
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .expect("readable")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A directory beside the target that no input may touch: attacks aim
/// at it through `..`, absolute names and links.
fn make_canary(t: &Path) -> PathBuf {
    let c = t.join("outside");
    fs::create_dir_all(c.join("d")).expect("mkdir");
    fs::write(c.join("f"), "canary").expect("write");
    fs::write(c.join("d/g"), "canary").expect("write");
    c
}

// ---------------------------------------------------------------- config.json

/// Unpacking keeps the layers' owners (chown), which needs root: those
/// tests are skipped without it, saying so (the parsers alone are not).
fn as_root() -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        println!("skipped: unpacking keeps owners, which needs root");
    }
    root
}

#[test]
fn fuzz_config_json() {
    install_panic_hook();
    let t = tempfile::tempdir().expect("tempdir");
    let bundle = t.path().join("bundle");
    fs::create_dir_all(bundle.join("rootfs")).expect("mkdir");
    let seeds = corpus("config");
    let raw: Vec<Vec<u8>> = seeds.iter().map(|s| s.1.clone()).collect();
    let docs: Vec<Value> = seeds
        .iter()
        .map(|(n, b)| serde_json::from_slice(b).unwrap_or_else(|e| panic!("{n}: {e}")))
        .collect();
    let mut rng = Rng(0x5eed_c0f1);
    let before = snapshot(&bundle.join("rootfs"));
    let mut accepted = 0;
    for iter in 0..iterations(2000) {
        let doc = &docs[rng.below(docs.len())];
        let input = mutated_json(&mut rng, doc, &raw);
        fs::write(bundle.join("config.json"), &input).expect("write");
        let loaded = run_one("config", iter, &input, || {
            let b = Bundle::load(&bundle)?;
            Ok(b.spec)
        });
        if let Some(spec) = loaded {
            accepted += 1;
            // What validation promises the rest of the runtime.
            let p = spec.process().as_ref().expect("process checked");
            let args = p.args().as_ref().expect("args checked");
            assert!(!args.is_empty() && !args[0].is_empty(), "input {iter}");
            assert!(p.cwd().is_absolute(), "input {iter}");
            for m in spec.mounts().iter().flatten() {
                assert!(m.destination().is_absolute(), "input {iter}");
            }
        } else {
            // Errors name the file they are about.
            let e = Bundle::load(&bundle).err().expect("still an error");
            assert!(
                format!("{e:#}").contains("config.json"),
                "input {iter}: {e:#}"
            );
        }
    }
    assert_eq!(
        snapshot(&bundle.join("rootfs")),
        before,
        "a load changed the rootfs"
    );
    assert_eq!(names(&bundle), ["config.json", "rootfs"]);
    assert_eq!(names(t.path()), ["bundle"]);
    // The mutations keep enough inputs valid to reach validation's end.
    assert!(accepted > 0, "no mutated config.json was accepted");
}

// ---------------------------------------------------------------- tar layers

struct TarBuilder(tar::Builder<Vec<u8>>);

impl TarBuilder {
    fn new() -> Self {
        TarBuilder(tar::Builder::new(Vec::new()))
    }

    fn header(kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(mode);
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h
    }

    fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Regular, data.len() as u64, 0o644);
        self.0.append_data(&mut h, name, data).expect("append");
        self
    }

    /// A regular file whose name is written as is (the builder refuses
    /// `..` and absolute names, which is what attackers use).
    fn raw_file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Regular, data.len() as u64, 0o644);
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        self.0.append(&h, data).expect("append");
        self
    }

    fn dir(&mut self, name: &str) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Directory, 0, 0o755);
        self.0.append_data(&mut h, name, &[][..]).expect("append");
        self
    }

    fn link(&mut self, kind: tar::EntryType, name: &str, target: &str) -> &mut Self {
        let mut h = Self::header(kind, 0, 0o777);
        self.0.append_link(&mut h, name, target).expect("append");
        self
    }

    fn node(&mut self, kind: tar::EntryType, name: &str, major: u32, minor: u32) -> &mut Self {
        let mut h = Self::header(kind, 0, 0o666);
        h.set_device_major(major).expect("gnu header");
        h.set_device_minor(minor).expect("gnu header");
        self.0.append_data(&mut h, name, &[][..]).expect("append");
        self
    }

    /// A PAX extended header (records as given) for the next member.
    fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        self.0
            .append_pax_extensions(records.iter().copied())
            .expect("pax");
        self
    }

    /// An old-GNU sparse member: `chunks` are (offset, length) of data,
    /// all filled with 'x', in a file of `real` bytes.
    fn sparse(&mut self, name: &str, chunks: &[(u64, u64)], real: u64) -> &mut Self {
        let data: u64 = chunks.iter().map(|c| c.1).sum();
        let mut h = Self::header(tar::EntryType::GNUSparse, data, 0o644);
        h.set_path(name).expect("short name");
        let g = h.as_gnu_mut().expect("gnu header");
        let octal = |field: &mut [u8; 12], v: u64| {
            let s = format!("{v:011o}\0");
            field.copy_from_slice(s.as_bytes());
        };
        for (slot, &(off, len)) in g.sparse.iter_mut().zip(chunks) {
            octal(&mut slot.offset, off);
            octal(&mut slot.numbytes, len);
        }
        octal(&mut g.realsize, real);
        h.set_cksum();
        let body = vec![b'x'; data as usize];
        self.0.append(&h, &body[..]).expect("append");
        self
    }

    fn finish(&mut self) -> Vec<u8> {
        let b = std::mem::replace(&mut self.0, tar::Builder::new(Vec::new()));
        b.into_inner().expect("tar")
    }
}

/// Layers covering each feature of the format and each way out of the
/// root, naming this run's canary directory by absolute path too.
fn layer_seeds(canary: &Path) -> Vec<Vec<u8>> {
    use tar::EntryType::{Block, Char, Fifo, Link, Symlink};
    let abs = canary.display().to_string();
    let long = format!("{}/file", "long-directory-name/".repeat(12));
    let long_target = format!("{}/target", "l".repeat(150));
    let mut seeds = vec![
        TarBuilder::new()
            .dir("etc")
            .file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n")
            .file("etc/group", b"root:x:0:\n")
            .dir("bin")
            .file("bin/sh", b"#!")
            .link(Symlink, "bin/ash", "sh")
            .link(Link, "bin/hard", "bin/sh")
            .finish(),
        TarBuilder::new()
            .link(Symlink, "up", "../outside")
            .link(Symlink, "abs", &abs)
            .link(Symlink, "root", "/")
            .file("up/f", b"escaped")
            .file("abs/f", b"escaped")
            .raw_file("root/../outside/f", b"escaped")
            .raw_file("../outside/new", b"escaped")
            .raw_file(&format!("{abs}/new"), b"escaped")
            .link(Link, "h1", "up/f")
            .link(Link, "h2", "abs/d/g")
            .link(Link, "h3", "../outside/f")
            .link(Link, "h4", &format!("{abs}/f"))
            .dir("abs/new")
            .finish(),
        TarBuilder::new()
            .dir("a")
            .file("a/x", b"1")
            .dir("a/sub")
            .file("a/sub/y", b"2")
            .file("a/.wh.x", b"")
            .file("a/.wh..wh..opq", b"")
            .file(".wh.a", b"")
            .file("a/.wh..wh.plnk", b"")
            .link(Symlink, "w", &abs)
            .file("w/.wh.f", b"")
            .file("w/.wh..wh..opq", b"")
            .finish(),
        TarBuilder::new()
            .file(&long, b"deep")
            .link(Symlink, &long_target, "x")
            .link(Link, "hl", &long)
            .finish(),
        TarBuilder::new()
            .pax(&[
                ("path", b"pax/named"),
                ("mtime", b"1.5"),
                ("atime", b"-1.5"),
                ("SCHILY.xattr.user.fuzz", b"v"),
                ("LIBARCHIVE.xattr.user.b%3D", b"aGVsbG8="),
            ])
            .file("placeholder", b"content")
            .pax(&[("linkpath", abs.as_bytes()), ("uid", b"4294967296")])
            .link(Symlink, "paxlink", "x")
            .pax(&[("size", b"3"), ("gid", b"65534")])
            .file("sized", b"abc")
            .finish(),
        TarBuilder::new()
            .sparse("sparse", &[(0, 4), (8192, 4)], 16384)
            .sparse("s2", &[(4096, 512)], 1 << 20)
            .sparse("bomb", &[(0, 512), (1 << 32, 512)], (1 << 32) + 512)
            .finish(),
        TarBuilder::new()
            .node(Fifo, "fifo", 0, 0)
            .node(Char, "null", 1, 3)
            .node(Block, "blk", 7, 0)
            .file("fifo", b"replaced")
            .dir("fifo")
            .link(Symlink, "fifo", "null")
            .finish(),
    ];
    // A directory and then its replacement by every other type.
    let mut b = TarBuilder::new();
    for (i, k) in [Symlink, Link, Fifo].iter().enumerate() {
        b.dir(&format!("t{i}")).file(&format!("t{i}/in"), b"x");
        if *k == Fifo {
            b.node(*k, &format!("t{i}"), 0, 0);
        } else {
            b.link(*k, &format!("t{i}"), "etc");
        }
    }
    seeds.push(b.finish());
    seeds
}

#[test]
fn fuzz_tar_layers() {
    install_panic_hook();
    let t = tempfile::tempdir().expect("tempdir");
    let canary = make_canary(t.path());
    let root = t.path().join("root");
    let seeds = {
        let mut s = layer_seeds(&canary);
        s.extend(corpus("layer").into_iter().map(|c| c.1));
        s
    };
    let before = snapshot(&canary);
    let cap = SizeCap {
        bytes: MAX_EXPANSION,
        what: "the layer expands beyond the fuzz limit".into(),
    };
    let mut rng = Rng(0x7a2_1a7e5);
    let mut applied = 0;
    for iter in 0..iterations(1500) {
        let mut input = rng.pick(&seeds).clone();
        // Every seed once as it is, then mutations.
        if iter >= seeds.len() {
            mutate_tar(&mut rng, &mut input, &seeds);
        }
        fs::create_dir(&root).expect("mkdir root");
        let rootfs = Rootfs::open(&root).expect("open root");
        if run_one("layer", iter, &input, || {
            apply_layer(&rootfs, &input[..], &cap)
        })
        .is_some()
        {
            applied += 1;
        }
        drop(rootfs);
        if snapshot(&canary) != before {
            failure(
                "layer",
                iter,
                &input,
                "changed the directory beside the root",
            );
        }
        if names(t.path()) != ["outside", "root"] {
            failure("layer", iter, &input, "left files beside the root");
        }
        remove_tree(&root).expect("clean root");
    }
    assert!(applied > seeds.len(), "no mutated layer applied cleanly");
}

// ---------------------------------------------------------------- images

fn sha256_hex(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).expect("gzip");
    e.finish().expect("gzip")
}

/// A directory packed into a tar (an OCI or docker archive).
fn pack(dir: &Path) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    b.append_dir_all(".", dir).expect("pack");
    b.into_inner().expect("pack")
}

/// The pieces of one image before they are written out.
struct ImageParts {
    layer: Vec<u8>,
    files: Vec<(String, Vec<u8>)>,
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// A small layer, sometimes mutated: the image fuzzers look at the
/// documents, the layer fuzzer at layers.
fn image_layer(rng: &mut Rng) -> Vec<u8> {
    let mut tar = TarBuilder::new()
        .dir("etc")
        .file(
            "etc/passwd",
            b"root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        )
        .file("etc/group", b"root:x:0:\nstaff:x:50:app\n")
        .dir("work")
        .link(tar::EntryType::Symlink, "bin", "usr/bin")
        .finish();
    if rng.one_in(6) {
        mutate_tar(rng, &mut tar, &[]);
    }
    tar
}

fn oci_image(rng: &mut Rng) -> ImageParts {
    let layer_tar = image_layer(rng);
    let diff_id = format!("sha256:{}", sha256_hex(&layer_tar));
    let (layer, layer_type) = match rng.below(3) {
        0 => (layer_tar.clone(), "application/vnd.oci.image.layer.v1.tar"),
        1 => (
            zstd::encode_all(&layer_tar[..], 1).expect("zstd"),
            "application/vnd.oci.image.layer.v1.tar+zstd",
        ),
        _ => (
            gzip(&layer_tar),
            "application/vnd.oci.image.layer.v1.tar+gzip",
        ),
    };
    let layer_digest = sha256_hex(&layer);
    let raw: Vec<Vec<u8>> = Vec::new();

    let mut config = corpus_json("image/config.json");
    config["architecture"] = json!(host_arch());
    config["rootfs"]["diff_ids"] = json!([diff_id]);
    let config = if rng.one_in(3) {
        mutated_json(rng, &config, &raw)
    } else {
        serde_json::to_vec(&config).expect("json")
    };
    let config_digest = sha256_hex(&config);

    let mut manifest = corpus_json("image/manifest.json");
    manifest["config"]["digest"] = json!(format!("sha256:{config_digest}"));
    manifest["config"]["size"] = json!(config.len());
    manifest["layers"][0]["digest"] = json!(format!("sha256:{layer_digest}"));
    manifest["layers"][0]["size"] = json!(layer.len());
    manifest["layers"][0]["mediaType"] = json!(layer_type);
    let manifest = if rng.one_in(3) {
        mutated_json(rng, &manifest, &raw)
    } else {
        serde_json::to_vec(&manifest).expect("json")
    };
    let manifest_digest = sha256_hex(&manifest);

    let mut index = corpus_json("image/index.json");
    index["manifests"][0]["digest"] = json!(format!("sha256:{manifest_digest}"));
    index["manifests"][0]["size"] = json!(manifest.len());
    index["manifests"][0]["platform"]["architecture"] = json!(host_arch());
    let mut files = vec![
        (format!("blobs/sha256/{layer_digest}"), layer.clone()),
        (format!("blobs/sha256/{config_digest}"), config),
        (format!("blobs/sha256/{manifest_digest}"), manifest),
        (
            "oci-layout".into(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ),
    ];
    if rng.one_in(4) {
        // One more level: index -> index -> manifest.
        let inner = serde_json::to_vec(&index).expect("json");
        let inner_digest = sha256_hex(&inner);
        files.push((format!("blobs/sha256/{inner_digest}"), inner.clone()));
        index["manifests"][0]["mediaType"] = json!("application/vnd.oci.image.index.v1+json");
        index["manifests"][0]["digest"] = json!(format!("sha256:{inner_digest}"));
        index["manifests"][0]["size"] = json!(inner.len());
    }
    let index = if rng.one_in(3) {
        mutated_json(rng, &index, &raw)
    } else {
        serde_json::to_vec(&index).expect("json")
    };
    files.push(("index.json".into(), index));
    ImageParts { layer, files }
}

fn docker_image(rng: &mut Rng) -> ImageParts {
    let layer = image_layer(rng);
    let raw: Vec<Vec<u8>> = Vec::new();
    let mut config = corpus_json("image/config.json");
    config["architecture"] = json!(host_arch());
    config["rootfs"]["diff_ids"] = json!([format!("sha256:{}", sha256_hex(&layer))]);
    let config = if rng.one_in(3) {
        mutated_json(rng, &config, &raw)
    } else {
        serde_json::to_vec(&config).expect("json")
    };
    let config_name = format!("{}.json", sha256_hex(&config));
    let mut manifest = corpus_json("image/docker-manifest.json");
    manifest[0]["Config"] = json!(config_name);
    let manifest = if rng.one_in(2) {
        mutated_json(rng, &manifest, &raw)
    } else {
        serde_json::to_vec(&manifest).expect("json")
    };
    let files = vec![
        ("l0/layer.tar".into(), layer.clone()),
        (config_name, config),
        ("manifest.json".into(), manifest),
    ];
    ImageParts { layer, files }
}

fn fuzz_images(target: &str, seed: u64, iters: usize, make: fn(&mut Rng) -> ImageParts) {
    install_panic_hook();
    let t = tempfile::tempdir().expect("tempdir");
    let canary = make_canary(t.path());
    let before = snapshot(&canary);
    let mut rng = Rng(seed);
    let mut unpacked = 0;
    for iter in 0..iters {
        let parts = make(&mut rng);
        let dir = t.path().join("img");
        for (name, data) in &parts.files {
            let p = dir.join(name);
            fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            fs::write(&p, data).expect("write");
        }
        // A layout directory, a tar of it, or a tar mutated as a tar
        // (the archive's own headers), sometimes compressed.
        let image = match rng.below(4) {
            0 | 1 => dir.clone(),
            form => {
                let mut tar = pack(&dir);
                if form == 3 {
                    mutate_tar(&mut rng, &mut tar, std::slice::from_ref(&parts.layer));
                }
                if rng.one_in(3) {
                    tar = gzip(&tar);
                }
                let p = t.path().join("img.tar");
                fs::write(&p, &tar).expect("write");
                fs::remove_dir_all(&dir).expect("clean");
                p
            }
        };
        let input = if image.is_dir() {
            serde_json::to_vec(&parts.files).expect("json")
        } else {
            fs::read(&image).expect("read")
        };
        let bundle = t.path().join("out/bundle");
        let opts = UnpackOptions {
            image: image.display().to_string(),
            bundle: bundle.clone(),
            platform: None,
            progress: None,
            base: rcontain::oci::specgen::default_spec(),
            limits: SizeLimits {
                layer: MAX_EXPANSION,
                image: 2 * MAX_EXPANSION,
            },
        };
        if run_one(target, iter, &input, || unpack(&opts)).is_some() {
            unpacked += 1;
            assert!(bundle.join("config.json").is_file(), "input {iter}");
        } else if t.path().join("out").exists() && !names(&t.path().join("out")).is_empty() {
            failure(target, iter, &input, "a failed unpack left files behind");
        }
        if snapshot(&canary) != before {
            failure(
                target,
                iter,
                &input,
                "changed the directory beside the image",
            );
        }
        let _ = remove_tree(&t.path().join("out"));
        let _ = remove_tree(&dir);
        let _ = fs::remove_file(t.path().join("img.tar"));
        if names(t.path()) != ["outside"] {
            failure(target, iter, &input, "left files beside the image");
        }
    }
    assert!(unpacked > 0, "{target}: no image unpacked");
}

#[test]
fn fuzz_oci_images() {
    if !as_root() {
        return;
    }
    fuzz_images("oci", 0x0c1_1a40, iterations(300), oci_image);
}

#[test]
fn fuzz_docker_archives() {
    if !as_root() {
        return;
    }
    fuzz_images("docker", 0xd0c_4e12, iterations(250), docker_image);
}

/// Lowers this process's soft RLIMIT_NOFILE to `n` (never raises it) until
/// dropped.
struct FdLimit(u64, u64);

impl FdLimit {
    fn lower_to(n: u64) -> FdLimit {
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
        setrlimit(Resource::RLIMIT_NOFILE, soft.min(n), hard).expect("setrlimit");
        FdLimit(soft, hard)
    }
}

impl Drop for FdLimit {
    fn drop(&mut self) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, self.0, self.1);
    }
}

/// A layer that builds a tree thousands of directories deep (each symlink
/// reaches the bottom of the previous step) and whites it out again: the
/// removal must neither recurse per level nor hold a descriptor per level.
/// Found by the layer fuzzer's seed of the same shape, which aborted the
/// test binary with a stack overflow. Making the directories must not hold
/// a descriptor per level either: under the kernel's default soft limit of
/// 1024 descriptors (systemd services, the VMs' init), which the test sets
/// whatever its host allows, that failed with "Too many open files".
#[test]
fn deep_tree_whiteout() {
    if !as_root() {
        return;
    }
    let _limit = FdLimit::lower_to(1024);
    use tar::EntryType::Symlink;
    let step = "a/".repeat(2000);
    let mut b = TarBuilder::new();
    b.dir(&step);
    let mut prev = String::new();
    let mut links = Vec::new();
    for i in 0..4 {
        let link = format!("s{i}");
        b.link(Symlink, &link, &format!("{prev}{}", "a/".repeat(2030)));
        b.dir(&format!("{link}/{step}"));
        prev = format!("{link}/");
        links.push(link);
    }
    b.file(".wh.a", b"");
    let t = tempfile::tempdir().expect("tempdir");
    let root = Rootfs::open(t.path()).expect("open root");
    let unlimited = SizeCap {
        bytes: u64::MAX,
        what: String::new(),
    };
    apply_layer(&root, &b.finish()[..], &unlimited).expect("apply");
    assert_eq!(names(t.path()), links);
    // And a whole deep tree, as a failed unpack's staging directory is.
    let mut b = TarBuilder::new();
    b.dir(&step)
        .link(Symlink, "s", &"a/".repeat(2030))
        .dir(&format!("s/{step}"));
    apply_layer(&root, &b.finish()[..], &unlimited).expect("apply");
    drop(root);
    remove_tree(t.path()).expect("remove");
    assert!(!t.path().exists());
}

/// A layer whose header fields carry terminal control sequences: the tar
/// reader quotes a malformed field verbatim in its error, which the CLI
/// printed raw to stderr, so an image could rewrite the operator's
/// terminal (title, colours, cursor). Found by the fuzzers (a newline from
/// a mutated uid field in an error).
#[test]
fn errors_do_not_carry_control_characters() {
    if !as_root() {
        return;
    }
    let t = tempfile::tempdir().expect("tempdir");
    let mut layer = TarBuilder::new().file("f", b"x").finish();
    // uid field: an OSC title sequence, then a colour; checksum fixed.
    layer[108..116].copy_from_slice(b"\x1b]0;X\x07\x1b[");
    fix_checksums(&mut layer);
    // Positive control: the reader does quote the field verbatim.
    let root = Rootfs::open(t.path()).expect("root");
    let cap = SizeCap {
        bytes: u64::MAX,
        what: String::new(),
    };
    let e = apply_layer(&root, &layer[..], &cap).expect_err("malformed uid");
    assert!(format!("{e:#}").contains('\x1b'), "{e:#}");
    drop(root);

    let img = t.path().join("img");
    let config = serde_json::to_vec(&json!({
        "architecture": host_arch(), "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", sha256_hex(&layer))]}
    }))
    .expect("json");
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": format!("sha256:{}", sha256_hex(&config)), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": format!("sha256:{}", sha256_hex(&layer)), "size": layer.len()}]
    }))
    .expect("json");
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{}", sha256_hex(&manifest)), "size": manifest.len()}]
    }))
    .expect("json");
    fs::create_dir_all(img.join("blobs/sha256")).expect("mkdir");
    for b in [&layer, &config, &manifest] {
        fs::write(img.join("blobs/sha256").join(sha256_hex(b)), b).expect("write");
    }
    fs::write(img.join("index.json"), index).expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rcontain"))
        .arg("unpack")
        .arg(&img)
        .arg(t.path().join("bundle"))
        .output()
        .expect("run rcontain");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("uid"), "{stderr}");
    assert!(
        !stderr.trim_end().chars().any(char::is_control),
        "control characters reach the terminal: {stderr:?}"
    );
    assert!(!t.path().join("bundle").exists());
}
