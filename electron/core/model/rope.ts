// RoPE frequencies of a model: config.json's rope_scaling parsed (transformers' "default", "linear" and "llama3"
// rope types) and the per-pair inverse-frequency table every consumer uses (the stage file's rope.inv_freq, the
// ONNX graph), so the agent and the reference graph rotate by the same angles. Not the rotation itself
// (kernels/src/ref/rope.cpp, onnx/llama-ops.ts).

/**
 * Llama 3.1-style frequency bands (transformers _compute_llama3_parameters), positions divided by a factor, or
 * per-pair divisors of the frequencies (llama.cpp's rope_freqs.weight, which a GGUF of a Llama 3 model carries
 * instead of the rope_scaling parameters).
 */
export type RopeScaling =
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositionEmbeddings: number }
  | { type: 'linear'; factor: number }
  | { type: 'divisors'; divisors: number[] };

export const SUPPORTED_ROPE_TYPES = ['default', 'linear', 'llama3'] as const;

/** What the frequency table needs from a model config. */
export interface RopeParams {
  headDim: number;
  ropeTheta: number;
  ropeScaling: RopeScaling | null;
}

/**
 * Parses config.json's `rope_scaling` (null/absent or rope_type "default": plain RoPE). Older configs name the
 * type "type" instead of "rope_type". Any other type (dynamic, yarn, longrope, ...) is refused: its angles depend
 * on the sequence length or need attention scaling this engine does not implement.
 */
export function parseRopeScaling(raw: unknown, path: string): RopeScaling | null {
  if (raw === undefined || raw === null) return null;
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new Error(`${path}: "rope_scaling" must be an object or null`);
  const r = raw as Record<string, unknown>;
  const type = r.rope_type ?? r.type;
  const num = (key: string, min: number): number => {
    const v = r[key];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min) {
      throw new Error(`${path}: rope_scaling.${key} must be a number >= ${min}, got ${JSON.stringify(v ?? null)}`);
    }
    return v;
  };
  if (type === 'default') return null;
  if (type === 'linear') return { type: 'linear', factor: num('factor', 1) };
  if (type === 'llama3') {
    const s: RopeScaling = {
      type: 'llama3',
      factor: num('factor', 1),
      lowFreqFactor: num('low_freq_factor', Number.MIN_VALUE),
      highFreqFactor: num('high_freq_factor', Number.MIN_VALUE),
      originalMaxPositionEmbeddings: num('original_max_position_embeddings', 1),
    };
    if (!(s.highFreqFactor > s.lowFreqFactor)) {
      throw new Error(`${path}: rope_scaling.high_freq_factor ${s.highFreqFactor} must exceed low_freq_factor ${s.lowFreqFactor}`);
    }
    return s;
  }
  throw new Error(
    `${path}: rope_scaling type ${JSON.stringify(type ?? null)} is not supported; supported: ${SUPPORTED_ROPE_TYPES.join(', ')} ` +
      '(dynamic, yarn and longrope change with the sequence length or scale attention, which this engine does not do)',
  );
}

/**
 * inv_freq[i] for i < headDim/2, as transformers computes it (in f32): theta^(-2i/D), then the rope_scaling rule.
 * llama3: pairs whose wavelength 2π/f exceeds original/low_freq_factor turn factor times slower, those below
 * original/high_freq_factor are kept, and the band between is interpolated by
 * smooth = (original/wavelength - low) / (high - low): (1 - smooth) f/factor + smooth f.
 */
export function ropeInvFreq(c: RopeParams): Float32Array {
  const D = c.headDim;
  const out = new Float32Array(D / 2);
  const s = c.ropeScaling;
  for (let i = 0; i < D / 2; i++) {
    const f = 1 / c.ropeTheta ** ((2 * i) / D);
    if (s === null) out[i] = f;
    else if (s.type === 'linear') out[i] = f / s.factor;
    else if (s.type === 'divisors') out[i] = f / s.divisors[i]!;
    else {
      const wavelen = (2 * Math.PI) / f;
      const lowWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
      const highWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor;
      if (wavelen > lowWavelen) out[i] = f / s.factor;
      else if (wavelen < highWavelen) out[i] = f;
      else {
        const smooth = (s.originalMaxPositionEmbeddings / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
        out[i] = (1 - smooth) * (f / s.factor) + smooth * f;
      }
    }
  }
  return out;
}
