//! The compact encoding of a folder listing, its fingerprint, and the diff of two
//! listings into exact changes.
//!
//! A listing is stored as entries sorted by name, each as
//! `varint name length, name, flags, varint size, [zigzag varint mtime]` after a
//! version byte. The fingerprint is XXH3-128 of that encoding: two listings are equal
//! exactly when their encodings are, so comparing fingerprints is enough to skip an
//! unchanged folder without loading what was stored.

use crate::error::{Error, ErrorKind, Result};
use crate::path::join;
use crate::types::{Change, Entry, EntryKind, Mtime, Update};
use std::cmp::Ordering;
use std::fmt;

const VERSION: u8 = 1;
const FLAG_DIR: u8 = 1;
const FLAG_MTIME: u8 = 2;

/// A 128-bit fingerprint of a listing.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 16]);

impl Fingerprint {
    /// The fingerprint of a placeholder: a folder a baseline saw in its parent but could
    /// not list. Its first successful listing is recorded as a baseline (nothing is
    /// reported), instead of every entry being reported as created. No encoding hashes
    /// to it in practice (XXH3-128 of even an empty listing is not zero).
    pub const UNLISTED: Fingerprint = Fingerprint([0; 16]);

    /// True for [`Fingerprint::UNLISTED`].
    pub fn is_unlisted(&self) -> bool {
        *self == Self::UNLISTED
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..6] {
            write!(f, "{b:02x}")?;
        }
        f.write_str("…")
    }
}

/// A listing in its stored form: the encoding and its fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedListing {
    /// The compact encoding.
    pub bytes: Vec<u8>,
    /// XXH3-128 of `bytes`.
    pub fingerprint: Fingerprint,
}

/// Sorts entries by name, the order every encoding and diff relies on.
pub fn sort_entries(entries: &mut [Entry]) {
    entries.sort_unstable_by(|a, b| a.name.cmp(&b.name));
}

/// Encodes entries that are already sorted by name (see [`sort_entries`]).
pub fn encode(entries: &[Entry]) -> EncodedListing {
    let mut bytes = Vec::with_capacity(1 + entries.len() * 24);
    bytes.push(VERSION);
    put_varint(&mut bytes, entries.len() as u64);
    for e in entries {
        put_varint(&mut bytes, e.name.len() as u64);
        bytes.extend_from_slice(e.name.as_bytes());
        let mut flags = 0;
        if e.kind == EntryKind::Dir {
            flags |= FLAG_DIR;
        }
        if e.mtime.is_some() {
            flags |= FLAG_MTIME;
        }
        bytes.push(flags);
        put_varint(&mut bytes, e.size);
        if let Some(m) = e.mtime {
            let n = m.as_nanos();
            put_varint(&mut bytes, ((n << 1) ^ (n >> 63)) as u64);
        }
    }
    let fingerprint = fingerprint_of(&bytes);
    EncodedListing { bytes, fingerprint }
}

/// The fingerprint of an encoding.
pub fn fingerprint_of(bytes: &[u8]) -> Fingerprint {
    Fingerprint(xxhash_rust::xxh3::xxh3_128(bytes).to_le_bytes())
}

/// Decodes a stored listing. A malformed encoding is a [`Corrupt`](ErrorKind::Corrupt)
/// error, never a panic.
pub fn decode(bytes: &[u8]) -> Result<Vec<Entry>> {
    let mut r = Reader { bytes, pos: 0 };
    let version = r.byte()?;
    if version != VERSION {
        return Err(corrupt(format!(
            "unknown listing encoding version {version}"
        )));
    }
    let count = r.varint()?;
    // Each entry takes at least 3 bytes: a bound that keeps a corrupt count from
    // reserving gigabytes.
    let cap = usize::try_from(count)
        .unwrap_or(usize::MAX)
        .min(bytes.len() / 3);
    let mut entries = Vec::with_capacity(cap);
    for _ in 0..count {
        let len = usize::try_from(r.varint()?).map_err(|_| corrupt("name too long"))?;
        let name = std::str::from_utf8(r.take(len)?)
            .map_err(|_| corrupt("name is not UTF-8"))?
            .to_owned();
        let flags = r.byte()?;
        let size = r.varint()?;
        let mtime = if flags & FLAG_MTIME != 0 {
            let z = r.varint()?;
            Some(Mtime::from_nanos(((z >> 1) as i64) ^ -((z & 1) as i64)))
        } else {
            None
        };
        let kind = if flags & FLAG_DIR != 0 {
            EntryKind::Dir
        } else {
            EntryKind::File
        };
        entries.push(Entry {
            name,
            kind,
            size,
            mtime,
        });
    }
    if r.pos != bytes.len() {
        return Err(corrupt("trailing bytes after listing"));
    }
    Ok(entries)
}

