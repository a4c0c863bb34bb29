// RoPE frequency tables (model/rope.ts) against transformers' own formulation, written here the way
// _compute_llama3_parameters writes it (torch.where over whole vectors, in f32), plus the rope_scaling parser.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRopeScaling, ropeInvFreq } from '../../electron/core/model/rope.js';
import { parseModelConfig } from '../../electron/core/model/hf-config.js';

const f32 = Math.fround;

/** transformers' default + llama3 rule, vector by vector, every step rounded to f32 as torch does. */
function transformersLlama3(D: number, base: number, factor: number, low: number, high: number, old: number): number[] {
  const invFreq = Array.from({ length: D / 2 }, (_, k) => f32(1 / f32(base ** f32((2 * k) / D))));
  const wavelen = invFreq.map((f) => f32((2 * Math.PI) / f));
  let llama = invFreq.map((f, i) => (wavelen[i]! > old / low ? f32(f / factor) : f));
  const smooth = wavelen.map((w) => f32((old / w - low) / (high - low)));
  const smoothed = llama.map((f, i) => f32(f32((1 - smooth[i]!) * f32(f / factor)) + f32(smooth[i]! * f)));
  const medium = wavelen.map((w) => !(w < old / high) && !(w > old / low));
  llama = llama.map((f, i) => (medium[i] ? smoothed[i]! : f));
  return llama;
}

test('llama3 inverse frequencies agree with transformers (Llama 3.1 8B parameters and a tiny model)', () => {
  for (const [D, base, factor, low, high, old] of [[128, 500000, 8, 1, 4, 8192], [16, 500000, 8, 1, 4, 64]] as const) {
    const ours = ropeInvFreq({ headDim: D, ropeTheta: base, ropeScaling: { type: 'llama3', factor, lowFreqFactor: low, highFreqFactor: high, originalMaxPositionEmbeddings: old } });
    const want = transformersLlama3(D, base, factor, low, high, old);
    // We compute in double and round once; torch rounds every step: a few f32 ulps apart in the smoothed band.
    for (let i = 0; i < D / 2; i++) assert.ok(Math.abs(ours[i]! - want[i]!) <= 1e-6 * want[i]!, `D=${D} pair ${i}: ${ours[i]} vs ${want[i]}`);
    // All three bands occur: kept, divided by factor, interpolated.
    const plain = ropeInvFreq({ headDim: D, ropeTheta: base, ropeScaling: null });
    const ratio = Array.from(ours, (v, i) => plain[i]! / v);
    assert.ok(ratio.some((r) => Math.abs(r - 1) < 1e-6) && ratio.some((r) => Math.abs(r - factor) < 1e-4) && ratio.some((r) => r > 1.01 && r < factor - 0.01));
  }
});

test('linear scaling divides every frequency; default is theta^(-2i/D); other rope types are refused', () => {
  const plain = ropeInvFreq({ headDim: 8, ropeTheta: 10000, ropeScaling: null });
  assert.deepEqual(Array.from(plain), [1, 0.1, 0.01, 0.001].map(f32));
  const linear = ropeInvFreq({ headDim: 8, ropeTheta: 10000, ropeScaling: parseRopeScaling({ type: 'linear', factor: 4 }, 'c.json') });
  assert.deepEqual(Array.from(linear), Array.from(plain, (f) => f32(f / 4)));
  assert.equal(parseRopeScaling({ rope_type: 'default' }, 'c.json'), null);
  assert.throws(() => parseRopeScaling({ rope_type: 'yarn', factor: 4 }, 'c.json'), /c\.json: rope_scaling type "yarn" is not supported; supported: default, linear, llama3/);
  assert.throws(() => parseRopeScaling({ rope_type: 'llama3', factor: 8 }, 'c.json'), /rope_scaling\.low_freq_factor must be a number/);
  const base = { model_type: 'mistral', hidden_size: 64, intermediate_size: 128, num_hidden_layers: 1, num_attention_heads: 4, vocab_size: 32 };
  assert.equal(parseModelConfig({ ...base, sliding_window: 4096 }, 'c.json').slidingWindow, 4096);
  assert.equal(parseModelConfig({ ...base, model_type: 'qwen2', sliding_window: 4096, use_sliding_window: false }, 'c.json').slidingWindow, null);
  assert.throws(() => parseModelConfig({ ...base, model_type: 'gemma' }, 'c.json'), /model_type "gemma" is not supported; supported: llama, mistral, qwen2/);
});
