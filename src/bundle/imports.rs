//! Short import and export names for the wasm and its glue. Used by `build.rs`
//! between wasm-bindgen and `assemble`; the library compiles it only for
//! its tests (the bundle it embeds has the short names already).

/// The import module wasm-bindgen's glue names, as the glue spells its key.
const GLUE_MODULE: &str = "./outpost_sw_bg.js";

/// wasm-bindgen names each import `__wbg_<method>_<16 hex digits>` (and
/// `__wbindgen_…`), and the names are in the wasm and again in the glue:
/// 4.5 KB of the bundle's gzip, mostly the hash digits, which do not
/// compress. This gives every import a short name (`_0`, `_1`, … in base
/// 36) and the module one letter, in the wasm and in the glue, where each
/// name must be an object key (`name: function…`) found exactly once. An
/// error says which name did not fit (a wasm-bindgen that writes its glue
/// differently): the build stops rather than ship a glue that does not
/// match its wasm.
///
/// The `target_features` custom section is left out.
///
/// The exports wasm-bindgen makes for itself (`__wbindgen_malloc`, the
/// closure shims named after their whole Rust type, 300 characters each)
/// get short names too (`x0`, …), wherever the glue names them as a whole
/// word; the ones the page's API is made of (`outpost_*`, `memory`) keep
/// theirs.
pub fn shorten_imports(wasm: &[u8], glue_js: &str) -> Result<(Vec<u8>, String), String> {
    if wasm.len() < 8 || &wasm[..4] != b"\0asm" {
        return Err("not a wasm module".into());
    }
    let mut out = wasm[..8].to_vec();
    let mut glue = glue_js.to_string();
    let mut at = 8;
    while at < wasm.len() {
        let id = wasm[at];
        let (size, body_at) = leb(wasm, at + 1)?;
        let body = wasm.get(body_at..body_at + size as usize).ok_or("a section runs past the end")?;
        at = body_at + size as usize;
        let body = match id {
            2 => rename_imports(body, &mut glue)?,
            7 => rename_exports(body, &mut glue)?,
            // The features the compiler used, for linkers: a browser never
            // reads it (148 B).
            0 if name(body, 0)?.0 == "target_features" => continue,
            _ => body.to_vec(),
        };
        out.push(id);
        put_leb(&mut out, body.len() as u64);
        out.extend_from_slice(&body);
    }
    let module_key = format!("\"{GLUE_MODULE}\":");
    if glue.matches(&module_key).count() != 1 {
        return Err(format!("the glue does not name the import module {GLUE_MODULE:?} once"));
    }
    Ok((out, glue.replacen(&module_key, "\"w\":", 1)))
}

/// The import section with short names; `glue` renamed to match.
fn rename_imports(body: &[u8], glue: &mut String) -> Result<Vec<u8>, String> {
    let (count, mut at) = leb(body, 0)?;
    let mut out = Vec::with_capacity(body.len());
    put_leb(&mut out, count);
    for i in 0..count {
        let (module, next) = name(body, at)?;
        let (field, next) = name(body, next)?;
        if module != GLUE_MODULE {
            return Err(format!("import {field:?} is from {module:?}, not the glue"));
        }
        let desc_end = import_desc_end(body, next)?;
        let short = format!("_{}", base36(i));
        let key = format!("{field}:");
        if glue.matches(field).count() != 1 || glue.matches(&key).count() != 1 {
            return Err(format!("the glue does not define the import {field:?} exactly once"));
        }
        *glue = glue.replacen(&key, &format!("{short}:"), 1);
        for text in ["w", short.as_str()] {
            put_leb(&mut out, text.len() as u64);
            out.extend_from_slice(text.as_bytes());
        }
        out.extend_from_slice(&body[next..desc_end]);
        at = desc_end;
    }
    Ok(out)
}

/// The export section with wasm-bindgen's own exports renamed; `glue`
/// renamed to match.
fn rename_exports(body: &[u8], glue: &mut String) -> Result<Vec<u8>, String> {
    let (count, mut at) = leb(body, 0)?;
    let mut out = Vec::with_capacity(body.len());
    put_leb(&mut out, count);
    for i in 0..count {
        let (field, next) = name(body, at)?;
        let desc_end = leb(body, next + 1)?.1; // kind, index
        let internal = ["__wbindgen_", "__wbg_", "__externref_", "wasm_bindgen_"].iter().any(|p| field.starts_with(p));
        let mut new = field.to_string();
        if internal {
            let short = format!("x{}", base36(i));
            if replace_word(glue, &short, "").1 != 0 {
                return Err(format!("the glue already has a word {short:?}"));
            }
            let (renamed, n) = replace_word(glue, field, &short);
            if n == 0 {
                return Err(format!("the glue never names the export {field:?}"));
            }
            *glue = renamed;
            new = short;
        }
        put_leb(&mut out, new.len() as u64);
        out.extend_from_slice(new.as_bytes());
        out.extend_from_slice(body.get(next..desc_end).ok_or("an export runs past the end")?);
        at = desc_end;
    }
    Ok(out)
}

