// Outpost service worker bootstrap.
//
// The build prepends `OUTPOST_VERSION` (the bundle's content hash),
// `OUTPOST_WASM` (the wasm file name, next to this script) and wasm-bindgen's
// glue, which defines `wasm_bindgen`. Everything the worker decides is decided
// in the wasm; this file only wires browser events to it.
//
// The functions the wasm imports (`outpostTx`, …: `web::global::bootstrap`)
// are constants of this script, found by the glue by name: the build minifies
// the glue and this file together, inside one function.
//
// Rules kept here:
// - every listener is added synchronously, at the top level, on each start;
// - one `ready` promise loads the wasm, and every handler awaits it inside
//   respondWith / waitUntil;
// - the wasm comes from Cache Storage, so a cold start needs no network.

const OUTPOST_WASM_URL = new URL(OUTPOST_WASM, self.location.href).href;
const OUTPOST_CACHE = 'outpost-wasm-' + OUTPOST_VERSION;
const OUTPOST_CONFIG = new URL(self.location.href).searchParams.get('config') || '';

// Until the wasm is ready, the worker claims only same-origin requests under
// the API prefix and GETs of the configured app-shell paths; the wasm then
// decides, and what it does not want goes to the network unchanged.
const [OUTPOST_API_PREFIX, OUTPOST_SHELL] = (() => {
  try {
    const config = JSON.parse(OUTPOST_CONFIG || '{}');
    const prefix = typeof config.apiPrefix === 'string' ? config.apiPrefix : '/api/';
    return [prefix, Array.isArray(config.shell) ? config.shell.filter((p) => typeof p === 'string') : []];
  } catch (_) {
    return ['/api/', []]; // the wasm reports the bad config when it starts
  }
})();

// The same pattern rules as the wasm's (sw/src/core/pattern.rs): `*` as a
// whole segment is one non-empty segment; a trailing `*` glued to the last
// segment is a prefix match that takes any rest of the path.
function outpostMatches(pattern, path) {
  const openTail = pattern.endsWith('*') && !pattern.endsWith('/*');
  const want = (openTail ? pattern.slice(0, -1) : pattern).split('/');
  const have = path.split('/');
  if (openTail ? have.length < want.length : have.length !== want.length) return false;
  return want.every((w, i) => {
    if (openTail && i === want.length - 1) return have[i].startsWith(w);
    return w === '*' ? have[i] !== '' : w === have[i];
  });
}

// Where this instance's start went, in ms since the browser started it
// (`performance.now()`): `script` when this file runs (after the glue),
// `cache` once the wasm is out of Cache Storage, `wasm` once compiled and
// instantiated, `ready` once IndexedDB is open and the user known, and for
// the first request it answered, `fetch` (its event) and `answered`,
// `coldRead` when this file sent a cold read itself (below); the
// wasm adds `opened` (IndexedDB open), `identity` (user loaded) and
// `storage` (its parts set up), in the background, and `network` (the first
// read's network answer). A page asks with
// `outpost:timings`; the benchmark prints them.
const OUTPOST_TIMINGS = (self.outpostTimings = { script: performance.now() });

// Called by the wasm (`web::global::bootstrap`). A mark is set once.
const outpostMark = (name) => {
  if (!(name in OUTPOST_TIMINGS)) OUTPOST_TIMINGS[name] = performance.now();
};
// The Web Lock `name`, which every worker instance of this origin shares (an
// old and a new worker overlap during an update): resolves once it is held
// with the function that releases it (a no-op where there is no Web Locks
// API: the work then runs unguarded).
const outpostLock = (name) =>
  new Promise((held, failed) => {
    if (!navigator.locks) return held(() => {});
    navigator.locks.request(name, () => new Promise((release) => held(release))).catch(failed);
  });
// A Request or a Response from what the wasm decided: `headers` is
// [name, value, …], each set in order (a later value of a name replaces an
// earlier one). Throws as the constructors do (a bad URL, method or header).
const outpostHeaders = (pairs) => {
  const h = new Headers();
  for (let i = 0; i < pairs.length; i += 2) h.set(pairs[i], pairs[i + 1]);
  return h;
};
const outpostNewRequest = (url, method, credentials, manual, headers, body, signal) =>
  new Request(url, { method, credentials, redirect: manual ? 'manual' : 'follow', headers: outpostHeaders(headers), body, signal });
