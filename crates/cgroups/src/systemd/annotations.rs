//! `org.systemd.property.NAME` annotations: extra properties for the
//! container's scope, as runc takes them. The value is GVariant text
//! (`uint64 123`, `'inactive-or-failed'`, `true`, `@as []`), the syntax of
//! `busctl`/`gdbus`; this parser takes its basic types and arrays of them,
//! which is what scope properties use, and refuses the rest by name.

use super::Value;
use anyhow::{anyhow, bail, Result};
use std::collections::BTreeMap;

pub const PREFIX: &str = "org.systemd.property.";

/// The properties the annotations ask for, in annotation-key order. A
/// name ending in a lower-case letter and "Sec" (TimeoutStopSec) is the
/// unit-file spelling: it becomes "…USec" with the number times 10⁶, as
/// runc converts it.
pub fn properties(annotations: &BTreeMap<String, String>) -> Result<Vec<(String, Value)>> {
    let mut out = Vec::new();
    for (key, text) in annotations {
        let Some(name) = key.strip_prefix(PREFIX) else {
            continue;
        };
        if name.len() < 3 || !name.bytes().all(|b| b.is_ascii_alphabetic()) {
            bail!("annotation {key}: a systemd property name is 3 or more ASCII letters");
        }
        let value = parse(text).map_err(|e| anyhow!("annotation {key}: value {text:?}: {e}"))?;
        let sec = name
            .strip_suffix("Sec")
            .filter(|base| base.ends_with(|c: char| c.is_ascii_lowercase()));
        match sec {
            Some(base) => {
                let usec = seconds_to_usec(&value).map_err(|e| {
                    anyhow!("annotation {key}: value {text:?}: {e} (a number of seconds)")
                })?;
                out.push((format!("{base}USec"), Value::U64(usec)));
            }
            None => out.push((name.to_string(), value)),
        }
    }
    Ok(out)
}

fn seconds_to_usec(v: &Value) -> Result<u64> {
    const M: u64 = 1_000_000;
    let signed = |n: i64| u64::try_from(n).map_err(|_| anyhow!("negative"));
    let secs = match *v {
        Value::Byte(n) => u64::from(n),
        Value::I16(n) => signed(n.into())?,
        Value::U16(n) => n.into(),
        Value::I32(n) => signed(n.into())?,
        Value::U32(n) => n.into(),
        Value::I64(n) => signed(n)?,
        Value::U64(n) => n,
        Value::Double(f) if f >= 0.0 && f.is_finite() => return Ok((f * M as f64) as u64),
        Value::Double(_) => bail!("negative or not finite"),
        _ => bail!("not a number"),
    };
    secs.checked_mul(M).ok_or_else(|| anyhow!("too large"))
}

/// One GVariant text value.
pub fn parse(text: &str) -> Result<Value> {
    let mut p = Parser { s: text, i: 0 };
    let v = p.value(None)?;
    p.ws();
    if p.i != text.len() {
        bail!("unexpected {:?} after the value", &text[p.i..]);
    }
    Ok(v)
}

/// The type keywords and the signature each stands for.
const KEYWORDS: [(&str, &str); 12] = [
    ("boolean", "b"),
    ("byte", "y"),
    ("int16", "n"),
    ("uint16", "q"),
    ("int32", "i"),
    ("uint32", "u"),
    ("int64", "x"),
    ("uint64", "t"),
    ("double", "d"),
    ("string", "s"),
    ("objectpath", "o"),
    ("signature", "g"),
];

