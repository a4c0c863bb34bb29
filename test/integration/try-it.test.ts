// The "try it" path of the app's service: generate with onnxruntime streams pieces as 'generate-token' events that
// add up to the reply; greedy stories260K from BOS gives llama2.c's golden text; a run's adapter is used (its
// output differs from the base; the adapter math itself is checked in ort-generate.test.ts); sampling parameters
// reach the model; stopGenerate ends a generation with the text so far.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createService } from '../../electron/core/service.js';
import type { EventMessage, GenerateTokenEvent } from '../../electron/core/api/contract.js';
import { openModelFolder } from '../../electron/core/model/model-folder.js';
import { loadTokenizer } from '../../electron/core/model/tokenizer.js';
import { exportPeft } from '../../electron/core/export/peft.js';
import { randomTensor } from '../support/random-llama.js';
import { repoRoot } from '../support/local-agent.js';

const MODEL_DIR = join(repoRoot(), 'models', 'stories260K');
const GOLDEN = join(repoRoot(), 'test/fixtures/golden/stories260K-greedy-200.json');

test('try it: streamed ORT generation with and without a run adapter, and stop', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cfd-try-it-'));
  const service = await createService({ repoRoot: repoRoot(), stateDir: dir, runsDir: join(dir, 'runs'), adbPort: Number(process.env.CONFIDANT_TEST_ADB_PORT ?? 19037) });
  const events: GenerateTokenEvent[] = [];
  const off = service.onEvent((m: EventMessage) => {
    if (m.event === 'generate-token') events.push(m.data);
  });
  try {
    // Base model, greedy from BOS alone (empty prompt): the golden continuation, streamed piece by piece.
    const golden = (JSON.parse(await readFile(GOLDEN, 'utf8')) as { ids: number[] }).ids;
    const tok = await loadTokenizer(MODEL_DIR);
    const base = await service.generate({ runId: null, prompt: '', maxTokens: golden.length - 1, streamId: 'a' });
    assert.equal(base.text, tok.decode(golden));
    const pieces = events.filter((e) => e.streamId === 'a');
    assert.ok(pieces.length > 20, `only ${pieces.length} pieces streamed`);
    assert.deepEqual(pieces.map((e) => e.index), pieces.map((_, i) => i));
    assert.equal(pieces.map((e) => e.piece).join(''), base.text);

    // A run folder with an adapter that matters (random B): its continuation differs from the base model's.
    const c = (await openModelFolder(MODEL_DIR)).config;
    const runDir = join(dir, 'runs', 'run-1');
    await mkdir(runDir, { recursive: true });
    await writeFile(join(runDir, 'run.json'), JSON.stringify({ model: { dir: MODEL_DIR } }));
    const rank = 4;
    const lora = [];
    for (let layer = 0; layer < c.numLayers; layer++) {
      const path = `model.layers.${layer}.mlp.down_proj`;
      lora.push({ name: `${path}.lora_A`, tensor: { dims: [rank, c.intermediateSize], data: randomTensor(rank * c.intermediateSize, 10 + layer, 0.3) } });
      lora.push({ name: `${path}.lora_B`, tensor: { dims: [c.hiddenSize, rank], data: randomTensor(c.hiddenSize * rank, 20 + layer, 0.3) } });
    }
    await exportPeft(lora, { baseModel: MODEL_DIR, rank, alpha: 8, targetModules: ['down_proj'] }, join(runDir, 'adapter'));
    const prompt = 'Once upon a time';
    const withAdapter = await service.generate({ runId: 'run-1', prompt, maxTokens: 30 });
    const without = await service.generate({ runId: null, prompt, maxTokens: 30 });
    assert.notEqual(withAdapter.text, without.text);
    // Sampling parameters reach the model: a seed reproduces, another seed differs.
    const sampled = (seed: number) => service.generate({ runId: 'run-1', prompt, maxTokens: 30, temperature: 1, topP: 0.95, seed });
    assert.equal((await sampled(4)).text, (await sampled(4)).text);
    assert.notEqual((await sampled(4)).text, (await sampled(5)).text);

    // Stop after the first piece: the reply is the text so far, much shorter than 4096 tokens.
    const stopped = service.generate({ runId: null, prompt, maxTokens: 4096, temperature: 1, seed: 1, streamId: 'b' });
    while (!events.some((e) => e.streamId === 'b')) await new Promise((r) => setTimeout(r, 1));
    await service.stopGenerate({ streamId: 'b' });
    const { text } = await stopped;
    assert.equal(text, events.filter((e) => e.streamId === 'b').map((e) => e.piece).join(''));
    assert.ok(tok.encode(text, { addBos: false }).length < 500, 'stop did not stop the generation');
    await assert.rejects(service.stopGenerate({ streamId: 'b' }), /no generation named b is running/);
  } finally {
    off();
    await service.dispose();
    await rm(dir, { recursive: true, force: true });
  }
});
