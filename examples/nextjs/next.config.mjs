/** @type {import('next').NextConfig} */
const nextConfig = {
  async headers() {
    return [
      // The browser checks the worker script for updates itself: it must
      // not come from an HTTP cache. (The wasm it names is content-hashed.)
      { source: '/sw.js', headers: [{ key: 'Cache-Control', value: 'no-cache' }] },
    ];
  },
};

export default nextConfig;
