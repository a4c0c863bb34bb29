// A whole training run (runTrainJob) with 4-bit base weights over two real agent processes (LocalDeployer, no
// adb): the stages are packed as q4_0 (the 172-wide down projection of the bundled model falls back to f16, and the
// run says so), the agents train on them, the held-out loss goes down, and the run records the format.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalDeployer } from '../../electron/core/deploy/local-agent.js';
import { DEFAULT_TRAIN_SETTINGS, runTrainJob } from '../../electron/core/train/job.js';
import type { TrainEvent } from '../../electron/core/api/types.js';
import { defaultAgentBinary, needLocalAgent, repoRoot } from '../support/local-agent.js';

const skip = needLocalAgent();

test('training on q4_0 base weights: smaller stages, falling held-out loss, format recorded', { skip }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'confidant-q4-run-'));
  try {
    const events: TrainEvent[] = [];
    const result = await runTrainJob({
      ...DEFAULT_TRAIN_SETTINGS,
      weightFormat: 'q4_0',
      steps: 12,
      evalSequences: 8,
      sampleTokens: 4,
      modelDir: join(repoRoot(), 'models/stories260K'),
      datasetPath: join(repoRoot(), 'datasets/demo-stories/stories.txt'),
      runsDir: join(dir, 'runs'),
      cacheDir: join(dir, 'cache'),
      devices: [0, 1].map((i) => ({ serial: `local-${i}`, budgetBytes: 512 * 2 ** 20, speed: 1 })),
      deployer: new LocalDeployer(defaultAgentBinary()),
      onEvent: (e) => events.push(e),
    });
    assert.ok(result.losses.every(Number.isFinite), `losses ${result.losses}`);
    assert.ok(result.evalLossAfter < result.evalLossBefore, `held-out loss ${result.evalLossBefore} -> ${result.evalLossAfter}`);
    const run = JSON.parse(await readFile(join(result.runDir, 'run.json'), 'utf8')) as { settings: { weightFormat: string } };
    assert.equal(run.settings.weightFormat, 'q4_0');
    const details = events.flatMap((e) => (e.type === 'phase' ? [e.detail] : []));
    assert.ok(details.some((d) => d.includes('q4_0 base weights')), details.join(' | '));
    assert.ok(details.some((d) => /kept as f16 \(.*32/.test(d)), `a fallback is reported: ${details.join(' | ')}`);
    // Weight bytes per stage: q4_0 where it applies is 18 bytes per 32 weights, against 128 for f32.
    const stages = (await readdir(join(dir, 'cache'))).filter((f) => f.endsWith('.cfst'));
    assert.equal(stages.length, 2);
    const total = (await Promise.all(stages.map((f) => stat(join(dir, 'cache', f))))).reduce((sum, s) => sum + s.size, 0);
    const f32Bytes = 260_000 * 4; // stories260K: ~260K parameters
    assert.ok(total < 0.6 * f32Bytes, `stage files ${total} bytes, f32 would be ~${f32Bytes}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
