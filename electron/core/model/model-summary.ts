// What the Model step shows about an opened model: family, shape, how its weights are stored, RoPE scaling, the
// attention window, and the parameter count. Reads nothing beyond what openModel already parsed.
import type { ModelFacts } from '../api/types.js';
import type { ModelFolder } from './model-folder.js';

function ropeText(folder: ModelFolder): string | null {
  const r = folder.config.ropeScaling;
  if (!r) return null;
  if (r.type === 'divisors') return 'per-frequency divisors (GGUF rope_freqs)';
  return `${r.type} ×${r.factor}`;
}

export function modelFacts(folder: ModelFolder): ModelFacts {
  const c = folder.config;
  const storage = new Map<string, number>();
  let paramCount = 0;
  for (const [name, loc] of folder.tensors) {
    const n = loc.info.shape.reduce((a, b) => a * b, 1);
    paramCount += n;
    // A GGUF tensor is read back as F32/F16, but it is stored (and sized on disk) as its own type, e.g. Q4_0.
    const type = folder.gguf?.views.get(name)?.gguf.type ?? loc.info.dtype;
    storage.set(type, (storage.get(type) ?? 0) + n);
  }
  return {
    source: folder.source,
    modelType: c.modelType,
    numLayers: c.numLayers,
    hiddenSize: c.hiddenSize,
    intermediateSize: c.intermediateSize,
    numHeads: c.numHeads,
    numKvHeads: c.numKvHeads,
    vocabSize: c.vocabSize,
    paramCount,
    storage: [...storage].sort((a, b) => b[1] - a[1]),
    ropeScaling: ropeText(folder),
    slidingWindow: c.slidingWindow,
    tiedEmbeddings: c.tieWordEmbeddings,
    attentionBias: c.attentionBias,
  };
}
