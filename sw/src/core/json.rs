//! The worker's JSON: a small reader and writer for the few shapes it reads
//! and writes (configs, the origin's answers, batch bodies, status and
//! events for pages).
//!
//! Why not serde_json: in the wasm it was the largest dependency (a tenth
//! of the code, mostly its deserializers instantiated once per type, and
//! float printing it links through its error messages), and every byte of
//! the wasm is paid at each worker start. This one is not generic, keeps
//! numbers as the text they were written with (the worker never does
//! arithmetic on a number it did not make, so no float code is linked),
//! and keeps an object's fields in the order they came.

use super::text::{cat, num};
use std::fmt;

/// A JSON value.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Value {
    #[default]
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<Value>),
    Object(Object),
}

/// A number, as the JSON text it was read from or written as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Number(String);

impl Number {
    /// The number as written (`42`, `-1.5e3`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number when it is a whole number that fits a `u64`.
    pub fn as_u64(&self) -> Option<u64> {
        self.0.parse().ok()
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An object's fields in the order they came; a repeated name keeps its
/// last value, as JavaScript's `JSON.parse` does. Two objects are equal
/// when they hold the same fields, whatever their order.
#[derive(Debug, Clone, Default)]
pub struct Object(Vec<(String, Value)>);

impl Object {
    pub fn new() -> Self {
        Object(Vec::new())
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// Sets `name`, in place when it is already there.
    pub fn insert(&mut self, name: impl Into<String>, value: Value) {
        let name = name.into();
        match self.0.iter_mut().find(|(k, _)| *k == name) {
            Some((_, v)) => *v = value,
            None => self.0.push((name, value)),
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut Value> {
        self.0.iter_mut().map(|(_, v)| v)
    }
}

impl PartialEq for Object {
    fn eq(&self, other: &Object) -> bool {
        self.len() == other.len() && self.iter().all(|(k, v)| other.get(k) == Some(v))
    }
}

impl Object {
    /// `obj!`'s object: one function for every size of object, where
    /// collecting from an array made one per size.
    /// The names are copied here, once, not at each `obj!`.
    pub fn from_pairs(pairs: Vec<(&str, Value)>) -> Object {
        let mut o = Object(Vec::with_capacity(pairs.len()));
        for (k, v) in pairs {
            o.insert(k.to_string(), v);
        }
        o
    }
}

impl FromIterator<(String, Value)> for Object {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Self {
        let mut o = Object::new();
        for (k, v) in iter {
            o.insert(k, v);
        }
        o
    }
}

impl Value {
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.as_object()?.get(name)
    }

    pub fn as_object(&self) -> Option<&Object> {
        match self {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }

    pub fn as_object_mut(&mut self) -> Option<&mut Object> {
        match self {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&Vec<Value>> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Number(n) => n.as_u64(),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The value as JSON text.
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Number(n) => out.push_str(&n.0),
            Value::String(s) => write_str(s, out),
            Value::Array(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write(out);
                }
                out.push(']');
            }
            Value::Object(o) => {
                out.push('{');
                for (i, (k, v)) in o.0.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_str(k, out);
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
        }
    }
}

/// What `value["name"]` finds: the field, or `null` when there is none
/// (or `value` is not an object).
impl std::ops::Index<&str> for Value {
    type Output = Value;
    fn index(&self, name: &str) -> &Value {
        self.get(name).unwrap_or(&Value::Null)
    }
}

/// What `value[i]` finds: the element, or `null`.
impl std::ops::Index<usize> for Value {
    type Output = Value;
    fn index(&self, i: usize) -> &Value {
        self.as_array().and_then(|a| a.get(i)).unwrap_or(&Value::Null)
    }
}

impl PartialEq<&str> for Value {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == Some(*other)
    }
}

/// `s` as a JSON string, quotes included, appended to `out`.
pub fn write_str(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    // By bytes: every character escaped is ASCII, and no byte of a longer
    // UTF-8 sequence is, so the text between escapes is copied whole (no
    // char decoding and encoding).
    let mut from = 0;
    for (i, &b) in s.as_bytes().iter().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "\\u00",
            _ => continue,
        };
        out.push_str(&s[from..i]);
        out.push_str(escape);
        if escape.len() > 2 {
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 15)] as char);
        }
        from = i + 1;
    }
    out.push_str(&s[from..]);
    out.push('"');
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::String(s.into())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::String(s)
    }
}

