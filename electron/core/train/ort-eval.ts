// An independent check of a run's held-out loss: the base model and the base plus the run's exported PEFT adapter,
// each run by onnxruntime (full-sequence ONNX graph, no agents) on the exact samples of the run's eval-set.jsonl.
// Agreement with the agents' "before" and "after" numbers checks the engine, the LoRA math and the export at once.
import { readFile } from 'node:fs/promises';
import type { LossSample } from '../onnx/ort-loss.js';
import { OrtLanguageModel } from '../onnx/ort-generate.js';
import { addPeftAdapter, loadLlmWeights } from '../onnx/ort-llm-weights.js';

export interface OrtHeldOutLoss {
  before: number;
  after: number;
}

/** Reads eval-set.jsonl (RunFolder.writeEvalSet): one {tokens, targets, mask} object per line. */
export async function readEvalSet(path: string): Promise<LossSample[]> {
  const lines = (await readFile(path, 'utf8')).split('\n').filter((l) => l.trim() !== '');
  return lines.map((line, i) => {
    const s = JSON.parse(line) as Partial<LossSample>;
    if (!Array.isArray(s.tokens) || !Array.isArray(s.targets) || !Array.isArray(s.mask)) throw new Error(`${path}:${i + 1}: expected {tokens, targets, mask} arrays`);
    return s as LossSample;
  });
}

async function lossOf(model: Awaited<ReturnType<typeof loadLlmWeights>>, samples: LossSample[], loraScale?: number): Promise<number> {
  const m = await OrtLanguageModel.create(model.config, model.weights, { generate: false, loss: true, loraScale });
  try {
    return (await m.loss(samples)).loss;
  } finally {
    await m.close();
  }
}

/** Held-out loss of the base model and of base + adapter on the samples in `evalSetPath`. */
export async function ortHeldOutLoss(modelDir: string, evalSetPath: string, adapterDir: string): Promise<OrtHeldOutLoss> {
  const samples = await readEvalSet(evalSetPath);
  const model = await loadLlmWeights(modelDir);
  const before = await lossOf(model, samples);
  const after = await lossOf(model, samples, await addPeftAdapter(model.weights, adapterDir));
  return { before, after };
}