const outpostNewResponse = (status, headers, body) => new Response(body, { status, headers: outpostHeaders(headers) });
// A thrown value as `[name, message]` for the wasm's errors: a string is
// an Error's message; an object its own `name` and `message` (a missing
// name is `Error`), or else its text.
const outpostErrorParts = (e) => {
  try {
    if (typeof e === 'string') return ['Error', e];
    const text = (v) => (typeof v === 'string' ? v : '');
    const [name, message] = [text(e?.name), text(e?.message)];
    if (name || message) return [name || 'Error', message];
    return ['Error', e instanceof Object ? String(e) : String(JSON.stringify(e))];
  } catch {
    return ['Error', 'an error that could not be read'];
  }
};
// A JS Error named `name`, for a rejection the page sees.
const outpostNewError = (name, message) => Object.assign(new Error(message), { name });
// A clone of the response `p` resolves to, with its own body (a rejection
// passes through).
const outpostCloned = (p) => p.then((r) => r.clone());
// `[promise, resolve, reject]`: a promise the wasm settles later.
const outpostDeferred = () => {
  let ok, fail;
  const p = new Promise((a, b) => ((ok = a), (fail = b)));
  return [p, ok, fail];
};
// `fetch(request)`, aborted through `controller` (whose signal the request
// carries) if no answer comes within `ms`.
const outpostFetchWithin = (request, controller, ms) => {
  const timer = setTimeout(() => controller.abort(), ms);
  return fetch(request).finally(() => clearTimeout(timer));
};
// A random id for an Idempotency-Key or a batch.
const outpostUuid = () =>
  crypto.randomUUID ? crypto.randomUUID() : `${Date.now().toString(16)}-${Math.random().toString(16).slice(2)}`;
// Posts `text` (JSON) as an object on the BroadcastChannel `name`; a page
// that is not listening loses nothing.
const outpostChannels = {};
const outpostEmit = (name, text) => {
  try {
    (outpostChannels[name] ??= new BroadcastChannel(name)).postMessage(JSON.parse(text));
  } catch {}
};
// The wasm's executor (sw/src/web/task.rs): its woken tasks run in a
// microtask, and a promise it awaits as slot `n` hands how it settled back.
const outpostTick = () => queueMicrotask(wasm_bindgen.outpostRun);
// The retry clock's one timer (sw/src/web/clock.rs).
const outpostTimer = (ms) => setTimeout(wasm_bindgen.outpostFired, ms);
const outpostWait = (p, n) => {
  const to = (ok) => (v) => wasm_bindgen.outpostSettled(n, ok, v);
  p.then(to(true), to(false));
};
// Resolves after `ms` milliseconds (while the worker stays alive).
const outpostSleep = (ms) => new Promise((ok) => setTimeout(ok, ms));
// Opens the IndexedDB database `name` at `version`, creating the stores of
// `stores` it lacks (older stores stay as they are).
const outpostOpen = (name, version, stores) =>
  new Promise((ok, fail) => {
    if (!self.indexedDB) throw new DOMException('this browser gives the worker no IndexedDB', 'InvalidStateError');
    const r = indexedDB.open(name, version);
    r.onupgradeneeded = () => {
      for (const s of stores) if (!r.result.objectStoreNames.contains(s)) r.result.createObjectStore(s);
    };
    r.onsuccess = () => ok(r.result);
    r.onerror = () => fail(r.error);
  });
