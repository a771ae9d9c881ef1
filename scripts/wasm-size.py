#!/usr/bin/env python3
"""What the worker's wasm is made of: code bytes by crate and by Outpost's
own module, from the wasm's name section (like twiggy's `top`, without
installing anything). Give it the wasm cargo writes before wasm-bindgen
strips the names:

    python3 scripts/wasm-size.py target/outpost-sw-wasm/wasm32-unknown-unknown/wasm/outpost_sw.wasm [--top N]

Sizes are of function bodies in the code section; generic functions are
counted under the crate whose type they were instantiated for when the
mangled name says so (`<serde_json>`: serde_json's impls of a foreign
trait). `__wbindgen_describe_*` functions and the `WasmDescribe` impls they
call exist only before wasm-bindgen and are not shipped.
"""
import collections
import re
import sys


def leb(b, i):
    r = s = 0
    while True:
        x = b[i]
        i += 1
        r |= (x & 0x7F) << s
        s += 7
        if x < 0x80:
            return r, i


def sections(data):
    i = 8
    while i < len(data):
        sid = data[i]
        size, i = leb(data, i + 1)
        yield sid, i, size
        i += size


def analyse(data):
    imported, code, names, sizes_by_section = 0, None, {}, collections.Counter()
    for sid, off, size in sections(data):
        sizes_by_section[sid] += size
        if sid == 2:  # imports: function imports take the first indices
            n, j = leb(data, off)
            for _ in range(n):
                for _ in range(2):
                    ln, j = leb(data, j)
                    j += ln
                kind = data[j]
                j += 1
                if kind == 0:
                    _, j = leb(data, j)
                    imported += 1
                elif kind == 1:
                    j += 1
                    flags, j = leb(data, j)
                    _, j = leb(data, j)
                    if flags & 1:
                        _, j = leb(data, j)
                elif kind == 2:
                    flags, j = leb(data, j)
                    _, j = leb(data, j)
                    if flags & 1:
                        _, j = leb(data, j)
                elif kind == 3:
                    j += 2
        elif sid == 10:
            code = (off, size)
        elif sid == 0:
            ln, j = leb(data, off)
            if data[j:j + ln] == b"name":
                j += ln
                end = off + size
                while j < end:
                    sub = data[j]
                    ss, j = leb(data, j + 1)
                    if sub == 1:
                        n, k = leb(data, j)
                        for _ in range(n):
                            idx, k = leb(data, k)
                            ln, k = leb(data, k)
                            names[idx] = data[k:k + ln].decode("utf8", "replace")
                            k += ln
                    j += ss
    if code is None:
        sys.exit("no code section")
    if not names:
        sys.exit("no name section: give the wasm from before wasm-bindgen (target/outpost-sw-wasm/...)")
    funcs = []
    off, _ = code
    n, j = leb(data, off)
    for f in range(n):
        ln, k = leb(data, j)
        funcs.append((names.get(imported + f, "?"), k - j + ln))
        j = k + ln
    return funcs, sizes_by_section


PRIMITIVES = {"str", "char", "bool", "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64",
              "i128", "isize", "f32", "f64"}


