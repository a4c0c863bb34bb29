// Vite build of the renderer: renderer/ -> build/renderer/ with relative asset URLs (so it loads from a file URL in
// Electron and from any path in `confidant serve`). JSX via esbuild's automatic runtime; no React plugin, no dev server.
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig, type Plugin } from 'vite';

const here = dirname(fileURLToPath(import.meta.url));
const outDir = join(here, '..', 'build', 'renderer');

/**
 * Cleans only what Vite writes (index.html, assets/). Not `emptyOutDir`: `tsc -p tsconfig.json` also emits
 * build/renderer/state.js (the reducer, imported by test/unit/renderer-state.test.ts), and `npm run build` runs tsc
 * before vite, so emptying the folder would delete it.
 */
function cleanOwnOutput(): Plugin {
  return {
    name: 'confidant-clean-own-output',
    apply: 'build',
    buildStart() {
      rmSync(join(outDir, 'assets'), { recursive: true, force: true });
      rmSync(join(outDir, 'index.html'), { force: true });
    },
  };
}

export default defineConfig({
  root: here,
  base: './',
  publicDir: false,
  plugins: [cleanOwnOutput()],
  esbuild: { jsx: 'automatic', jsxImportSource: 'react' },
  build: {
    outDir,
    emptyOutDir: false,
    target: 'chrome120',
    sourcemap: true,
    // Inline nothing as data: URLs; every asset is a file under 'self'.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
  },
});