// A Background Sync event for `tag`, where the browser has Background Sync
// (refusals change nothing: the other triggers still replay).
const outpostRegisterSync = async (tag) => {
  try {
    await self.registration.sync?.register(tag);
  } catch {}
};
// An IndexedDB request as a promise of its result (rejected with its
// DOMException), and a transaction's end (rejected with its error, or an
// AbortError, when it aborts). Listening starts at once.
const outpostRequest = (r) => new Promise((ok, fail) => {
  r.onsuccess = () => ok(r.result);
  r.onerror = () => fail(r.error);
});
const outpostDone = (tx) => new Promise((ok, fail) => {
  tx.oncomplete = () => ok();
  tx.onabort = () => fail(tx.error || new DOMException('an IndexedDB transaction was aborted', 'AbortError'));
});
// A transaction over the stores `names` (joined by ','), and requests in it:
// a value by key, a store's `[keys, values]`, and changes made in order
// without awaiting each (`ops`: [store, key, value, …], value undefined for a
// delete; one that cannot be made aborts the transaction, and throws).
const outpostTx = (db, names, write) => db.transaction(names.split(','), write ? 'readwrite' : 'readonly');
const outpostGet = (tx, name, key) => outpostRequest(tx.objectStore(name).get(key));
const outpostAll = (tx, name) => {
  const s = tx.objectStore(name);
  return Promise.all([outpostRequest(s.getAllKeys()), outpostRequest(s.getAll())]);
};
const outpostOps = (tx, ops) => {
  try {
    for (let i = 0; i < ops.length; i += 3) {
      const s = tx.objectStore(ops[i]);
      if (ops[i + 2] === undefined) s.delete(ops[i + 1]);
      else s.put(ops[i + 2], ops[i + 1]);
    }
  } catch (e) {
    try {
      tx.abort();
    } catch {} // already finished: the error below is the one to tell
    throw e;
  }
};
// `[usage, quota]` in bytes, or null where the browser does not tell.
const outpostEstimate = async () => {
  try {
    const { usage, quota } = await navigator.storage.estimate();
    return typeof usage === 'number' && typeof quota === 'number' ? [usage, quota] : null;
  } catch {
    return null;
  }
};

// Cold reads. A stopped worker's first network-first reads are sent at the
// fetch event and answered as the network answers, before the wasm is even
// compiled; the wasm then takes the same answer as its own (stores the
// copy, learns the user) when it is ready. Which reads qualify is the
// wasm's table (`core::route::cold_reads`), kept in Cache Storage by the
// wasm only while no logout is owed to the origin (a debt deletes it before
// it is written down), and used only by the bundle and config that wrote
// it. No table, no early answer: everything waits for the wasm as before.
const OUTPOST_STATE = 'outpost-state';
const OUTPOST_COLD_KEY = new URL('__outpost/cold-reads', self.registration.scope).href;
let outpostColdText = null; // the entry as this start found it
// The entry's text is in a header, not the body: known as soon as the
// lookup answers, with no body to read after it.
const OUTPOST_COLD_HEADER = 'x-outpost-cold-reads';
const outpostColdTable = caches
  .match(OUTPOST_COLD_KEY, { cacheName: OUTPOST_STATE })
  .then((r) => {
    const text = r ? decodeURIComponent(r.headers.get(OUTPOST_COLD_HEADER) || '') : '';
    outpostColdText = text;
    const e = text && JSON.parse(text);
    return e && e.v === OUTPOST_VERSION && e.c === OUTPOST_CONFIG ? JSON.parse(e.t) : null;
  })
  .catch(() => null);
// Until a claimed request that is not a cold read arrives (a write, say):
// a read sent after it must not overtake it to the origin.
let outpostColdOpen = true;
// The network answer (or failure) of this start's first cold read, its
// body read to the end.
let outpostColdFirst = null;
const OUTPOST_COLD_FIRST_MS = 30;
// Called by the wasm: the table to keep, or null to stop cold reads.
const outpostColdReads = async (table) => {
  if (table == null) {
    outpostColdText = null;
    await caches.delete(OUTPOST_STATE);
    return;
  }
  const text = JSON.stringify({ v: OUTPOST_VERSION, c: OUTPOST_CONFIG, t: table });
  if (text === outpostColdText) return;
  const entry = new Response(null, { headers: { [OUTPOST_COLD_HEADER]: encodeURIComponent(text) } });
  await (await caches.open(OUTPOST_STATE)).put(OUTPOST_COLD_KEY, entry);
  outpostColdText = text;
};

function isColdRead(request, table) {
  if (!table || request.method !== 'GET') return false;
  const path = new URL(request.url).pathname;
  const any = (patterns) => patterns.some((p) => outpostMatches(p, path));
  return path.startsWith(table.prefix) ? any(table.reads) && !any(table.not) : any(table.shell);
}

let outpost = null;
// Whether this bundle's wasm was already in Cache Storage when this worker
// started: at install, that means an older worker of the same bundle (with
// another config) is there.
let outpostBundleWasThere = false;

