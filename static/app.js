// The Outpost demo: a small chat-and-uploads app that keeps working offline.
// Plain JavaScript on top of outpost.js; every API call goes through the
// worker like in any site that adopts it.
import { Outpost } from '/outpost.js';

const $ = (id) => document.getElementById(id);

// The demo keeps its own page and scripts for offline starts, and keeps
// uploaded files as evictable copies so thumbnails show offline.
const CONFIG = {
  shell: ['/', '/index.html', '/app.js', '/style.css', '/outpost.js'],
  keepUploadedBlobs: true,
};

const state = { outpost: null, user: null, sessions: [], current: null, assets: [], uploads: new Map() };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') node.className = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null) node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function showError(message) {
  $('error').hidden = !message;
  $('error').textContent = message || '';
}

function relative(ms) {
  const s = Math.round((ms - Date.now()) / 1000);
  if (s <= 0) return 'any moment';
  return s < 60 ? `in ${s} s` : `in ${Math.round(s / 60)} min`;
}

function size(bytes) {
  if (bytes >= 1073741824) return `${(bytes / 1073741824).toFixed(1)} GiB`;
  if (bytes >= 1048576) return `${(bytes / 1048576).toFixed(1)} MiB`;
  if (bytes >= 1024) return `${(bytes / 1024).toFixed(0)} KiB`;
  return `${bytes} B`;
}

/** GET through the worker; notes when the answer is a stored copy. */
async function read(path) {
  const r = await fetch(path);
  if (r.headers.get('outpost-cache') === 'stale') {
    const age = Number(r.headers.get('age') || 0);
    $('stale').hidden = false;
    $('stale').textContent = `Offline: showing what this device stored ${age < 60 ? `${age} s` : `${Math.round(age / 60)} min`} ago.`;
  } else if (r.ok) {
    $('stale').hidden = true;
  }
  return r;
}

async function write(path, body) {
  const r = await fetch(path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  const data = await r.json().catch(() => ({}));
  return { status: r.status, queued: r.status === 202 && data.queued, data };
}

// ---- network and the demo switch -------------------------------------------

async function showNetwork() {
  let offline = false;
  let reachable = true;
  try {
    offline = (await (await fetch('/api/demo/network')).json()).offline;
  } catch (_) {
    reachable = false; // the origin itself is down (or the network is)
  }
  $('offline-switch').checked = offline;
  const online = navigator.onLine && reachable && !offline;
  $('network').textContent = online ? 'online'
    : offline ? 'offline (switch)'
    : navigator.onLine ? 'origin unreachable' : 'offline';
  $('network').className = online ? 'ok' : 'warn';
}

$('offline-switch').addEventListener('change', async (e) => {
  const r = await fetch('/api/demo/network', {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ offline: e.target.checked }),
  }).catch(() => null);
  if (!r || !r.ok) showError('The switch could not reach the origin. Is `outpost serve` running?');
  await showNetwork();
  // Back online, the worker sends what waits by itself (it probes every few
  // seconds, and any answer from the origin is a hint); nothing to do here.
  if (!e.target.checked) await refresh();
});
addEventListener('online', showNetwork);
addEventListener('offline', showNetwork);

// ---- login -----------------------------------------------------------------

function showLoggedIn(user) {
  state.user = user;
  $('login').hidden = !!user;
  $('app').hidden = !user;
  $('logout').hidden = !user;
  $('user').textContent = user ? user.name : 'not logged in';
  $('user').className = user ? 'ok' : '';
}

$('login-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const r = await write('/api/auth/login', { user: $('login-name').value.trim() }).catch(() => null);
  if (!r || r.status !== 200) {
    showError(r ? `Login refused: ${r.data.error ? r.data.error.message : `HTTP ${r.status}`}` : 'Login needs the origin: it cannot be reached.');
    return;
  }
  showError('');
  await refresh();
});

$('logout').addEventListener('click', async () => {
  const out = await state.outpost.logout();
  if (!out.ok) showError('Logged out on this device; the origin could not be told (it is unreachable).');
  state.sessions = [];
  state.current = null;
  showLoggedIn(null);
});

// ---- sessions and messages -------------------------------------------------

function renderSessions() {
  const list = $('sessions');
  list.replaceChildren();
  if (!state.sessions.length) list.append(el('li', { class: 'muted' }, 'No sessions yet.'));
  for (const s of state.sessions) {
    const button = el('button', {
      type: 'button', class: s.id === state.current ? 'link current' : 'link',
      'aria-current': s.id === state.current ? 'true' : null, onclick: () => openSession(s.id),
    }, s.title);
    list.append(el('li', {}, button, s.queued ? el('span', { class: 'badge' }, 'queued') : ''));
  }
}

