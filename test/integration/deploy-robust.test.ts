// Integration tier "adb": dependable deployment through the real adb server to a virtual phone — the agent binary
// and stage files pushed only when their sha256 differs, interrupted pushes resumed, corrupted or short files on the
// phone found and pushed again, the ABI choice. Failure paths (killed phones, heartbeats) are deploy-failures.test.ts.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { appendFileSync, copyFileSync, existsSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, statSync, truncateSync, utimesSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { deployAgent, pickAgentBinary, stopAgent } from '../../electron/core/adb/agent-deploy.js';
import { connectAdb, type Adb } from '../../electron/core/adb/client.js';
import { AdbDeployer } from '../../electron/core/deploy/adb-deployer.js';
import { syncFile, type SyncProgress } from '../../electron/core/deploy/file-sync.js';
import { startVirtualPhones, stopVirtualPhones, type VirtualPhoneRecord } from '../../electron/core/virtual-phone/manager.js';
import { findSandboxProcesses } from '../../electron/core/virtual-phone/reap.js';
import { startTestAdbServer, type TestAdbServer } from '../support/adb-server.js';
import { defaultAgentBinary, needLocalAgent } from '../support/local-agent.js';

const server = startTestAdbServer();
const skip = typeof server === 'string' ? server : needLocalAgent();
const srv = server as TestAdbServer;
const DIR = '/data/local/tmp/confidant-robust';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('dependable deployment to a virtual phone', { skip }, () => {
  let root = '';
  let phone: VirtualPhoneRecord;
  let adb: Adb;
  const onPhone = (remote: string) => join(phone.sandboxDir, remote);

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'confidant-robust-'));
    [phone] = (await startVirtualPhones({ count: 1, rootDir: root, ramMb: 2048, adb: srv.endpoint })) as [VirtualPhoneRecord];
    adb = await connectAdb(srv.endpoint);
  });

  after(async () => {
    if (root) {
      await stopVirtualPhones(root, { adb: srv.endpoint });
      rmSync(root, { recursive: true, force: true });
    }
  });

  test('the agent binary is chosen by the phone ABI order, and no fit is a clear error that starts nothing', async () => {
    const agents = { 'arm64-v8a': '/a/arm64', x86_64: '/a/x86_64', 'armeabi-v7a': '/a/v7' };
    assert.deepEqual(pickAgentBinary(['arm64-v8a', 'armeabi-v7a'], agents), { abi: 'arm64-v8a', path: '/a/arm64' });
    assert.deepEqual(pickAgentBinary(['armeabi-v7a', 'arm64-v8a'], agents), { abi: 'armeabi-v7a', path: '/a/v7' });
    assert.throws(() => pickAgentBinary([], agents, 'R58N'), /no agent binary fits R58N: it runs \(no ABI reported\), built agents: arm64-v8a, x86_64, armeabi-v7a/);
    // Through the deployer: the phone says x86_64 (getprop), we only have arm builds.
    const deployer = new AdbDeployer(adb, { 'arm64-v8a': defaultAgentBinary(), 'armeabi-v7a': defaultAgentBinary() });
    const stage = join(root, 'abi-stage.bin');
    writeFileSync(stage, randomBytes(1000));
    await assert.rejects(deployer.deploy(phone.serial, stage, { memoryBudgetBytes: 2 ** 28 }),
      new RegExp(`no agent binary fits ${phone.serial.replace(/\./g, '\\.')}: it runs x86_64, built agents: arm64-v8a, armeabi-v7a\\. Build the agent for x86_64`));
    assert.deepEqual(findSandboxProcesses(phone.sandboxDir), []);
    assert.ok(!existsSync(onPhone(`data/local/tmp/confidant/abi-stage.bin`)), 'nothing pushed for a phone that cannot run the agent');
  });

  test('the agent binary is pushed only when its sha256 differs from the one on the phone', async () => {
    const local = join(root, 'confidant-agent');
    copyFileSync(defaultAgentBinary(), local);
    const remote = onPhone('data/local/tmp/confidant/agent');
    const first = await deployAgent(adb, phone.serial, { agents: { x86_64: local }, memoryBudgetMb: 256 });
    assert.equal(first.binaryPushed, true);
    const st1 = statSync(remote);
    assert.ok(readFileSync(remote).equals(readFileSync(local)));
    assert.equal(readFileSync(`${remote}.sha256`, 'utf8').split(' ')[0], sha(readFileSync(local)));
    await stopAgent(adb, phone.serial);

    const second = await deployAgent(adb, phone.serial, { agents: { x86_64: local }, memoryBudgetMb: 256 });
    assert.equal(second.binaryPushed, false, 'same binary: not pushed again');
    const st2 = statSync(remote);
    assert.equal(st2.ino, st1.ino, 'the file on the phone was not replaced');
    assert.equal(st2.mtimeMs, st1.mtimeMs);
    assert.notEqual(second.pid, first.pid, 'a new agent was started all the same');
    await stopAgent(adb, phone.serial);

    appendFileSync(local, Buffer.from([0])); // an ELF with one more byte at the end still runs
    const third = await deployAgent(adb, phone.serial, { agents: { x86_64: local }, memoryBudgetMb: 256 });
    assert.equal(third.binaryPushed, true, 'changed binary: pushed');
    assert.ok(readFileSync(remote).equals(readFileSync(local)));
    assert.equal(statSync(remote).mode & 0o777, 0o755);
    await stopAgent(adb, phone.serial);
    assert.deepEqual(findSandboxProcesses(phone.sandboxDir), []);
  });

  test('a stage already on the phone is skipped; a corrupted (same size, same mtime) or short one is found and pushed again', async () => {
    const data = randomBytes(3 * 2 ** 20 + 123);
    const local = join(root, 'stage-a.cfst');
    writeFileSync(local, data);
    const remote = `${DIR}/stage-a.cfst`;
    const onDisk = onPhone(remote);
    const events: SyncProgress[] = [];

    const first = await syncFile(adb, phone.serial, local, remote, { onProgress: (p) => events.push(p) });
    assert.deepEqual([first.pushed, first.verified, first.bytes, first.sha256], [true, 'sha256', data.length, sha(data)]);
    assert.ok(readFileSync(onDisk).equals(data));
    assert.deepEqual(readdirSync(onPhone(DIR)).sort(), ['stage-a.cfst', 'stage-a.cfst.sha256'], 'no partial files left');
    const last = events.at(-1)!;
    assert.deepEqual([last.phase, last.bytesSent, last.bytesTotal], ['done', data.length, data.length]);
    assert.ok(events.some((e) => e.phase === 'pushing'));
    assert.ok(events.every((e) => Number.isFinite(e.bytesPerSec) && (e.etaMs === null || e.etaMs >= 0)));

    const inode = statSync(onDisk).ino;
    const again = await syncFile(adb, phone.serial, local, remote);
    assert.equal(again.pushed, false, 'same sha256 on the phone: skipped');
    assert.equal(again.bytesSent, 0);
    assert.equal(statSync(onDisk).ino, inode);

    // Flip one byte and put the old mtime back: size and record still match, only the phone's sha256 tells.
    const before = statSync(onDisk);
    const fd = openSync(onDisk, 'r+');
    writeSync(fd, Buffer.from([data[4096]! ^ 0xff]), 0, 1, 4096);
    closeSync(fd);
    utimesSync(onDisk, before.atime, before.mtime);
    const fixed = await syncFile(adb, phone.serial, local, remote);
    assert.equal(fixed.pushed, true, 'a corrupted file is not mistaken for the right one');
    assert.ok(readFileSync(onDisk).equals(data));

    truncateSync(onDisk, 1000);
    const refilled = await syncFile(adb, phone.serial, local, remote);
    assert.equal(refilled.pushed, true, 'a short file is pushed again');
    assert.ok(readFileSync(onDisk).equals(data));

    // Without the phone's sha256sum the record (sha256, size, mtime) decides: a short file is still caught.
    truncateSync(onDisk, 1000);
    const sizeOnly = await syncFile(adb, phone.serial, local, remote, { remoteSha256: 'off' });
    assert.deepEqual([sizeOnly.pushed, sizeOnly.verified], [true, 'size']);
    const sizeOnlyAgain = await syncFile(adb, phone.serial, local, remote, { remoteSha256: 'off' });
    assert.equal(sizeOnlyAgain.pushed, false, 'the record written after a verified push lets it skip');
    assert.ok(readFileSync(onDisk).equals(data));
  });

  test('a partial file corrupted during the push fails verification and the file is pushed whole again', async () => {
    const seg = 256 * 1024;
    const data = randomBytes(8 * seg);
    const local = join(root, 'stage-c.cfst');
    writeFileSync(local, data);
    const remote = `${DIR}/stage-c.cfst`;
    let corrupted = false;
    const r = await syncFile(adb, phone.serial, local, remote, {
      segmentBytes: seg,
      retryDelayMs: 50,
      onProgress: (p) => {
        const partial = onPhone(`${remote}.partial`);
        if (!corrupted && p.phase === 'pushing' && p.bytesSent >= 2 * seg && existsSync(partial)) {
          const fd = openSync(partial, 'r+');
          writeSync(fd, Buffer.from([data[100]! ^ 0x55]), 0, 1, 100);
          closeSync(fd);
          corrupted = true;
        }
      },
    });
    assert.ok(corrupted, 'the partial file was corrupted during the push');
    assert.equal(r.attempts, 2, 'verification failed once, then the whole file went again');
    assert.equal(r.resumedFromBytes, 0, 'a partial that failed verification is not resumed');
    assert.equal(r.verified, 'sha256');
    assert.ok(r.bytesSent >= 2 * data.length - 8 * seg, `${r.bytesSent} bytes sent`);
    assert.ok(readFileSync(onPhone(remote)).equals(data));
  });

  test('an interrupted push resumes where the partial file ends: after a cancel, and after a stall within one call', async () => {
    const seg = 512 * 1024;
    const data = randomBytes(16 * seg);
    const local = join(root, 'stage-b.cfst');
    writeFileSync(local, data);
    const remote = `${DIR}/stage-b.cfst`;

    // 1. Cancelled half way: the partial file keeps the whole segments, the next call sends only the rest.
    const abort = new AbortController();
    await assert.rejects(syncFile(adb, phone.serial, local, remote, {
      segmentBytes: seg,
      signal: abort.signal,
      onProgress: (p) => { if (p.bytesSent >= 6 * seg) abort.abort(); },
    }), /push of stage-b\.cfst to 127\.0\.0\.1:\d+ was cancelled/);
    assert.ok(!existsSync(onPhone(remote)), 'nothing at the final name after a cancel');
    const partialBytes = statSync(onPhone(`${remote}.partial`)).size;
    assert.ok(partialBytes >= 5 * seg && partialBytes < data.length && partialBytes % seg === 0, `partial has ${partialBytes} bytes`);
    const resumed = await syncFile(adb, phone.serial, local, remote, { segmentBytes: seg });
    assert.equal(resumed.resumedFromBytes, partialBytes);
    assert.equal(resumed.bytesSent, data.length - partialBytes, 'only the missing part went over adb');
    assert.equal(resumed.verified, 'sha256');
    assert.ok(readFileSync(onPhone(remote)).equals(data));
    assert.deepEqual(readdirSync(onPhone(DIR)).filter((n) => n.startsWith('stage-b')).sort(), ['stage-b.cfst', 'stage-b.cfst.sha256']);

    // 2. The phone freezes mid-push: the stall watchdog gives up on that transfer, the retry resumes.
    const data2 = randomBytes(16 * seg);
    writeFileSync(local, data2);
    let frozenAt = 0;
    const attempts: number[] = [];
    const r = await syncFile(adb, phone.serial, local, remote, {
      segmentBytes: seg,
      stallMs: 800,
      retryDelayMs: 100,
      onProgress: (p) => {
        attempts.push(p.attempt);
        if (!frozenAt && p.bytesSent > 6 * seg) {
          frozenAt = Date.now();
          process.kill(phone.pid, 'SIGSTOP');
          setTimeout(() => process.kill(phone.pid, 'SIGCONT'), 1500);
        }
      },
    });
    assert.ok(frozenAt > 0);
    assert.equal(r.attempts, 2);
    assert.ok(r.resumedFromBytes >= 5 * seg, `second try resumed from ${r.resumedFromBytes}`);
    assert.ok(r.bytesSent < data2.length + seg, `${r.bytesSent} bytes sent for a ${data2.length}-byte file`);
    assert.ok(readFileSync(onPhone(remote)).equals(data2));
  });
});
