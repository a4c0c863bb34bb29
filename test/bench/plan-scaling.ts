// Report (not a test): how the planner's predicted step time and throughput scale to 4, 8 and 16 simulated phones
// of mixed speeds (fast / mid / slow repeating, 6 / 8 / 12 GiB) for TinyLlama-1.1B, 1F1B and P-RGE, q4_0 weights.
// Speeds from plan/default-profile.ts scaled per class. Run: node build/test/bench/plan-scaling.js
import type { ModelConfig } from '../../electron/core/model/hf-config.js';
import { planPipeline } from '../../electron/core/plan/partition.js';
import { defaultDeviceProfile } from '../../electron/core/plan/default-profile.js';
import { bubbleFraction } from '../../electron/core/plan/simulator.js';

const tinyLlama = { hiddenSize: 2048, intermediateSize: 5632, numHeads: 32, numKvHeads: 4, headDim: 64, vocabSize: 32000, numLayers: 22, attentionBias: false, tieWordEmbeddings: false } as ModelConfig;
const CLASSES = [{ name: 'fast', gflops: 40, ramGiB: 12 }, { name: 'mid', gflops: 20, ramGiB: 8 }, { name: 'slow', gflops: 10, ramGiB: 6 }];

for (const mode of ['backprop', 'zo'] as const) {
  for (const n of [4, 8, 16]) {
    const t = { loraRank: 8, microBatchSize: 1, seqLen: 256, microBatches: 2 * n, weightFormat: 'q4_0' as const, mode, zoQueries: 4 };
    const rows = t.microBatchSize * t.seqLen * (mode === 'zo' ? 2 * t.zoQueries : 1);
    const devices = Array.from({ length: n }, (_, i) => {
      const k = CLASSES[i % 3];
      return defaultDeviceProfile(tinyLlama, `${k.name}-${i}`, k.ramGiB * 2 ** 30 * 0.6, rows, t.seqLen, k.gflops);
    });
    const p = planPipeline(tinyLlama, devices, t);
    const layers = p.stages.map((s) => `${s.serial.split('-')[0][0]}${s.layerEnd - s.layerStart}`).join(' ');
    console.log(`${mode.padEnd(8)} ${String(n).padStart(2)} phones, m=${t.microBatches}: step ${(p.stepMs / 1000).toFixed(2)} s, ${p.tokensPerSec.toFixed(0)} tok/s, ` +
      `bottleneck ${p.bottleneckMs.toFixed(0)} ms/micro-batch, bubble ${(bubbleFraction(p.sim) * 100).toFixed(0)}%, order: ${p.orderSearch}; layers ${layers}`);
  }
}
