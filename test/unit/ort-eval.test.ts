// ort-eval.ts against a naive recomputation: the held-out loss of stories260K and of stories260K + a PEFT adapter
// (written with exportPeft) equals the mask-weighted mean of -log softmax(logits)[target] computed here from the
// logits of the base and of the merged weights W + scale * B @ A.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openModelFolder } from '../../electron/core/model/model-folder.js';
import { readLlamaWeights } from '../../electron/core/onnx/llama-graph.js';
import { exportPeft } from '../../electron/core/export/peft.js';
import { ortHeldOutLoss } from '../../electron/core/train/ort-eval.js';
import { fullLogits, randomTensor } from '../support/random-llama.js';
import { repoRoot } from '../support/local-agent.js';

const MODEL_DIR = join(repoRoot(), 'models', 'stories260K');
const GOLDEN = join(repoRoot(), 'test/fixtures/golden/stories260K-greedy-200.json');

/** Mean of -log softmax(row)[target] over masked positions, with nothing shared with ort-loss.ts. */
function naiveLoss(logits: Float32Array, V: number, rows: { targets: number[]; mask: number[] }[]): number {
  let sum = 0;
  let weight = 0;
  const T = rows[0]!.targets.length;
  rows.forEach((r, b) => {
    for (let t = 0; t < T; t++) {
      if (r.mask[t] === 0) continue;
      const row = Array.from(logits.subarray((b * T + t) * V, (b * T + t + 1) * V));
      const logZ = Math.log(row.reduce((a, x) => a + Math.exp(x), 0));
      sum += r.mask[t]! * (logZ - row[r.targets[t]!]!);
      weight += r.mask[t]!;
    }
  });
  return sum / weight;
}

test('ORT held-out loss of base and base + adapter equals a naive recomputation from logits', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cfd-ort-eval-'));
  try {
    const folder = await openModelFolder(MODEL_DIR);
    const c = folder.config;
    const base = await readLlamaWeights(folder, { whole: true });
    // 11 samples of 16 tokens from the golden text, the last 5 positions of every third one masked out (padding).
    const ids = (JSON.parse(await readFile(GOLDEN, 'utf8')) as { ids: number[] }).ids;
    const T = 16;
    const samples = Array.from({ length: 11 }, (_, i) => ({
      tokens: ids.slice(i * 17, i * 17 + T),
      targets: ids.slice(i * 17 + 1, i * 17 + T + 1),
      mask: Array.from({ length: T }, (_, t) => (i % 3 === 0 && t >= T - 5 ? 0 : 1)),
    }));
    const evalSet = join(dir, 'eval-set.jsonl');
    await writeFile(evalSet, samples.map((s) => JSON.stringify(s)).join('\n') + '\n');

    const rank = 4;
    const alpha = 8;
    const merged = new Map(base);
    const lora = [];
    let seed = 40;
    for (let layer = 0; layer < c.numLayers; layer++) {
      for (const [m, inDim, outDim] of [['self_attn.q_proj', c.hiddenSize, c.numHeads * c.headDim], ['mlp.down_proj', c.intermediateSize, c.hiddenSize]] as const) {
        const path = `model.layers.${layer}.${m}`;
        const a = randomTensor(rank * inDim, seed++, 0.3);
        const b = randomTensor(outDim * rank, seed++, 0.3);
        lora.push({ name: `${path}.lora_A`, tensor: { dims: [rank, inDim], data: a } }, { name: `${path}.lora_B`, tensor: { dims: [outDim, rank], data: b } });
        const w = Float32Array.from(base.get(`${path}.weight`)!);
        for (let o = 0; o < outDim; o++) for (let i = 0; i < inDim; i++) {
          let s = 0;
          for (let r = 0; r < rank; r++) s += b[o * rank + r]! * a[r * inDim + i]!;
          w[o * inDim + i]! += (alpha / rank) * s;
        }
        merged.set(`${path}.weight`, w);
      }
    }
    const adapterDir = join(dir, 'adapter');
    await exportPeft(lora, { baseModel: MODEL_DIR, rank, alpha, targetModules: ['q_proj', 'down_proj'] }, adapterDir);

    const got = await ortHeldOutLoss(MODEL_DIR, evalSet, adapterDir);
    const rows = samples.map((s) => s.tokens);
    const before = naiveLoss(await fullLogits(c, base, rows), c.vocabSize, samples);
    const after = naiveLoss(await fullLogits(c, merged, rows), c.vocabSize, samples);
    assert.ok(Math.abs(got.before - before) < 1e-5, `before: ORT ${got.before}, naive ${before}`);
    assert.ok(Math.abs(got.after - after) < 1e-4, `after: ORT ${got.after}, naive ${after}`);
    assert.ok(Math.abs(after - before) > 0.01, 'the adapter did not change the loss: the check above would not see it ignored');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
