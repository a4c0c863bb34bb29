// Hardening for the one app window: secure webPreferences, CSP header, no navigation, no new windows, no
// permission grants. Plain functions over injected Electron-like objects (tested without Electron); it does not
// create the window or load anything (app.ts does).
import type { BrowserWindowConstructorOptions } from 'electron';
import { RENDERER_CSP_HEADER } from '../core/api/contract.js';

export function windowOptions(preloadPath: string): BrowserWindowConstructorOptions {
  return {
    width: 1280,
    height: 800,
    minWidth: 960,
    minHeight: 640,
    title: 'Confidant',
    show: false,
    backgroundColor: '#f6f7f9',
    webPreferences: {
      preload: preloadPath,
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      nodeIntegrationInWorker: false,
      nodeIntegrationInSubFrames: false,
      webSecurity: true,
      allowRunningInsecureContent: false,
      webviewTag: false,
      spellcheck: false,
    },
  };
}

/** The part of Electron's WebContents that navigation hardening uses. */
export interface NavigableLike {
  on(event: 'will-navigate' | 'will-redirect' | 'will-attach-webview', listener: (event: { preventDefault(): void }, ...rest: any[]) => void): unknown;
  setWindowOpenHandler(handler: (details: { url: string }) => { action: 'deny' }): void;
}

/** The window only ever shows the renderer it was given: every navigation, redirect, popup and webview is refused. */
export function lockNavigation(contents: NavigableLike, log: (line: string) => void = () => {}): void {
  const refuse = (kind: string) => (event: { preventDefault(): void }, url?: unknown) => {
    event.preventDefault();
    log(`refused ${kind}${typeof url === 'string' ? ` to ${url}` : ''}`);
  };
  contents.on('will-navigate', refuse('navigation'));
  contents.on('will-redirect', refuse('redirect'));
  contents.on('will-attach-webview', refuse('webview'));
  contents.setWindowOpenHandler(({ url }) => {
    log(`refused window.open(${url})`);
    return { action: 'deny' };
  });
}

type Headers = Record<string, string[] | string>;

/** The part of Electron's Session that CSP and permission hardening uses. */
export interface SessionLike {
  webRequest: {
    onHeadersReceived(
      listener: (
        details: { responseHeaders?: Headers },
        callback: (response: { responseHeaders: Headers }) => void,
      ) => void,
    ): void;
  };
  setPermissionRequestHandler(handler: ((contents: unknown, permission: string, callback: (granted: boolean) => void) => void) | null): void;
  setPermissionCheckHandler(handler: ((...args: any[]) => boolean) | null): void;
}

/** Adds our CSP to every response (replacing any other) and refuses every permission (camera, geolocation, ...). */
export function hardenSession(session: SessionLike): void {
  session.webRequest.onHeadersReceived((details, callback) => {
    const headers: Headers = {};
    for (const [name, value] of Object.entries(details.responseHeaders ?? {})) {
      if (name.toLowerCase() !== 'content-security-policy') headers[name] = value;
    }
    headers['Content-Security-Policy'] = [RENDERER_CSP_HEADER];
    callback({ responseHeaders: headers });
  });
  session.setPermissionRequestHandler((_contents, _permission, callback) => callback(false));
  session.setPermissionCheckHandler(() => false);
}