impl From<&String> for Value {
    fn from(s: &String) -> Value {
        Value::String(s.clone())
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

impl From<u64> for Value {
    fn from(n: u64) -> Value {
        Value::Number(Number(num(n)))
    }
}

impl From<u32> for Value {
    fn from(n: u32) -> Value {
        Value::from(u64::from(n))
    }
}

impl From<u16> for Value {
    fn from(n: u16) -> Value {
        Value::from(u64::from(n))
    }
}

impl From<usize> for Value {
    fn from(n: usize) -> Value {
        Value::from(n as u64)
    }
}

impl From<Object> for Value {
    fn from(o: Object) -> Value {
        Value::Object(o)
    }
}

impl<T: Into<Value>> From<Vec<T>> for Value {
    fn from(items: Vec<T>) -> Value {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            out.push(item.into());
        }
        Value::Array(out)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}

/// `obj! { "name": value, … }`: a JSON object, each value anything with an
/// `Into<Value>` (nest `obj!` for objects, `Vec`s for arrays).
macro_rules! obj {
    ($($name:literal : $value:expr),* $(,)?) => {
        $crate::core::json::Value::Object(
            $crate::core::json::Object::from_pairs(vec![$(($name, $crate::core::json::Value::from($value))),*]),
        )
    };
}
pub(crate) use obj;

/// Why a text is not JSON, and where (a byte offset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub at: usize,
    pub what: &'static str,
}

impl ParseError {
    /// What is wrong and where, in words (`Display` writes the same).
    pub fn text(&self) -> String {
        cat!("not JSON: ", self.what, " at byte ", num(self.at as u64))
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text())
    }
}

impl std::error::Error for ParseError {}

/// Deeper than this is refused (as serde_json and browsers bound it), so a
/// hostile body cannot exhaust the stack.
const MAX_DEPTH: usize = 128;

/// Parses one JSON value (whitespace around it allowed, nothing else).
pub fn parse(text: &[u8]) -> Result<Value, ParseError> {
    let mut p = Parser { s: text, i: 0 };
    let v = p.value(0)?;
    p.ws();
    if p.i != p.s.len() {
        return Err(p.err("text after the value"));
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn err(&self, what: &'static str) -> ParseError {
        ParseError { at: self.i, what }
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.i) {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        let hit = self.peek() == Some(b);
        self.i += hit as usize;
        hit
    }

    fn word(&mut self, w: &[u8], v: Value) -> Result<Value, ParseError> {
        if self.s[self.i..].starts_with(w) {
            self.i += w.len();
            Ok(v)
        } else {
            Err(self.err("an unknown word"))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nested too deeply"));
        }
        self.ws();
        match self.peek() {
            None => Err(self.err("the end of the text where a value belongs")),
            Some(b'n') => self.word(b"null", Value::Null),
            Some(b't') => self.word(b"true", Value::Bool(true)),
            Some(b'f') => self.word(b"false", Value::Bool(false)),
            Some(b'"') => self.string().map(Value::String),
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.eat(b']') {
                    return Ok(Value::Array(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    self.ws();
                    if self.eat(b']') {
                        return Ok(Value::Array(items));
                    }
                    if !self.eat(b',') {
                        return Err(self.err("a missing ',' or ']'"));
                    }
                }
            }
            Some(b'{') => {
                self.i += 1;
                let mut o = Object::new();
                self.ws();
                if self.eat(b'}') {
                    return Ok(Value::Object(o));
                }
                loop {
                    self.ws();
                    if self.peek() != Some(b'"') {
                        return Err(self.err("a field name that is not a string"));
                    }
                    let k = self.string()?;
                    self.ws();
                    if !self.eat(b':') {
                        return Err(self.err("a missing ':'"));
                    }
                    let v = self.value(depth + 1)?;
                    o.insert(k, v);
                    self.ws();
                    if self.eat(b'}') {
                        return Ok(Value::Object(o));
                    }
                    if !self.eat(b',') {
                        return Err(self.err("a missing ',' or '}'"));
                    }
                }
            }
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.err("a character that starts no value")),
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Result<Value, ParseError> {
        let start = self.i;
        self.eat(b'-');
        let first = self.peek();
        let n = self.digits();
        if n == 0 || (first == Some(b'0') && n > 1) {
            return Err(self.err("a malformed number"));
        }
        if self.eat(b'.') && self.digits() == 0 {
            return Err(self.err("a malformed number"));
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            let _ = self.eat(b'+') || self.eat(b'-');
            if self.digits() == 0 {
                return Err(self.err("a malformed number"));
            }
        }
        // Only ASCII was consumed.
        let text = std::str::from_utf8(&self.s[start..self.i]).unwrap_or_default();
        Ok(Value::Number(Number(text.to_string())))
    }

    fn hex4(&mut self) -> Result<u32, ParseError> {
        let mut n = 0;
        for _ in 0..4 {
            let d = match self.peek() {
                Some(c @ b'0'..=b'9') => c - b'0',
                Some(c @ b'a'..=b'f') => c - b'a' + 10,
                Some(c @ b'A'..=b'F') => c - b'A' + 10,
                _ => return Err(self.err("a malformed \\u escape")),
            };
            n = n * 16 + u32::from(d);
            self.i += 1;
        }
        Ok(n)
    }

    fn string(&mut self) -> Result<String, ParseError> {
        self.i += 1; // the opening quote
        let mut out: Vec<u8> = Vec::new();
        loop {
            let Some(b) = self.peek() else { return Err(self.err("an unterminated string")) };
            self.i += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    let Some(e) = self.peek() else { return Err(self.err("an unterminated string")) };
                    self.i += 1;
                    let c = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&hi) {
                                if !(self.eat(b'\\') && self.eat(b'u')) {
                                    return Err(self.err("a lone surrogate"));
                                }
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err(self.err("a lone surrogate"));
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else {
                                hi
                            };
                            char::from_u32(code).ok_or_else(|| self.err("a lone surrogate"))?
                        }
                        _ => return Err(self.err("an unknown escape")),
                    };
                    let mut buf = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                0..=0x1f => return Err(self.err("a control character in a string")),
                b => out.push(b),
            }
        }
        String::from_utf8(out).map_err(|_| self.err("text that is not UTF-8"))
    }
}

