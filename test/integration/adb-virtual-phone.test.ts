// Integration tier "adb": virtual phones attached to a private real adb server (port 15037), driven through
// adbkit (our adb/ layer) and the adb command line. Not a test of the agent's wire protocol (see protocol tests).
import assert from 'node:assert/strict';
import { randomBytes, createHash } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, connect as netConnect, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { deployAgent, stopAgent } from '../../electron/core/adb/agent-deploy.js';
import { connectAdb, createAdb, type Adb } from '../../electron/core/adb/client.js';
import { listDevices } from '../../electron/core/adb/devices.js';
import { pullFile } from '../../electron/core/adb/pull.js';
import { pushFile } from '../../electron/core/adb/push.js';
import { runShell, runShellChecked } from '../../electron/core/adb/shell.js';
import { openTcp } from '../../electron/core/adb/tunnel.js';
import {
  listVirtualPhones, startVirtualPhones, stopVirtualPhones, type VirtualPhoneRecord,
} from '../../electron/core/virtual-phone/manager.js';
import { findSandboxProcesses } from '../../electron/core/virtual-phone/reap.js';
import { startTestAdbServer, type TestAdbServer } from '../support/adb-server.js';
import { freePort } from '../support/free-port.js';

const server = startTestAdbServer();
const skip = typeof server === 'string' ? server : false;
const srv = server as TestAdbServer;
const REMOTE_DIR = '/data/local/tmp/confidant-test';

/** Alive and not a zombie (a container's pid 1 may never reap orphans). */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

async function waitDead(pid: number, ms = 5000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (!isAlive(pid)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return !isAlive(pid);
}

function echoServer(): Promise<{ server: Server; port: number }> {
  return new Promise((resolve) => {
    const server = createServer((s) => s.pipe(s));
    server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as { port: number }).port }));
  });
}

/** Sends `payload` through a duplex and collects the same number of bytes back. */
function roundTrip(stream: NodeJS.ReadWriteStream, payload: Buffer, expectBytes = payload.length, timeoutMs = 10_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    const timer = setTimeout(() => reject(new Error(`reply incomplete: ${got} of ${expectBytes} bytes`)), timeoutMs);
    stream.on('data', (c: Buffer) => {
      chunks.push(c);
      got += c.length;
      if (got >= expectBytes) {
        clearTimeout(timer);
        resolve(Buffer.concat(chunks));
      }
    });
    stream.write(payload);
  });
}

/** A detached sleeper started the way the agent is started; returns its pid (a workstation pid). */
async function startDetachedSleeper(adb: Adb, serial: string, sandboxDir: string): Promise<number> {
  await runShellChecked(adb, serial,
    'mkdir -p /data/local/tmp/s && cd /data/local/tmp/s && (setsid nohup sleep 600 > /data/local/tmp/s/sleep.log 2>&1 < /dev/null & echo $! > /data/local/tmp/s/sleep.pid)');
  const pid = Number(readFileSync(join(sandboxDir, 'data/local/tmp/s/sleep.pid'), 'utf8').trim());
  assert.ok(isAlive(pid), `sleeper ${pid} should run`);
  return pid;
}

