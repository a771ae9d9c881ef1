//! Builds the service worker (`sw/`) for wasm32, runs wasm-bindgen on it,
//! stamps the bundle hash into `sw.js` and hands the files to the library
//! through `OUT_DIR/bundle.rs`.
//!
//! The wasm is always built with the `wasm` profile (size-optimised, LTO),
//! whatever the outer profile, so that tests run exactly what ships. It
//! builds in its own target directory: the outer cargo holds the lock on
//! its own, and a nested build there would wait forever.

use std::env;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[path = "src/bundle/assemble.rs"]
mod assemble;
#[path = "src/bundle/imports.rs"]
mod imports;

const WASM_TARGET: &str = "wasm32-unknown-unknown";
const SETUP: &str = "./scripts/setup.sh";

fn main() {
    let root = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    // The root Cargo.toml holds the `wasm` profile the worker is built with.
    for path in [
        "sw/src",
        "sw/Cargo.toml",
        "Cargo.toml",
        "shim",
        "Cargo.lock",
        "src/bundle/assemble.rs",
        "src/bundle/imports.rs",
        "tools/package-lock.json",
        // Written by `npm ci` in tools/: a build made before esbuild was
        // there runs again once it is.
        "tools/node_modules/.package-lock.json",
    ] {
        println!("cargo:rerun-if-changed={path}");
    }
    for var in [
        "OUTPOST_WASM_OPT",
        "OUTPOST_SW_MINIFY",
        "OUTPOST_SW_PANIC",
        "OUTPOST_WASM_NAMES",
        "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }

    let toolchain = Toolchain::find().unwrap_or_else(|missing| fail(&missing));
    let wasm_target_dir = target_root(&out_dir).join("outpost-sw-wasm");
    let raw_wasm = toolchain.build(&root, &wasm_target_dir);

    let mut bindgen = wasm_bindgen_cli_support::Bindgen::new();
    bindgen
        .input_path(&raw_wasm)
        .no_modules(true)
        .expect("no-modules is a valid wasm-bindgen target")
        .typescript(false)
        // Every engine the worker runs in has `TextEncoder.encodeInto`
        // (Chromium 74, Firefox 66, Safari 14.1): no fallback in the glue.
        .encode_into(wasm_bindgen_cli_support::EncodeInto::Always)
        // OUTPOST_WASM_NAMES=1 keeps the function names, so
        // `scripts/wasm-size.py` can read the shipped wasm (not for release:
        // the names are more than half of the file).
        .remove_name_section(env::var_os("OUTPOST_WASM_NAMES").is_none())
        .remove_producers_section(true);
    let mut output = bindgen
        .generate_output()
        .unwrap_or_else(|e| fail(&format!("wasm-bindgen failed on {}: {e:#}", raw_wasm.display())));
    prune_closure_shims(output.wasm_mut());
    let wasm = wasm_opt(output.wasm_mut().emit_wasm(), &root, &out_dir);
    let (wasm, glue) = imports::shorten_imports(&wasm, output.js())
        .unwrap_or_else(|e| fail(&format!("giving the wasm's imports short names: {e}")));

    let bootstrap = fs::read_to_string(root.join("shim/sw.js")).expect("shim/sw.js is readable");
    let script = match Minifier::find(&root) {
        // One function around both: their names are then local, and esbuild
        // shortens them all (`wasm_bindgen`, the bootstrap's `outpost*`
        // functions the glue calls, `OUTPOST_TIMINGS`, `coldRead`, …); at
        // the top level of a script they are globals and keep every letter.
        Some(esbuild) => esbuild.minify(&format!("(() => {{\n{glue}\n{bootstrap}\n}})();\n"), "the worker's script"),
        None => format!("{glue}\n{bootstrap}"),
    };
    let bundle = assemble::assemble(&wasm, &script);

    let dir = out_dir.join("bundle");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("sw.js"), &bundle.sw_js).unwrap();
    fs::write(dir.join("script.js"), &script).unwrap();
    fs::write(dir.join("outpost_sw.wasm"), &wasm).unwrap();
    fs::write(
        out_dir.join("bundle.rs"),
        format!(
            "pub const HASH: &str = {hash:?};\n\
             pub const WASM_FILE: &str = {file:?};\n\
             pub static SW_JS: &str = include_str!(concat!(env!(\"OUT_DIR\"), \"/bundle/sw.js\"));\n\
             pub static SCRIPT_JS: &str = include_str!(concat!(env!(\"OUT_DIR\"), \"/bundle/script.js\"));\n\
             pub static WASM: &[u8] = include_bytes!(concat!(env!(\"OUT_DIR\"), \"/bundle/outpost_sw.wasm\"));\n",
            hash = bundle.hash,
            file = bundle.wasm_file,
        ),
    )
    .unwrap();
}

