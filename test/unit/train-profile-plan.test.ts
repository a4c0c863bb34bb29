// PROFILE reply -> the planner's DeviceProfile (train/measured-plan.ts) on the protocol fixture, the head split and
// re-plan decisions, measureStages against a scripted agent (train/profile-plan.ts) and the measured bubble
// (plan/measured-bubble.ts), each against numbers worked out by hand here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseModelConfig } from '../../electron/core/model/hf-config.js';
import { parseProfileResult } from '../../electron/core/protocol/profile.js';
import { chooseHeadSplit, kvGroupStepFor } from '../../electron/core/plan/head-split.js';
import { DEFAULT_LINK_BYTES_PER_SEC } from '../../electron/core/plan/default-profile.js';
import { measuredBubble, theoreticalBubble } from '../../electron/core/plan/measured-bubble.js';
import { headSplitDecision, MIN_SPLIT_GAIN, profileToDeviceProfile, replan, REPLAN_MIN_GAIN } from '../../electron/core/train/measured-plan.js';
import { measureOpOverheadMs, measureStages, OVERHEAD_PROBES, type ProfilableStage } from '../../electron/core/train/profile-plan.js';
import type { HeadSplit } from '../../electron/core/plan/head-split.js';
import { FORWARD_FLAG_KEEP_ACTIVATIONS, FORWARD_FLAG_RELAY_F16, type ForwardRequest, type LayerSplit } from '../../electron/core/protocol/messages.js';
import type { DeviceProfile } from '../../electron/core/plan/partition.js';
import { repoRoot } from '../support/local-agent.js';

// TinyLlama's shape, the size the fixture's times are plausible for.
const config = parseModelConfig({
  architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 2048, intermediate_size: 5632, num_hidden_layers: 22,
  num_attention_heads: 32, num_key_value_heads: 4, vocab_size: 32000, rms_norm_eps: 1e-5, rope_theta: 10000, max_position_embeddings: 2048,
}, 'config.json');
const fixture = JSON.parse(readFileSync(join(repoRoot(), 'test/fixtures/protocol/profile_reply.json'), 'utf8')) as { fields: { profile_json: string } };
const reply = parseProfileResult(fixture.fields.profile_json, 'fixture');
const close = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(b)), `${what}: ${a} vs ${b}`);

test('PROFILE fixture -> DeviceProfile: CPU layer means, FLOP-scaled head, idle RSS, row block, default link', () => {
  const d = profileToDeviceProfile(config, reply, { serial: 'p1', budgetBytes: 6 * 2 ** 30, idleRssBytes: 90 * 2 ** 20, backends: ['cpu(neon, dotprod x4)', 'opencl(Adreno)'] });
  // The fixture's cpu rows: layer 4 12.5 / 30.25 ms, layer 5 12.75 / 30.0 ms.
  close(d.layerForwardMs, 12.625, 'forward');
  close(d.layerBackwardMs, 30.125, 'backward');
  // [4, 256]: 1024 tokens. Layer FLOPs: q/o 2048x2048 each, k/v 2048x256 each, MLP 3 x 2048x5632, attention 2*T*q.
  const tokens = 1024;
  const layerFlops = 2 * tokens * (2048 * (2 * 2048 + 2 * 256) + 3 * 2048 * 5632) + 2 * tokens * 256 * 2048;
  const headFlops = 2 * tokens * 2048 * 32000;
  close(d.headForwardMs, (12.625 / layerFlops) * headFlops, 'head forward');
  close(d.headBackwardMs, 2 * d.headForwardMs, 'head backward');
  close(d.layerForwardMsPerToken, 12.625 / 1024, 'per token');
  assert.equal(d.agentBaseBytes, 90 * 2 ** 20);
  assert.equal(d.matmulRowBlock, 128); // NEON
  assert.equal(d.linkBytesPerSec, DEFAULT_LINK_BYTES_PER_SEC);
  assert.match(d.linkSource, /default/);
});

test('an applied head split scales forward and backward by its predicted layer gain; a measured link is kept', () => {
  const split = chooseHeadSplit(config, reply);
  assert.ok(split.gpuKvGroups > 0 && split.layerMsSplit < split.layerMsUnsplit, JSON.stringify(split));
  const d = profileToDeviceProfile(config, reply, { serial: 'p1', budgetBytes: 2 ** 32, backends: ['cpu(avx2 x2)'], split, linkBytesPerSec: 1e8 });
  const ratio = split.layerMsSplit / split.layerMsUnsplit;
  close(d.layerForwardMs, 12.625 * ratio, 'split forward');
  close(d.layerBackwardMs, 30.125 * ratio, 'split backward');
  assert.equal(d.linkBytesPerSec, 1e8);
  assert.equal(d.matmulRowBlock, 192);
});

