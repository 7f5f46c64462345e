//! Content addressing: digests and a reader that verifies size and digest of
//! what streams through it, so nothing from an image is used unverified.

use std::fmt;
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Result};
use sha2::{Digest as _, Sha256, Sha512};

/// Digest algorithms the image-spec registers and we verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

/// A parsed `algorithm:hex` digest. Parsing guarantees the hex part is
/// exactly lowercase hex of the right length, so it is safe to use as a file
/// name under `blobs/<algorithm>/`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    pub fn parse(s: &str) -> Result<Digest> {
        let Some((alg, hex)) = s.split_once(':') else {
            bail!("digest {s:?} is not of the form algorithm:hex");
        };
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            _ => bail!("digest {s:?}: unsupported algorithm {alg:?} (sha256 and sha512 are)"),
        };
        let hex_ok = hex.len() == algorithm.hex_len()
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !hex_ok {
            bail!(
                "digest {s:?}: expected {} lowercase hex digits",
                algorithm.hex_len()
            );
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_string(),
        })
    }

    pub fn algorithm_name(&self) -> &'static str {
        self.algorithm.name()
    }

    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// Digest of a byte string, e.g. of a blob that was read whole.
    pub fn of(algorithm: Algorithm, data: &[u8]) -> Digest {
        let mut h = Hasher::new(algorithm);
        h.update(data);
        h.finish()
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    fn new(algorithm: Algorithm) -> Hasher {
        match algorithm {
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    fn finish(self) -> Digest {
        let (algorithm, bytes): (Algorithm, Vec<u8>) = match self {
            Hasher::Sha256(h) => (Algorithm::Sha256, h.finalize().to_vec()),
            Hasher::Sha512(h) => (Algorithm::Sha512, h.finalize().to_vec()),
        };
        let hex = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Digest { algorithm, hex }
    }
}

/// Wraps a reader, hashing and counting every byte. Reading past the
/// expected size, reaching EOF short of it, or reaching EOF with the wrong
/// digest is an `InvalidData` error naming `what`. The check happens when
/// the inner reader reports EOF, so callers must read to EOF; `verified()`
/// tells afterwards whether that happened and passed.
pub struct VerifyingReader<R> {
    inner: R,
    hasher: Option<Hasher>,
    expected: Digest,
    size: Option<u64>,
    read: u64,
    what: String,
    ok: Arc<AtomicBool>,
}

impl<R: Read> VerifyingReader<R> {
    /// `size` of `None` means only the digest is checked (e.g. a diff_id,
    /// whose uncompressed size no descriptor records).
    pub fn new(inner: R, expected: &Digest, size: Option<u64>, what: String) -> Self {
        VerifyingReader {
            inner,
            hasher: Some(Hasher::new(expected.algorithm)),
            expected: expected.clone(),
            size,
            read: 0,
            what,
            ok: Arc::new(AtomicBool::new(false)),
        }
    }

    /// A flag set once the whole stream was read and matched. Shared so it
    /// can be checked after the reader was moved into a decompressor.
    pub fn verified_flag(&self) -> Arc<AtomicBool> {
        self.ok.clone()
    }

    fn fail(&self, msg: String) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, format!("{}: {msg}", self.what))
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let Some(hasher) = self.hasher.as_mut() else {
            // Already verified (or already failed): stay at EOF.
            return Ok(0);
        };
        // Never pass more than the declared size (+1 to detect excess) down,
        // so an oversized blob cannot make us read unbounded data.
        let limit = match self.size {
            Some(size) => {
                let left = size.saturating_sub(self.read).saturating_add(1);
                buf.len().min(usize::try_from(left).unwrap_or(usize::MAX))
            }
            None => buf.len(),
        };
        let n = self.inner.read(&mut buf[..limit])?;
        if n > 0 {
            self.read += n as u64;
            if let Some(size) = self.size {
                if self.read > size {
                    self.hasher = None;
                    return Err(self.fail(format!("larger than its declared size {size}")));
                }
            }
            hasher.update(&buf[..n]);
            return Ok(n);
        }
        let hasher = self.hasher.take().expect("checked above");
        if let Some(size) = self.size {
            if self.read < size {
                return Err(self.fail(format!("truncated: {} of {size} bytes present", self.read)));
            }
        }
        let got = hasher.finish();
        if got != self.expected {
            return Err(self.fail(format!(
                "digest mismatch: content is {got}, expected {}",
                self.expected
            )));
        }
        self.ok.store(true, Ordering::Release);
        Ok(0)
    }
}

