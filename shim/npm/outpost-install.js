#!/usr/bin/env node
// Copies Outpost's worker (sw.js and its wasm) into the folder a site serves
// at its root: `public/` for Next.js and Vite, the site's root for a plain
// static site. Run it after every install or update of the package (a
// "postinstall" or "prebuild" script does it for you).
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const WASM = /^outpost-sw-[0-9a-f]{16}\.wasm$/;
const dest = process.argv[2];
if (!dest || dest.startsWith('-')) {
  console.error('usage: outpost-install DIR\n  DIR: the folder your site serves at / (public/ for Next.js and Vite)');
  process.exit(dest === '-h' || dest === '--help' ? 0 : 2);
}
const worker = join(dirname(fileURLToPath(import.meta.url)), '..', 'worker');
const files = readdirSync(worker).filter((f) => f === 'sw.js' || WASM.test(f));
if (!files.includes('sw.js') || files.length !== 2) {
  console.error(`outpost: the package's worker folder (${worker}) is incomplete: reinstall the package`);
  process.exit(1);
}
mkdirSync(dest, { recursive: true });
// sw.js names one wasm: an older one left behind would only take space.
for (const f of existsSync(dest) ? readdirSync(dest) : []) {
  if (WASM.test(f) && !files.includes(f)) rmSync(join(dest, f));
}
for (const f of files) copyFileSync(join(worker, f), join(dest, f));
console.log(`outpost: copied ${files.join(' and ')} to ${dest}`);