test('re-plan: a 3x faster phone given half the layers is worth a redeploy; identical phones keep the plan', () => {
  const small = parseModelConfig({ ...{ architectures: ['LlamaForCausalLM'], model_type: 'llama' }, hidden_size: 256, intermediate_size: 704, num_hidden_layers: 8,
    num_attention_heads: 8, num_key_value_heads: 2, vocab_size: 512, rms_norm_eps: 1e-5, rope_theta: 10000, max_position_embeddings: 512 }, 'c.json');
  const dev = (serial: string, ms: number): DeviceProfile => ({ serial, budgetBytes: 2 ** 32, layerForwardMs: ms, layerBackwardMs: 2 * ms, headForwardMs: 0, headBackwardMs: 0, linkBytesPerSec: Infinity });
  const t = { loraRank: 8, microBatchSize: 1, seqLen: 64, weightFormat: 'f32' as const, microBatches: 4 };
  const even = [{ serial: 'slow', layerStart: 0, layerEnd: 4, hasEmbedding: true, hasHead: false, predictedBytes: 0 }, { serial: 'fast', layerStart: 4, layerEnd: 8, hasEmbedding: false, hasHead: true, predictedBytes: 0 }];
  const r = replan(small, [dev('slow', 3), dev('fast', 1)], t, even);
  // Deployed: bottleneck 4 layers x 9 ms = 36 ms per micro-batch. Best: 2 slow layers (18 ms) + 6 fast (18 ms).
  close(r.current.bottleneckMs, 36, 'deployed bottleneck');
  close(r.proposed.bottleneckMs, 18, 'proposed bottleneck');
  assert.ok(r.redeploy && r.gain > REPLAN_MIN_GAIN, r.reason);
  const same = replan(small, [dev('a', 1), dev('b', 1)], t, even.map((s, i) => ({ ...s, serial: i ? 'b' : 'a' })));
  assert.equal(same.redeploy, false, same.reason);
});

test('measured bubble: waiting for an input is idle even inside a span; textbook bubble (p-1)/(m+p-1)', () => {
  // Two stages, one micro-batch: s0 F [0,10], s1 F issued at 0 but input ready at 10, ends 20; s1 B [20,40];
  // s0 B issued at 10, input (s1 B end) at 40, ends 60. Step 60 ms; busy s0 10 + 20 = 30, s1 10 + 20 = 30.
  const spans = [
    { stage: 0, serial: 'a', kind: 'F' as const, micro: 0, startMs: 0, endMs: 10 },
    { stage: 1, serial: 'b', kind: 'F' as const, micro: 0, startMs: 0, endMs: 20 },
    { stage: 1, serial: 'b', kind: 'B' as const, micro: 0, startMs: 20, endMs: 40 },
    { stage: 0, serial: 'a', kind: 'B' as const, micro: 0, startMs: 10, endMs: 60 },
  ];
  const b = measuredBubble(spans);
  close(b.stepMs, 60, 'step');
  close(b.idleFraction[0], 0.5, 'idle s0');
  close(b.idleFraction[1], 0.5, 'idle s1');
  close(b.bubble, 0.5, 'bubble');
  close(theoreticalBubble(2, 4), 1 / 5, 'theory');
});

test('4-bit weights: KV groups move in steps whose o_proj slice is a multiple of 32 columns', () => {
  // 8 heads / 4 KV groups of head_dim 8: 16 o_proj columns per group, so 2 groups (32 columns) at a time.
  assert.equal(kvGroupStepFor({ numHeads: 8, numKvHeads: 4, headDim: 8 }, 32), 2);
  assert.equal(kvGroupStepFor({ numHeads: 32, numKvHeads: 4, headDim: 64 }, 32), 1);
  assert.equal(kvGroupStepFor({ numHeads: 6, numKvHeads: 6, headDim: 6 }, 32), 7); // 6k never divides by 32 for k <= 6: none
  // The fixture's times make OpenCL worth some attention groups; with step 3 only 0 or 3 are allowed.
  const free = chooseHeadSplit(config, reply);
  const stepped = chooseHeadSplit(config, reply, { kvGroupStep: 3 });
  assert.ok(free.gpuKvGroups > 0);
  assert.ok(stepped.gpuKvGroups % 3 === 0, `${stepped.gpuKvGroups}`);
});

