// Integration tier "adb": device discovery against a private real adb server (its own port, TEST_ADB_PORT+3, since
// these tests kill it): properties read from virtual phones, the live tracker surviving kill-server/start-server,
// and an unauthorised phone (listed with guidance, never selected, usable once allowed). No stubs.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { AdbServerStatus, DeviceInfo } from '../../electron/core/api/types.js';
import { connectAdb, createAdb, type Adb } from '../../electron/core/adb/client.js';
import { listDevices } from '../../electron/core/adb/devices.js';
import { DeviceWatcher } from '../../electron/core/adb/watch.js';
import { readyDevices } from '../../electron/core/train/training-devices.js';
import {
  authorizeVirtualPhones, startVirtualPhones, stopVirtualPhones, type VirtualPhoneRecord,
} from '../../electron/core/virtual-phone/manager.js';
import { initialState, reducer } from '../../renderer/state.js';
import { startTestAdbServer, TEST_ADB_PORT, type TestAdbServer } from '../support/adb-server.js';

const PORT = TEST_ADB_PORT + 3;
const server = startTestAdbServer(PORT);
const skip = typeof server === 'string' ? server : false;
const srv = server as TestAdbServer;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const described = (list: DeviceInfo[], serial: string) => list.some((d) => d.serial === serial && d.state === 'device' && d.abis.length > 0);
const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('device discovery through a real adb server', { skip }, () => {
  let root = '';
  let six: VirtualPhoneRecord;
  let two: VirtualPhoneRecord;
  let adb: Adb;

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'confidant-discovery-'));
    // Two phones that present different hardware: the answers come from each phone's own flags.
    [six] = (await startVirtualPhones({
      count: 1, rootDir: root, ramMb: 2048, cores: 6, adb: srv.endpoint,
      profile: { batteryPercent: 57, batteryCharging: false, batteryTemperatureC: 33.5, socModel: 'Virtual Kalama' },
    })) as [VirtualPhoneRecord];
    [two] = (await startVirtualPhones({
      count: 1, rootDir: root, ramMb: 1024, cores: 2, adb: srv.endpoint, profile: { cpuMaxFreqsKHz: [1_500_000, 2_000_000], batteryPercent: 80 },
    })) as [VirtualPhoneRecord];
    adb = await connectAdb(srv.endpoint);
  });

  after(async () => {
    if (root) {
      await stopVirtualPhones(root).catch(() => undefined);
      rmSync(root, { recursive: true, force: true });
    }
    srv.stop();
  });

  test('properties of each virtual phone: CPU clusters, RAM, battery, thermal zones, id with the server', async () => {
    const list = await listDevices(adb);
    const a = list.find((d) => d.serial === six.serial)!;
    assert.ok(a, `${six.serial} missing from ${JSON.stringify(list.map((d) => d.serial))}`);
    assert.equal(a.id, `127.0.0.1:${PORT}/${six.serial}`);
    assert.equal(a.server, `127.0.0.1:${PORT}`);
    assert.equal(a.soc, 'Virtual Kalama');
    assert.equal(a.cpuCores, 6);
    assert.deepEqual(a.cpuMaxFreqsKHz, [1_804_800, 1_804_800, 1_804_800, 2_419_200, 2_419_200, 3_187_200]);
    assert.equal(a.ramTotalBytes, 2048 * 2 ** 20);
    assert.equal(a.batteryPercent, 57);
    assert.equal(a.batteryCharging, false);
    assert.equal(a.temperatureC, 33.5);
    assert.deepEqual(a.thermalZones.map((z) => z.type),
      ['battery', 'skin-therm', 'cpu-0-0-usr', 'cpu-0-1-usr', 'cpu-0-2-usr', 'cpu-1-3-usr', 'cpu-1-4-usr', 'cpu-2-5-usr', 'gpuss-0-usr']);
    assert.equal(a.thermalZones.find((z) => z.type === 'battery')!.tempC, 33.5);
    assert.ok(a.thermalZones.every((z) => z.tempC >= 33.5 && z.tempC < 60), JSON.stringify(a.thermalZones));

    const b = list.find((d) => d.serial === two.serial)!;
    assert.equal(b.cpuCores, 2);
    assert.deepEqual(b.cpuMaxFreqsKHz, [1_500_000, 2_000_000]);
    assert.equal(b.ramTotalBytes, 1024 * 2 ** 20);
    assert.equal(b.batteryCharging, true);
    assert.equal(b.soc, 'Virtual x86_64 SoC');

    // The adb command line reads the same files (the phone's sysfs lives in its sandbox, not the workstation's).
    const freq = srv.adb(['shell', 'cat', '/sys/devices/system/cpu/cpu5/cpufreq/cpuinfo_max_freq'], six.serial);
    assert.equal(freq.stdout, '3187200\n', freq.stderr);
    assert.equal(srv.adb(['shell', 'cat /sys/devices/system/cpu/possible'], two.serial).stdout, '0-1\n');
    assert.match(srv.adb(['shell', 'dumpsys', 'battery'], six.serial).stdout, /^ {2}level: 57$/m);
  });

  test('the tracker survives kill-server/start-server: "unavailable, retrying" with growing delays, then the phones are back', async () => {
    const w = new DeviceWatcher(createAdb(srv.endpoint), { initialRetryMs: 100, maxRetryMs: 800 }).start();
    try {
      await w.waitFor((l) => described(l, six.serial) && described(l, two.serial), 20_000, 'both phones described');
      const statuses: AdbServerStatus[] = [];
      w.on('status', (s: AdbServerStatus) => statuses.push(s));

      assert.equal(srv.adb(['kill-server']).status, 0);
      await w.waitFor((l, s) => s.state === 'unavailable' && l.length === 0, 10_000, 'the server to be reported unavailable');
      await sleep(2000); // several failed attempts
      const down = statuses.filter((s) => s.state === 'unavailable');
      assert.ok(down.length >= 3, `retried: ${JSON.stringify(down)}`);
      assert.match(down[0]!.message, new RegExp(`^adb server 127\\.0\\.0\\.1:${PORT} unavailable, retrying in 0\\.10 s: `));
      assert.match(down.at(-1)!.message, new RegExp(`adb -P ${PORT} start-server`), 'says how to start it');
      const delays = down.map((s) => s.retryInMs!);
      for (let i = 1; i < delays.length; i++) assert.ok(delays[i]! >= delays[i - 1]!, `back-off grows: ${delays.join(', ')}`);
      assert.equal(Math.max(...delays), 800, 'and stops growing at maxRetryMs');

      assert.equal(srv.adb(['start-server']).status, 0);
      const back = await w.waitFor((l, s) => s.state === 'ready' && described(l, six.serial) && described(l, two.serial), 20_000, 'the phones after the restart');
      assert.equal(back.find((d) => d.serial === six.serial)!.cpuCores, 6);
      // The restarted server itself has them again (the watcher re-ran `adb connect`), not just our cache.
      const cli = srv.adb(['devices']).stdout;
      assert.match(cli, new RegExp(`${escape(six.serial)}\\tdevice`));
      assert.match(cli, new RegExp(`${escape(two.serial)}\\tdevice`));
      adb = await connectAdb(srv.endpoint);
    } finally {
      await w.stop();
    }
  });

  test('an unauthorised phone: adb says "unauthorized", listed with guidance, never selected; usable once allowed', async () => {
    const [u] = (await startVirtualPhones({ count: 1, rootDir: root, ramMb: 1024, cores: 2, adb: srv.endpoint, unauthorized: true })) as [VirtualPhoneRecord];
    assert.equal(u.unauthorized, true);
    const w = new DeviceWatcher(createAdb(srv.endpoint)).start();
    try {
      // The real adb command line: listed as unauthorized, and it refuses to open a shell.
      assert.match(srv.adb(['devices']).stdout, new RegExp(`${escape(u.serial)}\\tunauthorized`));
      const sh = srv.adb(['shell', 'echo', 'hi'], u.serial);
      assert.notEqual(sh.status, 0);
      assert.match(sh.stderr, /unauthorized/);

      const list = await listDevices(adb);
      const d = list.find((x) => x.serial === u.serial)!;
      assert.equal(d.state, 'unauthorized');
      assert.deepEqual(d.abis, []);
      assert.match(d.guidance, /Allow debugging/);
      assert.match(d.guidance, new RegExp(`adb -P ${PORT} disconnect ${escape(u.serial)}`));
      assert.match(d.guidance, new RegExp(`confidant virtual authorize --serial ${escape(u.serial)}`));

      // Never selected for training: not among the ready phones, refused when named, not auto-selected in the UI.
      assert.ok(!readyDevices(list).some((x) => x.serial === u.serial));
      assert.ok(readyDevices(list).some((x) => x.serial === six.serial));
      assert.throws(() => readyDevices(list, [u.serial]), new RegExp(`device ${escape(u.serial)} is unauthorized: .*Allow debugging`));
      let ui = reducer(initialState(), { type: 'devices-loaded', devices: list });
      assert.ok(ui.devices.selected.includes(`127.0.0.1:${PORT}/${six.serial}`));
      assert.ok(!ui.devices.selected.includes(d.id));
      ui = reducer(ui, { type: 'device-toggled', id: d.id });
      assert.ok(!ui.devices.selected.includes(d.id), 'the checkbox of an unauthorised phone does nothing');

      // The user taps "Allow": the tracker sees it turn into a ready phone with its properties.
      await w.waitFor((l) => l.some((x) => x.serial === u.serial && x.state === 'unauthorized'), 10_000, 'the unauthorised phone');
      assert.deepEqual(await authorizeVirtualPhones(root, { serials: [u.serial] }), [u.serial]);
      const now = await w.waitFor((l) => described(l, u.serial), 15_000, 'the phone after "Allow"');
      assert.equal(now.find((x) => x.serial === u.serial)!.cpuCores, 2);
      assert.equal(srv.adb(['shell', 'echo', 'hi'], u.serial).stdout, 'hi\n');
    } finally {
      await w.stop();
      await stopVirtualPhones(root, { serials: [u.serial] });
    }
  });
});