async function loadWasm() {
  // One Cache Storage lookup on a cold start (a cache is only ever created
  // holding its wasm).
  let response = await caches.match(OUTPOST_WASM_URL, { cacheName: OUTPOST_CACHE });
  outpostBundleWasThere = response !== undefined;
  if (!response) {
    response = await fetch(OUTPOST_WASM_URL, { cache: 'no-cache' });
    if (!response.ok) {
      throw new Error(`outpost: could not load ${OUTPOST_WASM_URL} (HTTP ${response.status})`);
    }
    await (await caches.open(OUTPOST_CACHE)).put(OUTPOST_WASM_URL, response.clone());
  }
  OUTPOST_TIMINGS.cache = performance.now();
  // A cold read sent by now (the fetch event came first) is answered
  // before the wasm is compiled: compiling and starting it takes the
  // worker's thread and the device's cores for several ms, which the
  // read's answer would otherwise wait behind. At most OUTPOST_COLD_FIRST_MS:
  // on a slow network the compile overlaps the wait, as before.
  await outpostColdTable;
  if (outpostColdFirst) {
    await Promise.race([outpostColdFirst, new Promise((ok) => setTimeout(ok, OUTPOST_COLD_FIRST_MS))]);
  }
  // Streamed from a response typed application/wasm: compiled as it is
  // read, and eligible for the engine's compiled-code cache.
  await wasm_bindgen({ module_or_path: response });
  OUTPOST_TIMINGS.wasm = performance.now();
  // The wasm's functions (`claims`, `handle`, …: sw/src/web/mod.rs) act on
  // the one worker `outpostNew` makes.
  const o = wasm_bindgen;
  o.outpostNew(OUTPOST_CONFIG, self.location.origin, OUTPOST_VERSION);
  await o.start();
  OUTPOST_TIMINGS.ready = performance.now();
  outpost = o;
  return o;
}

const ready = loadWasm();
ready.catch((err) => console.error('outpost: the worker could not start:', err));

self.addEventListener('install', (event) => {
  // Where the browser has a static router (Chromium): requests the worker
  // would never claim go straight to the network, without starting it
  // (`staticRoutes`). Without one (Firefox, Safari), or if it
  // refuses the rules, every request comes to the fetch event as before.
  if (typeof event.addRoutes === 'function') {
    event.waitUntil(ready
      .then((o) => event.addRoutes(JSON.parse(o.staticRoutes())))
      .catch((err) => console.warn('outpost: static routes not added, every request starts the worker:', err)));
  }
  // Installing only once the wasm is in Cache Storage is what makes the
  // next cold start work offline.
  event.waitUntil(ready.then(() => {
    // A new bundle takes over at once. The same bundle with another config
    // (two pages passing different configs, or a deploy that changed only
    // the config) waits until no page uses the old worker: taking over
    // while the old one answers requests can leave Chromium with the new
    // worker stuck in "activating" and stopped, every request of the page
    // then going past it to the network (and failing offline).
    const sameBundle = outpostBundleWasThere && self.registration.active;
    return sameBundle ? undefined : self.skipWaiting();
  }));
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith('outpost-wasm-') && name !== OUTPOST_CACHE) await caches.delete(name);
    }
    // A worker of an older bundle may have recorded a logout debt without
    // knowing of the cold-read table: the table goes, and is written again
    // once the debt has been read (under the outbox lock).
    await outpostColdReads(null);
    await self.clients.claim();
    await (await ready).keepColdReads();
  })());
});

function mayClaim(request) {
  // A form post (a non-GET navigation) may come from another site: never
  // taken over, so the browser's own CSRF protections apply (the wasm
  // decides the same, in sw/src/core/route.rs).
  if (request.mode === 'navigate' && request.method !== 'GET') return false;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return false;
  if (url.pathname.startsWith(OUTPOST_API_PREFIX)) return true;
  return request.method === 'GET' && OUTPOST_SHELL.some((p) => outpostMatches(p, url.pathname));
}

// The wasm's handling of the cold reads answered so far: later reads reach
// the wasm after it (at most OUTPOST_COLD_WAIT_MS), so an offline read right
// after a cold one finds the copy the cold one brought, as when the wasm
// answered it. Other requests do not wait.
let outpostColdTaken = Promise.resolve();
let outpostColdPending = 0;
const OUTPOST_COLD_WAIT_MS = 1000;

// `before` settled, or OUTPOST_COLD_WAIT_MS passed.
const outpostAfter = (before) => Promise.race([before, new Promise((ok) => setTimeout(ok, OUTPOST_COLD_WAIT_MS))]);