async function openSession(id) {
  state.current = id;
  localStorage.setItem('outpost-demo-session', id);
  renderSessions();
  $('message-text').disabled = false;
  $('send').disabled = false;
  const title = (state.sessions.find((s) => s.id === id) || {}).title || '';
  $('chat-title').textContent = `Messages · ${title}`;
  const r = await read(`/api/chat/sessions/${id}/messages`).catch(() => null);
  const messages = r && r.ok ? await r.json() : [];
  // Built whole, then swapped in: two renders in flight never leave the
  // list empty or half drawn.
  const items = messages.map((m) => el('li', {}, m.content));
  for (const m of state.pendingMessages(id)) {
    items.push(el('li', { class: 'queued' }, m.content, el('span', { class: 'badge' }, 'queued')));
  }
  if (!items.length) items.push(el('li', { class: 'muted' }, r ? 'No messages yet.' : 'Offline and not stored on this device.'));
  if (state.current === id) $('messages').replaceChildren(...items);
}

// Messages written offline, shown until the origin has them.
const pending = [];
state.pendingMessages = (session) => pending.filter((m) => m.sessionId === session);

$('session-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const title = $('session-title').value.trim();
  const id = crypto.randomUUID();
  const r = await write('/api/chat/sessions', { id, title }).catch(() => null);
  if (!r || (r.status !== 201 && !r.queued)) {
    showError(`The session was not created: ${r && r.data.error ? r.data.error.message : 'no answer'}.`);
    return;
  }
  $('session-title').value = '';
  state.sessions.unshift({ id, title, queued: r.queued });
  await openSession(id);
});

$('message-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const content = $('message-text').value.trim();
  const tempId = crypto.randomUUID();
  const message = { tempId, sessionId: state.current, role: 'user', content, createdAt: Date.now() };
  const r = await write('/api/chat/messages/batch', { messages: [message] }).catch(() => null);
  if (!r || (r.status !== 200 && r.status !== 201 && !r.queued)) {
    showError(`The message was not sent: ${r && r.data.error ? r.data.error.message : 'no answer'}.`);
    return;
  }
  $('message-text').value = '';
  if (r.queued) pending.push({ ...message, entry: r.data.id });
  await openSession(state.current);
  await renderOutbox();
});

// ---- outbox ----------------------------------------------------------------

async function renderOutbox() {
  const status = await state.outpost.status().catch(() => null);
  if (!status) return;
  const n = status.pending;
  $('outbox-summary').textContent = n
    ? `${n} write${n === 1 ? '' : 's'} waiting for the origin${status.parked ? `, ${status.parked} of other users parked` : ''}.`
    : status.parked ? `Nothing of yours waiting; ${status.parked} of other users parked.` : 'Nothing waiting.';
  const queue = $('queue');
  queue.replaceChildren();
  for (const q of status.queue) {
    const path = new URL(q.url).pathname;
    const why = q.status ? `HTTP ${q.status}` : q.nextAt > q.createdAt ? 'no answer, waiting for the network' : 'not tried yet';
    queue.append(el('li', {}, `${q.method} ${path}`, el('span', { class: 'muted' }, ` · ${why} · next try ${relative(q.nextAt)}`)));
  }
  const dead = $('dead');
  dead.replaceChildren();
  if (!status.deadLetters.length) dead.append(el('li', { class: 'muted' }, 'None.'));
  for (const d of status.deadLetters) {
    const what = d.url ? `${d.method} ${new URL(d.url).pathname}` : `record ${d.id}`;
    dead.append(el('li', { class: 'dead' },
      el('span', {}, `${what}: ${d.reason}`),
      el('span', { class: 'actions' },
        el('button', { type: 'button', onclick: async () => { await state.outpost.retry(d.id); await renderOutbox(); } }, 'Retry'),
        el('button', { type: 'button', class: 'secondary', onclick: async () => { await state.outpost.discard(d.id); await renderOutbox(); } }, 'Discard'))));
  }
  renderUploads(status.uploads);
  renderStorage(status.storage);
}

$('flush').addEventListener('click', async () => {
  await state.outpost.flush().catch((err) => showError(err.message));
  await refresh();
});

// ---- uploads and storage ---------------------------------------------------

