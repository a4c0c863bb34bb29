// A training run over phones of two adb servers: `confidant train --adb-port A --adb 127.0.0.1:B` with one virtual
// phone on each private server (TEST_ADB_PORT+4 and +5), one chosen by plain serial (the default server) and one by
// id. The pipeline's stages land on both servers' phones, activations relay through this host, the run finishes.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startVirtualPhones, stopVirtualPhones, type VirtualPhoneRecord } from '../../electron/core/virtual-phone/manager.js';
import { startTestAdbServer, TEST_ADB_PORT, type TestAdbServer } from '../support/adb-server.js';
import { needLocalAgent, repoRoot } from '../support/local-agent.js';

const PORT_A = TEST_ADB_PORT + 4;
const PORT_B = TEST_ADB_PORT + 5;
const serverA = startTestAdbServer(PORT_A);
const serverB = typeof serverA === 'string' ? serverA : startTestAdbServer(PORT_B);
const skip = typeof serverB === 'string' ? serverB : needLocalAgent();
const root = mkdtempSync(join(tmpdir(), 'confidant-two-servers-'));
let onA: VirtualPhoneRecord[] = [];
let onB: VirtualPhoneRecord[] = [];

before(async () => {
  if (skip) return;
  onA = await startVirtualPhones({ count: 1, rootDir: join(root, 'a'), ramMb: 2048, adb: (serverA as TestAdbServer).endpoint });
  onB = await startVirtualPhones({ count: 1, rootDir: join(root, 'b'), ramMb: 2048, adb: (serverB as TestAdbServer).endpoint });
});

after(async () => {
  await stopVirtualPhones(join(root, 'a')).catch(() => undefined);
  await stopVirtualPhones(join(root, 'b')).catch(() => undefined);
  for (const s of [serverA, serverB]) if (typeof s !== 'string') s.stop();
  rmSync(root, { recursive: true, force: true });
});

test('train over two adb servers: stages on both, run finished, loss finite', { skip, timeout: 240_000 }, () => {
  const idB = `127.0.0.1:${PORT_B}/${onB[0]!.serial}`;
  const runsDir = join(root, 'runs');
  const r = spawnSync(process.execPath, [
    join(repoRoot(), 'bin/confidant.js'), 'train', '--adb-port', String(PORT_A), '--adb', `127.0.0.1:${PORT_B}`,
    '--devices', `${onA[0]!.serial},${idB}`, '--steps', '4', '--runs-dir', runsDir,
  ], { encoding: 'utf8', timeout: 200_000 });
  assert.equal(r.status, 0, `train failed:\n${r.stdout}\n${r.stderr}`);
  const [runId] = readdirSync(runsDir);
  const run = JSON.parse(readFileSync(join(runsDir, runId!, 'run.json'), 'utf8')) as {
    status: string; transport: string; losses: number[]; plan: { stages: { serial: string }[] };
  };
  assert.equal(run.status, 'finished');
  assert.deepEqual(run.plan.stages.map((s) => s.serial), [onA[0]!.serial, idB]);
  assert.ok(run.transport.includes(`127.0.0.1:${PORT_A}`) && run.transport.includes(`127.0.0.1:${PORT_B}`), run.transport);
  assert.equal(run.losses.length, 4);
  assert.ok(run.losses.every(Number.isFinite), `losses ${run.losses}`);
  // Each phone ran an agent: its sandbox holds the pushed stage file.
  for (const p of [...onA, ...onB]) {
    const stages = spawnSync('find', [p.sandboxDir, '-name', '*.cfst'], { encoding: 'utf8' }).stdout.trim();
    assert.ok(stages.length > 0, `no stage file on ${p.serial}`);
  }
});