/// `text` with each whole-word `from` (not inside a longer identifier)
/// replaced by `to`, and how many there were.
fn replace_word(text: &str, from: &str, to: &str) -> (String, usize) {
    let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
    let (mut out, mut n, mut rest) = (String::with_capacity(text.len()), 0, text);
    while let Some(i) = rest.find(from) {
        let before = if i > 0 { rest[..i].chars().next_back() } else { out.chars().next_back() };
        let after = rest[i + from.len()..].chars().next();
        out.push_str(&rest[..i]);
        if word(before) || word(after) {
            out.push_str(from);
        } else {
            out.push_str(to);
            n += 1;
        }
        rest = &rest[i + from.len()..];
    }
    out.push_str(rest);
    (out, n)
}

/// Where an import's description (its kind and type) ends.
fn import_desc_end(body: &[u8], at: usize) -> Result<usize, String> {
    let kind = *body.get(at).ok_or("an import runs past the end")?;
    let limits = |at: usize| -> Result<usize, String> {
        let flags = *body.get(at).ok_or("limits run past the end")?;
        let (_, mut at) = leb(body, at + 1)?;
        if flags & 1 != 0 {
            at = leb(body, at)?.1;
        }
        Ok(at)
    };
    match kind {
        0 => Ok(leb(body, at + 1)?.1), // a function: its type index
        1 => limits(at + 2),           // a table: element type, limits
        2 => limits(at + 1),           // a memory: limits
        3 => Ok(at + 3),               // a global: value type, mutability
        _ => Err(format!("an import of unknown kind {kind}")),
    }
}

fn name(b: &[u8], at: usize) -> Result<(&str, usize), String> {
    let (len, at) = leb(b, at)?;
    let end = at + len as usize;
    let text = b.get(at..end).ok_or("a name runs past the end")?;
    Ok((std::str::from_utf8(text).map_err(|_| "a name that is not UTF-8")?, end))
}

/// An unsigned LEB128 number at `at`, and where it ends.
fn leb(b: &[u8], mut at: usize) -> Result<(u64, usize), String> {
    let (mut n, mut shift) = (0u64, 0);
    loop {
        let byte = *b.get(at).ok_or("a number runs past the end")?;
        at += 1;
        n |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok((n, at));
        }
        shift += 7;
        if shift > 63 {
            return Err("a number too long".into());
        }
    }
}

