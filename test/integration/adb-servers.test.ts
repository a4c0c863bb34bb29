// Integration tier "adb": two real adb servers on loopback (TEST_ADB_PORT+1 and +2, both private), each with its
// own virtual phones: listing and live tracking across servers, ids that name the server, one phone attached to
// both, a server that is down, and the `confidant devices --adb` / `virtual start|list|stop --adb` command line.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { DeviceInfo } from '../../electron/core/api/types.js';
import { createAdb } from '../../electron/core/adb/client.js';
import { listDevicesOnServers } from '../../electron/core/adb/devices.js';
import { resolveDevices } from '../../electron/core/adb/servers.js';
import { runShellChecked } from '../../electron/core/adb/shell.js';
import { DeviceWatchers } from '../../electron/core/adb/watch.js';
import { startVirtualPhones, stopVirtualPhones, type VirtualPhoneRecord } from '../../electron/core/virtual-phone/manager.js';
import { startTestAdbServer, TEST_ADB_PORT, type TestAdbServer } from '../support/adb-server.js';
import { freePort } from '../support/free-port.js';

const PORT_A = TEST_ADB_PORT + 1;
const PORT_B = TEST_ADB_PORT + 2;
const serverA = startTestAdbServer(PORT_A);
const serverB = typeof serverA === 'string' ? serverA : startTestAdbServer(PORT_B);
const skip = typeof serverB === 'string' ? serverB : false;
const A = serverA as TestAdbServer;
const B = serverB as TestAdbServer;
const KEY_A = `127.0.0.1:${PORT_A}`;
const KEY_B = `127.0.0.1:${PORT_B}`;
const repoRoot = process.cwd();
const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('two adb servers, each with its own virtual phones', { skip }, () => {
  let root = '';
  let cliRoot = '';
  let onA: VirtualPhoneRecord[];
  let onB: VirtualPhoneRecord[];
  const cli = (args: string[]) =>
    spawnSync(process.execPath, [join(repoRoot, 'bin/confidant.js'), ...args], {
      encoding: 'utf8', timeout: 60_000, env: { ...process.env, CONFIDANT_VIRTUAL_DIR: cliRoot },
    });

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'confidant-servers-'));
    cliRoot = mkdtempSync(join(tmpdir(), 'confidant-servers-cli-'));
    onA = await startVirtualPhones({ count: 1, rootDir: join(root, 'a'), ramMb: 1024, cores: 4, adb: A.endpoint });
    onB = await startVirtualPhones({ count: 2, rootDir: join(root, 'b'), ramMb: 2048, cores: 8, adb: B.endpoint });
  });

  after(async () => {
    await stopVirtualPhones(join(root, 'a')).catch(() => undefined);
    await stopVirtualPhones(join(root, 'b')).catch(() => undefined);
    await stopVirtualPhones(cliRoot).catch(() => undefined);
    rmSync(root, { recursive: true, force: true });
    rmSync(cliRoot, { recursive: true, force: true });
    A.stop();
    B.stop();
  });

  test('each server lists only its own phones, and their ids name the server', async () => {
    const { devices, servers } = await listDevicesOnServers([createAdb(A.endpoint), createAdb(B.endpoint)]);
    assert.deepEqual(servers.map((s) => [s.server, s.state]), [[KEY_A, 'ready'], [KEY_B, 'ready']]);
    const ids = (server: string) => devices.filter((d) => d.server === server).map((d) => d.id).sort();
    assert.deepEqual(ids(KEY_A), onA.map((p) => `${KEY_A}/${p.serial}`).sort());
    assert.deepEqual(ids(KEY_B), onB.map((p) => `${KEY_B}/${p.serial}`).sort());
    for (const d of devices) assert.equal(d.cpuCores, d.server === KEY_A ? 4 : 8, d.id);
    // The adb command line agrees: A does not know B's phones.
    const listA = A.adb(['devices']).stdout;
    assert.match(listA, new RegExp(`${escape(onA[0]!.serial)}\\tdevice`));
    for (const p of onB) assert.doesNotMatch(listA, new RegExp(escape(p.serial)));
  });

  test('shell and push through each server reach that server\'s phone; the other server does not know it', async () => {
    const b = onB[1]!;
    await runShellChecked(createAdb(B.endpoint), b.serial, 'echo via-b > /data/local/tmp/which.txt');
    assert.equal(readFileSync(join(b.sandboxDir, 'data/local/tmp/which.txt'), 'utf8'), 'via-b\n');
    const pushed = B.adb(['push', join(repoRoot, 'package.json'), '/data/local/tmp/pkg.json'], b.serial);
    assert.equal(pushed.status, 0, pushed.stderr);
    assert.ok(readFileSync(join(b.sandboxDir, 'data/local/tmp/pkg.json')).equals(readFileSync(join(repoRoot, 'package.json'))));
    const wrong = A.adb(['shell', 'echo', 'hi'], b.serial);
    assert.notEqual(wrong.status, 0);
    assert.match(wrong.stderr, /not found/);
  });

  test('one phone attached to both servers is two devices with two ids; selection by id or by plain serial', async () => {
    const shared = onA[0]!;
    const adbB = createAdb(B.endpoint);
    await adbB.call('adb connect', () => adbB.client.connect('127.0.0.1', shared.port));
    try {
      const watchers = new DeviceWatchers([createAdb(A.endpoint), createAdb(B.endpoint)]).start();
      try {
        await watchers.firstContact(10_000);
        await watchers.settled();
        let all: DeviceInfo[] = [];
        for (let i = 0; i < 100; i++) {
          all = watchers.devices();
          if (all.filter((d) => d.serial === shared.serial && d.abis.length > 0).length === 2 && all.length === 4) break;
          await new Promise((r) => setTimeout(r, 100));
        }
        assert.deepEqual(all.filter((d) => d.serial === shared.serial).map((d) => d.id).sort(), [`${KEY_A}/${shared.serial}`, `${KEY_B}/${shared.serial}`]);
        assert.equal(all.length, 4, all.map((d) => d.id).join(', '));
        assert.deepEqual(watchers.statuses().map((s) => s.state), ['ready', 'ready']);
        // A plain serial means the default server's phone; an id picks exactly one.
        assert.equal(resolveDevices(all, [shared.serial], KEY_A)[0]!.id, `${KEY_A}/${shared.serial}`);
        assert.equal(resolveDevices(all, [`${KEY_B}/${shared.serial}`], KEY_A)[0]!.server, KEY_B);
        assert.throws(() => resolveDevices(all, [shared.serial], '127.0.0.1:1'), /attached to several adb servers/);
        assert.equal(resolveDevices(all, [onB[0]!.serial], KEY_A)[0]!.server, KEY_B, 'a serial only one server has');
      } finally {
        await watchers.stop();
      }
    } finally {
      await adbB.call('adb disconnect', () => adbB.client.disconnect('127.0.0.1', shared.port));
    }
  });

  test('a server that is down is reported, the other one still lists its phones', async () => {
    const deadPort = await freePort();
    const { devices, servers } = await listDevicesOnServers([createAdb({ port: deadPort }), createAdb(B.endpoint)], 5000);
    assert.equal(servers[0]!.state, 'unavailable');
    assert.match(servers[0]!.message, new RegExp(`adb server is not running at 127\\.0\\.0\\.1:${deadPort}: start it with \`adb -P ${deadPort} start-server\``));
    assert.equal(servers[1]!.state, 'ready');
    assert.equal(devices.length, 2);
  });

  test('the command line: devices --adb, virtual start --adb, list, stop', () => {
    const listed = cli(['devices', '--json', '--adb-port', String(PORT_A), '--adb', KEY_B]);
    assert.equal(listed.status, 0, listed.stderr);
    const ids = (JSON.parse(listed.stdout) as DeviceInfo[]).map((d) => d.id).sort();
    assert.deepEqual(ids, [...onA.map((p) => `${KEY_A}/${p.serial}`), ...onB.map((p) => `${KEY_B}/${p.serial}`)].sort());
    const text = cli(['devices', '--adb-port', String(PORT_A), '--adb', KEY_B]).stdout;
    assert.match(text, new RegExp(`^${escape(`${KEY_B}/${onB[0]!.serial}`)}  Confidant Virtual Phone 1 \\(virtual\\)  Android 14  .* 8 cores \\(4x1\\.80 \\+ 3x2\\.42 \\+ 1x3\\.19 GHz\\)`, 'm'));

    const started = cli(['virtual', 'start', '--count', '1', '--ram', '1GiB', '--cores', '2', '--adb', KEY_B]);
    assert.equal(started.status, 0, started.stderr);
    const serial = /^(127\.0\.0\.1:\d+) /m.exec(started.stdout)?.[1];
    assert.ok(serial, started.stdout);
    assert.match(started.stdout, new RegExp(`2 cores  on host cores? [0-9,]+  adb ${escape(KEY_B)}`));
    assert.match(B.adb(['devices']).stdout, new RegExp(`${escape(serial)}\\tdevice`));
    assert.doesNotMatch(A.adb(['devices']).stdout, new RegExp(escape(serial)), 'attached to B only');
    assert.equal(B.adb(['shell', 'cat', '/sys/devices/system/cpu/possible'], serial).stdout, '0-1\n');

    const list = cli(['virtual', 'list']);
    assert.match(list.stdout, new RegExp(`${escape(serial)}  Virtual Phone 1  running  adb ${escape(KEY_B)}: device`));
    // Stopping the phones of server A stops nothing here; stopping those of B stops it.
    assert.match(cli(['virtual', 'stop', '--adb', KEY_A]).stdout, /no virtual phones were running/);
    const stopped = cli(['virtual', 'stop', '--adb', KEY_B]);
    assert.match(stopped.stdout, new RegExp(`stopped ${escape(serial)}`));
    assert.doesNotMatch(B.adb(['devices']).stdout, new RegExp(escape(serial)));
    assert.ok(existsSync(join(cliRoot, 'virtual-phones.json')));
    assert.deepEqual(JSON.parse(readFileSync(join(cliRoot, 'virtual-phones.json'), 'utf8')), []);

    const bad = cli(['devices', '--adb', 'nonsense:port']);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /--adb: "nonsense:port" is not an adb server: write host:port/);
    const remote = cli(['virtual', 'start', '--adb', '10.1.2.3:5037']);
    assert.equal(remote.status, 1);
    assert.match(remote.stderr, /virtual phones listen on 127\.0\.0\.1 only/);
  });
});