test('a head split is applied only on a non-CPU OpenCL device and for a gain of MIN_SPLIT_GAIN; a kept split as it was', () => {
  const split = (layerMsSplit: number): HeadSplit => ({ gpuKvGroups: 2, gpuMlpCols: 64, layerMsSplit, layerMsUnsplit: 10 } as HeadSplit);
  const gpu = { opencl: true, openclDeviceType: 'gpu' as const, name: 'QUALCOMM Adreno(TM) 740 (OpenCL 3.0)' };
  const pocl = { opencl: true, openclDeviceType: 'cpu' as const, name: 'pthread-skylake-avx512-Intel(R) Xeon(R) Processor (OpenCL 3.0, 2 CUs)' };
  assert.deepEqual(headSplitDecision(split(6), gpu, false), { apply: true });
  // The type decides, not the name: a GPU named like PoCL is a GPU, a CPU device with a GPU-like name is not.
  assert.deepEqual(headSplitDecision(split(6), { ...gpu, name: 'pthread-gpu' }, false), { apply: true });
  const onCpu = headSplitDecision(split(6), { ...pocl, name: 'Adreno' }, false);
  assert.equal(onCpu.apply, false);
  assert.match(onCpu.why!, /OpenCL device Adreno is a CPU device \(CL_DEVICE_TYPE_CPU\)/);
  // Gain: 1 - 9.5 / 10 = 5% < 10%; exactly (1 - MIN_SPLIT_GAIN) x unsplit is not enough either.
  const small = headSplitDecision(split(9.5), gpu, false);
  assert.equal(small.apply, false);
  assert.match(small.why!, /predicted layer gain 5\.0% < 10%/);
  assert.equal(headSplitDecision(split(10 * (1 - MIN_SPLIT_GAIN)), gpu, false).apply, false);
  // A resumed run's split is applied as recorded, even where a fresh choice would not be (same numbers as before).
  assert.deepEqual(headSplitDecision(split(9.5), pocl, true), { apply: true });
  assert.deepEqual(headSplitDecision({ ...split(6), gpuKvGroups: 0, gpuMlpCols: 0 }, gpu, true), { apply: false });
  // Without an OpenCL backend there is nothing to apply.
  assert.equal(headSplitDecision(split(6), { opencl: false, openclDeviceType: null, name: '' }, false).apply, false);
});

test('measureStages sends SET_SPLIT to a GPU agent and not to an agent whose OpenCL device is of type CPU', async () => {
  const sent = new Map<string, LayerSplit[]>();
  const stage = (serial: string, openclDeviceType: 'gpu' | 'cpu'): ProfilableStage => ({
    serial, layerStart: 4, layerEnd: 6,
    client: {
      profile: async () => reply,
      setSplit: async (s: LayerSplit[]) => void sent.set(serial, s),
      getLora: async () => [],
      stats: async () => ({ rssBytes: 100 << 20, busyUs: 0 }),
      forward: async () => undefined,
      capabilities: { backends: ['cpu(neon x4)', 'opencl(x)'], opencl: true, openclDeviceType },
    },
  });
  const facts = (serial: string) => ({ serial, budgetBytes: 2 ** 33 });
  const shape = { microBatchSize: 4, seqLen: 256, mode: 'backprop' as const, zoQueries: 1, zoQueriesPerOp: 1, relay: 'f16' as const, weightFormat: 'f32' as const };
  const [g, c] = await measureStages(config, [stage('gpu-phone', 'gpu'), stage('pocl-host', 'cpu')], facts, shape);
  const want = chooseHeadSplit(config, reply);
  assert.ok(g.splitApplied && g.splitError === undefined, g.splitError);
  assert.deepEqual(sent.get('gpu-phone'), [0, 1].map(() => ({ gpuKvGroups: want.gpuKvGroups, gpuMlpCols: want.gpuMlpCols })));
  assert.equal(c.splitApplied, false);
  assert.match(c.splitError!, /CL_DEVICE_TYPE_CPU/);
  assert.equal(sent.has('pocl-host'), false);
  // The applied split makes the GPU phone's profile faster; the other keeps the CPU's layer times.
  close(c.device.layerForwardMs, 12.625, 'unsplit forward');
  close(g.device.layerForwardMs, 12.625 * (want.layerMsSplit / want.layerMsUnsplit), 'split forward');
});

