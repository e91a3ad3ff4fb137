import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vite'

/**
 * The dashboard's build: static files under `dist/dashboard/` of @tollgate/server, served at
 * `/dashboard/` (so every URL in the page is absolute under that base). No CDN, no external
 * font: everything the page loads comes from the server that served it (its CSP allows only
 * 'self').
 */
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/dashboard/',
  publicDir: false,
  logLevel: 'warn',
  build: {
    outDir: fileURLToPath(new URL('../dist/dashboard', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    // Inlined assets would need `data:` in the CSP.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: false,
    reportCompressedSize: false,
  },
})
