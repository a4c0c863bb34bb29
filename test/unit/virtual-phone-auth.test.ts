// Unit tier: a virtual phone started unauthorised, driven by a scripted adb host over loopback: the AUTH exchange
// of adb's protocol.md (token, refused signature, public key waiting at the prompt, CNXN once allowed), and the
// per-phone hardware files its shell serves (cpufreq, thermal zones). Needs no adb server (see adb-discovery).
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  A_AUTH, A_CLSE, A_CNXN, A_OKAY, A_OPEN, A_WRTE, MessageReader, encodeMessage, type AdbMessage,
} from '../../electron/core/virtual-phone/adb-message.js';
import { VirtualPhone } from '../../electron/core/virtual-phone/phone.js';
import { defaultCpuMaxFreqsKHz, rewriteCommand } from '../../electron/core/virtual-phone/sandbox.js';

class ScriptedHost {
  private reader = new MessageReader();
  private inbox: AdbMessage[] = [];
  constructor(readonly socket: Socket) {
    socket.on('data', (d: Buffer) => this.inbox.push(...this.reader.push(d)));
  }
  send(cmd: number, a0: number, a1: number, payload?: Buffer) {
    this.socket.write(encodeMessage(cmd, a0, a1, payload));
  }
  async next(timeoutMs = 3000): Promise<AdbMessage> {
    const deadline = Date.now() + timeoutMs;
    while (this.inbox.length === 0) {
      if (Date.now() > deadline) throw new Error('no message from the phone');
      await new Promise((r) => setTimeout(r, 10));
    }
    return this.inbox.shift()!;
  }
  async quiet(ms: number): Promise<boolean> {
    await new Promise((r) => setTimeout(r, ms));
    return this.inbox.length === 0;
  }
}

async function withPhone(options: { unauthorized?: boolean; cores?: number }, body: (phone: VirtualPhone, host: ScriptedHost, sandbox: string) => Promise<void>) {
  const dir = mkdtempSync(join(tmpdir(), 'confidant-vp-auth-'));
  const phone = new VirtualPhone({
    port: 0, sandboxDir: join(dir, 'sb'), ramBytes: 1 << 30, cores: options.cores ?? 4, modelName: 'Virtual Phone 3',
    serialNumber: 'S3', unauthorized: options.unauthorized, batteryTemperatureC: 31,
  });
  const port = await phone.start();
  const socket = connect(port, '127.0.0.1');
  await new Promise((r) => socket.once('connect', r));
  try {
    await body(phone, new ScriptedHost(socket), join(dir, 'sb'));
  } finally {
    socket.destroy();
    await phone.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

const HOST_CNXN = Buffer.from('host::features=shell_v2,cmd\0');

test('unauthorised: CNXN gets AUTH tokens, signatures are refused, the public key waits, authorize() connects', async () => {
  await withPhone({ unauthorized: true }, async (phone, host) => {
    assert.equal(phone.isAuthorized, false);
    host.send(A_CNXN, 0x01000001, 256 * 1024, HOST_CNXN);
    const token1 = await host.next();
    assert.deepEqual([token1.command, token1.arg0, token1.arg1, token1.payload.length], [A_AUTH, 1, 0, 20]);

    // adb signs the token with its key; the phone trusts no key yet and asks again with a fresh token.
    host.send(A_AUTH, 2, 0, Buffer.alloc(256, 7));
    const token2 = await host.next();
    assert.deepEqual([token2.command, token2.arg0, token2.payload.length], [A_AUTH, 1, 20]);
    assert.ok(!token2.payload.equals(token1.payload), 'a new token each time');

    // Streams cannot be opened before the handshake; the public key leaves the phone waiting for the user.
    host.send(A_OPEN, 5, 0, Buffer.from('shell:echo hi\0'));
    host.send(A_AUTH, 3, 0, Buffer.from('QAAAAJ8q9hqh... user@host\0'));
    assert.ok(await host.quiet(300), 'nothing: no CNXN, no OKAY for the OPEN');

    phone.authorize();
    const cnxn = await host.next();
    assert.equal(cnxn.command, A_CNXN);
    assert.match(cnxn.payload.toString(), /^device::ro\.product\.name=vphone_x86_64;ro\.product\.model=Virtual_Phone_3;/);

    host.send(A_OPEN, 6, 0, Buffer.from('shell:echo hi\0'));
    const okay = await host.next();
    assert.deepEqual([okay.command, okay.arg1], [A_OKAY, 6]);
    const out = await host.next();
    assert.deepEqual([out.command, out.payload.toString()], [A_WRTE, 'hi\n']);
    host.send(A_OKAY, 6, okay.arg0);
    assert.equal((await host.next()).command, A_CLSE);
  });
});

test('authorised (the default): CNXN is answered with CNXN at once, no AUTH', async () => {
  await withPhone({}, async (_phone, host) => {
    host.send(A_CNXN, 0x01000001, 4096, HOST_CNXN);
    assert.equal((await host.next()).command, A_CNXN);
  });
});

test('hardware files: cpufreq per core from the core count, thermal zones, sysfs paths rewritten into the sandbox', async () => {
  assert.deepEqual(defaultCpuMaxFreqsKHz(8), [1804800, 1804800, 1804800, 1804800, 2419200, 2419200, 2419200, 3187200]);
  assert.deepEqual(defaultCpuMaxFreqsKHz(4), [1804800, 1804800, 2419200, 2419200]);
  assert.deepEqual(defaultCpuMaxFreqsKHz(1), [2000000]);
  assert.equal(rewriteCommand('/sb', 'for z in /sys/class/thermal/thermal_zone[0-9]*; do cat /sys/devices/system/cpu/possible; done'),
    'for z in /sb/sys/class/thermal/thermal_zone[0-9]*; do cat /sb/sys/devices/system/cpu/possible; done');
  assert.equal(rewriteCommand('/sb', 'cat /sys/kernel/x /sysfs'), 'cat /sys/kernel/x /sysfs', 'other /sys paths are the workstation\'s');
  await withPhone({ cores: 3 }, async (_phone, _host, sandbox) => {
    const cpu = join(sandbox, 'sys/devices/system/cpu');
    assert.equal(readFileSync(join(cpu, 'possible'), 'utf8'), '0-2\n');
    assert.equal(readFileSync(join(cpu, 'cpu2/cpufreq/cpuinfo_max_freq'), 'utf8'), '2419200\n');
    const zone = (n: number, f: string) => readFileSync(join(sandbox, `sys/class/thermal/thermal_zone${n}/${f}`), 'utf8');
    assert.deepEqual([zone(0, 'type'), zone(0, 'temp')], ['battery\n', '31000\n']);
    assert.equal(zone(2, 'type'), 'cpu-0-0-usr\n');
  });
  assert.throws(() => new VirtualPhone({ port: 0, sandboxDir: '/tmp/x', ramBytes: 1, cores: 2, modelName: 'm', serialNumber: 's', cpuMaxFreqsKHz: [1] }),
    /one positive max frequency \(kHz\) per core: 2 cores, got \[1\]/);
});