describe('virtual phone through the real adb server', { skip }, () => {
  let root = '';
  let phone: VirtualPhoneRecord;
  let adb: Adb;

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'confidant-vphone-'));
    [phone] = (await startVirtualPhones({ count: 1, rootDir: root, ramMb: 3072, cores: 4, adb: srv.endpoint })) as [VirtualPhoneRecord];
    adb = await connectAdb(srv.endpoint);
  });

  after(async () => {
    if (root) {
      await stopVirtualPhones(root, { adb: srv.endpoint });
      rmSync(root, { recursive: true, force: true });
    }
  });

  test('listDevices shows the phone with model, ABI, RAM and battery', async () => {
    const devices = await listDevices(adb);
    const d = devices.find((x) => x.serial === phone.serial);
    assert.ok(d, `${phone.serial} missing from ${JSON.stringify(devices)}`);
    assert.equal(d.state, 'device');
    assert.equal(d.guidance, '');
    assert.equal(d.model, 'Virtual Phone 1');
    assert.equal(d.manufacturer, 'Confidant');
    assert.deepEqual(d.abis, ['x86_64']);
    assert.equal(d.androidVersion, '14');
    assert.equal(d.soc, 'Virtual x86_64 SoC');
    assert.equal(d.ramTotalBytes, 3072 * 1024 * 1024);
    assert.ok(d.ramAvailableBytes > 0 && d.ramAvailableBytes < d.ramTotalBytes, `available ${d.ramAvailableBytes}`);
    assert.equal(d.batteryPercent, 100);
    assert.equal(d.temperatureC, 30);
    assert.equal(d.virtual, true);
    const props = await runShellChecked(adb, phone.serial, 'getprop ro.product.cpu.abi; getprop ro.hardware; getprop ro.serialno');
    assert.deepEqual(props.trim().split('\n'), ['x86_64', 'ranchu', 'CONFVIRT0001']);
  });

  test('push 3 MB with progress lands in the sandbox, sha256 verified, and pulls back equal', async () => {
    const data = randomBytes(3 * 1024 * 1024);
    const local = join(root, 'blob.bin');
    writeFileSync(local, data);
    const progress: Array<[number, number]> = [];
    const r = await pushFile(adb, phone.serial, local, `${REMOTE_DIR}/blob.bin`, { onProgress: (s, t) => progress.push([s, t]) });
    assert.equal(r.bytes, data.length);
    assert.equal(r.verified, 'sha256');
    assert.equal(r.sha256, createHash('sha256').update(data).digest('hex'));
    assert.ok(progress.length > 1, 'several progress events');
    assert.deepEqual(progress.at(-1), [data.length, data.length]);
    for (let i = 1; i < progress.length; i++) assert.ok(progress[i]![0] >= progress[i - 1]![0], 'progress is monotonic');
    const onDisk = join(phone.sandboxDir, 'data/local/tmp/confidant-test/blob.bin');
    assert.ok(readFileSync(onDisk).equals(data), 'bytes in the sandbox');
    assert.equal(statSync(onDisk).mode & 0o777, 0o644);
    const back = await pullFile(adb, phone.serial, `${REMOTE_DIR}/blob.bin`);
    assert.ok(back.equals(data), 'pull (RECV) returns the same bytes');
  });

  test('shell reports exit codes and mixed stdout/stderr', async () => {
    assert.deepEqual(await runShell(adb, phone.serial, 'exit 3'), { output: '', exitCode: 3 });
    const mixed = await runShell(adb, phone.serial, 'echo out; echo err >&2; false');
    assert.equal(mixed.exitCode, 1);
    assert.match(mixed.output, /out\n/);
    assert.match(mixed.output, /err\n/);
    assert.deepEqual(await runShell(adb, phone.serial, 'printf abc'), { output: 'abc', exitCode: 0 });
    assert.deepEqual(await runShell(adb, phone.serial, 'echo a # trailing comment'), { output: 'a\n', exitCode: 0 });
    await assert.rejects(runShellChecked(adb, phone.serial, 'ls /data/nope'), /exited with status [12]/);
  });

  test('a shell call past its timeout rejects, and the phone kills the abandoned command', async () => {
    const t0 = Date.now();
    await assert.rejects(runShell(adb, phone.serial, 'sleep 30; echo never', { timeoutMs: 500 }), /timed out after 500 ms/);
    assert.ok(Date.now() - t0 < 3000);
    const deadline = Date.now() + 5000;
    while (findSandboxProcesses(phone.sandboxDir).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(findSandboxProcesses(phone.sandboxDir), [], 'closing the stream ends the command on the phone');
  });

  test('sync stat and list, and a missing file is a clear pull error', async () => {
    await pushFile(adb, phone.serial, Buffer.from('hello'), `${REMOTE_DIR}/small.txt`);
    const st = await adb.device(phone.serial).stat(`${REMOTE_DIR}/small.txt`);
    assert.equal(Number(st.size), 5);
    assert.ok(st.isFile());
    const names = (await adb.device(phone.serial).readdir(REMOTE_DIR)).map((e: { name: string }) => e.name).sort();
    assert.ok(names.includes('small.txt'), names.join(','));
    await assert.rejects(pullFile(adb, phone.serial, `${REMOTE_DIR}/missing.bin`), /pull of 127\.0\.0\.1:\d+:.*missing\.bin failed: no such file/);
  });

  test('an executable pushed with 0755 runs', async () => {
    const script = Buffer.from('#!/bin/sh\necho "hello from $1"\n');
    await pushFile(adb, phone.serial, script, `${REMOTE_DIR}/hello.sh`, { mode: 0o755 });
    assert.equal(statSync(join(phone.sandboxDir, 'data/local/tmp/confidant-test/hello.sh')).mode & 0o777, 0o755);
    assert.deepEqual(await runShell(adb, phone.serial, `${REMOTE_DIR}/hello.sh phone`), { output: 'hello from phone\n', exitCode: 0 });
  });

  test('openTcp tunnels to a loopback echo server, two connections at once', async () => {
    const { server: echo, port } = await echoServer();
    try {
      const a = await openTcp(adb, phone.serial, port);
      const b = await openTcp(adb, phone.serial, port);
      const pa = randomBytes(700_000);
      const pb = randomBytes(1000);
      const [ra, rb] = await Promise.all([roundTrip(a, pa), roundTrip(b, pb)]);
      assert.ok(ra.equals(pa) && rb.equals(pb));
      a.end();
      b.end();
      await assert.rejects(openTcp(adb, phone.serial, await freePort()), /nothing accepts connections on port \d+ on the phone/);
    } finally {
      echo.close();
    }
  });

  test('deployAgent starts a detached agent, the tunnel reaches it, stopAgent ends it', async () => {
    const fake = join(root, 'fake-agent.sh');
    writeFileSync(fake, `#!/bin/sh
while [ $# -gt 0 ]; do case "$1" in --port-file) PF=$2; shift ;; --token-file) TF=$2; shift ;; esac; shift; done
echo "fake agent starting"
exec '${process.execPath}' -e '
const fs = require("fs"); const [pf, tf] = process.argv.slice(1); const token = fs.readFileSync(tf, "utf8");
const srv = require("net").createServer((s) => s.once("data", (d) => s.end(d.toString().trim() === token ? "welcome\\n" : "bad token\\n")));
srv.listen(0, "127.0.0.1", () => { fs.writeFileSync(pf + ".tmp", String(srv.address().port)); fs.renameSync(pf + ".tmp", pf); });' "$PF" "$TF"
`);
    chmodSync(fake, 0o644); // the push sets the mode on the phone
    const agent = await deployAgent(adb, phone.serial, { agents: { 'arm64-v8a': '/nonexistent', x86_64: fake }, memoryBudgetMb: 1024 });
    assert.equal(agent.abi, 'x86_64');
    assert.ok(agent.port > 0);
    assert.ok(isAlive(agent.pid), 'agent runs after the deploying shell ended');
    const tunnel = await openTcp(adb, phone.serial, agent.port);
    const reply = await roundTrip(tunnel, Buffer.from(`${agent.token}\n`), 'welcome\n'.length);
    assert.equal(reply.toString(), 'welcome\n');
    const tokenFile = join(phone.sandboxDir, 'data/local/tmp/confidant/token');
    assert.equal(statSync(tokenFile).mode & 0o777, 0o600);
    await stopAgent(adb, phone.serial);
    assert.ok(await waitDead(agent.pid), 'stopAgent kills the agent');
  });

  test('deployAgent failures are clear: no fitting ABI, agent dies at start (log tail included)', async () => {
    await assert.rejects(deployAgent(adb, phone.serial, { agents: { 'arm64-v8a': '/x' }, memoryBudgetMb: 512 }),
      /no agent binary fits 127\.0\.0\.1:\d+: it runs x86_64, built agents: arm64-v8a/);
    const broken = join(root, 'broken-agent.sh');
    writeFileSync(broken, '#!/bin/sh\necho "agent: cannot map model shard" >&2\nexit 7\n');
    await assert.rejects(deployAgent(adb, phone.serial, { agents: { x86_64: broken }, memoryBudgetMb: 512 }),
      /exited before reporting its port[\s\S]*cannot map model shard/);
  });

  test('the adb command line works too: shell, push, pull, forward and forward --remove', async () => {
    const s = phone.serial;
    assert.equal(srv.adb(['shell', 'echo', 'hi'], s).stdout, 'hi\n');
    const local = join(root, 'cli.bin');
    const data = randomBytes(300_000);
    writeFileSync(local, data);
    const pushed = srv.adb(['push', local, `${REMOTE_DIR}/cli.bin`], s);
    assert.equal(pushed.status, 0, pushed.stderr);
    assert.ok(readFileSync(join(phone.sandboxDir, 'data/local/tmp/confidant-test/cli.bin')).equals(data));
    const pulledPath = join(root, 'cli-back.bin');
    const pulled = srv.adb(['pull', `${REMOTE_DIR}/cli.bin`, pulledPath], s);
    assert.equal(pulled.status, 0, pulled.stderr);
    assert.ok(readFileSync(pulledPath).equals(data));
    const { server: echo, port: target } = await echoServer();
    const local2 = await freePort();
    try {
      assert.equal(srv.adb(['forward', `tcp:${local2}`, `tcp:${target}`], s).status, 0);
      assert.match(srv.adb(['forward', '--list']).stdout, new RegExp(`${s} tcp:${local2} tcp:${target}`));
      const sock = netConnect(local2, '127.0.0.1');
      const payload = randomBytes(200_000);
      assert.ok((await roundTrip(sock, payload)).equals(payload));
      sock.destroy();
      assert.equal(srv.adb(['forward', '--remove', `tcp:${local2}`], s).status, 0);
      assert.doesNotMatch(srv.adb(['forward', '--list']).stdout, new RegExp(`tcp:${local2}`));
    } finally {
      srv.adb(['forward', '--remove', `tcp:${local2}`], s);
      echo.close();
    }
  });

  test('stopping the fleet kills detached processes and disconnects from adb', async () => {
    const sleeper = await startDetachedSleeper(adb, phone.serial, phone.sandboxDir);
    const stopped = await stopVirtualPhones(root, { adb: srv.endpoint });
    assert.deepEqual(stopped.map((r) => r.serial), [phone.serial]);
    assert.ok(await waitDead(sleeper), `detached sleeper ${sleeper} must be killed`);
    assert.ok(await waitDead(phone.pid), 'phone process ended');
    assert.deepEqual(findSandboxProcesses(phone.sandboxDir), []);
    assert.deepEqual(listVirtualPhones(root), []);
    const devices = await listDevices(adb);
    assert.equal(devices.find((d) => d.serial === phone.serial), undefined, 'adb forgot the phone');
  });
});

