// Unit tier: the virtual phone's pieces without the adb server: message codec, path rewriting, tcp target parsing,
// and the transport driven by a scripted host over a loopback socket (handshake, chunking, flow control).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  A_CLSE, A_CNXN, A_OKAY, A_OPEN, A_WRTE, MessageReader, encodeMessage, type AdbMessage,
} from '../../electron/core/virtual-phone/adb-message.js';
import { VirtualPhone } from '../../electron/core/virtual-phone/phone.js';
import { devicePathToHost, rewriteCommand } from '../../electron/core/virtual-phone/sandbox.js';
import { parseTcpTarget } from '../../electron/core/virtual-phone/services/tcp.js';

test('message codec: header layout, magic, checksum; reader reassembles split input and rejects bad magic', () => {
  const m = encodeMessage(A_WRTE, 7, 9, Buffer.from('hi'));
  assert.equal(m.length, 26);
  assert.equal(m.toString('latin1', 0, 4), 'WRTE');
  assert.equal(m.readUInt32LE(12), 2);
  assert.equal(m.readUInt32LE(16), 'h'.charCodeAt(0) + 'i'.charCodeAt(0));
  assert.equal(m.readUInt32LE(20), (A_WRTE ^ 0xffffffff) >>> 0);
  const r = new MessageReader();
  const both = Buffer.concat([m, encodeMessage(A_OKAY, 1, 2)]);
  assert.deepEqual(r.push(both.subarray(0, 10)), []);
  const out = r.push(both.subarray(10));
  assert.equal(out.length, 2);
  assert.deepEqual([out[0]!.command, out[0]!.arg0, out[0]!.arg1, out[0]!.payload.toString()], [A_WRTE, 7, 9, 'hi']);
  assert.equal(out[1]!.command, A_OKAY);
  const bad = Buffer.from(m);
  bad.writeUInt32LE(0, 20);
  assert.throws(() => new MessageReader().push(bad), /bad magic/);
  const huge = Buffer.from(encodeMessage(A_WRTE, 1, 1));
  huge.writeUInt32LE(2 * 1024 * 1024, 12);
  assert.throws(() => new MessageReader().push(huge), /exceeds/);
});

test('rewriteCommand maps Android roots into the sandbox at word starts only', () => {
  const s = '/tmp/sb';
  assert.equal(rewriteCommand(s, 'cd /data/local/tmp && ./a --port-file=/data/x > /sdcard/log'),
    'cd /tmp/sb/data/local/tmp && ./a --port-file=/tmp/sb/data/x > /tmp/sb/sdcard/log');
  assert.equal(rewriteCommand(s, "cat '/proc/meminfo'; ls /system/bin"), "cat '/tmp/sb/proc/meminfo'; ls /tmp/sb/system/bin");
  assert.equal(rewriteCommand(s, 'ls /database /usr/data/x /proc/self/status'), 'ls /database /usr/data/x /proc/self/status');
  assert.equal(devicePathToHost(s, '/data/../../etc/passwd'), '/tmp/sb/etc/passwd');
  assert.equal(devicePathToHost(s, '/'), s);
});

test('parseTcpTarget: port, both host orders, loopback only', () => {
  assert.deepEqual(parseTcpTarget('8080'), { port: 8080 });
  assert.deepEqual(parseTcpTarget('localhost:8080'), { port: 8080 });
  assert.deepEqual(parseTcpTarget('8080:127.0.0.1'), { port: 8080 });
  assert.equal(parseTcpTarget('10.0.0.2:8080'), null);
  assert.equal(parseTcpTarget('0'), null);
  assert.equal(parseTcpTarget('x'), null);
});

/** A scripted adb host: sends messages, collects what the phone sends. */
class ScriptedHost {
  private reader = new MessageReader();
  private inbox: AdbMessage[] = [];
  private waiters: Array<() => void> = [];
  constructor(readonly socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.inbox.push(...this.reader.push(d));
      for (const w of this.waiters.splice(0)) w();
    });
  }
  send(cmd: number, a0: number, a1: number, payload?: Buffer) {
    this.socket.write(encodeMessage(cmd, a0, a1, payload));
  }
  async next(timeoutMs = 3000): Promise<AdbMessage> {
    const deadline = Date.now() + timeoutMs;
    while (this.inbox.length === 0) {
      if (Date.now() > deadline) throw new Error('no message from the phone');
      await new Promise<void>((r) => { this.waiters.push(r); setTimeout(r, 50); });
    }
    return this.inbox.shift()!;
  }
  /** True if nothing arrives within ms. */
  async quiet(ms: number): Promise<boolean> {
    await new Promise((r) => setTimeout(r, ms));
    return this.inbox.length === 0;
  }
}

test('transport: CNXN banner without v2 features, WRTE chunked to the host max payload, one in flight until OKAY', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'confidant-vp-unit-'));
  const phone = new VirtualPhone({ port: 0, sandboxDir: join(dir, 'sb'), ramBytes: 1 << 30, cores: 2, modelName: 'Virtual Phone 9', serialNumber: 'S9' });
  const port = await phone.start();
  const socket = connect(port, '127.0.0.1');
  await new Promise((r) => socket.once('connect', r));
  const host = new ScriptedHost(socket);
  try {
    host.send(A_CNXN, 0x01000001, 4096, Buffer.from('host::features=shell_v2,cmd\0'));
    const cnxn = await host.next();
    assert.equal(cnxn.command, A_CNXN);
    assert.equal(cnxn.arg0, 0x01000001);
    const banner = cnxn.payload.toString();
    assert.match(banner, /^device::ro\.product\.name=vphone_x86_64;ro\.product\.model=Virtual_Phone_9;ro\.product\.device=vphone_x86_64;features=$/);

    // 10000 bytes of output with a 4096-byte host max payload: 3 WRTEs, each only after the previous OKAY.
    host.send(A_OPEN, 5, 0, Buffer.from('shell:head -c 10000 /dev/zero\0'));
    const okay = await host.next();
    assert.deepEqual([okay.command, okay.arg1], [A_OKAY, 5]);
    const deviceId = okay.arg0;
    let received = 0;
    const sizes: number[] = [];
    for (;;) {
      const m = await host.next();
      if (m.command === A_CLSE) {
        assert.deepEqual([m.arg0, m.arg1], [deviceId, 5]);
        break;
      }
      assert.equal(m.command, A_WRTE);
      assert.deepEqual([m.arg0, m.arg1], [deviceId, 5]);
      assert.ok(m.payload.length <= 4096);
      sizes.push(m.payload.length);
      received += m.payload.length;
      if (received < 10000) assert.ok(await host.quiet(100), 'no second WRTE before our OKAY');
      host.send(A_OKAY, 5, deviceId);
    }
    assert.equal(received, 10000);
    assert.ok(sizes.length >= 3);

    // An unknown service is refused with CLSE(0, host id).
    host.send(A_OPEN, 6, 0, Buffer.from('reboot:\0'));
    const refused = await host.next();
    assert.deepEqual([refused.command, refused.arg0, refused.arg1], [A_CLSE, 0, 6]);
  } finally {
    socket.destroy();
    await phone.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
