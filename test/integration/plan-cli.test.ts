// `confidant plan` against virtual phones on a private real adb server: the plan covers every layer once, in
// contiguous stages with the embedding first and the head last, each within its phone's memory budget; every phone
// is either in a stage or left out with a reason (printed, and in --json); a request that fits nowhere exits 1
// naming the phone, its shortfall and what was re-checked to fit.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { startVirtualPhones, stopVirtualPhones } from '../../electron/core/virtual-phone/manager.js';
import { startTestAdbServer, TEST_ADB_PORT, type TestAdbServer } from '../support/adb-server.js';
import { needLocalAgent, repoRoot } from '../support/local-agent.js';

const PORT = TEST_ADB_PORT + 8;
const server = startTestAdbServer(PORT);
const skip = typeof server === 'string' ? server : needLocalAgent();
const root = mkdtempSync(join(tmpdir(), 'confidant-plan-'));

after(async () => {
  await stopVirtualPhones(root).catch(() => undefined);
  if (typeof server !== 'string') server.stop();
  rmSync(root, { recursive: true, force: true });
});

const plan = (...args: string[]) =>
  spawnSync(process.execPath, [join(repoRoot(), 'bin/confidant.js'), 'plan', '--adb-port', String(PORT), ...args], { encoding: 'utf8', timeout: 60_000 });

interface PlannedStage { layerStart: number; layerEnd: number; hasEmbedding: boolean; hasHead: boolean; serial: string; predictedBytes: number; budgetBytes: number }
interface LeftOut { serial: string; reason: string; stepMsWith: number | null; stepMsWithout: number }

test('plan splits the bundled model over two virtual phones, within budgets; an impossible request is explained', { skip, timeout: 120_000 }, async () => {
  const phones = await startVirtualPhones({ count: 2, rootDir: root, ramMb: 256, adb: (server as TestAdbServer).endpoint });
  const r = plan('--json');
  assert.equal(r.status, 0, r.stderr);
  const p = JSON.parse(r.stdout) as { stages: PlannedStage[]; leftOut: LeftOut[]; sim: { stepMs: number } };
  assert.deepEqual([...p.stages, ...p.leftOut].map((s) => s.serial).sort(), phones.map((ph) => ph.serial).sort());
  for (const o of p.leftOut) assert.match(o.reason, new RegExp(`^${o.serial.replace(/[.:]/g, '\\$&')} is left out: `));
  assert.equal(p.stages[0]!.layerStart, 0);
  assert.equal(p.stages.at(-1)!.layerEnd, 5, 'stories260K has 5 layers');
  p.stages.forEach((s, i) => {
    if (i > 0) assert.equal(s.layerStart, p.stages[i - 1]!.layerEnd, 'contiguous');
    assert.ok(s.layerEnd > s.layerStart, 'every stage holds a layer');
    assert.equal(s.hasEmbedding, i === 0);
    assert.equal(s.hasHead, i === p.stages.length - 1);
    assert.ok(s.predictedBytes <= s.budgetBytes, `${s.serial}: ${s.predictedBytes} > ${s.budgetBytes}`);
  });
  assert.ok(p.sim.stepMs > 0);

  // One micro-batch a step: a second stage overlaps nothing and only adds transfers, so one phone is left out.
  const single = plan('--json', '--micro-batches', '1');
  assert.equal(single.status, 0, single.stderr);
  const s1 = JSON.parse(single.stdout) as { stages: PlannedStage[]; leftOut: LeftOut[]; stepMs: number };
  assert.equal(s1.stages.length, 1, single.stdout);
  assert.equal(s1.leftOut.length, 1);
  assert.match(s1.leftOut[0]!.reason, /is left out: it would slow the pipeline \(using it as well is predicted at .* slower than .* without it\)/);
  assert.ok(s1.leftOut[0]!.stepMsWith! > s1.stepMs && s1.leftOut[0]!.stepMsWithout === s1.stepMs);
  const text = plan('--micro-batches', '1');
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /1 of 2 phones used/);
  assert.ok(text.stdout.includes(s1.leftOut[0]!.reason), text.stdout);

  // Far more activations than 256 MiB phones hold.
  const bad = plan('--seq-len', '4096', '--micro-batch-size', '64');
  assert.equal(bad.status, 1, bad.stdout);
  assert.match(bad.stderr, /127\.0\.0\.1:\d+/, 'names a phone');
  assert.match(bad.stderr, /MiB|GiB/, 'says how much');
  assert.match(bad.stderr, /would (still not )?fit/, 'suggestions are re-checked');
});
