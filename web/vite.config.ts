import { defineConfig, type ProxyOptions } from 'vite';

// The Rust server embeds dist/ and serves index.html for `/` and `/s/<id>`,
// assets under `/assets/`. The build must be byte-for-byte reproducible: no
// timestamps, no environment-dependent values in the bundle.
//
// `npm run dev` proxies the API, the WebSocket and the path-based preview to
// a running server (STUDIO_DEV_TARGET, default http://127.0.0.1:3399).
const target = process.env.STUDIO_DEV_TARGET ?? 'http://127.0.0.1:3399';

function proxy(ws = false): ProxyOptions {
  return {
    target,
    ws,
    changeOrigin: true,
    configure(p) {
      // Older servers refused same-origin /api fetches that carry this header.
      p.on('proxyReq', (req) => req.removeHeader('sec-fetch-site'));
    },
  };
}

export default defineConfig(({ command }) => ({
  base: '/',
  define: {
    // Only for the dev server: the port on which host-based previews
    // (PORT-SESSION.localhost:N) answer when the server does not send
    // hostPreviewUrl. The built bundle always uses the page's own port.
    __DEV_PREVIEW_PORT__: JSON.stringify(command === 'serve' ? new URL(target).port : ''),
  },
  build: {
    outDir: 'dist',
    assetsDir: 'assets',
    emptyOutDir: true,
    sourcemap: false,
    target: 'es2022',
    cssCodeSplit: false,
    modulePreload: { polyfill: false },
    reportCompressedSize: true,
    chunkSizeWarningLimit: 600,
  },
  server: {
    host: '127.0.0.1',
    port: 5173,
    strictPort: true,
    proxy: {
      '/api': proxy(),
      '/ws': proxy(true),
      '/preview': proxy(),
    },
  },
}));