/// Reads a whole small blob (manifest, index, config) with verification.
/// `max` bounds memory against a hostile size field.
pub fn read_verified(
    r: impl Read,
    expected: &Digest,
    size: Option<u64>,
    max: u64,
    what: &str,
) -> Result<Vec<u8>> {
    if let Some(size) = size {
        if size > max {
            bail!("{what}: declared size {size} exceeds the limit of {max} bytes");
        }
    }
    let mut v = VerifyingReader::new(r, expected, size, what.to_string());
    let mut out = Vec::new();
    (&mut v).take(max + 1).read_to_end(&mut out)?;
    if out.len() as u64 > max {
        bail!("{what}: larger than the limit of {max} bytes");
    }
    if !v.ok.load(Ordering::Acquire) {
        // take() stopped exactly at EOF without the final 0-read.
        let mut rest = [0u8; 1];
        if v.read(&mut rest)? != 0 {
            bail!("{what}: larger than the limit of {max} bytes");
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO256: &str =
        "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    fn read_all(mut r: impl Read) -> io::Result<Vec<u8>> {
        let mut v = Vec::new();
        r.read_to_end(&mut v)?;
        Ok(v)
    }

    #[test]
    fn parse_rejects_bad_digests() {
        assert!(Digest::parse(HELLO256).is_ok());
        for bad in [
            "sha256:abc",
            "md5:0123",
            "sha256:../../etc/passwd",
            "sha256:2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824",
            "nocolon",
        ] {
            assert!(Digest::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn matching_content_passes_and_sets_flag() {
        let d = Digest::parse(HELLO256).unwrap();
        let v = VerifyingReader::new(&b"hello"[..], &d, Some(5), "blob".into());
        let flag = v.verified_flag();
        assert_eq!(read_all(v).unwrap(), b"hello");
        assert!(flag.load(Ordering::Acquire));
    }

    #[test]
    fn sha512_is_verified() {
        let d = Digest::of(Algorithm::Sha512, b"hello");
        assert_eq!(d.hex().len(), 128);
        assert!(read_all(VerifyingReader::new(&b"hello"[..], &d, Some(5), "b".into())).is_ok());
        let e = read_all(VerifyingReader::new(&b"hellO"[..], &d, Some(5), "b".into()));
        assert!(e.unwrap_err().to_string().contains("digest mismatch"));
    }

    #[test]
    fn digest_mismatch_truncation_and_excess_are_errors() {
        let d = Digest::parse(HELLO256).unwrap();
        let e = read_all(VerifyingReader::new(
            &b"hellp"[..],
            &d,
            Some(5),
            "blob X".into(),
        ))
        .unwrap_err();
        assert!(e.to_string().contains("blob X: digest mismatch"), "{e}");
        let e = read_all(VerifyingReader::new(&b"hell"[..], &d, Some(5), "b".into())).unwrap_err();
        assert!(e.to_string().contains("truncated: 4 of 5"), "{e}");
        let e = read_all(VerifyingReader::new(
            &b"hello!"[..],
            &d,
            Some(5),
            "b".into(),
        ))
        .unwrap_err();
        assert!(
            e.to_string().contains("larger than its declared size 5"),
            "{e}"
        );
    }

    #[test]
    fn read_verified_bounds_memory() {
        let d = Digest::parse(HELLO256).unwrap();
        assert_eq!(
            read_verified(&b"hello"[..], &d, Some(5), 5, "c").unwrap(),
            b"hello"
        );
        assert!(read_verified(&b"hello"[..], &d, Some(5), 4, "c").is_err());
        assert!(read_verified(&b"hello"[..], &d, None, 4, "c").is_err());
        assert!(read_verified(&b"hello"[..], &d, None, 5, "c").is_ok());
    }

    /// A layer descriptor's size is the image's to choose: the largest
    /// u64 is a short blob, not an overflow (the image fuzzer found it).
    #[test]
    fn declared_size_u64_max_is_an_error() {
        let d = Digest::parse(HELLO256).unwrap();
        let mut r = VerifyingReader::new(&b"hello"[..], &d, Some(u64::MAX), "blob".into());
        let e = std::io::copy(&mut r, &mut std::io::sink()).unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
    }
}