function renderUploads(uploads) {
  const list = $('uploads');
  list.replaceChildren();
  for (const u of uploads) {
    const label = `${u.filename} (${size(u.size)})`;
    const bar = el('progress', { max: String(u.size), value: String(u.done), 'aria-label': `Upload of ${u.filename}` });
    const note = u.state === 'dead'
      ? el('span', { class: 'bad' }, ` failed: ${u.reason}`)
      : el('span', { class: 'muted' }, u.done ? ` ${Math.round((100 * u.done) / u.size)} %` : u.retryAt && u.retryAt > Date.now() ? ` waiting for the network, next try ${relative(u.retryAt)}` : ' starting');
    const actions = u.state === 'dead'
      ? el('span', { class: 'actions' },
        el('button', { type: 'button', onclick: async () => { await state.outpost.retry(u.assetId); await renderOutbox(); } }, 'Retry'),
        el('button', { type: 'button', class: 'secondary', onclick: async () => { await state.outpost.discard(u.assetId); await renderOutbox(); } }, 'Discard'))
      : '';
    list.append(el('li', { class: 'upload' }, el('span', {}, label), bar, note, actions));
  }
}

function renderAssets() {
  const grid = $('assets');
  grid.replaceChildren();
  for (const a of state.assets.slice(0, 24)) {
    const src = `/api/assets/${a.id}/content`;
    // A video plays from the device too: the worker answers its range
    // requests, so it seeks offline.
    const body = a.contentType.startsWith('image/')
      ? el('img', { src, alt: a.filename, loading: 'lazy' })
      : a.contentType.startsWith('video/')
        ? el('video', { src, controls: '', preload: 'metadata', muted: '', 'aria-label': a.filename })
        : el('span', { class: 'file-tile' }, a.filename);
    grid.append(el('figure', {}, body, el('figcaption', {}, `${a.filename} · ${a.status}`)));
  }
}

function renderStorage(storage) {
  if (!storage) return;
  $('storage-meter').value = storage.budget ? storage.blobs / storage.budget : 0;
  const quota = storage.quota ? ` · browser: ${size(storage.usage)} of ${size(storage.quota)}` : '';
  $('storage-text').textContent = `${size(storage.blobs)} of a ${size(storage.budget)} budget${quota}`;
}

$('file').addEventListener('change', async (e) => {
  for (const file of e.target.files) {
    try {
      const { assetId, done } = await state.outpost.upload(file);
      state.assets.unshift({ id: assetId, filename: file.name, contentType: file.type || 'application/octet-stream', status: 'on this device' });
      renderAssets();
      done.then(() => refresh(), (err) => showError(err.message));
    } catch (err) {
      showError(err.message);
    }
  }
  e.target.value = '';
  await renderOutbox();
});

// ---- start -----------------------------------------------------------------

async function refresh() {
  const r = await read('/api/sync/init').catch(() => null);
  if (!r) {
    showError('The origin cannot be reached and nothing is stored on this device yet.');
    return;
  }
  if (r.status === 401) {
    showLoggedIn(null);
    return;
  }
  if (!r.ok) {
    const body = await r.json().catch(() => ({}));
    showError(body.error ? body.error.message : `Could not load your data (HTTP ${r.status}).`);
    return;
  }
  showError('');
  const data = await r.json();
  showLoggedIn(data.user);
  const queued = state.sessions.filter((s) => s.queued && !data.sessions.some((d) => d.id === s.id));
  state.sessions = [...queued, ...data.sessions];
  state.assets = data.assets;
  renderSessions();
  renderAssets();
  // After a reload, the session that was open opens again (from the device
  // when offline).
  const last = state.current || localStorage.getItem('outpost-demo-session');
  if (last && state.sessions.some((s) => s.id === last)) await openSession(last);
  await renderOutbox();
}

async function main() {
  state.outpost = await Outpost.register({ config: CONFIG });
  window.outpost = state.outpost;
  $('worker').textContent = 'controlling this page';
  $('worker').className = 'ok';
  $('bundle').textContent = await state.outpost.version();
  for (const type of ['queued', 'replayed', 'retry-scheduled', 'dead-lettered', 'uploaded', 'evicted']) {
    state.outpost.on(type, () => renderOutbox());
  }
  state.outpost.on('replayed', (e) => {
    const i = pending.findIndex((m) => m.entry === e.id);
    if (i >= 0) pending.splice(i, 1);
    refresh();
  });
  state.outpost.on('upload-progress', () => renderOutbox());
  // An upload done: the list (and the device's copy of it) names the file.
  state.outpost.on('uploaded', () => refresh());
  await showNetwork();
  await refresh();
  setInterval(() => { if (state.user) renderOutbox(); }, 2000);
}

main().catch((err) => {
  $('worker').textContent = 'not running';
  $('worker').className = 'bad';
  showError(`${err.message}. Reload the page; if this persists, check the browser console.`);
});
