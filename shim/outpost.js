// Outpost page client (ES module).
//
//   import { Outpost } from '/outpost.js';
//   const outpost = await Outpost.register({ config: { networkTimeoutMs: 2000 } });
//   console.log(await outpost.version());

/** The worker script's URL for a config: the config travels in the query, so
 * a changed config is a changed script and the browser installs it. */
function scriptUrl(script, config) {
  const url = new URL(script, location.href);
  if (config && Object.keys(config).length) url.searchParams.set('config', JSON.stringify(config));
  return url.href;
}

export class Outpost {
  /** @param {ServiceWorkerRegistration} registration */
  constructor(registration) {
    this.registration = registration;
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
    return new Outpost(registration);
  }

  /** The bundle hash of the worker controlling this page. */
  async version() {
    const worker = navigator.serviceWorker.controller;
    if (!worker) throw new Error('outpost: no worker controls this page yet');
    const channel = new MessageChannel();
    const reply = new Promise((resolve) => { channel.port1.onmessage = (e) => resolve(e.data); });
    worker.postMessage({ type: 'outpost:version' }, [channel.port2]);
    const data = await reply;
    if (data.error) throw new Error(data.error);
    return data.version;
  }
}
