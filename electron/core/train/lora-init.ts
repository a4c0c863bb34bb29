// Initial LoRA adapter for a layer range, owned by the host so every split of the model starts from identical
// values: A ~ U(-1/sqrt(in), 1/sqrt(in)) (PEFT's kaiming_uniform(a=sqrt(5))), B = 0. Seeded per (layer, module).
import type { ModelConfig } from '../model/hf-config.js';
import type { NamedTensor } from '../protocol/messages.js';
import { deriveSeed, mulberry32 } from '../data/rng.js';
import { LORA_MODULES, moduleDims, modulePath, type LoraModule } from './lora-modules.js';

export function initialLora(c: ModelConfig, layerStart: number, layerEnd: number, rank: number, modules: readonly LoraModule[], seed: number): NamedTensor[] {
  const out: NamedTensor[] = [];
  for (let layer = layerStart; layer < layerEnd; layer++) {
    for (const m of LORA_MODULES) {
      if (!modules.includes(m)) continue;
      const [inDim, outDim] = moduleDims(c, m);
      const rng = mulberry32(deriveSeed(seed, layer, LORA_MODULES.indexOf(m)));
      const bound = 1 / Math.sqrt(inDim);
      const a = new Float32Array(rank * inDim).map(() => (2 * rng() - 1) * bound);
      out.push({ name: `${modulePath(layer, m)}.lora_A`, tensor: { dtype: 'f32', dims: [rank, inDim], data: a } });
      out.push({ name: `${modulePath(layer, m)}.lora_B`, tensor: { dtype: 'f32', dims: [outDim, rank], data: new Float32Array(outDim * rank) } });
    }
  }
  return out;
}
