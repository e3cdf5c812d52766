// The console's build: a single-page app under /console/, every asset bundled (no CDN), file names
// hashed so the server can cache them forever. Run through `npm run build`.
import react from '@vitejs/plugin-react';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/console/',
  plugins: [react()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    assetsDir: 'assets',
    // Keeps the built index.html free of inline scripts (the Content-Security-Policy allows none).
    modulePreload: { polyfill: false },
    sourcemap: false,
    // The budget that matters is the gzipped total (test/console/bundle.test.ts: 300 KB); the main
    // chunk (React, the router, the query cache, react-aria) is about 150 KB of it.
    chunkSizeWarningLimit: 600,
  },
});