/// How this machine can build for wasm32.
enum Toolchain {
    /// A rustup toolchain with `rust-src`: std is rebuilt for size
    /// (`-Zbuild-std`), linked with the toolchain's own rust-lld. The normal
    /// case; `scripts/setup.sh` installs the component.
    RustupSrc { cargo: PathBuf, rustc: PathBuf },
    /// Debian's rustc-web + rust-web-src: std rebuilt the same way, linked
    /// with an lld found on the machine.
    DebianSrc { cargo: PathBuf, rustc: PathBuf, linker: PathBuf },
    /// A rustup toolchain with only the prebuilt wasm32 std: it works, but
    /// the bundle is larger (std's panic formatting and speed-first code
    /// stay in), and panics keep their messages.
    Prebuilt { cargo: PathBuf, rustc: PathBuf },
}

impl Toolchain {
    fn find() -> Result<Self, String> {
        let rustc = PathBuf::from(env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()));
        let cargo = PathBuf::from(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        if sysroot(&rustc).is_some_and(|s| s.join("lib/rustlib/src/rust/library/std").is_dir()) {
            return Ok(Toolchain::RustupSrc { cargo, rustc });
        }
        let (deb_rustc, deb_cargo) = (PathBuf::from("/usr/bin/rustc"), PathBuf::from("/usr/bin/cargo"));
        let src = Path::new("/usr/lib/rustlib/src/rust/library/std");
        let mut missing = Vec::new();
        if !deb_rustc.exists() || !deb_cargo.exists() {
            missing.push("Debian's rustc-web and cargo-web (/usr/bin/rustc, /usr/bin/cargo)");
        }
        if !src.exists() {
            missing.push("Debian's rust-web-src (/usr/lib/rustlib/src/rust)");
        }
        let linker = find_linker(&rustc);
        if linker.is_none() {
            missing.push("a wasm linker (rust-lld from a rustup toolchain, or Debian's lld)");
        }
        if missing.is_empty() {
            return Ok(Toolchain::DebianSrc { cargo: deb_cargo, rustc: deb_rustc, linker: linker.unwrap() });
        }
        if has_prebuilt_wasm_std(&rustc) {
            println!(
                "cargo:warning=building the worker with rustup's prebuilt wasm32 std: the bundle is about \
                 25 KB gzip larger than it ships. `rustup component add rust-src` (or ./scripts/setup.sh) fixes it."
            );
            return Ok(Toolchain::Prebuilt { cargo, rustc });
        }
        Err(format!(
            "no wasm32 toolchain to build the service worker: the rustup toolchain has neither the \
             rust-src component nor the {WASM_TARGET} target, and the Debian fallback lacks {}.",
            missing.join(", ")
        ))
    }

