// Report (not a test): how the planner's predicted step time and throughput scale to 4, 8, 16 and 32 simulated
// phones of mixed speeds (fast / mid / slow repeating, 12 / 8 / 6 GiB) for TinyLlama-1.1B, 1F1B and P-RGE, q4_0
// weights, m = 2 x phones micro-batches; each row against the same phones all used (as the planner did before it
// could leave a phone out), with the planning time. Speeds from plan/default-profile.ts scaled per class.
// Run: node build/test/bench/plan-scaling.js
import type { ModelConfig } from '../../electron/core/model/hf-config.js';
import { planPipeline, type DeviceProfile, type PipelinePlan } from '../../electron/core/plan/partition.js';
import { defaultDeviceProfile } from '../../electron/core/plan/default-profile.js';
import { bubbleFraction } from '../../electron/core/plan/simulator.js';

const tinyLlama = { hiddenSize: 2048, intermediateSize: 5632, numHeads: 32, numKvHeads: 4, headDim: 64, vocabSize: 32000, numLayers: 22, attentionBias: false, tieWordEmbeddings: false } as ModelConfig;
const CLASSES = [{ name: 'fast', gflops: 40, ramGiB: 12 }, { name: 'mid', gflops: 20, ramGiB: 8 }, { name: 'slow', gflops: 10, ramGiB: 6 }];

const layers = (p: PipelinePlan) => p.stages.map((s) => `${s.serial.split('-')[0][0]}${s.layerEnd - s.layerStart}`).join(' ');
const count = (ds: Array<{ serial: string }>) => CLASSES.map((k) => `${ds.filter((d) => d.serial.startsWith(k.name)).length}${k.name[0]}`).join('+');

function* permutations<T>(items: T[]): Generator<T[]> {
  if (items.length <= 1) yield items.slice();
  else for (let i = 0; i < items.length; i++) for (const p of permutations([...items.slice(0, i), ...items.slice(i + 1)])) yield [items[i], ...p];
}

for (const mode of ['backprop', 'zo'] as const) {
  for (const n of [4, 8, 16, 32]) {
    const t = { loraRank: 8, microBatchSize: 1, seqLen: 256, microBatches: 2 * n, weightFormat: 'q4_0' as const, mode, zoQueries: 4 };
    const rows = t.microBatchSize * t.seqLen * (mode === 'zo' ? 2 * t.zoQueries : 1);
    const devices: DeviceProfile[] = Array.from({ length: n }, (_, i) => {
      const k = CLASSES[i % 3];
      return defaultDeviceProfile(tinyLlama, `${k.name}-${i}`, k.ramGiB * 2 ** 30 * 0.6, rows, t.seqLen, k.gflops);
    });
    const t0 = performance.now();
    const p = planPipeline(tinyLlama, devices, t);
    const planMs = performance.now() - t0;
    // Every phone: what the planner gave before it could leave phones out (every order up to 6 phones, else
    // fastest first; beyond 22 phones the fastest 22, one layer a stage at least).
    const byForward = [...devices].sort((x, y) => x.layerForwardMs + x.layerBackwardMs - (y.layerForwardMs + y.layerBackwardMs)).slice(0, tinyLlama.numLayers);
    const all = (n <= 6 ? [...permutations(devices)] : [byForward])
      .map((order) => planPipeline(tinyLlama, order, t, { keepOrder: true }))
      .reduce((x, y) => (y.stepMs < x.stepMs ? y : x));
    console.log(`${mode.padEnd(8)} ${String(n).padStart(2)} phones, m=${String(t.microBatches).padStart(2)}: step ${(p.stepMs / 1000).toFixed(2)} s, ${p.tokensPerSec.toFixed(0)} tok/s ` +
      `(every phone: ${(all.stepMs / 1000).toFixed(2)} s, ${all.tokensPerSec.toFixed(0)} tok/s), bubble ${(bubbleFraction(p.sim) * 100).toFixed(0)}% ` +
      `(${(bubbleFraction(all.sim) * 100).toFixed(0)}%), planned in ${planMs.toFixed(0)} ms; uses ${count(p.stages)} of ${count(devices)}; layers ${layers(p)}`);
  }
}