/// Compares two listings of the folder `folder` (both sorted by name) and returns the
/// exact changes, in name order.
///
/// A file is modified when its size or mtime differs (an unknown mtime on either side
/// compares by size alone). A child that changed kind is a deletion and a creation.
/// A folder whose own entry changed is not a change here: what moved inside it is
/// found when that folder itself is listed.
pub fn diff(folder: &str, old: &[Entry], new: &[Entry]) -> Vec<Change> {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        let ord = match (old.get(i), new.get(j)) {
            (Some(o), Some(n)) => o.name.cmp(&n.name),
            (Some(_), None) => Ordering::Less,
            _ => Ordering::Greater,
        };
        match ord {
            Ordering::Less => {
                let o = &old[i];
                out.push(Change::new(
                    join(folder, &o.name),
                    Update::Deleted,
                    o.is_dir(),
                ));
                i += 1;
            }
            Ordering::Greater => {
                let n = &new[j];
                out.push(Change::new(
                    join(folder, &n.name),
                    Update::Created,
                    n.is_dir(),
                ));
                j += 1;
            }
            Ordering::Equal => {
                let (o, n) = (&old[i], &new[j]);
                if o.kind != n.kind {
                    let path = join(folder, &n.name);
                    out.push(Change::new(path.clone(), Update::Deleted, o.is_dir()));
                    out.push(Change::new(path, Update::Created, n.is_dir()));
                } else if !n.is_dir() && file_changed(o, n) {
                    out.push(Change::new(join(folder, &n.name), Update::Modified, false));
                }
                i += 1;
                j += 1;
            }
        }
    }
    out
}

fn file_changed(old: &Entry, new: &Entry) -> bool {
    if old.size != new.size {
        return true;
    }
    match (old.mtime, new.mtime) {
        (Some(a), Some(b)) => a != b,
        _ => false,
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8> {
        let b = *self
            .bytes
            .get(self.pos)
            .ok_or_else(|| corrupt("listing ends early"))?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| corrupt("listing ends early"))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(corrupt("varint too long"))
    }
}

fn corrupt(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::Corrupt, msg).permanent()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Entry> {
        let mut v = vec![
            Entry::file(
                "b.mkv",
                1234,
                Some(Mtime::from_nanos(1_700_000_000_123_456_789)),
            ),
            Entry::dir("Season 01", None),
            Entry::file("a & b #1 %.nfo", 0, Some(Mtime::from_nanos(-3))),
            Entry::file("电影 🎬.mkv", u64::MAX, None),
        ];
        sort_entries(&mut v);
        v
    }

    #[test]
    fn round_trip() {
        let e = sample();
        let enc = encode(&e);
        assert_eq!(decode(&enc.bytes).unwrap(), e);
        assert_eq!(enc.fingerprint, encode(&e).fingerprint);
    }

    #[test]
    fn fingerprint_sees_every_field() {
        let base = encode(&sample()).fingerprint;
        let mut v = sample();
        v[0].size += 1;
        assert_ne!(encode(&v).fingerprint, base);
        let mut v = sample();
        v[1].mtime = Some(Mtime::from_nanos(1));
        assert_ne!(encode(&v).fingerprint, base);
        let mut v = sample();
        v[2].kind = EntryKind::Dir;
        assert_ne!(encode(&v).fingerprint, base);
    }

    #[test]
    fn corrupt_input_is_an_error_not_a_panic() {
        let enc = encode(&sample()).bytes;
        for cut in 0..enc.len() {
            assert!(decode(&enc[..cut]).is_err(), "cut at {cut}");
        }
        assert!(
            decode(&[
                1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f
            ])
            .is_err()
        );
        assert!(decode(&[9]).is_err());
    }

    #[test]
    fn diff_reports_exact_changes() {
        let old = vec![
            Entry::dir("A", None),
            Entry::file("b", 1, Some(Mtime::from_nanos(1))),
            Entry::file("c", 1, Some(Mtime::from_nanos(1))),
            Entry::file("d", 1, None),
        ];
        let new = vec![
            Entry::file("A", 5, None),
            Entry::file("b", 1, Some(Mtime::from_nanos(2))),
            Entry::file("d", 1, Some(Mtime::from_nanos(9))),
            Entry::dir("e", None),
        ];
        assert_eq!(
            diff("/w", &old, &new),
            vec![
                Change::new("/w/A", Update::Deleted, true),
                Change::new("/w/A", Update::Created, false),
                Change::new("/w/b", Update::Modified, false),
                Change::new("/w/c", Update::Deleted, false),
                Change::new("/w/e", Update::Created, true),
            ]
        );
    }
}