    /// Builds `outpost-sw` and returns the path of its raw `.wasm`.
    fn build(&self, root: &Path, target_dir: &Path) -> PathBuf {
        let (cargo, rustc) = match self {
            Toolchain::RustupSrc { cargo, rustc }
            | Toolchain::DebianSrc { cargo, rustc, .. }
            | Toolchain::Prebuilt { cargo, rustc } => (cargo, rustc),
        };
        let mut cmd = Command::new(cargo);
        cmd.env_clear().envs(passthrough_env()).env("RUSTC", rustc);
        cmd.current_dir(root).args(["build", "--package", "outpost-sw", "--lib", "--profile", "wasm"]);
        cmd.args(["--target", WASM_TARGET, "--target-dir"]).arg(target_dir);
        if let Toolchain::DebianSrc { linker, .. } = self {
            cmd.env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER", linker);
        }
        let build_std = !matches!(self, Toolchain::Prebuilt { .. });
        // A panic's message costs its formatting machinery (about 20 KB of
        // the wasm). The size-first build traps instead; a developer who
        // needs the message rebuilds with OUTPOST_SW_PANIC=message.
        let messages = !build_std || env::var("OUTPOST_SW_PANIC").as_deref() == Ok("message");
        if messages {
            cmd.args(["--features", "panic-messages"]);
        }
        if build_std {
            // Nightly flags on a stable compiler: the build of std for a
            // target is only offered this way.
            cmd.env("RUSTC_BOOTSTRAP", "1").arg("-Zbuild-std=std,panic_abort");
            let mut features = vec!["optimize_for_size"];
            // No reference types (rustc turns them on for wasm32 by default),
            // std and the worker alike, so wasm-bindgen keeps the worker's
            // JS values in a JS array indexed by number rather than in a
            // wasm table of `externref`s. The table needs a wasm shim for
            // each import and export that passes a JS value (92 of them,
            // 2.8 KB of code); the array is a few lines of glue. 1.0 KB less
            // gzip for the bundle (docs/weight.md). With a prebuilt
            // std (compiled with them) the flag is not set: features must
            // match across what is linked.
            let mut flags = vec!["-Ctarget-feature=-reference-types"];
            if !messages {
                // No panic message, so no file and line for one either
                // (the paths were 4 KB of the data section).
                flags.push("-Zlocation-detail=none");
                // Rust 1.95 made the old std feature a panic strategy.
                if rustc_minor(rustc) >= 95 {
                    flags.extend(["-Zunstable-options", "-Cpanic=immediate-abort"]);
                } else {
                    features.push("panic_immediate_abort");
                }
            }
            cmd.env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS", flags.join(" "));
            cmd.arg(format!("-Zbuild-std-features={}", features.join(",")));
        }
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| fail(&format!("could not run {}: {e}", cargo.display())));
        // The nested build's warnings would be lost with its output: each
        // one is passed on to cargo, which shows them.
        for line in String::from_utf8_lossy(&out.stderr).lines() {
            if line.starts_with("warning") && !line.contains("generated") {
                println!("cargo:warning=sw (wasm32): {line}");
            } else if line.trim_start().starts_with("--> ") {
                println!("cargo:warning=    {}", line.trim());
            }
        }
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let tail: Vec<&str> = stderr.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            fail(&format!("building sw/ for {WASM_TARGET} failed:\n{}", tail.join("\n")));
        }
        target_dir.join(WASM_TARGET).join("wasm").join("outpost_sw.wasm")
    }
}

