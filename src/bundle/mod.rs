//! The service-worker bundle: `sw.js`, its wasm, and the page client.

mod assemble;

use std::fs;
use std::io;
use std::path::Path;

use axum::body::Bytes;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/bundle.rs"));
}

/// The page client, an ES module.
pub const OUTPOST_JS: &str = include_str!("../../shim/outpost.js");
/// TypeScript declarations for the page client.
pub const OUTPOST_D_TS: &str = include_str!("../../shim/outpost.d.ts");
/// The sample config `outpost export` writes.
pub const SAMPLE_CONFIG: &str = include_str!("../../shim/outpost.config.json");
/// The integration guide shipped with an export.
pub const INTEGRATION: &str = include_str!("../../docs/INTEGRATION.md");
/// The worker bootstrap, before stamping.
pub const BOOTSTRAP_JS: &str = include_str!("../../shim/sw.js");

/// One built bundle. Cheap to clone: the bytes are shared.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// Content hash (16 hex digits), stamped into `sw.js` and the wasm name.
    pub hash: String,
    /// The wasm's file name, served next to `sw.js`.
    pub wasm_file: String,
    pub sw_js: Bytes,
    pub wasm: Bytes,
}

impl Bundle {
    /// The bundle built into this binary by `build.rs`.
    pub fn embedded() -> Self {
        Bundle {
            hash: embedded::HASH.into(),
            wasm_file: embedded::WASM_FILE.into(),
            sw_js: Bytes::from_static(embedded::SW_JS.as_bytes()),
            wasm: Bytes::from_static(embedded::WASM),
        }
    }

    /// The embedded bundle's wasm-bindgen glue, for re-assembling.
    pub fn embedded_glue() -> &'static str {
        embedded::GLUE_JS
    }

    /// Stamps a bundle from its parts, exactly as the build does.
    pub fn assemble(wasm: Vec<u8>, glue_js: &str, bootstrap_js: &str) -> Self {
        let a = assemble::assemble(&wasm, glue_js, bootstrap_js);
        Bundle { hash: a.hash, wasm_file: a.wasm_file, sw_js: Bytes::from(a.sw_js), wasm: Bytes::from(wasm) }
    }

    /// Writes the drop-in files for any web server: `sw.js`, the wasm,
    /// `outpost.js`, `outpost.d.ts` and a sample `outpost.config.json`.
    pub fn export(&self, dir: &Path) -> io::Result<Vec<String>> {
        fs::create_dir_all(dir)?;
        let files: [(&str, &[u8]); 6] = [
            ("sw.js", &self.sw_js),
            (&self.wasm_file, &self.wasm),
            ("outpost.js", OUTPOST_JS.as_bytes()),
            ("outpost.d.ts", OUTPOST_D_TS.as_bytes()),
            ("outpost.config.json", SAMPLE_CONFIG.as_bytes()),
            ("INTEGRATION.md", INTEGRATION.as_bytes()),
        ];
        // Leave no stale wasm from an earlier export: sw.js names only one.
        for entry in fs::read_dir(dir)?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("outpost-sw-") && name.ends_with(".wasm") && name != self.wasm_file {
                fs::remove_file(entry.path())?;
            }
        }
        let mut written = Vec::new();
        for (name, bytes) in files {
            fs::write(dir.join(name), bytes)?;
            written.push(name.to_string());
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_bundle_is_stamped_and_is_wasm() {
        let b = Bundle::embedded();
        assert_eq!(&b.wasm[..4], b"\0asm");
        let sw = std::str::from_utf8(&b.sw_js).unwrap();
        assert!(sw.contains(&format!("const OUTPOST_VERSION = '{}';", b.hash)));
        assert!(sw.contains(&format!("const OUTPOST_WASM = '{}';", b.wasm_file)));
        assert!(sw.contains("wasm_bindgen"));
        assert!(
            sw.ends_with(&assemble::strip_comments(BOOTSTRAP_JS)),
            "the bootstrap comes last, without its comments"
        );
    }

    #[test]
    fn reassembling_the_same_parts_gives_the_same_bundle() {
        let b = Bundle::embedded();
        let again = Bundle::assemble(b.wasm.to_vec(), Bundle::embedded_glue(), BOOTSTRAP_JS);
        assert_eq!(again.hash, b.hash);
        assert_eq!(again.sw_js, b.sw_js);
    }

    #[test]
    fn export_writes_the_drop_in_files_and_drops_stale_wasm() {
        let dir = std::env::temp_dir().join(format!("outpost-export-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("outpost-sw-0000000000000000.wasm"), b"old").unwrap();
        let b = Bundle::embedded();
        let written = b.export(&dir).unwrap();
        assert_eq!(written.len(), 6);
        assert_eq!(fs::read(dir.join(&b.wasm_file)).unwrap(), b.wasm.to_vec());
        assert_eq!(fs::read(dir.join("sw.js")).unwrap(), b.sw_js.to_vec());
        assert!(!dir.join("outpost-sw-0000000000000000.wasm").exists());
        fs::remove_dir_all(&dir).unwrap();
    }
}
