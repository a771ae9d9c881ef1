//! The bytes of every record the worker keeps (outbox entries, cached reads
//! and their metadata, uploads, blob metadata, quarantined records), after
//! the schema byte `record::versioned` puts in front.
//!
//! The format is postcard 1.x's, which wrote every record stored so far:
//! - `u16`, `u32`, `u64`: unsigned LEB128 varints; `bool`: one byte, 0 or 1;
//! - `String`, `Vec<T>`: a varint length, then the bytes or the items;
//! - `Option<T>`: one byte, 0 (`None`) or 1 followed by the value;
//! - an enum: its variant's index as a varint, then that variant's fields;
//! - a struct or a tuple: its fields in order, nothing between them.
//!
//! It is written and read here by hand rather than through serde and
//! postcard: their generic visitors cost the wasm about 21 KB (one
//! `deserialize` per record type and version), for a format this small.
//! The tests hold it to postcard, byte for byte both ways.

/// Why bytes do not read as the record expected (truncated or damaged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corrupt(pub &'static str);

/// A record's fields, read in order. A read that fails marks the reader
/// and gives a placeholder (0, empty, the first variant); every read after
/// it gives placeholders too, and `read` returns the first failure. So a
/// record's fields are read straight through, with no early return that
/// would drop the fields read so far (that drop code, once per field, was
/// most of each record type's decoder).
pub struct Reader<'a> {
    bytes: &'a [u8],
    failed: Option<&'static str>,
}

/// Reads a `T` from `bytes` (bytes after it are left alone, as postcard did).
pub fn read<T: Wire>(bytes: &[u8]) -> Result<T, Corrupt> {
    read_by(bytes, T::get)
}