test('measureOpOverheadMs sends the stage the micro-batch it trains on (changing nothing) and keeps the median wall - busy - transfer', async () => {
  const sent: ForwardRequest[] = [];
  let busyUs = 0;
  const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
  // Each FORWARD: 40 ms on the host's clock (one 30, one 200: the median ignores both), the agent 25 ms busy.
  const wallsMs = [30, 40, 40, 200, 40, 40, 40];
  assert.equal(wallsMs.length, OVERHEAD_PROBES);
  const client = {
    forward: async (req: ForwardRequest) => {
      sent.push(req);
      await wait(wallsMs[(sent.length - 1) % wallsMs.length]!);
      busyUs += 25_000;
    },
    stats: async () => ({ rssBytes: 0, busyUs }),
  };
  const n = config.numLayers;
  // A middle stage, f16 relay, 10 MB/s on the wire: in and out are each 2 x 8 x hidden x 2 bytes (~6.6 ms both).
  const wireBytesPerSec = 1e7;
  const mid = await measureOpOverheadMs(config, { layerStart: 1, layerEnd: 2, client }, 2, 8, 'f16', { emptyRoundTripMs: 1, wireBytesPerSec });
  const transferMs = ((2 * (2 * 8 * config.hiddenSize * 2)) / wireBytesPerSec) * 1000;
  assert.ok(mid >= 15 - transferMs - 1 && mid < 15 - transferMs + 25, `overhead ${mid} ms (40 - 25 - ${transferMs.toFixed(1)} expected, timers are late, never early)`);
  const req = sent[0]!;
  assert.equal(req.flags & FORWARD_FLAG_KEEP_ACTIVATIONS, 0, 'keeps nothing: the probe changes no state');
  assert.equal(req.flags & FORWARD_FLAG_RELAY_F16, FORWARD_FLAG_RELAY_F16);
  assert.deepEqual([req.input.dtype, req.input.dims], ['f16', [2, 8, config.hiddenSize]]);
  assert.equal(req.targets, undefined);
  // The first stage reads token ids; the last gets targets and a mask (its forward computes the loss).
  sent.length = 0;
  await measureOpOverheadMs(config, { layerStart: 0, layerEnd: n, client }, 2, 8, 'f32', { emptyRoundTripMs: 1 });
  assert.deepEqual([sent[0]!.input.dtype, sent[0]!.input.dims], ['i32', [2, 8]]);
  assert.deepEqual([sent[0]!.targets?.dims, sent[0]!.mask?.dims], [[2, 8], [2, 8]]);
  assert.equal(sent.length, OVERHEAD_PROBES, 'the median of OVERHEAD_PROBES probes');
});

test('measureStages profiles every stage at once (as they compute in training) and probes their overheads at once', async () => {
  const running = { profile: 0, forward: 0 };
  const most = { profile: 0, forward: 0 };
  const during = async (what: 'profile' | 'forward', ms: number) => {
    most[what] = Math.max(most[what], ++running[what]);
    await new Promise((r) => setTimeout(r, ms));
    running[what]--;
  };
  const stage = (serial: string, layerStart: number, layerEnd: number): ProfilableStage => ({
    serial, layerStart, layerEnd,
    client: {
      profile: async () => (await during('profile', 20), reply),
      setSplit: async () => undefined,
      getLora: async () => [],
      stats: async () => ({ rssBytes: 100 << 20, busyUs: 0 }),
      forward: async () => during('forward', 2),
      capabilities: { backends: ['cpu(neon x4)'], opencl: false, openclDeviceType: null },
    },
  });
  const facts = (serial: string) => ({ serial, budgetBytes: 2 ** 33 });
  const shape = { microBatchSize: 4, seqLen: 256, mode: 'backprop' as const, zoQueries: 1, zoQueriesPerOp: 1, relay: 'f16' as const, weightFormat: 'f32' as const };
  const n = config.numLayers;
  const out = await measureStages(config, [stage('a', 0, 2), stage('b', 2, 4), stage('c', 4, n)], facts, shape);
  assert.deepEqual(out.map((m) => m.serial), ['a', 'b', 'c'], 'in stage order');
  assert.equal(most.profile, 3, 'all three PROFILEs in flight together');
  assert.equal(most.forward, 3, 'all three overhead probes in flight together');
});