/// Reads a JSON object's fields into typed values, refusing unknown names
/// and wrong types with a message that names the field (`where` is the
/// object's place, such as `auth`). For configs: a typo must be an error.
pub struct Fields<'a> {
    object: &'a Object,
    place: &'a str,
    seen: Vec<&'a str>,
}

/// A field that cannot be read: its place and what was wrong.
pub type FieldError = String;

/// `f` of every item, or its first error. A plain loop: collecting into a
/// `Result<Vec<_>, _>` makes four generic functions at each place it is
/// used (about 900 B of the worker's wasm).
pub fn map_all<T, E>(items: &[Value], mut f: impl FnMut(&Value) -> Result<T, E>) -> Result<Vec<T>, E> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        out.push(f(item)?);
    }
    Ok(out)
}

impl<'a> Fields<'a> {
    pub fn new(value: &'a Value, place: &'a str) -> Result<Self, FieldError> {
        let object = value.as_object().ok_or_else(|| cat!(name(place), " must be a JSON object"))?;
        Ok(Fields { object, place, seen: Vec::new() })
    }

    /// The raw field, if present (and not `null`).
    pub fn take(&mut self, field: &'a str) -> Option<&'a Value> {
        self.seen.push(field);
        self.object.get(field).filter(|v| !v.is_null())
    }

    /// The field's place: `auth.me`.
    pub fn at(&self, field: &str) -> String {
        if self.place.is_empty() {
            field.to_string()
        } else {
            cat!(self.place, ".", field)
        }
    }

    pub fn wrong(&self, field: &str, want: &str) -> FieldError {
        cat!("`", self.at(field), "` must be ", want)
    }

    pub fn string(&mut self, field: &'a str, into: &mut String) -> Result<(), FieldError> {
        if let Some(v) = self.take(field) {
            *into = v.as_str().ok_or_else(|| self.wrong(field, "a string"))?.to_string();
        }
        Ok(())
    }

    pub fn strings(&mut self, field: &'a str, into: &mut Vec<String>) -> Result<(), FieldError> {
        if let Some(v) = self.take(field) {
            let items = v.as_array().ok_or_else(|| self.wrong(field, "an array of strings"))?;
            *into = map_all(items, |s| {
                s.as_str().map(String::from).ok_or_else(|| self.wrong(field, "an array of strings"))
            })?;
        }
        Ok(())
    }

    pub fn u64(&mut self, field: &'a str, into: &mut u64) -> Result<(), FieldError> {
        if let Some(v) = self.take(field) {
            *into = v.as_u64().ok_or_else(|| self.wrong(field, "a whole number of at least 0"))?;
        }
        Ok(())
    }

    pub fn u32(&mut self, field: &'a str, into: &mut u32) -> Result<(), FieldError> {
        if let Some(v) = self.take(field) {
            *into = v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| self.wrong(field, "a whole number from 0 to 4294967295"))?;
        }
        Ok(())
    }

