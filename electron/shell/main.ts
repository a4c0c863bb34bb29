// Electron entry point (package.json "main" -> build/electron/shell/main.js): hands the real Electron objects and the
// real core service to startShell. No logic lives here beyond that wiring and the app lifecycle.
import { app, BrowserWindow, ipcMain, session } from 'electron';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createService } from '../core/service.js';
import { startShell, type Shell } from './app.js';
import { launchOptions, pathWithBundledAdb } from './launch-options.js';

const here = dirname(fileURLToPath(import.meta.url)); // build/electron/shell
const buildDir = join(here, '..', '..'); // build/

// Only one instance: a second would fight over the adb server and the virtual phones.
if (!app.requestSingleInstanceLock()) app.quit();

app.enableSandbox();

// The packaged app's own adb (platform-tools in its resources) is found before any other on PATH.
if (app.isPackaged) process.env.PATH = pathWithBundledAdb(process.resourcesPath, process.env.PATH, existsSync);

let shell: Shell | null = null;
let quitting = false;

app.on('web-contents-created', (_event, contents) => {
  // Belt and braces for any webContents we did not create ourselves.
  contents.setWindowOpenHandler(() => ({ action: 'deny' }));
  contents.on('will-navigate', (event) => event.preventDefault());
});

app
  .whenReady()
  .then(async () => {
    shell = await startShell({
      ipcMain,
      session: session.defaultSession,
      createWindow: (options) => new BrowserWindow(options),
      // Packaged, the bundled model, stories and per-ABI agents are extraResources (electron-builder.yml) and
      // the resources folder is read-only: runs and caches go to the user-data folder.
      // Extra adb servers: `confidant-app --adb host:port` or CONFIDANT_ADB_SERVERS="host:port,host:port".
      createService: () =>
        createService({
          ...(app.isPackaged
            ? { repoRoot: process.resourcesPath, stateDir: app.getPath('userData') }
            : { repoRoot: app.getAppPath() }),
          adbServers: launchOptions(process.argv.slice(1), process.env).adbServers,
        }),
      rendererIndexPath: join(buildDir, 'renderer', 'index.html'),
      preloadPath: join(here, 'preload.cjs'),
      log: (line) => console.log(`[shell] ${line}`),
    });
  })
  .catch((err: unknown) => {
    console.error('[shell] start-up failed:', err);
    app.exit(1);
  });

app.on('window-all-closed', () => app.quit());

app.on('before-quit', (event) => {
  if (quitting || !shell) return;
  // Stop training and release phones before the process goes away.
  event.preventDefault();
  quitting = true;
  shell
    .dispose()
    .catch((err: unknown) => console.error('[shell] dispose failed:', err))
    .finally(() => app.quit());
});

app.on('second-instance', () => {
  const win = BrowserWindow.getAllWindows()[0];
  if (win) {
    if (win.isMinimized()) win.restore();
    win.focus();
  }
});