struct Parser<'a> {
    s: &'a str,
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        let rest = &self.s[self.i..];
        self.i += rest.len() - rest.trim_start().len();
    }

    fn peek(&self) -> Option<char> {
        self.s[self.i..].chars().next()
    }

    /// A run of characters up to a delimiter.
    fn token(&mut self) -> &str {
        let rest = &self.s[self.i..];
        let end = rest
            .find(|c: char| c.is_whitespace() || ",[](){}<>".contains(c))
            .unwrap_or(rest.len());
        self.i += end;
        &rest[..end]
    }

    /// A value; `want` is its signature when a type was given.
    fn value(&mut self, want: Option<&str>) -> Result<Value> {
        self.ws();
        let Some(c) = self.peek() else {
            bail!("a value is missing");
        };
        match c {
            '@' => {
                self.i += 1;
                let sig = self.token().to_string();
                check_signature(&sig)?;
                if want.is_some_and(|w| w != sig) {
                    bail!("@{sig} where {} was expected", want.unwrap_or_default());
                }
                self.value(Some(&sig))
            }
            '[' => self.array(want),
            '\'' | '"' => {
                let s = self.string(c)?;
                match want.unwrap_or("s") {
                    "s" => Ok(Value::Str(s)),
                    "o" => Ok(Value::ObjectPath(s)),
                    "g" => Ok(Value::Signature(s)),
                    w => bail!("a string where type {w:?} was expected"),
                }
            }
            '(' | '{' | '<' => {
                bail!("tuples, dictionaries and variants are not supported, only basic types and arrays of them")
            }
            c if c.is_ascii_alphabetic() => {
                let word = self.token().to_string();
                if let Some((_, sig)) = KEYWORDS.iter().find(|(k, _)| *k == word) {
                    if want.is_some_and(|w| w != *sig) {
                        bail!(
                            "{word} where type {:?} was expected",
                            want.unwrap_or_default()
                        );
                    }
                    return self.value(Some(sig));
                }
                match (word.as_str(), want.unwrap_or("b")) {
                    ("true", "b") => Ok(Value::Bool(true)),
                    ("false", "b") => Ok(Value::Bool(false)),
                    // GVariant text spells inf and nan as words too
                    ("inf" | "nan", "d") => number(&word, "d"),
                    _ => bail!("unknown word {word:?} (a string needs quotes: '{word}')"),
                }
            }
            _ => {
                let tok = self.token().to_string();
                if tok.is_empty() {
                    bail!("unexpected {c:?}");
                }
                // untyped: a double if it looks like one, else an int32
                let hex = tok.trim_start_matches(['-', '+']).starts_with("0x");
                let sig = want.unwrap_or(if !hex && tok.contains(['.', 'e', 'E']) {
                    "d"
                } else {
                    "i"
                });
                number(&tok, sig)
            }
        }
    }

    fn array(&mut self, want: Option<&str>) -> Result<Value> {
        let mut elem = match want {
            None => None,
            Some(w) => Some(
                w.strip_prefix('a')
                    .ok_or_else(|| anyhow!("an array where type {w:?} was expected"))?
                    .to_string(),
            ),
        };
        self.i += 1; // '['
        let mut items = Vec::new();
        loop {
            self.ws();
            if self.peek() == Some(']') && items.is_empty() {
                self.i += 1;
                break;
            }
            let v = self.value(elem.as_deref())?;
            // the first element fixes the type of the others
            elem.get_or_insert_with(|| signature(&v));
            items.push(v);
            self.ws();
            match self.peek() {
                Some(',') => self.i += 1,
                Some(']') => {
                    self.i += 1;
                    break;
                }
                _ => bail!("an array needs ',' or ']' after an element"),
            }
        }
        let elem = elem.ok_or_else(|| anyhow!("an empty array needs a type, e.g. @as []"))?;
        if elem.starts_with('a') {
            bail!("arrays of arrays are not supported");
        }
        Ok(Value::Array(elem, items))
    }

    fn string(&mut self, quote: char) -> Result<String> {
        self.i += 1;
        let mut out = String::new();
        let mut chars = self.s[self.i..].char_indices();
        while let Some((k, c)) = chars.next() {
            match c {
                c if c == quote => {
                    self.i += k + 1;
                    return Ok(out);
                }
                '\\' => {
                    let Some((_, e)) = chars.next() else { break };
                    out.push(match e {
                        'n' => '\n',
                        't' => '\t',
                        'r' => '\r',
                        'a' => '\x07',
                        'b' => '\x08',
                        'f' => '\x0c',
                        'v' => '\x0b',
                        'u' | 'U' => {
                            let n = if e == 'u' { 4 } else { 8 };
                            let hex: String = chars.by_ref().take(n).map(|(_, c)| c).collect();
                            u32::from_str_radix(&hex, 16)
                                .ok()
                                .filter(|_| hex.len() == n)
                                .and_then(char::from_u32)
                                .ok_or_else(|| anyhow!("bad escape \\{e}{hex}"))?
                        }
                        other => other,
                    });
                }
                c => out.push(c),
            }
        }
        bail!("a string is not closed with {quote}")
    }
}

fn check_signature(sig: &str) -> Result<()> {
    let basic = |s: &str| KEYWORDS.iter().any(|(_, k)| *k == s);
    if basic(sig) || sig.strip_prefix('a').is_some_and(basic) {
        Ok(())
    } else {
        bail!("type @{sig} is not supported, only basic types and arrays of them")
    }
}

fn signature(v: &Value) -> String {
    match v {
        Value::Bool(_) => "b".into(),
        Value::Byte(_) => "y".into(),
        Value::I16(_) => "n".into(),
        Value::U16(_) => "q".into(),
        Value::I32(_) => "i".into(),
        Value::U32(_) => "u".into(),
        Value::I64(_) => "x".into(),
        Value::U64(_) => "t".into(),
        Value::Double(_) => "d".into(),
        Value::Str(_) => "s".into(),
        Value::ObjectPath(_) => "o".into(),
        Value::Signature(_) => "g".into(),
        Value::Array(e, _) => format!("a{e}"),
        Value::U32s(_) => "au".into(),
        Value::Bytes(_) => "ay".into(),
        Value::DeviceAllow(_) => "a(ss)".into(),
    }
}

/// A number token as type `sig`.
fn number(tok: &str, sig: &str) -> Result<Value> {
    let bad = || anyhow!("{tok:?} is not a valid {}", type_name(sig));
    let int = |tok: &str| -> Option<i128> {
        let (neg, digits) = match tok.strip_prefix('-') {
            Some(d) => (true, d),
            None => (false, tok.strip_prefix('+').unwrap_or(tok)),
        };
        let n = match digits.strip_prefix("0x") {
            Some(h) => i128::from_str_radix(h, 16).ok()?,
            None => digits.parse::<i128>().ok()?,
        };
        Some(if neg { -n } else { n })
    };
    let i = || int(tok).ok_or_else(bad);
    Ok(match sig {
        "y" => Value::Byte(i()?.try_into().map_err(|_| bad())?),
        "n" => Value::I16(i()?.try_into().map_err(|_| bad())?),
        "q" => Value::U16(i()?.try_into().map_err(|_| bad())?),
        "i" => Value::I32(i()?.try_into().map_err(|_| bad())?),
        "u" => Value::U32(i()?.try_into().map_err(|_| bad())?),
        "x" => Value::I64(i()?.try_into().map_err(|_| bad())?),
        "t" => Value::U64(i()?.try_into().map_err(|_| bad())?),
        "d" => Value::Double(tok.parse().map_err(|_| bad())?),
        s => bail!("a number where type {s:?} was expected"),
    })
}

fn type_name(sig: &str) -> &'static str {
    KEYWORDS
        .iter()
        .find(|(_, s)| *s == sig)
        .map_or("value", |(k, _)| k)
}
