// A short training run (runTrainJob, two real local agents, no adb) on the GSM8K JSONL fixture: it trains, and the
// held-out loss it reports is over completion tokens only. Checked by recomputing that loss on a fresh agent from
// the run's eval-set.jsonl, (1) as recorded, (2) with every masked target replaced (must not change), (3) with all
// positions counted (must change), and by rebuilding each held-out mask from the prompt's own tokenization.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalDeployer } from '../../electron/core/deploy/local-agent.js';
import { DEFAULT_TRAIN_SETTINGS, runTrainJob } from '../../electron/core/train/job.js';
import { openModelFolder } from '../../electron/core/model/model-folder.js';
import { packStage } from '../../electron/core/model/stage-pack.js';
import { loadTokenizer } from '../../electron/core/model/tokenizer.js';
import { readDataset } from '../../electron/core/data/read-dataset.js';
import { collateBatch, type TrainingSample } from '../../electron/core/data/samples.js';
import { runPass } from '../../electron/core/train/pipeline.js';
import { initialLora } from '../../electron/core/train/lora-init.js';
import { LORA_MODULES, targetMask } from '../../electron/core/train/lora-modules.js';
import { defaultAgentBinary, needLocalAgent, repoRoot, startLocalAgent } from '../support/local-agent.js';

const skip = needLocalAgent();

test('training on JSONL prompt/completion rows: held-out loss counts completion tokens only', { skip }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'confidant-jsonl-run-'));
  const modelDir = join(repoRoot(), 'models/stories260K');
  const dataPath = join(repoRoot(), 'test/fixtures/data/gsm8k/train_head.jsonl');
  const seqLen = 256;
  const settings = { ...DEFAULT_TRAIN_SETTINGS, steps: 4, microBatches: 2, microBatchSize: 2, seqLen, evalSequences: 8, sampleTokens: 2, validationFraction: 0.3 };
  try {
    const result = await runTrainJob({
      ...settings,
      modelDir,
      datasetPath: dataPath,
      dataset: { format: 'jsonl' },
      runsDir: join(dir, 'runs'),
      cacheDir: join(dir, 'cache'),
      devices: [0, 1].map((i) => ({ serial: `local-${i}`, budgetBytes: 512 * 2 ** 20, speed: 1 }),),
      deployer: new LocalDeployer(defaultAgentBinary()),
    });
    assert.equal(result.losses.length, 4);
    assert.ok(result.losses.every(Number.isFinite), `losses ${result.losses}`);

    const evalSet = (await readFile(join(result.runDir, 'eval-set.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { tokens: number[]; targets: number[]; mask: number[] });
    assert.ok(evalSet.length >= 2, `${evalSet.length} held-out rows`);

    // Each held-out mask, rebuilt independently: trained from where the prompt's own tokens stop, through EOS.
    const tok = await loadTokenizer(modelDir);
    const rows = (await readDataset(dataPath)).examples.flatMap((e) => (e.kind === 'prompt-completion' ? [e] : []));
    for (const s of evalSet) {
      const row = rows.find((r) => tok.encode(r.prompt + r.completion).slice(0, 32).every((id, t) => s.tokens[t] === id))!;
      assert.ok(row, 'every held-out sample is a row of the file');
      const full = [...tok.encode(row.prompt + row.completion), tok.eosTokenId!];
      const promptLen = tok.encode(row.prompt).length;
      const n = Math.min(seqLen, full.length - 1);
      assert.deepEqual(s.mask, Array.from({ length: seqLen }, (_, t) => (t < n && t + 1 >= promptLen ? 1 : 0)), `line ${row.line}`);
    }

    // Recompute "before" (LoRA B = 0, the base model) on a fresh whole-model agent.
    const folder = await openModelFolder(modelDir);
    const stageFile = join(dir, 'whole.cfst');
    await packStage(folder, { layerStart: 0, layerEnd: folder.config.numLayers, hasEmbedding: true, hasHead: true }, stageFile);
    const agent = await startLocalAgent({ label: 'recompute' });
    try {
      await agent.client.loadStage({ path: stageFile, loraRank: settings.loraRank, loraAlpha: settings.loraAlpha, targetMask: targetMask(LORA_MODULES), flags: 0 });
      await agent.client.setLora(initialLora(folder.config, 0, folder.config.numLayers, settings.loraRank, LORA_MODULES, settings.seed));
      const stages = [{ serial: 'recompute', client: agent.client }];
      const lossOf = async (samples: TrainingSample[]) => {
        const micros = [];
        for (let i = 0; i < samples.length; i += settings.microBatchSize) micros.push(collateBatch(samples.slice(i, i + settings.microBatchSize)));
        const pass = await runPass(stages, micros, { train: false });
        return pass.lossSum / pass.weightSum;
      };
      const asSample = (s: (typeof evalSet)[number], targets: number[], mask: number[]): TrainingSample => ({
        tokens: Int32Array.from(s.tokens), targets: Int32Array.from(targets), mask: Float32Array.from(mask), docIndex: 0, chunkIndex: 0,
      });
      const recorded = await lossOf(evalSet.map((s) => asSample(s, s.targets, s.mask)));
      const scrambled = await lossOf(evalSet.map((s) => asSample(s, s.targets.map((id, t) => (s.mask[t] ? id : (id * 7 + 13 + t) % 512)), s.mask)));
      const everything = await lossOf(evalSet.map((s) => asSample(s, s.targets, s.tokens.map(() => 1))));
      const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(a), Math.abs(b));
      assert.ok(rel(recorded, result.evalLossBefore) < 1e-5, `recomputed ${recorded} vs run's ${result.evalLossBefore}`);
      assert.equal(scrambled, recorded, 'masked targets contribute nothing to the loss');
      assert.ok(rel(everything, recorded) > 1e-3, `counting prompt and padding positions changes the loss (${everything} vs ${recorded})`);
    } finally {
      await agent.stop();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
