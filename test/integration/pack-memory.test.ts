// Packing reads a model tensor by tensor, in chunks: host memory must not grow with the model's size (a 1B model
// must never need 2x its size). A ~180 MB random checkpoint (a TinyLlama-1.1B layer) is packed in a child process,
// from its safetensors and from a GGUF of it, and the child's peak resident memory is compared with its resident
// memory just before packing (after the model was opened).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { writeLlamaGguf } from '../../electron/core/model/gguf-llama.js';
import { minimalSpmVocab } from '../../electron/core/model/gguf-vocab.js';
import { openModelFolder } from '../../electron/core/model/model-folder.js';
import { TINYLLAMA_LAYER } from '../bench/bench-shapes.js';
import { writeRandomLlama } from '../bench/random-model.js';
import { repoRoot } from '../support/local-agent.js';

const tmp = mkdtempSync(join(tmpdir(), 'confidant-pack-mem-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** Packs the whole model at `modelPath` in a fresh Node process; returns its resident memory before and at peak. */
function packInChild(modelPath: string, format: string): { beforeBytes: number; peakBytes: number } {
  const lib = (p: string) => pathToFileURL(join(repoRoot(), 'build', 'electron', 'core', 'model', p)).href;
  const script = `
    const { openModel } = await import(${JSON.stringify(lib('model-folder.js'))});
    const { packStage } = await import(${JSON.stringify(lib('stage-pack.js'))});
    const model = await openModel(${JSON.stringify(modelPath)});
    const beforeBytes = process.memoryUsage().rss;
    const c = model.config;
    await packStage(model, { layerStart: 0, layerEnd: c.numLayers, hasEmbedding: true, hasHead: true }, ${JSON.stringify(join(tmp, `out-${format}.stage`))}, { weightFormat: ${JSON.stringify(format)} });
    console.log(JSON.stringify({ beforeBytes, peakBytes: process.resourceUsage().maxRSS * 1024 }));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { beforeBytes: number; peakBytes: number };
}

test('packing streams: peak memory does not grow with the model, from safetensors and from GGUF', { timeout: 300_000 }, async () => {
  // Garbage from the chunk buffers is collected lazily, so some growth is expected; what must not happen is growth
  // that scales with the model. Two sizes, 1 and 3 TinyLlama layers (~170 and ~510 MiB), show which it is.
  const growth = new Map<string, number>();
  let bigBytes = 0;
  let smallBytes = 0;
  for (const layers of [1, 3]) {
    const hfDir = join(tmp, `hf-${layers}`);
    await writeRandomLlama(hfDir, { ...TINYLLAMA_LAYER, numLayers: layers }, 7);
    const modelBytes = statSync(join(hfDir, 'model.safetensors')).size;
    if (layers === 1) smallBytes = modelBytes;
    else bigBytes = modelBytes;
    const ggufPath = join(tmp, `model-${layers}-f16.gguf`);
    await writeLlamaGguf(await openModelFolder(hfDir), ggufPath, { dtype: 'f16', vocab: minimalSpmVocab(TINYLLAMA_LAYER.vocabSize) });
    for (const [source, path, format] of [['safetensors', hfDir, 'f32'], ['safetensors', hfDir, 'q4_0'], ['gguf', ggufPath, 'q4_0']] as const) {
      const { beforeBytes, peakBytes } = packInChild(path, format);
      growth.set(`${source} ${format} ${layers}`, peakBytes - beforeBytes);
      process.stderr.write(`pack ${source} -> ${format}: model ${(modelBytes / 2 ** 20).toFixed(0)} MiB, RSS ${(beforeBytes / 2 ** 20).toFixed(0)} -> peak ${(peakBytes / 2 ** 20).toFixed(0)} MiB\n`);
    }
    rmSync(hfDir, { recursive: true, force: true });
    rmSync(ggufPath, { force: true });
  }
  for (const key of ['safetensors f32', 'safetensors q4_0', 'gguf q4_0']) {
    const [small, big] = [growth.get(`${key} 1`)!, growth.get(`${key} 3`)!];
    assert.ok(big < 0.4 * bigBytes, `${key}: packing a ${bigBytes}-byte model grew resident memory by ${big} bytes`);
    assert.ok(big - small < 0.25 * (bigBytes - smallBytes), `${key}: growth went from ${small} to ${big} bytes as the model tripled: it scales with the model`);
  }
});
