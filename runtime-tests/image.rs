//! `rcontain unpack` end to end: the example images in every format,
//! differential checks against umoci, images made by skopeo and umoci,
//! hostile layers, and broken blobs. Run as root (devices, ownership).

mod common;
#[path = "image/util.rs"]
mod util;

use common::host::{self, Skips};

use std::path::Path;
use std::process::Command;

use util::*;

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn have(bin: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {bin}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn umoci_unpack(image: &str, bundle: &Path) {
    let o = run(Command::new("umoci")
        .args(["unpack", "--image", image])
        .arg(bundle));
    assert!(o.status.success(), "umoci unpack {image}: {}", stderr(&o));
}

fn config(bundle: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap()
}

#[test]
fn hello_unpacks_from_layout_oci_archive_and_docker_archive() {
    let img = images().join("hello");
    let t = tmp();
    let forms = [
        format!("{}/oci:latest", img.display()),
        format!("{}/oci.tar", img.display()),
        format!(
            "{}/docker-archive.tar:localhost/hello:latest",
            img.display()
        ),
    ];
    for (i, f) in forms.iter().enumerate() {
        let b = t.path().join(format!("b{i}"));
        unpack_ok(&[f, b.to_str().unwrap()]);
        let c = config(&b);
        assert_eq!(
            c["process"]["args"],
            serde_json::json!(["echo", "hello from rcontain"])
        );
        assert_eq!(c["root"]["path"], "rootfs");
        assert!(b.join("rootfs/bin/busybox").is_file());
        assert_eq!(
            std::fs::read_link(b.join("rootfs/bin/sh")).unwrap(),
            Path::new("/bin/busybox")
        );
    }
    assert_same_tree(&t.path().join("b0/rootfs"), &t.path().join("b1/rootfs"));
    assert_same_tree(&t.path().join("b0/rootfs"), &t.path().join("b2/rootfs"));
}

#[test]
fn hello_bundle_runs() {
    if !have("runc") {
        eprintln!("skipped: runc not installed");
        return;
    }
    let t = tmp();
    let b = t.path().join("bundle");
    unpack_ok(&[
        &format!("{}/hello/oci", images().display()),
        b.to_str().unwrap(),
    ]);
    let id = format!("rcontain-image-test-{}", std::process::id());
    let o = run(Command::new("runc")
        .args(["run", "--bundle"])
        .arg(&b)
        .arg(&id));
    let _ = Command::new("runc").args(["delete", "-f", &id]).output();
    assert!(o.status.success(), "runc run: {}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "hello from rcontain\n");
}

#[test]
fn multi_layer_image_matches_umoci() {
    let layers = images().join("layers/oci");
    let t = tmp();
    let u = t.path().join("umoci");
    umoci_unpack(&format!("{}:gzip", layers.display()), &u);
    // The same layers as gzip/zstd/plain and as all-gzip: same tree as umoci.
    for tag in ["gzip", "latest"] {
        let r = t.path().join(format!("r-{tag}"));
        unpack_ok(&[&format!("{}:{tag}", layers.display()), r.to_str().unwrap()]);
        assert_same_tree(&r.join("rootfs"), &u.join("rootfs"));
    }
    // Spot checks that the comparison covers what it must.
    let s = snapshot(&t.path().join("r-latest/rootfs"));
    assert_eq!(s["data/suid"].mode & 0o7777, 0o4755);
    assert_eq!(s["data/ugs"].mode & 0o7777, 0o7755);
    assert_eq!(s["data/sticky"].mode & 0o7777, 0o1777);
    assert_eq!(s["data/dev/null"].kind, "char");
    assert_eq!(s["data/dev/loop7"].kind, "block");
    assert_eq!(s["data/dev/fifo"].kind, "fifo");
    assert_eq!(s["data/xattr-user"].xattrs["user.greeting"], b"hello");
    assert!(s["data/cap-ping"]
        .xattrs
        .contains_key("security.capability"));
    assert_eq!(
        (s["data/owned-big"].uid, s["data/owned-big"].gid),
        (100000, 200000)
    );
    assert_eq!(s["data/hl-lower"].nlink, 2);
    assert_eq!(s["data/link-rel"].link.as_deref(), Some("new-in-2"));
    assert_eq!(s["data/swap"].kind, "file");
    assert_eq!(s["data/swapdir"].kind, "file");
    for gone in [
        "data/gone",
        "data/opq/old1",
        "data/opq/olddir",
        "data/multi/a",
        "data/multi/b",
        "data/link-dir",
    ] {
        assert!(!s.contains_key(gone), "{gone} should be whited out");
    }
    assert!(s.contains_key("data/gonedir/reborn") && !s.contains_key("data/gonedir/inner"));
}

#[test]
fn multi_layer_archives_match_layout() {
    let img = images().join("layers");
    let t = tmp();
    let a = t.path().join("a");
    let b = t.path().join("b");
    let c = t.path().join("c");
    unpack_ok(&[
        &format!("{}/oci:latest", img.display()),
        a.to_str().unwrap(),
    ]);
    unpack_ok(&[
        &format!("{}/oci.tar:latest", img.display()),
        b.to_str().unwrap(),
    ]);
    unpack_ok(&[
        &format!("{}/docker-archive.tar", img.display()),
        c.to_str().unwrap(),
    ]);
    assert_same_tree(&a.join("rootfs"), &b.join("rootfs"));
    assert_same_tree(&a.join("rootfs"), &c.join("rootfs"));
}

#[test]
fn config_json_follows_the_image_config() {
    let t = tmp();
    let b = t.path().join("b");
    unpack_ok(&[
        &format!("{}/layers/oci:latest", images().display()),
        b.to_str().unwrap(),
    ]);
    let c = config(&b);
    assert_eq!(
        c["process"]["args"],
        serde_json::json!(["/bin/sh", "-c", "ls -la /data"])
    );
    assert_eq!(c["process"]["cwd"], "/data");
    assert!(c["process"]["env"]
        .as_array()
        .unwrap()
        .contains(&"IMAGE=layers".into()));
    let a = &c["annotations"];
    assert_eq!(a["org.opencontainers.image.exposedPorts"], "8080/tcp");
    assert_eq!(a["org.opencontainers.image.stopSignal"], "SIGTERM");
    assert_eq!(a["org.opencontainers.image.title"], "layers");
    assert_eq!(a["io.rcontain.image.volumes"], "/data/vol");
    // Defaults like `spec`: namespaces and mounts are there.
    assert!(!c["linux"]["namespaces"].as_array().unwrap().is_empty());
    assert!(!c["mounts"].as_array().unwrap().is_empty());
}

#[test]
fn platform_selection_in_nested_index() {
    let layers = format!("{}/layers/oci:multi", images().display());
    let t = tmp();
    let arch = |b: &Path| config(b)["annotations"]["org.opencontainers.image.architecture"].clone();
    let host = t.path().join("host");
    unpack_ok(&[&layers, host.to_str().unwrap()]);
    assert_eq!(arch(&host), "amd64");
    let arm = t.path().join("arm");
    unpack_ok(&["--platform", "linux/arm64", &layers, arm.to_str().unwrap()]);
    assert_eq!(arch(&arm), "arm64");
    let o = unpack(&[
        "--platform",
        "linux/s390x",
        &layers,
        t.path().join("x").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("no manifest for platform linux/s390x (available: linux/amd64, linux/arm64)"),
        "{e}"
    );
    // Several tags and no reference: the user must choose.
    let o = unpack(&[
        &format!("{}/layers/oci", images().display()),
        t.path().join("y").to_str().unwrap(),
    ]);
    assert!(
        !o.status.success() && stderr(&o).contains("choose one"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn skopeo_made_images_unpack() {
    if !have("skopeo") {
        eprintln!("skipped: skopeo not installed");
        return;
    }
    let layers = images().join("layers");
    let t = tmp();
    let u = t.path().join("umoci");
    umoci_unpack(&format!("{}/oci:gzip", layers.display()), &u);
    let zoci = t.path().join("zoci");
    let darc = t.path().join("d.tar");
    let copies: [(&str, Vec<String>); 2] = [
        (
            "zstd layout",
            vec![
                "--dest-compress-format".into(),
                "zstd".into(),
                format!("oci:{}/oci:gzip", layers.display()),
                format!("oci:{}:copied", zoci.display()),
            ],
        ),
        (
            "docker archive",
            vec![
                format!("oci:{}/oci:gzip", layers.display()),
                format!("docker-archive:{}:localhost/copied:1", darc.display()),
            ],
        ),
    ];
    for (what, args) in copies {
        let o = run(Command::new("skopeo")
            .args(["--insecure-policy", "copy", "-q"])
            .args(&args));
        assert!(o.status.success(), "skopeo copy ({what}): {}", stderr(&o));
    }
    let a = t.path().join("a");
    unpack_ok(&[&format!("{}:copied", zoci.display()), a.to_str().unwrap()]);
    assert_same_tree(&a.join("rootfs"), &u.join("rootfs"));
    let b = t.path().join("b");
    unpack_ok(&[
        &format!("{}:localhost/copied:1", darc.display()),
        b.to_str().unwrap(),
    ]);
    assert_same_tree(&b.join("rootfs"), &u.join("rootfs"));
}

#[test]
fn umoci_made_layer_with_its_whiteouts_unpacks_the_same() {
    let t = tmp();
    let l = t.path().join("oci");
    let o = run(Command::new("cp")
        .arg("-a")
        .arg(images().join("layers/oci"))
        .arg(&l));
    assert!(o.status.success());
    let u = t.path().join("u");
    umoci_unpack(&format!("{}:gzip", l.display()), &u);
    let r = u.join("rootfs");
    std::fs::remove_file(r.join("data/file-a")).unwrap();
    std::fs::remove_dir_all(r.join("data/opq")).unwrap();
    std::fs::create_dir(r.join("data/opq")).unwrap();
    std::fs::write(r.join("data/opq/fresh"), "new\n").unwrap();
    std::fs::write(r.join("data/added"), "added by umoci repack\n").unwrap();
    std::fs::remove_file(r.join("data/swap")).unwrap();
    std::fs::create_dir(r.join("data/swap")).unwrap();
    let o = run(Command::new("umoci")
        .args(["repack", "--image", &format!("{}:repacked", l.display())])
        .arg(&u));
    assert!(o.status.success(), "umoci repack: {}", stderr(&o));
    let mine = t.path().join("mine");
    unpack_ok(&[&format!("{}:repacked", l.display()), mine.to_str().unwrap()]);
    assert_same_tree(&mine.join("rootfs"), &r);
}

// ---- hostile layers --------------------------------------------------------

enum Outcome<'a> {
    /// The unpack fails with this in its error.
    Refused(&'a str),
    /// The unpack succeeds with these (path, content) files in the rootfs.
    Inside(&'a [(&'a str, &'a str)]),
}
use Outcome::{Inside, Refused};

/// Writes a layout made of a base layer and `layers` into T/img, next to
/// a T/outside/victim file.
fn victim_and_image(layers: &[Vec<u8>]) -> (tempfile::TempDir, std::path::PathBuf) {
    let t = tmp();
    let outside = t.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("victim"), "precious").unwrap();
    let img = t.path().join("img");
    let base = RawTar::default()
        .dir("etc/")
        .file("etc/hostname", "x\n")
        .finish();
    let mut all = vec![TestLayer::plain(base)];
    all.extend(layers.iter().cloned().map(TestLayer::plain));
    write_layout(&img, all);
    (t, img)
}

fn assert_victim_untouched(t: &Path) {
    let outside = t.join("outside");
    assert_eq!(names(&outside), ["victim"], "something was written outside");
    assert_eq!(
        std::fs::read_to_string(outside.join("victim")).unwrap(),
        "precious"
    );
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(outside.join("victim")).unwrap().nlink(),
        1
    );
}

/// Unpacks a layout made of `layers` next to an `outside/victim` file and
/// checks the outcome, that `outside` is untouched and, on failure, that no
/// bundle or staging dir was left. On success the same image is also run
/// from a store (layers in their own directories, overlaid), which must
/// give the same tree and leave `outside` untouched too.
fn hostile(layers: &[Vec<u8>], expect: Outcome) {
    let (t, img) = victim_and_image(layers);
    let bundle = t.path().join("bundle");
    let o = unpack(&[img.to_str().unwrap(), bundle.to_str().unwrap()]);
    match expect {
        Refused(msg) => {
            assert!(!o.status.success(), "hostile layer was accepted");
            let e = stderr(&o);
            assert!(e.contains(msg), "expected {msg:?} in: {e}");
            assert!(
                e.contains(img.to_str().unwrap()),
                "error does not name the image: {e}"
            );
            assert_eq!(
                names(t.path()),
                ["img", "outside"],
                "bundle or staging left behind"
            );
        }
        Inside(files) => {
            assert!(o.status.success(), "{}", stderr(&o));
            for (path, content) in files {
                let p = bundle.join("rootfs").join(path);
                assert_eq!(
                    std::fs::read_to_string(&p).ok().as_deref(),
                    Some(*content),
                    "{}",
                    p.display()
                );
            }
            assert_victim_untouched(t.path());
            assert_store_matches_flat(&img, &bundle, &t.path().join("store"));
        }
    }
    assert_victim_untouched(t.path());
}

/// Runs `img` from a store at `store` and checks its rootfs is exactly the
/// flat unpack `flat` (a bundle), hardlink counts included.
fn assert_store_matches_flat(img: &Path, flat: &Path, store: &Path) {
    let s = Store::open(store).unwrap();
    let bundle = s
        .create_bundle(img.to_str().unwrap(), None, "cmp", &default_spec(), None)
        .unwrap();
    let _g = BundleGuard(&s, "cmp");
    assert!(assert_same_small_tree(&bundle.join("rootfs"), &flat.join("rootfs")) > 0);
}

/// From the rootfs (T/.bundle.unpacking-PID/rootfs) up to T/outside; from
/// a store layer (T/store/layers/sha256/HEX) it takes two more.
const UP: &str = "../../outside";
const UP4: &str = "../../../../outside";

#[test]
fn hostile_dotdot_name() {
    hostile(
        &[RawTar::default().file(&format!("{UP}/pwned"), "x").finish()],
        Refused("climbs out"),
    );
    hostile(
        &[RawTar::default().file("etc/../../x", "x").finish()],
        Refused("climbs out"),
    );
}

#[test]
fn hostile_absolute_name() {
    hostile(
        &[RawTar::default().file("/tmp/rcontain-pwned", "x").finish()],
        Refused("absolute name"),
    );
    assert!(!Path::new("/tmp/rcontain-pwned").exists());
}

/// A parent path through a symlink leading "out" resolves as in the
/// container, the rootfs being `/` (as umoci and containerd do): the entry
/// lands inside, in a directory made where the link points if need be.
#[test]
fn symlinked_parent_resolves_inside_the_rootfs() {
    for (target, lands) in [
        (UP, "outside/pwned"),
        (UP4, "outside/pwned"),
        ("/", "pwned"),
        ("../../../../../../../../../tmp", "tmp/pwned"),
    ] {
        let l = RawTar::default()
            .symlink("evil", target)
            .file("evil/pwned", "x")
            .finish();
        hostile(&[l], Inside(&[(lands, "x")]));
    }
}

#[test]
fn symlinked_parent_from_lower_layer_resolves_inside_the_rootfs() {
    for up in [UP, UP4] {
        let l1 = RawTar::default()
            .dir("a/")
            .symlink("a/evil", &format!("../{up}"))
            .finish();
        let l2 = RawTar::default().file("a/evil/pwned", "x").finish();
        hostile(&[l1, l2], Inside(&[("outside/pwned", "x")]));
    }
    // Also a symlinked directory in the middle of a deeper path.
    let l1 = RawTar::default().symlink("d", "/").finish();
    let l2 = RawTar::default()
        .dir("d/tmp/")
        .file("d/tmp/x", "x")
        .file("d/etc/hostname", "replaced\n")
        .finish();
    hostile(
        &[l1, l2],
        Inside(&[("tmp/x", "x"), ("etc/hostname", "replaced\n")]),
    );
}

#[test]
fn hostile_hardlinks_to_outside() {
    let l = RawTar::default()
        .hardlink("hl", &format!("{UP}/victim"))
        .finish();
    hostile(&[l], Refused("climbs out"));
    let l = RawTar::default().hardlink("hl", "/etc/passwd").finish();
    hostile(&[l], Refused("absolute name"));
    // evil/victim is /outside/victim inside the rootfs: absent.
    for up in [UP, UP4] {
        let l = RawTar::default()
            .symlink("evil", up)
            .hardlink("hl", "evil/victim")
            .finish();
        hostile(&[l], Refused("hardlink target"));
    }
}

#[test]
fn hostile_whiteouts_pointing_outside() {
    hostile(
        &[RawTar::default()
            .file(&format!("{UP}/.wh.victim"), "")
            .finish()],
        Refused("climbs out"),
    );
    // Through the symlink these name /outside/victim inside: absent, so
    // they remove nothing.
    for up in [UP, UP4] {
        let l1 = RawTar::default().symlink("evil", up).finish();
        let l2 = RawTar::default().file("evil/.wh.victim", "").finish();
        hostile(&[l1.clone(), l2], Inside(&[]));
        let l2 = RawTar::default().file("evil/.wh..wh..opq", "").finish();
        hostile(&[l1, l2], Inside(&[]));
    }
}

#[test]
fn symlink_replaced_by_file_does_not_write_through() {
    // Not an error: the second entry replaces the link itself.
    let l1 = RawTar::default()
        .symlink("evil", "../../outside/victim")
        .finish();
    let l2 = RawTar::default().file("evil", "overwritten").finish();
    hostile(&[l1, l2], Inside(&[("evil", "overwritten")]));
}

#[test]
fn device_nodes_without_cap_mknod_are_left_out_with_a_note() {
    if !have("unshare") {
        eprintln!("skipped: unshare not installed");
        return;
    }
    let t = tmp();
    let img = t.path().join("img");
    write_layout(
        &img,
        vec![TestLayer::plain(
            RawTar::default().chardev("null").file("kept", "k").finish(),
        )],
    );
    let bundle = t.path().join("bundle");
    // In a new user namespace root has no CAP_MKNOD over the host's
    // devices: as without root, the node is left out, in one line.
    let o = run(Command::new("unshare")
        .args(["--user", "--map-root-user"])
        .arg(rcontain_bin())
        .arg("unpack")
        .arg(&img)
        .arg(&bundle));
    let e = stderr(&o);
    assert!(o.status.success(), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(
        e.contains("1 device node(s)") && e.contains("left out"),
        "{e}"
    );
    assert_eq!(names(&bundle.join("rootfs")), ["kept"]);
}

// ---- broken blobs -----------------------------------------------------------

fn broken(layer: TestLayer, expect: &[&str]) {
    let t = tmp();
    let img = t.path().join("img");
    write_layout(&img, vec![layer]);
    let o = unpack(&[
        img.to_str().unwrap(),
        t.path().join("bundle").to_str().unwrap(),
    ]);
    assert!(!o.status.success(), "broken image accepted");
    let e = stderr(&o);
    for m in expect {
        assert!(e.contains(m), "expected {m:?} in: {e}");
    }
    assert!(
        e.contains(img.to_str().unwrap()),
        "error does not name the image: {e}"
    );
    assert_eq!(names(t.path()), ["img"], "bundle or staging left behind");
}

fn sample_tar() -> Vec<u8> {
    let big = "0123456789abcdef".repeat(4096);
    RawTar::default()
        .dir("d/")
        .file("d/big", &big)
        .file("d/small", "x")
        .finish()
}

fn gz_layer() -> (TestLayer, Vec<u8>, String) {
    let tar = sample_tar();
    let blob = gzip(&tar);
    let digest = format!("sha256:{}", sha256_hex(&blob));
    let mut l = TestLayer::plain(tar);
    l.media_type = GZIP.into();
    (l, blob, digest)
}

#[test]
fn corrupted_layer_is_a_digest_mismatch() {
    let (mut l, mut blob, digest) = gz_layer();
    let mid = blob.len() / 2;
    blob[mid] ^= 0x55;
    l.stored = Some(blob);
    broken(
        l,
        &["digest mismatch", &format!("blob {digest}"), "layer 1/1"],
    );
}

#[test]
fn truncated_layer_is_reported() {
    let (mut l, blob, digest) = gz_layer();
    l.stored = Some(blob[..blob.len() - 100].to_vec());
    broken(l, &["truncated", &digest]);
}

#[test]
fn oversized_blob_and_wrong_size_are_reported() {
    let (mut l, mut blob, digest) = gz_layer();
    blob.extend_from_slice(b"trailing garbage");
    l.stored = Some(blob);
    broken(l, &["larger than its declared size", &digest]);
    let (mut l, blob, _) = gz_layer();
    l.declared_size = Some(blob.len() as u64 - 1);
    broken(l, &["larger than its declared size"]);
}

#[test]
fn wrong_diff_id_is_reported() {
    let (mut l, _, _) = gz_layer();
    l.wrong_diff_id = true;
    broken(l, &["diff_id", "digest mismatch"]);
}

#[test]
fn unknown_media_type_is_reported() {
    let (mut l, _, _) = gz_layer();
    l.media_type = "application/vnd.example.layer.v1.squashfs".into();
    broken(l, &["layer 1/1 (sha256:", "unknown media type", "squashfs"]);
}

#[test]
fn missing_blob_is_reported() {
    let (mut l, _, digest) = gz_layer();
    l.omit_blob = true;
    broken(l, &[&format!("blob {digest} is missing")]);
}

#[test]
fn existing_bundle_is_not_touched() {
    let t = tmp();
    let b = t.path().join("bundle");
    std::fs::create_dir(&b).unwrap();
    std::fs::write(b.join("keep"), "mine").unwrap();
    let o = unpack(&[
        &format!("{}/hello/oci", images().display()),
        b.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("already exists and is not empty"),
        "{}",
        stderr(&o)
    );
    assert_eq!(names(&b), ["keep"]);
    assert_eq!(names(t.path()), ["bundle"]);
    // An empty directory is fine: it is replaced.
    std::fs::remove_file(b.join("keep")).unwrap();
    unpack_ok(&[
        &format!("{}/hello/oci", images().display()),
        b.to_str().unwrap(),
    ]);
    assert_eq!(names(&b), ["config.json", "rootfs"]);
}

// ---- the image store ------------------------------------------------------

use rcontain::image::store::Store;
use rcontain::oci::specgen::default_spec;

/// Removes a store bundle even if the test fails.
struct BundleGuard<'a>(&'a Store, &'static str);

impl Drop for BundleGuard<'_> {
    fn drop(&mut self) {
        let _ = self.0.remove_bundle(self.1);
    }
}

fn mounted(path: &Path) -> bool {
    let m = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let p = path.to_str().unwrap();
    m.lines().any(|l| l.split(' ').nth(4) == Some(p))
}

fn layer_dirs(store: &Path) -> Vec<String> {
    names(&store.join("layers/sha256"))
}

#[test]
fn store_overlay_rootfs_matches_unpack() {
    let t = tmp();
    let image = format!("{}/layers/oci:latest", images().display());
    let flat = t.path().join("flat");
    unpack_ok(&[&image, flat.to_str().unwrap()]);
    let s = Store::open(&t.path().join("store")).unwrap();
    let bundle = s
        .create_bundle(&image, None, "ovl", &default_spec(), None)
        .unwrap();
    let _g = BundleGuard(&s, "ovl");
    assert!(mounted(&bundle.join("rootfs")));
    assert_same_tree(&bundle.join("rootfs"), &flat.join("rootfs"));
    assert_eq!(
        config(&bundle)["process"]["args"],
        config(&flat)["process"]["args"]
    );
    s.remove_bundle("ovl").unwrap();
    assert!(!mounted(&bundle.join("rootfs")) && !bundle.exists());
}

/// What a store used to get wrong: hardlinks to a lower layer's file
/// (copies instead of links), entries below symlinks of lower layers (a
/// new directory hiding the link), implied parents of a lower directory
/// (fresh 0755 metadata hiding the lower one's). The store's overlay must
/// show exactly the flat unpack, link counts included.
#[test]
fn store_matches_unpack_across_layers() {
    let lower = RawTar::default()
        .entry("usr/", b'5', "", 0o755, b"")
        .entry("usr/lib/", b'5', "", 0o750, b"")
        .entry("usr/lib/t", b'0', "", 0o640, b"target")
        .file("usr/lib/t2", "second")
        .hardlink("usr/lib/t2-link", "usr/lib/t2")
        .symlink("lib", "usr/lib")
        .symlink("abs", "/usr/lib")
        .symlink("run", "/var/run")
        .entry("private/", b'5', "", 0o700, b"")
        .file("private/old", "1")
        .finish();
    let upper = RawTar::default()
        .file("lib/via-rel", "r")
        .file("abs/via-abs", "a")
        .file("run/pid", "p")
        .hardlink("h", "usr/lib/t")
        .hardlink("private/h2", "abs/t")
        .hardlink("h3", "lib/t2-link")
        .file("private/new", "2")
        .file("usr/lib/.wh.t2", "")
        .finish();
    let top = RawTar::default()
        .hardlink("h4", "h")
        .file("usr/.wh.lib", "")
        .dir("usr/lib/")
        .file("usr/lib/fresh", "f")
        .finish();
    let t = tmp();
    let layers = [lower, upper, top];
    for n in [2, 3] {
        let img = t.path().join(format!("img{n}"));
        write_layout(
            &img,
            layers[..n].iter().cloned().map(TestLayer::plain).collect(),
        );
        let flat = t.path().join(format!("flat{n}"));
        unpack_ok(&[img.to_str().unwrap(), flat.to_str().unwrap()]);
        let s = snapshot(&flat.join("rootfs"));
        // The comparison covers what it must: links, and what lands where.
        assert_eq!(s["h"].nlink, 3, "t or h4 with h and private/h2");
        assert_eq!(s["h3"].nlink, if n == 2 { 2 } else { 1 });
        assert_eq!(s["h3"].content, Some(sha256_hex(b"second")));
        assert_eq!(s["private"].mode & 0o7777, 0o700);
        assert_eq!(s["var/run/pid"].content, Some(sha256_hex(b"p")));
        assert_eq!(s.contains_key("usr/lib/via-rel"), n == 2);
        // One store for both: the two images share their first two layers.
        let st = Store::open(&t.path().join("store")).unwrap();
        let bundle = st
            .create_bundle(img.to_str().unwrap(), None, "cmp", &default_spec(), None)
            .unwrap();
        let _g = BundleGuard(&st, "cmp");
        let r = bundle.join("rootfs");
        if n == 2 {
            assert_same_small_tree(&r, &flat.join("rootfs"));
            continue;
        }
        // Where a later layer hid some names of a link group, overlayfs
        // counts them still (they are in the lower directory), and a link
        // made to a lower file joins the copy of it in the new layer, not
        // the names left below: everything but the counts matches, and
        // the new link is a link.
        let unlinked = |mut m: std::collections::BTreeMap<String, Node>| {
            m.values_mut().for_each(|n| n.nlink = 0);
            m
        };
        assert_eq!(unlinked(snapshot(&r)), unlinked(s));
        use std::os::unix::fs::MetadataExt;
        let ino = |p: &str| std::fs::metadata(r.join(p)).unwrap().ino();
        assert_eq!(ino("h"), ino("h4"));
    }
}

/// Each layer is applied through an overlay of all below it: their paths
/// must fit however many there are (fsconfig takes 256 bytes a value).
#[test]
fn store_imports_deep_images() {
    let layers: Vec<TestLayer> = (0..12)
        .map(|i| {
            let t = RawTar::default()
                .dir("d/")
                .file(&format!("d/f{i}"), &format!("{i}"))
                .file("d/last", &format!("{i}"))
                .finish();
            TestLayer::plain(t)
        })
        .collect();
    let t = tmp();
    let img = t.path().join("img");
    write_layout(&img, layers);
    let flat = t.path().join("flat");
    unpack_ok(&[img.to_str().unwrap(), flat.to_str().unwrap()]);
    let store = t.path().join("a-store-path-long-enough-to-matter");
    assert_store_matches_flat(&img, &flat, &store);
    assert_eq!(layer_dirs(&store).len(), 12);
}

/// A container's rootfs is one overlay of all its image's layers: more
/// than one mount(2) options page of store paths (docker allows 127).
#[test]
fn store_runs_images_with_many_layers() {
    const N: usize = 60;
    let busybox = std::fs::read("/bin/busybox").unwrap();
    let mut layers = vec![RawTar::default()
        .dir("bin/")
        .entry("bin/busybox", b'0', "", 0o755, &busybox)
        .symlink("bin/sh", "busybox")
        .file("bottom", "from the bottom\n")
        .finish()];
    for i in 1..N {
        let mut l = RawTar::default().dir("d/").file(&format!("d/f{i}"), "");
        l = match i {
            20 => l.file("mid", "hidden later"),
            40 => l.file(".wh.mid", ""),
            _ if i == N - 1 => l.file("top", "from the top\n"),
            _ => l,
        };
        layers.push(l.finish());
    }
    let t = tmp();
    let img = t.path().join("img");
    let script = "cat /bottom /top; test -e /mid || echo mid is whited out; ls /d | wc -l";
    let layout = |dir: &Path, cmd: &[&str]| {
        write_layout_cmd(
            dir,
            layers.iter().cloned().map(TestLayer::plain).collect(),
            cmd,
        )
    };
    layout(&img, &["sh", "-c", script]);
    // Refused only once its rootfs is mounted: nothing to run.
    let no_cmd = t.path().join("no-cmd");
    layout(&no_cmd, &[]);
    // Long enough that the layers' paths alone fill a page.
    let store = t.path().join(format!("store-{}", "x".repeat(60)));
    let state = t.path().join("state");
    let under_store = || {
        let m = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let p = store.to_str().unwrap();
        m.lines().filter(|l| l.contains(p)).count()
    };

    let s = Store::open(&store).unwrap();
    if !host::has_overlay_lowerdir_plus() {
        // before Linux 6.8 so many layers do not fit in one overlay: both
        // the store and `run --image` fail naming why, leaving nothing
        let e = s
            .create_bundle(img.to_str().unwrap(), None, "deep", &default_spec(), None)
            .unwrap_err();
        let id = format!("img-deep-{}", std::process::id());
        let o = run(rc(&state, &store).args(["run", "--image", img.to_str().unwrap(), &id]));
        assert!(!o.status.success(), "run --image of {N} layers worked");
        for msg in [format!("{e:#}"), stderr(&o)] {
            assert!(
                msg.contains("too many for this kernel's overlayfs") && msg.contains("lowerdir+"),
                "{msg}"
            );
        }
        let containers = store.join("containers");
        assert!(!containers.exists() || names(&containers).is_empty());
        assert_eq!(under_store(), 0, "mount left under the store");
        assert!(!state.join(&id).exists(), "state left behind");
        Skips::default().lack(format!(
            "overlayfs lowerdir+ (Linux 6.8): an image of {N} layers"
        ));
        return;
    }
    let bundle = s
        .create_bundle(img.to_str().unwrap(), None, "deep", &default_spec(), None)
        .unwrap();
    let g = BundleGuard(&s, "deep");
    let r = bundle.join("rootfs");
    assert!(mounted(&r));
    assert_eq!(layer_dirs(&store).len(), N);
    assert_eq!(
        std::fs::read_to_string(r.join("bottom")).unwrap(),
        "from the bottom\n"
    );
    assert_eq!(
        std::fs::read_to_string(r.join("top")).unwrap(),
        "from the top\n"
    );
    assert!(!r.join("mid").exists(), "whiteout of layer 40 not applied");
    assert_eq!(names(&r.join("d")).len(), N - 1);
    drop(g);
    assert!(!bundle.exists(), "bundle (upper, work) left after remove");
    assert_eq!(under_store(), 0, "mount left under the store");

    let e = s
        .create_bundle(
            no_cmd.to_str().unwrap(),
            None,
            "no-cmd",
            &default_spec(),
            None,
        )
        .unwrap_err();
    assert!(format!("{e:#}").contains("nothing to run"), "{e:#}");
    assert!(
        names(&store.join("containers")).is_empty(),
        "failed create left its bundle"
    );
    assert_eq!(under_store(), 0, "failed create left its mount");

    let id = format!("img-deep-{}", std::process::id());
    let o = run(rc(&state, &store).args(["run", "--image", img.to_str().unwrap(), &id]));
    let _ = s.remove_bundle(&id);
    assert!(o.status.success(), "run --image: {}", stderr(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!(
            "from the bottom\nfrom the top\nmid is whited out\n{}\n",
            N - 1
        )
    );
    assert!(
        names(&store.join("containers")).is_empty(),
        "bundle left in the store"
    );
    assert_eq!(under_store(), 0, "mount left under the store");
}

#[test]
fn store_shares_layers_and_prunes_only_unused() {
    let t = tmp();
    let root = t.path().join("store");
    let s = Store::open(&root).unwrap();
    let layers = images().join("layers/oci");
    // Same layers, different compression: one set of layer directories.
    let a = s
        .import(&format!("{}:latest", layers.display()), None, None)
        .unwrap();
    let b = s
        .import(&format!("{}:gzip", layers.display()), None, None)
        .unwrap();
    assert_eq!(a.chain, b.chain);
    assert_eq!(layer_dirs(&root).len(), 3);
    s.import(&format!("{}/hello/oci", images().display()), None, None)
        .unwrap();
    assert_eq!(layer_dirs(&root).len(), 4);
    // A crashed import's leftover is never used and goes with prune.
    std::fs::create_dir(root.join("layers/sha256/.deadbeef.tmp-1")).unwrap();
    let _bundle = s
        .create_bundle(
            &format!("{}:latest", layers.display()),
            None,
            "user",
            &default_spec(),
            None,
        )
        .unwrap();
    let _g = BundleGuard(&s, "user");
    let removed = s.prune().unwrap();
    assert!(removed.iter().any(|r| r.contains(".tmp-1")), "{removed:?}");
    assert!(
        removed.iter().any(|r| r.starts_with("layer ")),
        "{removed:?}"
    );
    assert_eq!(s.images().unwrap().len(), 1, "only the image in use stays");
    assert_eq!(layer_dirs(&root).len(), 3);
    s.remove_bundle("user").unwrap();
    s.prune().unwrap();
    assert!(s.images().unwrap().is_empty());
    assert!(layer_dirs(&root).is_empty());
}

#[test]
fn store_concurrent_imports_agree() {
    let t = tmp();
    let root = t.path().join("store");
    let image = format!("{}/layers/oci:latest", images().display());
    std::thread::scope(|sc| {
        let hs: Vec<_> = (0..3)
            .map(|_| {
                sc.spawn(|| {
                    Store::open(&root)
                        .unwrap()
                        .import(&image, None, None)
                        .unwrap()
                })
            })
            .collect();
        let chains: Vec<_> = hs.into_iter().map(|h| h.join().unwrap().chain).collect();
        assert!(chains.windows(2).all(|w| w[0] == w[1]));
    });
    assert_eq!(layer_dirs(&root).len(), 3, "no leftovers, no duplicates");
    assert_eq!(names(&root.join("images")).len(), 1);
}

#[test]
fn run_straight_from_an_image() {
    let t = tmp();
    let store = t.path().join("store");
    let root = t.path().join("state");
    let id = format!("img-run-{}", std::process::id());
    let o = run(Command::new(rcontain_bin())
        .arg("--root")
        .arg(&root)
        .arg("--store")
        .arg(&store)
        .args([
            "run",
            "--image",
            &format!("{}/hello/oci:latest", images().display()),
            &id,
        ]));
    let leftover = store.join("containers").join(&id);
    if leftover.exists() {
        let _ = Store::open(&store).unwrap().remove_bundle(&id);
    }
    assert!(o.status.success(), "run --image: {}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "hello from rcontain\n");
    assert!(!leftover.exists(), "bundle left in the store");
    let o = run(Command::new(rcontain_bin())
        .arg("--store")
        .arg(&store)
        .arg("images"));
    assert!(String::from_utf8_lossy(&o.stdout).contains("hello/oci:latest"));
}

fn rc(state: &Path, store: &Path) -> Command {
    let mut c = Command::new(rcontain_bin());
    c.arg("--root").arg(state).arg("--store").arg(store);
    c
}

#[test]
fn skopeo_made_image_runs_by_path() {
    if !have("skopeo") {
        eprintln!("skipped: skopeo not installed");
        return;
    }
    let t = tmp();
    let copy = t.path().join("hello-copy");
    let o = run(Command::new("skopeo")
        .args(["--insecure-policy", "copy", "-q"])
        .args([
            format!(
                "docker-archive:{}/hello/docker-archive.tar",
                images().display()
            ),
            format!("oci:{}:v1", copy.display()),
        ]));
    assert!(o.status.success(), "skopeo copy: {}", stderr(&o));
    let (state, store) = (t.path().join("state"), t.path().join("store"));
    // A layout directory as the positional argument: run it as an image.
    let o = run(rc(&state, &store).args(["run", &format!("{}:v1", copy.display())]));
    assert!(o.status.success(), "run IMAGE: {}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "hello from rcontain\n");
    assert!(
        names(&store.join("containers")).is_empty(),
        "bundle left in the store"
    );
}

#[test]
fn detached_image_container_is_released_on_delete() {
    let t = tmp();
    let (state, store) = (t.path().join("state"), t.path().join("store"));
    let id = format!("img-detached-{}", std::process::id());
    let image = format!("{}/hello/oci.tar", images().display());
    let o = run(rc(&state, &store).args(["run", "-d", "--image", &image, &id]));
    let bundle = store.join("containers").join(&id);
    let cleanup = || {
        let _ = rc(&state, &store).args(["delete", "-f", &id]).output();
        let _ = Store::open(&store).map(|s| s.remove_bundle(&id));
    };
    if !o.status.success() {
        cleanup();
        panic!("run -d --image: {}", stderr(&o));
    }
    let still_there = bundle.join("config.json").is_file() && mounted(&bundle.join("rootfs"));
    let o = run(rc(&state, &store).args(["delete", "-f", &id]));
    cleanup();
    assert!(
        still_there,
        "a detached container's bundle must outlive run"
    );
    assert!(o.status.success(), "delete: {}", stderr(&o));
    assert!(
        !bundle.exists() && !mounted(&bundle.join("rootfs")),
        "bundle not released"
    );
}

/// A layout addressed with sha512 throughout (blobs/sha512/...).
fn sha512_layout(dir: &Path, corrupt: bool) {
    std::fs::create_dir_all(dir.join("blobs/sha512")).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let put = |data: &[u8]| {
        let hex = sha512_hex(data);
        std::fs::write(dir.join("blobs/sha512").join(&hex), data).unwrap();
        format!("sha512:{hex}")
    };
    let tar = RawTar::default()
        .dir("etc/")
        .file("etc/motd", "sha512 all the way\n")
        .finish();
    let layer = gzip(&tar);
    let ld = put(&layer);
    if corrupt {
        let mut bad = layer.clone();
        let n = bad.len();
        bad[n / 2] ^= 1;
        std::fs::write(dir.join("blobs/sha512").join(&ld[7..]), bad).unwrap();
    }
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {"Cmd": ["cat", "/etc/motd"]},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha512:{}", sha512_hex(&tar))]},
    }))
    .unwrap();
    let cd = put(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
        "layers": [{"mediaType": GZIP, "digest": ld, "size": layer.len()}],
    }))
    .unwrap();
    let md = put(&manifest);
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": manifest.len()}]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

#[test]
fn sha512_images_are_verified() {
    let t = tmp();
    let good = t.path().join("good");
    sha512_layout(&good, false);
    let b = t.path().join("b");
    unpack_ok(&[good.to_str().unwrap(), b.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(b.join("rootfs/etc/motd")).unwrap(),
        "sha512 all the way\n"
    );
    let bad = t.path().join("bad");
    sha512_layout(&bad, true);
    let o = unpack(&[bad.to_str().unwrap(), t.path().join("c").to_str().unwrap()]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("digest mismatch") && e.contains("blob sha512:"),
        "{e}"
    );
    assert!(!t.path().join("c").exists());
}

#[test]
fn compressed_archives_unpack() {
    let t = tmp();
    let src = images().join("layers");
    let gz = t.path().join("d.tar.gz");
    std::fs::write(
        &gz,
        gzip(&std::fs::read(src.join("docker-archive.tar")).unwrap()),
    )
    .unwrap();
    let zst = t.path().join("oci.tar.zst");
    std::fs::write(
        &zst,
        zstd::encode_all(&std::fs::read(src.join("oci.tar")).unwrap()[..], 3).unwrap(),
    )
    .unwrap();
    let (a, b, c) = (t.path().join("a"), t.path().join("b"), t.path().join("c"));
    unpack_ok(&[
        &format!("{}:localhost/layers:latest", gz.display()),
        a.to_str().unwrap(),
    ]);
    unpack_ok(&[&format!("{}:latest", zst.display()), b.to_str().unwrap()]);
    unpack_ok(&[
        &format!("{}/oci:latest", src.display()),
        c.to_str().unwrap(),
    ]);
    assert_same_tree(&a.join("rootfs"), &c.join("rootfs"));
    assert_same_tree(&b.join("rootfs"), &c.join("rootfs"));
}

#[test]
fn references_by_digest_and_unknown_tags() {
    let layout = images().join("layers/oci");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let gz = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == "gzip")
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let t = tmp();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    unpack_ok(&[&format!("{}@{gz}", layout.display()), a.to_str().unwrap()]);
    unpack_ok(&[&format!("{}:gzip", layout.display()), b.to_str().unwrap()]);
    assert_same_tree(&a.join("rootfs"), &b.join("rootfs"));
    let o = unpack(&[
        &format!("{}:nope", layout.display()),
        t.path().join("c").to_str().unwrap(),
    ]);
    assert!(
        !o.status.success() && stderr(&o).contains("no manifest tagged \"nope\""),
        "{}",
        stderr(&o)
    );
    let other = format!("sha256:{}", "0".repeat(64));
    let o = unpack(&[
        &format!("{}@{other}", layout.display()),
        t.path().join("d").to_str().unwrap(),
    ]);
    assert!(
        !o.status.success() && stderr(&o).contains("no manifest with digest"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn corrupt_later_layer_is_reported_and_nothing_is_left() {
    // A layer other than the first: the same checks and clean-up hold.
    let t = tmp();
    let img = t.path().join("img");
    let base = TestLayer::plain(RawTar::default().dir("etc/").file("etc/a", "a").finish());
    let (mut l2, mut blob, digest) = gz_layer();
    let n = blob.len();
    blob[n / 3] ^= 0xff;
    l2.stored = Some(blob);
    // A third layer with other content (the same blob would overwrite l2's).
    let l3 = TestLayer::plain(RawTar::default().file("etc/c", "c").finish());
    write_layout(&img, vec![base, l2, l3]);
    let o = unpack(&[
        img.to_str().unwrap(),
        t.path().join("bundle").to_str().unwrap(),
    ]);
    assert!(!o.status.success(), "corrupt layer accepted");
    let e = stderr(&o);
    assert!(
        e.contains("layer 2/3") && e.contains(&digest) && e.contains("digest mismatch"),
        "{e}"
    );
    assert_eq!(names(t.path()), ["img"], "bundle or staging left behind");
}
