//! Turns the wasm and the worker's script (wasm-bindgen's glue and the
//! bootstrap, one after the other) into the files a browser loads. Shared by `build.rs` (which embeds the result) and the
//! library, so a bundle assembled at run time is stamped exactly like the
//! embedded one. Depends on std and sha2 only.

use sha2::{Digest, Sha256};

/// The files of one bundle.
pub struct Assembled {
    /// 16 hex digits of SHA-256 over the wasm and the script.
    pub hash: String,
    /// The wasm's file name, next to `sw.js`; it carries the hash so it can be
    /// cached forever.
    pub wasm_file: String,
    /// The worker script: stamped constants, then the glue and the bootstrap.
    pub sw_js: String,
}

/// `script` is the glue and the bootstrap as one script: the build minifies
/// them together (`build.rs`), so the names they share are shortened too.
pub fn assemble(wasm: &[u8], script: &str) -> Assembled {
    let mut digest = Sha256::new();
    for part in [wasm, script.as_bytes()] {
        // Length-prefixed so moving bytes between parts changes the hash.
        digest.update((part.len() as u64).to_le_bytes());
        digest.update(part);
    }
    let hash: String = digest.finalize()[..8].iter().map(|b| format!("{b:02x}")).collect();
    let wasm_file = format!("outpost-sw-{hash}.wasm");
    let script = strip_comments(script);
    let sw_js = format!(
        "// Outpost service worker, bundle {hash}. Generated: edit shim/sw.js instead.\n\
         'use strict';\n\
         const OUTPOST_VERSION = '{hash}';\n\
         const OUTPOST_WASM = '{wasm_file}';\n\
         {script}"
    );
    Assembled { hash, wasm_file, sw_js }
}

/// The script without its whole-line comments (`// …`, and `/** … */`
/// blocks that start a line), blank lines and indentation: the comments
/// and the spaces are for the source's readers, and every start of the
/// worker pays for the bytes. Code is kept byte for byte; a comment after
/// code on the same line stays. Inside a template literal that spans lines
/// (an odd number of backticks so far) lines are kept as they are, since
/// there the spaces are the string's: a backtick inside an ordinary string
/// can only make this keep more than it needed to.
pub fn strip_comments(js: &str) -> String {
    let mut out = String::with_capacity(js.len());
    let (mut in_block, mut in_template) = (false, false);
    for line in js.lines() {
        let t = line.trim_start();
        if in_template {
            in_template = line.matches('`').count() % 2 == 0;
            out.push_str(line);
            out.push('\n');
            continue;
        }
        if in_block {
            in_block = !t.contains("*/");
            continue;
        }
        if t.starts_with("/*") {
            in_block = !t.contains("*/");
            continue;
        }
        if t.is_empty() || t.starts_with("//") {
            continue;
        }
        in_template = t.matches('`').count() % 2 == 1;
        out.push_str(t);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_stamped_into_the_script_and_the_wasm_name() {
        let a = assemble(b"\0asm\x01\0\0\0", "let wasm_bindgen;\nself.x = 1;");
        assert_eq!(a.hash.len(), 16);
        assert!(a.hash.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(a.wasm_file, format!("outpost-sw-{}.wasm", a.hash));
        assert!(a.sw_js.contains(&format!("const OUTPOST_VERSION = '{}';", a.hash)));
        assert!(a.sw_js.contains(&format!("const OUTPOST_WASM = '{}';", a.wasm_file)));
        assert!(a.sw_js.find("let wasm_bindgen;") < a.sw_js.find("self.x = 1;"));
    }

    #[test]
    fn whole_line_comments_are_left_out_and_code_is_not() {
        let js = "// a comment\n/**\n * doc\n */\nconst a = '//x'; // kept\n\n  /* one */\nlet b = 1;\n";
        assert_eq!(strip_comments(js), "const a = '//x'; // kept\nlet b = 1;\n");
    }

    #[test]
    fn indentation_goes_except_inside_a_template_literal() {
        let js = "  if (a) {\n    f(`x ${a}`);\n    const t = `one\n      two\n  // three\n`;\n  }\n";
        assert_eq!(strip_comments(js), "if (a) {\nf(`x ${a}`);\nconst t = `one\n      two\n  // three\n`;\n}\n");
    }

    #[test]
    fn any_changed_byte_changes_the_hash() {
        let base = assemble(b"wasm", "script").hash;
        assert_eq!(base, assemble(b"wasm", "script").hash);
        assert_ne!(base, assemble(b"wasm!", "script").hash);
        assert_ne!(base, assemble(b"wasm", "script!").hash);
        assert_ne!(base, assemble(b"wasms", "cript").hash);
    }
}