describe('failure paths', { skip }, () => {
  test('a phone killed mid-push: push rejects clearly within seconds, nothing left running', async (t) => {
    const root = mkdtempSync(join(tmpdir(), 'confidant-vphone-kill-'));
    try {
      const [phone] = (await startVirtualPhones({ count: 1, rootDir: root, ramMb: 1024, adb: srv.endpoint })) as [VirtualPhoneRecord];
      const adb = await connectAdb(srv.endpoint);
      const sleeper = await startDetachedSleeper(adb, phone.serial, phone.sandboxDir);
      // A slow source (64 KiB every 10 ms, 64 MiB in all) keeps the push going long enough to pull the plug.
      const chunk = randomBytes(64 * 1024);
      let produced = 0;
      const total = 64 * 1024 * 1024;
      const slow = new Readable({
        read() {
          setTimeout(() => {
            if (produced >= total) return this.push(null);
            produced += chunk.length;
            this.push(chunk);
          }, 10);
        },
      });
      let killedAt = 0;
      const push = pushFile(adb, phone.serial, { stream: slow, bytes: total, label: 'slow stream' }, `${REMOTE_DIR}/big.bin`, {
        stallMs: 5000,
        onProgress: (sent) => {
          if (!killedAt && sent > 1024 * 1024) {
            killedAt = Date.now();
            process.kill(phone.pid, 'SIGKILL');
          }
        },
      });
      await assert.rejects(push, (err: Error) => {
        t.diagnostic(`push error: ${err.message} (${Date.now() - killedAt} ms after the kill)`);
        assert.match(err.message, /push of slow stream to 127\.0\.0\.1:\d+:\/data\/local\/tmp\/confidant-test\/big\.bin (failed|stalled)/);
        return true;
      });
      assert.ok(killedAt > 0, 'the phone was killed during the push');
      const ms = Date.now() - killedAt;
      assert.ok(ms < 8000, `push noticed the dead phone after ${ms} ms`);
      await stopVirtualPhones(root, { adb: srv.endpoint });
      assert.ok(await waitDead(sleeper), `detached sleeper ${sleeper} must be killed after the phone crashed`);
      assert.deepEqual(findSandboxProcesses(phone.sandboxDir), []);
      assert.ok(!isAlive(phone.pid));
    } finally {
      await stopVirtualPhones(root, { adb: srv.endpoint }).catch(() => undefined);
      rmSync(root, { recursive: true, force: true });
    }
  });

  test('no adb server at the endpoint: a clear error, no hang, and no server started', async (t) => {
    const port = await freePort();
    const adb = createAdb({ port });
    const t0 = Date.now();
    await assert.rejects(listDevices(adb), (err: Error & { code?: string }) => {
      t.diagnostic(err.message);
      assert.equal(err.code, 'server-down');
      assert.match(err.message, new RegExp(`adb server is not running at 127\\.0\\.0\\.1:${port}: start it with \`adb -P ${port} start-server\``));
      return true;
    });
    await assert.rejects(connectAdb({ port }), /adb server is not running/);
    assert.ok(Date.now() - t0 < 5000, 'fails fast');
    await assert.rejects(probePort(port), /ECONNREFUSED/, 'adbkit did not start a server behind our back');
  });

  after(() => srv.stop());
});

function probePort(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = netConnect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(); });
    s.once('error', reject);
  });
}
