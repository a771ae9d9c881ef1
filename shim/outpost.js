// Outpost page client (ES module).
//
//   import { Outpost } from '/outpost.js';
//   const outpost = await Outpost.register({ config: { networkTimeoutMs: 2000 } });
//   outpost.on('queued', (e) => console.log('queued', e.id));
//   console.log(await outpost.status());

const EVENTS = [
  'queued', 'replayed', 'retry-scheduled', 'dead-lettered', 'updated',
  'upload-progress', 'uploaded', 'evicted', 'quota-low', 'warm-up',
];

/** How long a question to the worker may go unanswered (a flush has no limit:
 * it replays the whole outbox). */
const ASK_TIMEOUT_MS = 15000;

/** A page wakes the worker this long after its due time: a worker that is
 * alive has run its own timer by then and told pages the next one, so only
 * a worker the browser stopped gets woken. */
const WAKE_SLACK_MS = 500;

/** How long a wake may go unanswered (it waits for the passes it runs)
 * before the page wakes the worker again: a browser may stop a worker in the
 * middle of a pass (Firefox, at its extended timeout), and its answer then
 * never comes. A worker still in its pass just takes the new wake as a
 * further reason to stay alive. */
const WAKE_TIMEOUT_MS = 8000;

/** After a wake the worker did not answer, the page tries again this soon. */
const WAKE_RETRY_MS = 1000;

/** The worker script's URL for a config: the config travels in the query, so
 * a changed config is a changed script and the browser installs it. */
function scriptUrl(script, config) {
  const url = new URL(script, location.href);
  if (config && Object.keys(config).length) url.searchParams.set('config', JSON.stringify(config));
  return url.href;
}

export class Outpost {
  /** @param {ServiceWorkerRegistration} registration */
  constructor(registration, config = {}) {
    this.registration = registration;
    this.config = config;
    this.listeners = new Map();
    this.channel = new BroadcastChannel('outpost');
    this.channel.onmessage = (e) => {
      if (e.data && e.data.type === 'wake') this.wakeAt(e.data.at);
      for (const fn of this.listeners.get(e.data && e.data.type) || []) fn(e.data);
    };
    // Hints that the network is back: coming online, and the page coming
    // back into view (a laptop opened, a phone unlocked).
    const hint = () => { this.ask('online').catch(() => {}); };
    addEventListener('online', hint);
    if (typeof document !== 'undefined') {
      document.addEventListener('visibilitychange', () => { if (document.visibilityState === 'visible') hint(); });
    }
    // Browsers stop an idle worker (about 30 s) and its retry timer with it,
    // and only Chromium has Background Sync to wake it. While writes or
    // uploads are pending, this page wakes the worker at its next due time;
    // the worker decides what is due, so several open pages cost nothing
    // more than one.
    this.wakeTimer = null;
    this.ask('status').then((s) => this.wakeAt(s.nextWakeAt), () => {});
  }

  /** Wakes the worker at `at` (ms since the epoch; null: nothing pending). */
  wakeAt(at) {
    clearTimeout(this.wakeTimer);
    this.wakeTimer = null;
    if (typeof at !== 'number') return;
    const delay = Math.max(0, at - Date.now()) + WAKE_SLACK_MS;
    this.wakeTimer = setTimeout(() => {
      // A worker that does not answer in time (stopped, or in a long pass) is woken again.
      this.ask('wake', {}, WAKE_TIMEOUT_MS).then(
        (r) => this.wakeAt(r.nextWakeAt),
        () => this.wakeAt(Date.now() + WAKE_RETRY_MS),
      );
    }, delay);
  }

  /**
   * Registers the worker and resolves once it controls this page.
   * @param {{config?: object, script?: string, scope?: string}} [options]
   */
  static async register({ config = {}, script = '/sw.js', scope = '/' } = {}) {
    if (!('serviceWorker' in navigator)) {
      throw new Error('outpost: this browser has no service workers (or the page is not on https/localhost)');
    }
    const registration = await navigator.serviceWorker.register(scriptUrl(script, config), { scope });
    const ready = await navigator.serviceWorker.ready;
    if (!navigator.serviceWorker.controller) {
      const controlled = new Promise((resolve) =>
        navigator.serviceWorker.addEventListener('controllerchange', resolve, { once: true }));
      // An active worker does not take over a page loaded with a hard reload
      // by itself.
      ready.active.postMessage({ type: 'outpost:claim' });
      await controlled;
    }
    return new Outpost(registration, config);
  }

