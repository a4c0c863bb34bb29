// Text generation through the pipeline of stage agents: each new token re-runs the whole prefix (no KV cache on
// the agents yet), greedy or with temperature. For the before/after samples of a run and the "try it" step.
import type { TextTokenizer } from '../model/tokenizer.js';
import { mulberry32 } from '../data/rng.js';
import { runPass, type StageHandle } from './pipeline.js';

export interface GenerateOptions {
  maxNewTokens: number;
  /** 0 = greedy (argmax). */
  temperature: number;
  seed: number;
  stopIds: number[];
  /** Longest prefix the model accepts (its max_position_embeddings). */
  maxPositions: number;
}

function pick(logits: Float32Array, offset: number, vocab: number, temperature: number, rng: () => number): number {
  let best = 0;
  for (let v = 1; v < vocab; v++) if (logits[offset + v] > logits[offset + best]) best = v;
  if (temperature <= 0) return best;
  const weights = new Float64Array(vocab);
  let total = 0;
  for (let v = 0; v < vocab; v++) total += weights[v] = Math.exp((logits[offset + v] - logits[offset + best]) / temperature);
  let r = rng() * total;
  for (let v = 0; v < vocab; v++) if ((r -= weights[v]) <= 0) return v;
  return best;
}

/** Continues `promptIds` and returns only the new ids. */
export async function generateIds(stages: StageHandle[], promptIds: number[], o: GenerateOptions): Promise<number[]> {
  const ids = [...promptIds];
  const rng = mulberry32(o.seed);
  for (let n = 0; n < o.maxNewTokens && ids.length < o.maxPositions; n++) {
    const T = ids.length;
    const pass = await runPass(
      stages,
      [{ tokens: Int32Array.from(ids), targets: new Int32Array(T), mask: new Float32Array(T), batchSize: 1, seqLen: T, maskSum: 0 }],
      { train: false, wantLogits: true },
    );
    const logits = pass.logits[0];
    if (!logits || logits.dtype !== 'f32') throw new Error('the last stage returned no logits');
    const vocab = logits.dims[logits.dims.length - 1];
    const next = pick(logits.data as Float32Array, (T - 1) * vocab, vocab, o.temperature, rng);
    ids.push(next);
    if (o.stopIds.includes(next)) break;
  }
  return ids.slice(promptIds.length);
}

export async function generateText(stages: StageHandle[], tok: TextTokenizer, prompt: string, o: GenerateOptions): Promise<string> {
  const promptIds = tok.encode(prompt, { addBos: true });
  const newIds = await generateIds(stages, promptIds, o);
  // Decode prompt and continuation together: SentencePiece decoders strip the first token's leading space.
  return tok.decode([...promptIds, ...newIds.filter((id) => !o.stopIds.includes(id))]);
}
