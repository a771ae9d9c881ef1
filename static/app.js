import { Outpost } from '/outpost.js';

const $ = (id) => document.getElementById(id);

function showNetwork() {
  $('network').textContent = navigator.onLine ? 'online' : 'offline';
  $('network').className = navigator.onLine ? 'ok' : 'warn';
}
addEventListener('online', showNetwork);
addEventListener('offline', showNetwork);
showNetwork();

async function main() {
  const outpost = await Outpost.register();
  window.outpost = outpost;
  $('worker').textContent = 'controlling this page';
  $('worker').className = 'ok';
  $('bundle').textContent = await outpost.version();
  const res = await fetch('/api/__outpost/version');
  const body = await res.json();
  $('wasm').textContent = `GET /api/__outpost/version → ${res.status}, bundle ${body.version}`;
}

main().catch((err) => {
  $('worker').textContent = 'not running';
  $('worker').className = 'bad';
  $('error').hidden = false;
  $('error').textContent = `${err.message}. Reload the page; if this persists, check the browser console.`;
});