fn put_leb(out: &mut Vec<u8>, mut n: u64) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn base36(mut n: u64) -> String {
    let mut digits = Vec::new();
    loop {
        digits.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    digits.reverse();
    String::from_utf8(digits).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A module importing two functions and a memory from the glue.
    fn module(names: &[&str]) -> Vec<u8> {
        let mut imports = Vec::new();
        put_leb(&mut imports, names.len() as u64 + 1);
        for (i, n) in names.iter().enumerate() {
            for text in [GLUE_MODULE, n] {
                put_leb(&mut imports, text.len() as u64);
                imports.extend_from_slice(text.as_bytes());
            }
            imports.extend_from_slice(&[0, i as u8]);
        }
        for text in [GLUE_MODULE, "memory"] {
            put_leb(&mut imports, text.len() as u64);
            imports.extend_from_slice(text.as_bytes());
        }
        imports.extend_from_slice(&[2, 1, 17, 200, 1]); // min 17, max 200
        let mut wasm = b"\0asm\x01\0\0\0".to_vec();
        wasm.extend_from_slice(&[1, 4, 1, 0x60, 0, 0]); // a type section
        wasm.push(2);
        put_leb(&mut wasm, imports.len() as u64);
        wasm.extend_from_slice(&imports);
        wasm.extend_from_slice(&[0, 3, 1, b'x', 9]); // a custom section
        wasm
    }

    #[test]
    fn imports_get_short_names_in_the_wasm_and_the_glue() {
        let names = ["__wbg_fetch_0123456789abcdef", "__wbindgen_init_externref_table"];
        let glue = "const import0 = {\n__wbg_fetch_0123456789abcdef: function(a) { return fetch(a); },\n\
                    __wbindgen_init_externref_table: function() {},\nmemory: mem,\n};\n\
                    return { \"./outpost_sw_bg.js\": import0 };";
        let (wasm, glue) = shorten_imports(&module(&names), glue).unwrap();
        assert_eq!(
            glue,
            "const import0 = {\n_0: function(a) { return fetch(a); },\n_1: function() {},\n_2: mem,\n};\n\
             return { \"w\": import0 };"
        );
        let mut want = b"\0asm\x01\0\0\0".to_vec();
        let mut imports = vec![3];
        for (n, desc) in [("_0", &[0u8, 0][..]), ("_1", &[0, 1]), ("_2", &[2, 1, 17, 200, 1])] {
            imports.extend_from_slice(&[1, b'w', 2]);
            imports.extend_from_slice(n.as_bytes());
            imports.extend_from_slice(desc);
        }
        want.extend_from_slice(&[1, 4, 1, 0x60, 0, 0, 2, imports.len() as u8]);
        want.extend_from_slice(&imports);
        want.extend_from_slice(&[0, 3, 1, b'x', 9]);
        assert_eq!(wasm, want, "the other sections byte for byte");
    }

    #[test]
    fn a_glue_that_does_not_define_an_import_once_is_an_error() {
        let wasm = module(&["__wbg_a_1111111111111111"]);
        let glue = "{ memory: m }; \"./outpost_sw_bg.js\": import0";
        let e = shorten_imports(&wasm, glue).unwrap_err();
        assert!(e.contains("__wbg_a_1111111111111111"), "{e}");
        let twice =
            "{ __wbg_a_1111111111111111: f, memory: m }; // __wbg_a_1111111111111111\n\"./outpost_sw_bg.js\": x";
        assert!(shorten_imports(&wasm, twice).is_err());
        assert!(shorten_imports(b"not wasm", glue).is_err());
    }

    #[test]
    fn wasm_bindgen_exports_get_short_names_and_the_apis_keep_theirs() {
        let mut wasm = b"\0asm\x01\0\0\0".to_vec();
        let mut exports = vec![3];
        for (n, index) in [("outpost_new", 0u8), ("__wbindgen_malloc", 1), ("memory", 0)] {
            exports.push(n.len() as u8);
            exports.extend_from_slice(n.as_bytes());
            exports.extend_from_slice(&[if n == "memory" { 2 } else { 0 }, index]);
        }
        wasm.push(7);
        wasm.push(exports.len() as u8);
        wasm.extend_from_slice(&exports);
        let glue = "\"./outpost_sw_bg.js\": i; wasm.outpost_new(wasm.__wbindgen_malloc(1)); \
                    wasm.__wbindgen_malloc_x; a__wbindgen_malloc; wasm.memory";
        let (out, glue) = shorten_imports(&wasm, glue).unwrap();
        assert_eq!(
            glue,
            "\"w\": i; wasm.outpost_new(wasm.x1(1)); wasm.__wbindgen_malloc_x; a__wbindgen_malloc; wasm.memory"
        );
        let mut want = wasm[..8].to_vec();
        want.extend_from_slice(&[7, 29, 3, 11]);
        want.extend_from_slice(b"outpost_new\0\0\x02x1\0\x01\x06memory\x02\0");
        assert_eq!(out, want);
        // A short name the glue already uses is an error, not a clash.
        assert!(shorten_imports(&wasm, "\"./outpost_sw_bg.js\": i; wasm.__wbindgen_malloc(x1)").is_err());
    }

    #[test]
    fn the_target_features_section_is_left_out_and_other_custom_sections_kept() {
        let mut wasm = b"\0asm\x01\0\0\0".to_vec();
        wasm.extend_from_slice(b"\0\x11\x0ftarget_features\0");
        wasm.extend_from_slice(b"\0\x05\x04name");
        let (out, _) = shorten_imports(&wasm, "\"./outpost_sw_bg.js\": i").unwrap();
        assert_eq!(out, b"\0asm\x01\0\0\0\0\x05\x04name");
    }

    #[test]
    fn whole_words_only() {
        assert_eq!(replace_word("ab ab_c xab ab.ab", "ab", "Z"), ("Z ab_c xab Z.Z".to_string(), 3));
        assert_eq!(replace_word("", "ab", "Z"), (String::new(), 0));
    }

    #[test]
    fn short_names_count_in_base_36() {
        assert_eq!([0, 9, 10, 35, 36, 137].map(base36), ["0", "9", "a", "z", "10", "3t"]);
    }
}