function viaWasm(request) {
  return ready.then(
    (o) => {
      const navigate = request.mode === 'navigate';
      const go = () => (o.claims(request.method, request.url, navigate) ? o.handle(request, navigate) : fetch(request));
      if (!outpostColdPending || request.method !== 'GET') return go();
      return outpostAfter(outpostColdTaken).then(go);
    },
    () => fetch(request),
  );
}

// A cold read: the page gets the network's answer as it comes (below 500:
// what the wasm would hand it unchanged), or else whatever the wasm makes of
// it (a 5xx, no answer, the network timeout: the stored copy).
function coldRead(request, kept) {
  OUTPOST_TIMINGS.coldRead ??= performance.now();
  const sent = fetch(request);
  // Its body passes through this thread to the page: the compile waits
  // until all of it has arrived (a third branch of the body, read here).
  outpostColdFirst ??= sent.then((r) => r.clone().arrayBuffer()).then(() => {}, () => {});
  // The wasm takes it after the cold reads before it (at most
  // OUTPOST_COLD_WAIT_MS): a second read of a URL whose network request
  // fails (the network went in between) then finds the first one's copy.
  const before = outpostColdTaken;
  const taken = ready.then(
    (o) => outpostAfter(before).then(() => o.handle(request, request.mode === 'navigate', sent)),
    () => sent,
  );
  // Settled with nothing: the responses are not held after use.
  outpostColdPending++;
  const done = () => {
    outpostColdPending--;
  };
  // The copy of its answer is written after `handle` returns (the wasm's
  // background work): this event waits for that too. The event's own
  // `settled()` may run before the wasm is ready and miss it, and a browser
  // that stops idle workers at once (Firefox at a 50 ms idle timeout, on a
  // loaded machine) stopped the worker before the copy was written.
  const copied = taken.then(() => ready.then((o) => o.settled()));
  kept.push(copied.then(done, done));
  outpostColdTaken = Promise.all([outpostColdTaken, kept[0]]).then(() => {});
  const early = sent.then((r) => (r.status < 500 ? r.clone() : taken), () => taken);
  return Promise.race([early, taken.catch(() => early)]);
}

self.addEventListener('fetch', (event) => {
  const request = event.request;
  const claimed = outpost ? outpost.claims(request.method, request.url, request.mode === 'navigate') : mayClaim(request);
  if (!claimed) return;
  const kept = [];
  let answer;
  if (!outpost && outpostColdOpen && request.method === 'GET') {
    answer = outpostColdTable.then((table) => {
      if (!outpost && outpostColdOpen && isColdRead(request, table)) return coldRead(request, kept);
      if (!outpost) outpostColdOpen = false;
      return viaWasm(request);
    });
  } else {
    if (!outpost) outpostColdOpen = false;
    answer = viaWasm(request);
  }
  event.respondWith(answer);
  if (OUTPOST_TIMINGS.fetch === undefined) {
    OUTPOST_TIMINGS.fetch = performance.now();
    answer.then(() => (OUTPOST_TIMINGS.answered = performance.now()), () => {});
  }
  // Work the request started (a login's warm-up, a cold read's copy) keeps
  // the worker alive.
  const settled = () => Promise.all([...kept, outpost && outpost.settled()]);
  event.waitUntil(answer.then(settled, settled));
});

self.addEventListener('sync', (event) => {
  if (event.tag !== 'outpost-outbox') return;
  event.waitUntil(ready.then((o) => o.onSync(event.lastChance)));
});

self.addEventListener('message', (event) => {
  const data = event.data || {};
  const port = event.ports && event.ports[0];
  if (data.type === 'outpost:claim') {
    // A page loaded with a hard reload is not controlled; the page client
    // asks the worker to take it over.
    event.waitUntil(self.clients.claim());
  } else if (data.type === 'outpost:timings' && port) {
    port.postMessage(OUTPOST_TIMINGS); // answered by the bootstrap, wasm or not
  } else if (typeof data.type === 'string' && data.type.startsWith('outpost:') && port) {
    const id = typeof data.id === 'string' ? data.id : undefined;
    event.waitUntil(ready.then((o) => o.message(data.type, id)).then(
      (reply) => port.postMessage(JSON.parse(reply)), // the wasm's JSON text
      (err) => port.postMessage({ error: String(err) }),
    ));
  }
});