fn sysroot(rustc: &Path) -> Option<PathBuf> {
    let out = Command::new(rustc).args(["--print", "sysroot"]).output().ok()?;
    out.status.success().then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// The minor version of `rustc -V` ("rustc 1.95.0 (…)" → 95); 0 if unknown.
fn rustc_minor(rustc: &Path) -> u32 {
    let out = Command::new(rustc).arg("-V").output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    out.ok().and_then(|v| v.split(['.', ' ']).nth(2).and_then(|m| m.parse().ok())).unwrap_or(0)
}

/// The nested cargo must not inherit the outer build's variables (its
/// target dir, rustflags for the host, the package being built); only the
/// user's setup passes through. The jobserver passes through too, so both
/// builds share the same cores.
fn passthrough_env() -> Vec<(OsString, OsString)> {
    const KEEP: [&str; 10] = [
        "PATH",
        "HOME",
        "TMPDIR",
        "LANG",
        "CARGO_HOME",
        "RUSTUP_HOME",
        "RUSTUP_TOOLCHAIN",
        "CARGO_MAKEFLAGS",
        "CARGO_NET_OFFLINE",
        "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER",
    ];
    const KEEP_PREFIX: [&str; 5] = ["CARGO_HTTP_", "CARGO_REGISTRIES_", "CARGO_REGISTRY_", "SSL_CERT_", "CARGO_TERM_"];
    env::vars_os()
        .filter(|(k, _)| {
            let k = k.to_string_lossy();
            KEEP.contains(&k.as_ref())
                || KEEP_PREFIX.iter().any(|p| k.starts_with(p))
                || k.to_ascii_lowercase().ends_with("_proxy")
        })
        .collect()
}

fn has_prebuilt_wasm_std(rustc: &Path) -> bool {
    let out = Command::new(rustc).args(["--print", "target-libdir", "--target", WASM_TARGET]).output();
    let Ok(out) = out else { return false };
    if !out.status.success() {
        return false;
    }
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    fs::read_dir(dir)
        .map(|entries| entries.flatten().any(|e| e.file_name().to_string_lossy().starts_with("libstd-")))
        .unwrap_or(false)
}

/// A linker that speaks wasm: an explicit setting first, then rust-lld from
/// the rustup toolchain in use or any installed one, then Debian's wasm-ld.
fn find_linker(rustc: &Path) -> Option<PathBuf> {
    if let Some(l) = env::var_os("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER") {
        return Some(l.into());
    }
    let mut candidates = Vec::new();
    if let Ok(out) = Command::new(rustc).args(["--print", "sysroot"]).output() {
        let sysroot = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        candidates.extend(rust_lld_under(&sysroot));
    }
    let rustup_home = env::var_os("RUSTUP_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".rustup")));
    if let Some(toolchains) = rustup_home.map(|h| h.join("toolchains")) {
        for tc in fs::read_dir(toolchains).into_iter().flatten().flatten() {
            candidates.extend(rust_lld_under(&tc.path()));
        }
    }
    candidates.push(PathBuf::from("/usr/bin/wasm-ld"));
    candidates.into_iter().find(|p| p.is_file())
}

fn rust_lld_under(sysroot: &Path) -> Vec<PathBuf> {
    let rustlib = sysroot.join("lib/rustlib");
    fs::read_dir(rustlib).into_iter().flatten().flatten().map(|host| host.path().join("bin/rust-lld")).collect()
}

/// `OUT_DIR` is `<target>/[<triple>/]<profile>/build/<pkg>-<hash>/out`; the
/// target root is the ancestor cargo marked with `CACHEDIR.TAG`.
fn target_root(out_dir: &Path) -> PathBuf {
    out_dir.ancestors().find(|p| p.join("CACHEDIR.TAG").is_file()).unwrap_or(out_dir).to_path_buf()
}

/// wasm-bindgen finds a closure's shim through the function table (its
/// descriptors name the slot), so every shim of every closure type the
/// crates mention is in the table: ours, and js_sys's own (`forEach` over
/// each typed array, …). The glue calls the shims it needs through exports
/// (`makeMutClosure(…, xe)`); once the descriptors are gone no code names the
/// other slots, but no pass can tell, so they stayed: 43 of 47 here, about
/// 5 KB of code. Their slots now hold one function that traps, and the
/// shims go. A call that did reach such a slot would fail loudly (the
/// trap, or the signature check of `call_indirect`) rather than run
/// something else; every closure the worker makes is called by the tests.
/// js_sys's JSPI support is pruned the same way: the worker has its own
/// executor (`sw/src/web/task.rs`) and never enters JSPI, but js_sys's
/// `__wbg_jspi_task_poll` export kept its wakers' functions in the table.
fn prune_closure_shims(module: &mut walrus::Module) {
    use std::collections::HashSet;
    let exported: HashSet<walrus::FunctionId> = module
        .exports
        .iter()
        .filter_map(|e| match e.item {
            walrus::ExportItem::Function(f) => Some(f),
            _ => None,
        })
        .collect();
    let dead: HashSet<walrus::FunctionId> = module
        .funcs
        .iter()
        .filter(|f| !exported.contains(&f.id()))
        .filter(|f| {
            f.name.as_deref().is_some_and(|n| (n.contains("closures") && n.contains("invoke")) || n.contains("::jspi::"))
        })
        .map(|f| f.id())
        .collect();
    if dead.is_empty() {
        return;
    }
    let mut trap = walrus::FunctionBuilder::new(&mut module.types, &[], &[]);
    trap.func_body().unreachable();
    let trap = trap.finish(vec![], &mut module.funcs);
    for element in module.elements.iter_mut() {
        if let walrus::ElementItems::Functions(funcs) = &mut element.items {
            for f in funcs.iter_mut().filter(|f| dead.contains(f)) {
                *f = trap;
            }
        }
    }
    walrus::passes::gc::run(module);
}

/// The wasm-opt flags: `-O2` with no inlining (`-fimfs`, `-aimfs`,
/// `-ocimfs`: the largest function inlined where it helps, always, and when
/// it has one caller, all 0), `--shrink-level=1` after it so the passes pick
/// the smaller form, and `--code-folding`.
const OPT: &str = "-O2 -fimfs 0 -aimfs 0 -ocimfs 0 --shrink-level=1 --code-folding";

/// Runs binaryen's `wasm-opt` on the wasm wasm-bindgen hands back, with
/// `OPT`: measured on this wasm (docs/weight.md), 0.9 KB less gzip than
/// none, where `-O1` now adds 0.2 KB. Inlining is what made binaryen's own
/// `-O2`, `-Os` and `-Oz` grow the gzip: with only the inlining of functions
/// called once turned off, `-Os` went from larger than `-O1` to 0.8 KB under
/// it (rustc has already inlined what it judged small). The gzip is what
/// every start pays. It is binaryen 132 from npm (`tools/`, pinned), never a
/// `wasm-opt` on `PATH`: Debian's binaryen 108 rewrites this wasm with its
/// table export pointing at the wrong table (the glue then fails at
/// instantiation), so the output is checked for that too.
/// `OUTPOST_WASM_OPT` picks other flags (`-O1`, …) or `0` for none. Without
/// the tool, or if it fails, the wasm ships as it is and the build says so.
fn wasm_opt(wasm: Vec<u8>, root: &Path, out_dir: &Path) -> Vec<u8> {
    let level = env::var("OUTPOST_WASM_OPT").unwrap_or_else(|_| OPT.into());
    if level == "0" {
        return wasm;
    }
    let tool = root.join("tools/node_modules/.bin/wasm-opt");
    if !tool.exists() {
        println!(
            "cargo:warning=no wasm-opt in tools/node_modules: the wasm ships unoptimised (about 0.9 KB gzip \
             larger). {SETUP} installs it (npm ci in tools/)."
        );
        return wasm;
    }
    let input = out_dir.join("pre-opt.wasm");
    let output = out_dir.join("post-opt.wasm");
    fs::write(&input, &wasm).unwrap();
    let features = [
        "--enable-bulk-memory",
        "--enable-mutable-globals",
        "--enable-nontrapping-float-to-int",
        "--enable-sign-ext",
        "--enable-reference-types",
        "--enable-multivalue",
    ];
    let mut cmd = Command::new(&tool);
    cmd.args(level.split_whitespace()).args(features).arg(&input).arg("-o").arg(&output);
    if env::var_os("OUTPOST_WASM_NAMES").is_some() {
        cmd.arg("--debuginfo"); // keep the name section it was asked to keep
    }
    let optimised = match cmd.output() {
        Ok(out) if out.status.success() => fs::read(&output).ok(),
        Ok(out) => {
            let err = String::from_utf8_lossy(&out.stderr);
            println!(
                "cargo:warning=wasm-opt {level} failed, the wasm ships unoptimised: {}",
                err.lines().next().unwrap_or("")
            );
            None
        }
        Err(e) => {
            println!("cargo:warning=could not run {}: {e}; the wasm ships unoptimised", tool.display());
            None
        }
    };
    let Some(optimised) = optimised else { return wasm };
    if let Err(e) = same_exports(&wasm, &optimised) {
        fail(&format!(
            "wasm-opt {level} changed what the wasm exports ({e}); set OUTPOST_WASM_OPT=0 to build without it"
        ));
    }
    optimised
}

/// The exports the glue uses, by name, must be the same kind of thing after
/// wasm-opt as before (a table of the same element type, a function of the
/// same signature).
fn same_exports(before: &[u8], after: &[u8]) -> Result<(), String> {
    fn list(wasm: &[u8]) -> Result<Vec<(String, String)>, String> {
        let m = walrus::Module::from_buffer(wasm).map_err(|e| e.to_string())?;
        let mut out: Vec<(String, String)> = m
            .exports
            .iter()
            .map(|e| {
                let what = match e.item {
                    walrus::ExportItem::Function(f) => {
                        let ty = m.types.get(m.funcs.get(f).ty());
                        format!("function {:?} -> {:?}", ty.params(), ty.results())
                    }
                    walrus::ExportItem::Table(t) => format!("table of {:?}", m.tables.get(t).element_ty),
                    walrus::ExportItem::Memory(_) => "memory".into(),
                    walrus::ExportItem::Global(g) => format!("global {:?}", m.globals.get(g).ty),
                    walrus::ExportItem::Tag(_) => "tag".into(),
                };
                (e.name.clone(), what)
            })
            .collect();
        out.sort();
        Ok(out)
    }
    let (b, a) = (list(before)?, list(after)?);
    for (name, what) in &b {
        match a.iter().find(|(n, _)| n == name) {
            Some((_, w)) if w == what => {}
            Some((_, w)) => return Err(format!("`{name}` was a {what}, is a {w}")),
            None => return Err(format!("`{name}` is gone")),
        }
    }
    Ok(())
}

/// esbuild, which minifies the worker's script (the glue and the bootstrap,
/// inside one function, so the names they share are shortened too) and
/// takes out whitespace. The bundle's hash is taken over the minified text,
/// and the library keeps it to assemble with (`Bundle::embedded_script`).
/// `OUTPOST_SW_MINIFY=0` ships the two as written (without comments), for
/// reading in a browser's debugger.
struct Minifier(PathBuf);

impl Minifier {
    fn find(root: &Path) -> Option<Minifier> {
        if env::var("OUTPOST_SW_MINIFY").as_deref() == Ok("0") {
            return None;
        }
        let esbuild = root.join("tools/node_modules/.bin/esbuild");
        let works = Command::new(&esbuild).arg("--version").output().is_ok_and(|o| o.status.success());
        if !works {
            println!(
                "cargo:warning=no esbuild in tools/node_modules: sw.js ships unminified (about 1.4 KB gzip larger). \
                 {SETUP} installs it (npm ci in tools/)."
            );
            return None;
        }
        Some(Minifier(esbuild))
    }

    fn minify(&self, js: &str, what: &str) -> String {
        use std::io::Write;
        let child = Command::new(&self.0)
            .args(["--minify", "--loader=js", "--charset=utf8", "--log-level=warning"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = child.unwrap_or_else(|e| fail(&format!("could not run {}: {e}", self.0.display())));
        child.stdin.take().unwrap().write_all(js.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        if !out.status.success() {
            fail(&format!("esbuild could not minify {what}:\n{}", String::from_utf8_lossy(&out.stderr)));
        }
        for line in String::from_utf8_lossy(&out.stderr).lines().filter(|l| !l.trim().is_empty()) {
            println!("cargo:warning=esbuild ({what}): {line}");
        }
        String::from_utf8(out.stdout).expect("esbuild writes UTF-8")
    }
}

fn fail(message: &str) -> ! {
    eprintln!("\noutpost: {message}\n\nRun {SETUP} to install what is missing, then build again.\n");
    std::process::exit(1);
}
