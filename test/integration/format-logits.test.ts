// Every base-weight format of the bundled stories260K (a real pretrained Llama) through packer, protocol and the
// real agent, against the f32 stage on the same text: the error each format costs where it matters (logits, loss,
// the next-token choice), printed, and held to bounds set from the formats' bits. The f32 side is itself the
// golden-checked path (agent.golden, pipeline-local.test.ts). The packer's f16 fallback for the 172-wide down
// projection applies to the 4-bit formats here (it is reported by the pack).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openModelFolder } from '../../electron/core/model/model-folder.js';
import { packStage } from '../../electron/core/model/stage-pack.js';
import { loadTokenizer } from '../../electron/core/model/tokenizer.js';
import { WEIGHT_FORMATS, type WeightFormat } from '../../electron/core/model/quantize.js';
import { FORWARD_FLAG_RETURN_LOGITS, FORWARD_OUTPUT_LOSS } from '../../electron/core/protocol/messages.js';
import { needLocalAgent, repoRoot, startLocalAgent, type LocalAgent } from '../support/local-agent.js';

const skip = needLocalAgent();
const T = 128;
const agents: LocalAgent[] = [];
after(async () => Promise.all(agents.map((a) => a.stop())));

/** Bounds per format: relative RMS of the logits' difference to f32, and the relative change of the mean loss. */
const BOUNDS: Record<WeightFormat, { logitsRelRms: number; lossRel: number; top1: number }> = {
  f32: { logitsRelRms: 0, lossRel: 0, top1: 1 },
  f16: { logitsRelRms: 2e-3, lossRel: 1e-3, top1: 0.99 },
  int8: { logitsRelRms: 3e-2, lossRel: 1e-2, top1: 0.95 },
  q4_0: { logitsRelRms: 0.3, lossRel: 0.15, top1: 0.7 },
  fp4: { logitsRelRms: 0.3, lossRel: 0.15, top1: 0.7 },
};

test('each weight format vs f32 on stories260K: logits, loss and top-1 within the format bounds', { skip }, async () => {
  const modelDir = join(repoRoot(), 'models/stories260K');
  const folder = await openModelFolder(modelDir);
  const c = folder.config;
  const tok = await loadTokenizer(modelDir);
  const text = await readFile(join(repoRoot(), 'datasets/demo-stories/stories.txt'), 'utf8');
  const ids = [tok.bosTokenId ?? 1, ...tok.encode(text.slice(0, 4000))].slice(0, T + 1);
  assert.equal(ids.length, T + 1);
  const dir = await mkdtemp(join(tmpdir(), 'confidant-formats-'));
  try {
    const agent = await startLocalAgent({ label: 'formats' });
    agents.push(agent);
    const run = async (f: WeightFormat) => {
      const path = join(dir, `whole-${f}.cfst`);
      await packStage(folder, { layerStart: 0, layerEnd: c.numLayers, hasEmbedding: true, hasHead: true }, path, { weightFormat: f });
      await agent.client.loadStage({ path, loraRank: 0, loraAlpha: 0, targetMask: 0, flags: 0 });
      const r = await agent.client.forward({
        microId: 1,
        flags: FORWARD_FLAG_RETURN_LOGITS,
        input: { dtype: 'i32', dims: [1, T], data: Int32Array.from(ids.slice(0, T)) },
        targets: { dtype: 'i32', dims: [1, T], data: Int32Array.from(ids.slice(1)) },
        mask: { dtype: 'f32', dims: [1, T], data: new Float32Array(T).fill(1) },
      });
      assert.equal(r.outputKind, FORWARD_OUTPUT_LOSS);
      if (r.outputKind !== FORWARD_OUTPUT_LOSS || !r.logits) throw new Error('no logits');
      return { loss: r.lossSum / r.weightSum, logits: r.logits.data as Float32Array };
    };
    const ref = await run('f32');
    const argmax = (l: Float32Array, t: number) => {
      let best = 0;
      for (let v = 1; v < c.vocabSize; v++) if (l[t * c.vocabSize + v]! > l[t * c.vocabSize + best]!) best = v;
      return best;
    };
    const lines: string[] = [`stories260K, ${T} tokens of the demo stories; f32 loss ${ref.loss.toFixed(4)}`];
    for (const f of WEIGHT_FORMATS) {
      const got = await run(f);
      let sqErr = 0;
      let sqRef = 0;
      let maxAbs = 0;
      for (let i = 0; i < ref.logits.length; i++) {
        const e = got.logits[i]! - ref.logits[i]!;
        sqErr += e * e;
        sqRef += ref.logits[i]! ** 2;
        maxAbs = Math.max(maxAbs, Math.abs(e));
      }
      let same = 0;
      for (let t = 0; t < T; t++) if (argmax(got.logits, t) === argmax(ref.logits, t)) same++;
      const relRms = Math.sqrt(sqErr / sqRef);
      const lossRel = Math.abs(got.loss - ref.loss) / ref.loss;
      lines.push(`${f.padEnd(5)} logits rel RMS ${relRms.toExponential(2)}, max |diff| ${maxAbs.toExponential(2)}, loss ${got.loss.toFixed(4)} (${(100 * lossRel).toFixed(2)}%), top-1 same ${same}/${T}`);
      const b = BOUNDS[f];
      assert.ok(relRms <= b.logitsRelRms, `${f}: logits rel RMS ${relRms} > ${b.logitsRelRms}`);
      assert.ok(lossRel <= b.lossRel, `${f}: loss ${got.loss} vs f32 ${ref.loss}`);
      assert.ok(same / T >= b.top1, `${f}: top-1 agrees at ${same}/${T} positions`);
    }
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