/// Reads from `bytes` with `get` (a record whose fields depend on its schema).
pub fn read_by<T>(bytes: &[u8], get: impl FnOnce(&mut Reader<'_>) -> T) -> Result<T, Corrupt> {
    let mut r = Reader { bytes, failed: None };
    let value = get(&mut r);
    match r.failed {
        None => Ok(value),
        Some(why) => Err(Corrupt(why)),
    }
}

impl<'a> Reader<'a> {
    /// Marks the reader as failed (the first reason stays).
    pub fn fail(&mut self, why: &'static str) {
        self.failed.get_or_insert(why);
        self.bytes = &[];
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        if n > self.bytes.len() {
            self.fail("it ends too soon");
            return &[];
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        head
    }

    fn byte(&mut self) -> u8 {
        self.take(1).first().copied().unwrap_or(0)
    }

    /// A varint no larger than `max`.
    pub fn varint(&mut self, max: u64) -> u64 {
        let mut value = 0u64;
        for i in 0..10 {
            let b = self.byte();
            let part = u64::from(b & 0x7f);
            // The tenth byte holds the 64th bit and nothing more.
            if i == 9 && part > 1 {
                break;
            }
            value |= part << (7 * i);
            if b & 0x80 == 0 {
                if value <= max {
                    return value;
                }
                break;
            }
        }
        self.fail("a number is out of range");
        0
    }

    /// An enum's variant index.
    pub fn variant(&mut self) -> u64 {
        self.varint(u64::from(u32::MAX))
    }

    /// A variant index this build does not know: fails, and gives `first`.
    pub fn unknown<T>(&mut self, first: T) -> T {
        self.fail("a kind this build does not know");
        first
    }

    /// A sequence's length. Every item takes at least one byte, so a length
    /// past the bytes left is damage (and never a huge allocation).
    fn len(&mut self) -> usize {
        let n = self.varint(u64::from(u32::MAX)) as usize;
        if n > self.bytes.len() {
            self.fail("it ends too soon");
            return 0;
        }
        n
    }
}

/// Writes `value` as a varint.
pub fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A value with a place in a record.
pub trait Wire: Sized {
    fn put(&self, out: &mut Vec<u8>);
    fn get(r: &mut Reader<'_>) -> Self;
}

macro_rules! unsigned {
    ($($t:ty),*) => {$(
        impl Wire for $t {
            fn put(&self, out: &mut Vec<u8>) {
                varint(out, u64::from(*self));
            }
            fn get(r: &mut Reader<'_>) -> Self {
                r.varint(u64::from(<$t>::MAX)) as $t
            }
        }
    )*};
}
unsigned!(u16, u32, u64);

impl Wire for bool {
    fn put(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
    fn get(r: &mut Reader<'_>) -> Self {
        match r.byte() {
            0 => false,
            1 => true,
            _ => r.unknown(false),
        }
    }
}

/// Bytes (bodies, files' metadata): one copy, not one item at a time.
impl Wire for Vec<u8> {
    fn put(&self, out: &mut Vec<u8>) {
        put_bytes(out, self);
    }
    fn get(r: &mut Reader<'_>) -> Self {
        let n = r.len();
        r.take(n).to_vec()
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

impl Wire for String {
    fn put(&self, out: &mut Vec<u8>) {
        put_bytes(out, self.as_bytes());
    }
    fn get(r: &mut Reader<'_>) -> Self {
        String::from_utf8(Vec::get(r)).unwrap_or_else(|_| {
            r.fail("a text is not UTF-8");
            String::new()
        })
    }
}

impl<T: Wire> Wire for Vec<T> {
    fn put(&self, out: &mut Vec<u8>) {
        varint(out, self.len() as u64);
        for item in self {
            item.put(out);
        }
    }
    fn get(r: &mut Reader<'_>) -> Self {
        let n = r.len();
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            items.push(T::get(r));
        }
        items
    }
}

impl<T: Wire> Wire for Option<T> {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                v.put(out);
            }
        }
    }
    fn get(r: &mut Reader<'_>) -> Self {
        match r.byte() {
            0 => None,
            1 => Some(T::get(r)),
            _ => r.unknown(None),
        }
    }
}

impl<A: Wire, B: Wire> Wire for (A, B) {
    fn put(&self, out: &mut Vec<u8>) {
        self.0.put(out);
        self.1.put(out);
    }
    fn get(r: &mut Reader<'_>) -> Self {
        (A::get(r), B::get(r))
    }
}

/// `Wire` for a struct: its fields, listed in the order they are declared
/// (the order postcard wrote them in).
macro_rules! wire_struct {
    ($t:ident { $($field:ident),* $(,)? }) => {
        impl $crate::core::wire::Wire for $t {
            fn put(&self, out: &mut Vec<u8>) {
                $($crate::core::wire::Wire::put(&self.$field, out);)*
            }
            fn get(r: &mut $crate::core::wire::Reader<'_>) -> Self {
                $t { $($field: $crate::core::wire::Wire::get(r)),* }
            }
        }
    };
}
pub(crate) use wire_struct;

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes<T: Wire>(v: &T) -> Vec<u8> {
        let mut out = Vec::new();
        v.put(&mut out);
        out
    }

    #[test]
    fn numbers_are_postcards_varints() {
        for v in [0u64, 1, 127, 128, 300, 16_383, 16_384, u64::from(u32::MAX), u64::MAX - 1, u64::MAX] {
            assert_eq!(bytes(&v), postcard::to_allocvec(&v).unwrap(), "{v}");
            assert_eq!(read::<u64>(&bytes(&v)), Ok(v));
        }
        for v in [0u16, 200, u16::MAX] {
            assert_eq!(bytes(&v), postcard::to_allocvec(&v).unwrap());
            assert_eq!(read::<u16>(&bytes(&v)), Ok(v));
        }
        assert!(read::<u16>(&bytes(&70_000u64)).is_err(), "too large for a u16");
        assert!(read::<u32>(&bytes(&(1u64 << 33))).is_err());
        assert!(read::<u64>(&[0xff; 10]).is_err(), "past 64 bits");
        assert!(read::<u64>(&[0x80, 0x80]).is_err(), "truncated");
    }

    #[test]
    fn texts_sequences_options_and_flags_are_postcards() {
        let v: (Option<String>, Vec<u8>) = (Some("u1é".into()), vec![0, 1, 255]);
        assert_eq!(bytes(&v), postcard::to_allocvec(&v).unwrap());
        assert_eq!(read::<(Option<String>, Vec<u8>)>(&bytes(&v)), Ok(v));
        let w: Vec<(String, String)> = vec![("a".into(), "b".into()), ("".into(), "c".into())];
        assert_eq!(bytes(&w), postcard::to_allocvec(&w).unwrap());
        assert_eq!(read::<Vec<(String, String)>>(&bytes(&w)), Ok(w));
        let n: (Option<u16>, Vec<u32>) = (None, vec![1, 70_000]);
        assert_eq!(bytes(&n), postcard::to_allocvec(&n).unwrap());
        assert_eq!(read::<(Option<u16>, Vec<u32>)>(&bytes(&n)), Ok(n));
        for f in [true, false] {
            assert_eq!(bytes(&f), postcard::to_allocvec(&f).unwrap());
        }
    }

    #[test]
    fn damage_is_an_error() {
        assert!(read::<bool>(&[2]).is_err());
        assert!(read::<Option<u16>>(&[2, 1]).is_err());
        assert!(read::<String>(&[2, 0xc3, 0x28]).is_err(), "not UTF-8");
        assert!(read::<Vec<u8>>(&[5, 1, 2]).is_err(), "shorter than its length");
        assert!(read::<Vec<u32>>(&[0xff, 0xff, 0xff, 0xff, 0x0f]).is_err(), "a length past the bytes");
        assert!(read::<String>(&[]).is_err());
    }
}
