// The main job end to end through the real adb server: `confidant demo` with two virtual phones (short run), then
// the run folder is checked independently: held-out losses recomputed from eval-set.jsonl by a separate whole-model
// agent with and without the exported PEFT adapter, and `confidant export` copies the adapter.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestAdbServer, TEST_ADB_PORT } from '../support/adb-server.js';
import { needLocalAgent, repoRoot, startLocalAgent, type LocalAgent } from '../support/local-agent.js';
import { openModelFolder } from '../../electron/core/model/model-folder.js';
import { packStage } from '../../electron/core/model/stage-pack.js';
import { readPeftAdapter } from '../../electron/core/export/peft.js';
import { initialLora } from '../../electron/core/train/lora-init.js';
import { LORA_MODULES, targetMask } from '../../electron/core/train/lora-modules.js';
import { runPass } from '../../electron/core/train/pipeline.js';
import { collateBatch, type TrainingSample } from '../../electron/core/data/samples.js';

const server = startTestAdbServer();
const skip = typeof server === 'string' ? server : needLocalAgent();
const dirs: string[] = [];
const agents: LocalAgent[] = [];

after(async () => {
  await Promise.all(agents.map((a) => a.stop()));
  for (const d of dirs) await rm(d, { recursive: true, force: true });
  if (typeof server !== 'string') server.stop();
});

function cli(args: string[]) {
  return spawnSync(process.execPath, [join(repoRoot(), 'bin/confidant.js'), ...args], { encoding: 'utf8', timeout: 240_000 });
}

test('demo: two virtual phones over adb, loss goes down, run folder reproducible, adapter exported', { skip, timeout: 300_000 }, async () => {
  const runsDir = await mkdtemp(join(tmpdir(), 'confidant-runs-'));
  dirs.push(runsDir);
  const r = cli(['demo', '--steps', '12', '--runs-dir', runsDir, '--adb-port', String(TEST_ADB_PORT)]);
  assert.equal(r.status, 0, `demo failed:\n${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /path: adb/);
  assert.match(r.stdout, /layers \[0, \d\) \+ embedding/);

  const [runId] = await readdir(runsDir);
  const runDir = join(runsDir, runId);
  const run = JSON.parse(await readFile(join(runDir, 'run.json'), 'utf8'));
  assert.equal(run.status, 'finished');
  assert.equal(run.plan.stages.length, 2);
  assert.ok(run.transport.includes(`adb server 127.0.0.1:${TEST_ADB_PORT}`), run.transport);
  assert.equal(run.losses.length, 12);
  // Per-step training losses are on different batches (noisy); the held-out loss is measured on the same samples.
  assert.ok(run.losses.every((l: number) => Number.isFinite(l)));
  assert.ok(run.evalLossAfter < run.evalLossBefore - 0.05, `held-out loss ${run.evalLossBefore} -> ${run.evalLossAfter}`);
  // onnxruntime recomputed both from the exported adapter (another engine, another graph): the agents' numbers hold.
  const ort = run.heldOutLossOrt as { before: number; after: number };
  assert.ok(Math.abs(ort.before - run.evalLossBefore) < 1e-4 * run.evalLossBefore, `before: agents ${run.evalLossBefore}, onnxruntime ${ort.before}`);
  assert.ok(Math.abs(ort.after - run.evalLossAfter) < 1e-4 * run.evalLossAfter, `after: agents ${run.evalLossAfter}, onnxruntime ${ort.after}`);
  assert.match(r.stdout, /onnxruntime, independently from the exported adapter: \d+\.\d{4} before/);
  // The visible change: the base model names the girl Lily, the adapted one uses the dataset's new name.
  assert.match(run.samplesBefore[0], /named Lily/);
  assert.match(run.samplesAfter[0], /named Zara/);
  assert.ok(run.tokPerSec > 0);
  for (const d of run.devices) assert.ok(d.peakRssBytes > 0, `peak memory reported for ${d.serial}`);

  const events = (await readFile(join(runDir, 'events.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(events.filter((e) => e.type === 'step').length, 12);
  assert.equal(events.filter((e) => e.type === 'device-step').length, 24);

  // Independent re-computation of both held-out numbers from the run folder alone.
  const evalSet = (await readFile(join(runDir, 'eval-set.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
  const samples: TrainingSample[] = evalSet.map((s) => ({ tokens: Int32Array.from(s.tokens), targets: Int32Array.from(s.targets), mask: Float32Array.from(s.mask), docIndex: 0, chunkIndex: 0 }));
  const folder = await openModelFolder(join(repoRoot(), 'models/stories260K'));
  const file = join(runsDir, 'whole.cfst');
  await packStage(folder, { layerStart: 0, layerEnd: 5, hasEmbedding: true, hasHead: true }, file);
  const adapter = await readPeftAdapter(join(runDir, 'adapter'));
  const agent = await startLocalAgent({ label: 'checker' });
  agents.push(agent);
  await agent.client.loadStage({ path: file, loraRank: adapter.rank, loraAlpha: adapter.alpha, targetMask: targetMask(LORA_MODULES), flags: 0 });
  const evalLoss = async () => {
    const pass = await runPass([{ serial: 'checker', client: agent.client }], [collateBatch(samples)], { train: false });
    return pass.lossSum / pass.weightSum;
  };
  await agent.client.setLora(initialLora(folder.config, 0, 5, adapter.rank, LORA_MODULES, 0));
  const before = await evalLoss();
  await agent.client.setLora(adapter.tensors);
  const afterLoss = await evalLoss();
  assert.ok(Math.abs(before - run.evalLossBefore) < 1e-5 * run.evalLossBefore, `before: run says ${run.evalLossBefore}, recomputed ${before}`);
  assert.ok(Math.abs(afterLoss - run.evalLossAfter) < 1e-5 * run.evalLossAfter, `after: run says ${run.evalLossAfter}, recomputed ${afterLoss}`);

  const out = join(runsDir, 'exported');
  const ex = cli(['export', '--run', runDir, '--format', 'peft', '--out', out]);
  assert.equal(ex.status, 0, ex.stderr);
  assert.deepEqual((await readdir(out)).sort(), ['adapter_config.json', 'adapter_model.safetensors']);
  const again = cli(['export', '--run', runDir, '--format', 'peft', '--out', out]);
  assert.equal(again.status, 1);
  assert.match(again.stderr, /exists and is not empty/);

  // Nothing left attached: the demo's virtual phones are gone from adb.
  const listed = typeof server === 'string' ? '' : server.adb(['devices']).stdout;
  assert.doesNotMatch(listed, /127\.0\.0\.1:\d+\s+device/);
});
