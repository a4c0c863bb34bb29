// Checkpoint files (train/checkpoint.ts): round trip of tensors and state, 'latest' moves only to complete
// checkpoints, the same step rewritten replaces the old one, a stray temporary folder (a crash mid-write) is
// ignored, and the layer filter a re-plan uses. Plus the recovery decision and the per-step device metrics.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CHECKPOINT_VERSION, readLatestCheckpoint, tensorsForLayers, writeCheckpoint, type CheckpointState } from '../../electron/core/train/checkpoint.js';
import { decideRecovery, lostSerials } from '../../electron/core/train/recovery.js';
import { DeviceMeter, etaMs } from '../../electron/core/train/metrics.js';
import type { NamedTensor, StatsReply } from '../../electron/core/protocol/messages.js';

function state(step: number): CheckpointState {
  return {
    version: CHECKPOINT_VERSION, step, totalSteps: 10, data: { epoch: 1, cursor: 4 * step }, rng: { seed: 7 },
    lrSchedule: { peakLr: 1e-3, warmupSteps: 2, totalSteps: 10, minLrRatio: 0.1, nextStep: step + 1 },
    plan: { stages: [], microBatches: 2, microBatchSize: 2, seqLen: 8 }, losses: Array.from({ length: step }, (_, i) => 3 - i / 10),
    settings: { seed: 7 }, timeMs: 0,
  };
}

const tensor = (name: string, values: number[]): NamedTensor => ({ name, tensor: { dtype: 'f32', dims: [values.length], data: new Float32Array(values) } });

test('checkpoint round trip, latest pointer, same-step replacement, stray temp folders ignored', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'confidant-ckpt-'));
  try {
    assert.equal(await readLatestCheckpoint(dir), null, 'no checkpoint yet');
    const t1 = [tensor('model.layers.0.self_attn.q_proj.lora_A', [1, 2, 3]), tensor('model.layers.0.self_attn.q_proj.lora_A.adam_m', [0.5, -1e-9, 3e30])];
    await writeCheckpoint(dir, state(3), t1);
    // A crash while writing step 6: its temporary folder exists but latest still names step 3.
    await mkdir(join(dir, 'checkpoints', '.step-6.tmp-1-dead'));
    await writeFile(join(dir, 'checkpoints', '.step-6.tmp-1-dead', 'lora.bin'), 'half');
    let ck = await readLatestCheckpoint(dir);
    assert.equal(ck!.state.step, 3);
    assert.deepEqual(ck!.state.data, { epoch: 1, cursor: 12 });
    assert.deepEqual(ck!.tensors.map((t) => t.name), t1.map((t) => t.name));
    assert.deepEqual([...(ck!.tensors[1]!.tensor.data as Float32Array)], [...(t1[1]!.tensor.data as Float32Array)]);

    await writeCheckpoint(dir, state(6), [tensor('model.layers.0.self_attn.q_proj.lora_A', [4, 5, 6])]);
    assert.equal((await readFile(join(dir, 'checkpoints', 'latest'), 'utf8')).trim(), 'step-6');
    // A recovery replays step 6 from step 3 and writes it again: the new one replaces the old.
    await writeCheckpoint(dir, state(6), [tensor('model.layers.0.self_attn.q_proj.lora_A', [7, 8, 9])]);
    ck = await readLatestCheckpoint(dir);
    assert.deepEqual([...(ck!.tensors[0]!.tensor.data as Float32Array)], [7, 8, 9]);
    const names = (await readdir(join(dir, 'checkpoints'))).filter((n) => !n.startsWith('.'));
    assert.deepEqual(names.sort(), ['latest', 'step-3', 'step-6'], 'older checkpoints are kept, no leftovers');

    await writeFile(join(dir, 'checkpoints', 'step-6', 'lora.bin'), 'garbage!');
    await assert.rejects(readLatestCheckpoint(dir), /not a Confidant checkpoint/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('tensorsForLayers keeps a stage\'s layers (by the global index in the name)', () => {
  const all = [0, 1, 2, 10].map((l) => tensor(`model.layers.${l}.mlp.up_proj.lora_B`, [l]));
  assert.deepEqual(tensorsForLayers(all, 1, 3).map((t) => t.name), ['model.layers.1.mlp.up_proj.lora_B', 'model.layers.2.mlp.up_proj.lora_B']);
  assert.deepEqual(tensorsForLayers(all, 3, 11).map((t) => t.name), ['model.layers.10.mlp.up_proj.lora_B']);
  assert.throws(() => tensorsForLayers([tensor('lm_head', [1])], 0, 1), /no layer index/);
});

test('recovery: re-plan on the phones left, give up with no phone left, at the limit, or when none was lost', () => {
  const devices = ['a', 'b', 'c'].map((serial) => ({ serial, budgetBytes: 1, speed: 1 }));
  assert.deepEqual(lostSerials([{ serial: 'a', client: { isOpen: true } }, { serial: 'b', client: { isOpen: false } }]), ['b']);
  const r = decideRecovery(devices, ['b'], 1, 3, 'ck');
  assert.equal(r.kind, 'recover');
  assert.deepEqual(r.kind === 'recover' && r.devices.map((d) => d.serial), ['a', 'c']);
  const none = decideRecovery(devices, ['a', 'b', 'c'], 1, 3, 'the last checkpoint is kept');
  assert.ok(none.kind === 'give-up' && /no phone remains.*checkpoint is kept/.test(none.reason));
  assert.ok(decideRecovery(devices, ['b'], 4, 3, 'ck').kind === 'give-up');
  assert.ok(decideRecovery(devices, [], 1, 3, 'ck').kind === 'give-up');
});

test('device metrics are per-step differences of the cumulative STATS; ETA from the mean step', async () => {
  let stats: StatsReply = { rssBytes: 100, peakRssBytes: 200, busyUs: 5_000, forwardCount: 0, backwardCount: 0, bytesIn: 1000, bytesOut: 2000 };
  const agent = { serial: 'p', client: { stats: async () => stats } };
  const meter = new DeviceMeter();
  await meter.baseline([agent]);
  stats = { ...stats, busyUs: 35_000, bytesIn: 1500, bytesOut: 2600, peakRssBytes: 300 };
  const [ev] = await meter.step([agent], 'r', 1, 50);
  assert.equal(ev!.busyMs, 30);
  assert.equal(ev!.idleMs, 20);
  assert.equal(ev!.bytesIn, 500);
  assert.equal(ev!.bytesOut, 600);
  assert.equal(meter.peakRssBytes.get('p'), 300);
  assert.equal(etaMs(300, 3, 7), 700);
  assert.equal(etaMs(0, 0, 7), null);
});