    pub fn u32s(&mut self, field: &'a str, into: &mut Vec<u32>) -> Result<(), FieldError> {
        if let Some(v) = self.take(field) {
            let want = "an array of whole numbers";
            let items = v.as_array().ok_or_else(|| self.wrong(field, want))?;
            *into = map_all(items, |n| {
                n.as_u64().and_then(|n| u32::try_from(n).ok()).ok_or_else(|| self.wrong(field, want))
            })?;
        }
        Ok(())
    }

    pub fn bool(&mut self, field: &'a str, into: &mut bool) -> Result<(), FieldError> {
        if let Some(v) = self.take(field) {
            *into = v.as_bool().ok_or_else(|| self.wrong(field, "true or false"))?;
        }
        Ok(())
    }

    /// Every field was read: an unknown one is named.
    pub fn finish(self) -> Result<(), FieldError> {
        for (k, _) in self.object.iter() {
            if !self.seen.contains(&k.as_str()) {
                return Err(cat!("unknown field `", k, "` in ", name(self.place)));
            }
        }
        Ok(())
    }
}

fn name(place: &str) -> String {
    if place.is_empty() {
        "the config".into()
    } else {
        cat!("`", place, "`")
    }
}

#[cfg(test)]
pub fn from_serde(v: serde_json::Value) -> Value {
    parse(v.to_string().as_bytes()).expect("serde_json writes JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_serde_json_reads_and_writes_it_back() {
        let texts = [
            r#"{"a":[1,-2.5e3,0,true,false,null],"b":{"c":"x\"y\\z\n\u00e9\ud83d\ude00\/"},"d":""}"#,
            "[]",
            "{}",
            " 0 ",
            r#""\u0001""#,
            "-0.0",
        ];
        for text in texts {
            let ours = parse(text.as_bytes()).unwrap();
            let theirs: serde_json::Value = serde_json::from_str(text).unwrap();
            // Our text, read by serde_json, is the same value.
            let back: serde_json::Value = serde_json::from_str(&ours.to_json()).unwrap();
            assert_eq!(back, theirs, "{text}");
        }
    }

    #[test]
    fn refuses_what_is_not_json() {
        for text in [
            "",
            "{",
            "[1,]",
            "{\"a\" 1}",
            "01",
            "1.",
            "-",
            "1e",
            "tru",
            "\"\\x\"",
            "\"a",
            "[1] 2",
            "{1:2}",
            "\"\\ud800\"",
            "\"\u{1}\"",
            "nan",
        ] {
            assert!(parse(text.as_bytes()).is_err(), "{text:?} is not JSON");
            assert!(serde_json::from_str::<serde_json::Value>(text).is_err(), "{text:?}: serde_json agrees");
        }
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert_eq!(parse(deep.as_bytes()).unwrap_err().what, "nested too deeply");
        assert_eq!(parse(b"[1,]").unwrap_err(), ParseError { at: 3, what: "a character that starts no value" });
    }

    #[test]
    fn numbers_keep_their_text_and_objects_their_order() {
        let v = parse(br#"{"z":1.50,"a":18446744073709551615,"n":-3,"z":2}"#).unwrap();
        assert_eq!(v.to_json(), r#"{"z":2,"a":18446744073709551615,"n":-3}"#, "a repeated name keeps its last value");
        assert_eq!(v["a"].as_u64(), Some(u64::MAX));
        assert_eq!(v["n"].as_u64(), None);
        assert_eq!(parse(b"1.50").unwrap().to_json(), "1.50");
        assert_eq!(parse(br#"{"a":1,"b":2}"#), parse(br#"{"b":2,"a":1}"#), "equal whatever the order");
        assert_eq!(v["missing"], Value::Null);
    }

    #[test]
    fn obj_builds_objects() {
        let v = obj! { "s": "x", "n": 3u32, "none": None::<u64>, "list": vec!["a", "b"], "in": obj! { "t": true } };
        assert_eq!(v.to_json(), r#"{"s":"x","n":3,"none":null,"list":["a","b"],"in":{"t":true}}"#);
    }

    #[test]
    fn fields_name_the_field_that_is_wrong() {
        let v = parse(br#"{"n": "5", "s": "x", "extra": 1}"#).unwrap();
        let mut f = Fields::new(&v, "auth").unwrap();
        let mut n = 0u32;
        assert_eq!(f.u32("n", &mut n).unwrap_err(), "`auth.n` must be a whole number from 0 to 4294967295");
        let mut s = String::new();
        f.string("s", &mut s).unwrap();
        assert_eq!(s, "x");
        assert_eq!(f.finish().unwrap_err(), "unknown field `extra` in `auth`");
    }
}
