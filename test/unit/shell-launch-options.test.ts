// The desktop app's launch options (electron/shell/launch-options.ts): extra adb servers from argv and environment.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { launchOptions, pathWithBundledAdb } from '../../electron/shell/launch-options.js';

test('adb servers come from --adb (both spellings) and CONFIDANT_ADB_SERVERS, once each, in order', () => {
  const o = launchOptions(['.', '--adb', '192.168.1.20:5037', '--adb=farm.local:7000', '--adb', '15037'], {
    CONFIDANT_ADB_SERVERS: 'lab-pc:5037, 192.168.1.20:5037',
  });
  assert.deepEqual(o.adbServers, ['lab-pc:5037', '192.168.1.20:5037', 'farm.local:7000', '15037']);
  assert.deepEqual(launchOptions(['.'], {}).adbServers, []);
  // Electron's and Chromium's own switches are not ours.
  assert.deepEqual(launchOptions(['.', '--no-sandbox', '--inspect=9229'], {}).adbServers, []);
});

test('malformed entries are refused, naming where they came from', () => {
  assert.throws(() => launchOptions(['--adb'], {}), /--adb needs a host:port/);
  assert.throws(() => launchOptions(['--adb', '--other'], {}), /--adb needs a host:port/);
  assert.throws(() => launchOptions(['--adb=host:99999'], {}), /^Error: --adb: "host:99999" is not an adb server/);
  assert.throws(() => launchOptions([], { CONFIDANT_ADB_SERVERS: 'a b:c' }), /^Error: CONFIDANT_ADB_SERVERS: "b:c" is not an adb server/);
});

test('a packaged adb goes first on PATH; without one PATH is unchanged', () => {
  const has = (p: string) => p === '/opt/Confidant/resources/platform-tools/adb';
  assert.equal(pathWithBundledAdb('/opt/Confidant/resources', '/usr/bin:/bin', has, 'linux'), '/opt/Confidant/resources/platform-tools:/usr/bin:/bin');
  assert.equal(pathWithBundledAdb('/opt/Confidant/resources', undefined, has, 'linux'), '/opt/Confidant/resources/platform-tools');
  assert.equal(pathWithBundledAdb('/elsewhere', '/usr/bin', has, 'linux'), '/usr/bin');
  // Windows looks for adb.exe.
  assert.equal(pathWithBundledAdb('/opt/Confidant/resources', '/usr/bin', has, 'win32'), '/usr/bin');
});