  /** Asks the worker; resolves with its reply. */
  async ask(type, fields = {}, timeoutMs = ASK_TIMEOUT_MS) {
    const worker = navigator.serviceWorker.controller;
    if (!worker) throw new Error('outpost: no worker controls this page yet; await Outpost.register() first');
    const channel = new MessageChannel();
    const reply = new Promise((resolve, reject) => {
      channel.port1.onmessage = (e) => resolve(e.data);
      if (timeoutMs) {
        setTimeout(() => reject(new Error(
          `outpost: the worker did not answer "${type}" within ${timeoutMs / 1000} s; ` +
          'it may be stopped or broken (see the console of the service worker)')), timeoutMs);
      }
    });
    worker.postMessage({ type: `outpost:${type}`, ...fields }, [channel.port2]);
    const data = await reply;
    if (data && data.error) throw new Error(data.error);
    return data;
  }

  /** The bundle hash of the worker controlling this page. */
  async version() {
    return (await this.ask('version')).version;
  }

  /** `{user, pending, parked, deadLetters, uploads, storage}`. */
  status() {
    return this.ask('status');
  }

  /** Replays queued writes now; resolves with the status afterwards. */
  flush() {
    return this.ask('flush', {}, 0);
  }

  /**
   * Logs out through the worker, which forgets the user's cached reads on
   * this device (their queued writes stay parked until they log in again).
   * Resolves to `{ok, status}`; `status` 0 when the origin could not be
   * reached, in which case the session cookie stays until a logout reaches it.
   */
  async logout() {
    const path = (this.config.auth && this.config.auth.logout) || '/api/auth/logout';
    try {
      const r = await fetch(path, { method: 'POST', credentials: 'same-origin' });
      return { ok: r.ok, status: r.status };
    } catch (_) {
      return { ok: false, status: 0 };
    }
  }

  /** Puts a dead letter back in line. Resolves to whether it was one. */
  async retry(id) {
    return (await this.ask('retry', { id: String(id) })).ok;
  }

  /** Drops a dead letter for good. Resolves to whether it was one. */
  async discard(id) {
    return (await this.ask('discard', { id: String(id) })).ok;
  }

  /**
   * Hands a file to the worker, which keeps it on the device and uploads it
   * (presigned PUT, or multipart above the threshold), surviving reloads,
   * a killed worker and a browser restart. Resolves once the file is stored
   * locally, with its temp asset id and a promise of the upload's end
   * (`{assetId, serverId, size}`; rejected if it is dead-lettered).
   * @param {Blob} file
   * @param {{filename?: string, contentType?: string, projectId?: string}} [meta]
   */
  async upload(file, meta = {}) {
    const params = new URLSearchParams({ filename: meta.filename || file.name || 'upload' });
    if (meta.projectId) params.set('projectId', meta.projectId);
    // Events can overtake the answer: keep them until the id is known.
    const seen = [];
    const offs = ['uploaded', 'dead-lettered'].map((type) => this.on(type, (e) => seen.push(e)));
    let answer;
    try {
      answer = await fetch(`${this.config.uploadPath || '/api/assets/upload'}?${params}`, {
        method: 'POST',
        body: file,
        headers: { 'Content-Type': meta.contentType || file.type || 'application/octet-stream' },
      });
    } catch (err) {
      offs.forEach((off) => off());
      throw new Error(`outpost: the file could not be handed to the worker (${err.message})`);
    }
    const body = await answer.json().catch(() => ({}));
    if (answer.status !== 202) {
      offs.forEach((off) => off());
      throw new Error((body.error && body.error.message) || `outpost: upload refused (HTTP ${answer.status})`);
    }
    const assetId = body.assetId;
    const done = new Promise((resolve, reject) => {
      const settle = (e) => {
        if (e.assetId !== assetId) return false;
        offs.forEach((off) => off());
        if (e.type === 'uploaded') resolve(e); else reject(new Error(`outpost: upload ${assetId} failed: ${e.reason}`));
        return true;
      };
      if (seen.some(settle)) return;
      offs.forEach((off) => off());
      offs.length = 0;
      for (const type of ['uploaded', 'dead-lettered']) offs.push(this.on(type, settle));
    });
    return { assetId, done };
  }

  /** Listens to a worker event; returns a function that stops listening. */
  on(event, fn) {
    if (!EVENTS.includes(event)) throw new Error(`outpost: unknown event ${event}; one of ${EVENTS.join(', ')}`);
    if (!this.listeners.has(event)) this.listeners.set(event, new Set());
    this.listeners.get(event).add(fn);
    return () => this.listeners.get(event).delete(fn);
  }
}
