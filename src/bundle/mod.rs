//! The service-worker bundle: `sw.js`, its wasm, and the page client.

mod assemble;
#[cfg(test)]
mod imports;

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
/// The command the npm package installs (`outpost export --npm`).
pub const NPM_INSTALL_JS: &str = include_str!("../../shim/npm/outpost-install.js");
/// The npm package's name: `import { Outpost } from 'outpost-sw/client'`.
pub const NPM_NAME: &str = "outpost-sw";
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

    /// The embedded bundle's script, for re-assembling: wasm-bindgen's glue
    /// and the bootstrap (`shim/sw.js`, which `BOOTSTRAP_JS` is), minified
    /// together when the build had esbuild.
    pub fn embedded_script() -> &'static str {
        embedded::SCRIPT_JS
    }

    /// Stamps a bundle from its wasm and script, exactly as the build does.
    pub fn assemble(wasm: Vec<u8>, script: &str) -> Self {
        let a = assemble::assemble(&wasm, script);
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

    /// Writes an npm package into `dir` (`npm pack` there makes the
    /// tarball): `worker/` (sw.js, the wasm, the sample config), `client/`
    /// (the page client as an ES module, with its types, exported as
    /// `outpost-sw/client`), and `bin/outpost-install.js`, the command that
    /// copies the worker into a site's public folder. Returns the files
    /// written, relative to `dir`.
    pub fn export_npm(&self, dir: &Path) -> io::Result<Vec<String>> {
        for sub in ["worker", "client", "bin"] {
            fs::create_dir_all(dir.join(sub))?;
        }
        // Leave no stale wasm from an earlier export: sw.js names only one.
        for entry in fs::read_dir(dir.join("worker"))?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("outpost-sw-") && name.ends_with(".wasm") && name != self.wasm_file {
                fs::remove_file(entry.path())?;
            }
        }
        let package = serde_json::json!({
            "name": NPM_NAME,
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Offline-first service worker (Rust/wasm): queued writes replayed exactly once, offline reads, uploads kept on the device",
            "license": "MIT OR Apache-2.0",
            "type": "module",
            "exports": {
                "./client": { "types": "./client/outpost.d.ts", "default": "./client/outpost.js" },
                "./worker/*": "./worker/*",
                "./package.json": "./package.json",
            },
            "types": "./client/outpost.d.ts",
            "bin": { "outpost-install": "bin/outpost-install.js" },
            "files": ["worker/", "client/", "bin/", "README.md"],
            "engines": { "node": ">=18" },
            "outpost": { "bundle": self.hash, "wasm": self.wasm_file },
        });
        let package = serde_json::to_string_pretty(&package).expect("a JSON value prints") + "\n";
        let readme = format!("{}\n{INTEGRATION}", npm_readme(&self.hash));
        let wasm_path = format!("worker/{}", self.wasm_file);
        let files: [(&str, &[u8]); 8] = [
            ("package.json", package.as_bytes()),
            ("README.md", readme.as_bytes()),
            ("worker/sw.js", &self.sw_js),
            (&wasm_path, &self.wasm),
            ("worker/outpost.config.json", SAMPLE_CONFIG.as_bytes()),
            ("client/outpost.js", OUTPOST_JS.as_bytes()),
            ("client/outpost.d.ts", OUTPOST_D_TS.as_bytes()),
            ("bin/outpost-install.js", NPM_INSTALL_JS.as_bytes()),
        ];
        let mut written = Vec::new();
        for (name, bytes) in files {
            fs::write(dir.join(name), bytes)?;
            written.push(name.to_string());
        }
        set_executable(&dir.join("bin/outpost-install.js"))?;
        Ok(written)
    }
}

#[cfg(unix)]
fn set_executable(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
}

#[cfg(not(unix))]
fn set_executable(_: &Path) -> io::Result<()> {
    Ok(())
}

fn npm_readme(hash: &str) -> String {
    format!(
        "# {NPM_NAME}\n\n\
         Outpost's service worker (bundle {hash}) and its page client.\n\n\
         ```sh\n\
         npm install {NPM_NAME}\n\
         npx outpost-install public   # copies sw.js and its wasm where the site serves /\n\
         ```\n\n\
         ```js\n\
         import {{ Outpost }} from '{NPM_NAME}/client';\n\
         const outpost = await Outpost.register({{ config: {{ /* your routes */ }} }});\n\
         ```\n\n\
         Run `outpost-install` again after each update of the package (a `prebuild` script does it). \
         `worker/outpost.config.json` lists every setting with its default; the guide below says what \
         your API must do.\n"
    )
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
        // The glue (it instantiates the wasm) and the bootstrap (its sync tag).
        assert!(sw.contains("instantiateStreaming") && sw.contains("outpost-outbox"));
        assert!(
            sw.ends_with(&assemble::strip_comments(Bundle::embedded_script())),
            "the script comes after the stamped constants, without its comments"
        );
    }

    #[test]
    fn reassembling_the_same_parts_gives_the_same_bundle() {
        let b = Bundle::embedded();
        let again = Bundle::assemble(b.wasm.to_vec(), Bundle::embedded_script());
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