def owner(name):
    """(crate, our module or None) of a mangled function name."""
    if name.startswith("__wbindgen_describe") or "WasmDescribe" in name or "wasm_bindgen..describe" in name:
        return "(wasm-bindgen descriptors, not shipped)", None
    m = re.match(r"_ZN(\d+)", name)
    if m:
        rest = name[m.end():]
        first = rest[: int(m.group(1))]
        if first.startswith("_$LT$"):
            # `<serde_json::de::Deserializer<R> as ...>`: the first path's crate.
            inner = re.search(r"([a-z_][a-z_0-9]*)\.\.", first)
            return "<" + (inner.group(1) if inner else "?") + ">", None
        if first == "outpost_sw":
            segs = re.findall(r"(\d+)", rest[len(first):])
            parts, j = [], len(first)
            while len(parts) < 2 and j < len(rest):
                mm = re.match(r"(\d+)", rest[j:])
                if not mm:
                    break
                ln = int(mm.group(1))
                parts.append(rest[j + len(mm.group(1)): j + len(mm.group(1)) + ln])
                j += len(mm.group(1)) + ln
            return first, "::".join(parts)
        return first, None
    if name.startswith("_R") and "9Completes" in name:
        # `<web::global::Completes<F> as Future>::poll`, with `F`'s own poll
        # inlined (`Whole`): counted under the module of `F`, the async fn
        # or block it wraps.
        return "outpost_sw", _completes_module(name.split("9Completes", 1)[1])
    if name.startswith("_R"):
        # v0 mangling: the first crate root is `C`, an optional `s<hash>_`,
        # then `<length><name>`.
        m = re.search(r"C(?:s[0-9A-Za-z]*_)?(\d+)", name)
        if m:
            ln = int(m.group(1))
            crate = name[m.end(): m.end() + ln]
            if crate != "outpost_sw":
                return crate, None
            # The module: the next two `<length><name>` segments (a
            # disambiguator `s<n>_` may come between).
            parts, j = [], m.end() + ln
            while len(parts) < 2:
                mm = re.match(r"(?:s[0-9A-Za-z]*_)?(\d+)", name[j:])
                if not mm:
                    break
                k = j + mm.end()
                parts.append(name[k: k + int(mm.group(1))])
                j = k + int(mm.group(1))
            return crate, "::".join(parts) or None
        return "std (v0 names)", None
    # Demangled names (a wasm built with OUTPOST_WASM_NAMES=1 keeps
    # wasm-bindgen's, which look like `<outpost_sw[abcd…]::web::Outpost>::handle`):
    # the first path, without the crate hashes and leading `<`s.
    plain = re.sub(r"\[[0-9a-f]{16}\]", "", name).lstrip("<&* ")
    if plain.startswith("mut "):
        plain = plain[4:]
    segs = plain.split("::")
    crate = re.match(r"[A-Za-z_][A-Za-z_0-9]*", segs[0])
    crate = crate.group(0) if crate else segs[0][:40]
    if plain[:1] in "[(" or crate in PRIMITIVES:
        crate = "core"  # `<str>::…`, `<[u8]>::…`: core's impls on primitives
    if crate == "outpost_sw" and len(segs) > 1:
        # Modules are snake_case; a type's name (`Outpost>`) ends the path.
        mods = []
        for seg in segs[1:3]:
            if not re.fullmatch(r"[a-z_][a-z_0-9]*", seg):
                break
            mods.append(seg)
        return crate, "::".join(mods) or None
    return crate, None


def _completes_module(tail):
    """The web module of the future in `Completes<…>`: the first of the
    path's names; `web` when that is a type (`Outpost`, `Inner`)."""
    i = 0
    while i < len(tail):
        c = tail[i]
        if c in "Bs":  # a back reference or a disambiguator: `B<n>_`, `s<n>_`
            i = tail.index("_", i) + 1
        elif c.isdigit():
            m = re.match(r"\d+", tail[i:])
            ln = int(m.group(0))
            ident = tail[i + len(m.group(0)): i + len(m.group(0)) + ln]
            return "web::" + ident if ident[:1].islower() else "web"
        else:
            i += 1
    return "web"


def main():
    path = sys.argv[1]
    top = int(sys.argv[sys.argv.index("--top") + 1]) if "--top" in sys.argv else 0
    data = open(path, "rb").read()
    funcs, secs = analyse(data)
    by_crate, by_module = collections.Counter(), collections.Counter()
    for name, size in funcs:
        crate, module = owner(name)
        by_crate[crate] += size
        if module:
            by_module[module] += size
    shipped = sum(s for n, s in funcs if owner(n)[0] != "(wasm-bindgen descriptors, not shipped)")
    print(f"{path}: {len(data)} bytes; code {secs[10]}, data {secs[11]} (shipped code about {shipped})")
    print("\n| crate | code bytes |\n|---|---|")
    for crate, size in by_crate.most_common(25):
        print(f"| {crate} | {size} |")
    print("\n| outpost_sw module | code bytes |\n|---|---|")
    for module, size in by_module.most_common(25):
        print(f"| {module} | {size} |")
    if top:
        print(f"\nlargest {top} functions:")
        for name, size in sorted(funcs, key=lambda f: -f[1])[:top]:
            print(f"{size:8d} {name[:140]}")


if __name__ == "__main__":
    try:
        main()
    except BrokenPipeError:  # piped into `head`
        pass
