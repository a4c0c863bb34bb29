// A whole run (runTrainJob) in P-RGE mode (--mode zo) over two real agent processes: forward-only steps through the
// pipeline, the held-out loss measured by the agents moves, and onnxruntime, reading only the exported adapter,
// recomputes the same held-out losses (so the ZO updates really are in the adapter the run leaves).
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { LocalDeployer } from '../../electron/core/deploy/local-agent.js';
import { DEFAULT_TRAIN_SETTINGS, runTrainJob } from '../../electron/core/train/job.js';
import { defaultAgentBinary, needLocalAgent, repoRoot } from '../support/local-agent.js';

const skip = needLocalAgent();

test('a P-RGE run trains forward-only across two agents; onnxruntime agrees with its held-out losses', { skip, timeout: 180_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'confidant-zo-run-'));
  try {
    const result = await runTrainJob({
      ...DEFAULT_TRAIN_SETTINGS,
      mode: 'zo',
      steps: 20,
      evalSequences: 8,
      sampleTokens: 4,
      checkpointEvery: 10,
      modelDir: join(repoRoot(), 'models/stories260K'),
      datasetPath: join(repoRoot(), 'datasets/demo-stories/stories.txt'),
      runsDir: join(dir, 'runs'),
      cacheDir: join(dir, 'cache'),
      devices: [0, 1].map((i) => ({ serial: `local-${i}`, budgetBytes: 512 * 2 ** 20, speed: 1 })),
      deployer: new LocalDeployer(defaultAgentBinary()),
    });
    assert.equal(result.losses.length, 20);
    assert.ok(result.losses.every(Number.isFinite), `losses ${result.losses}`);
    assert.notEqual(result.evalLossAfter, result.evalLossBefore, 'the adapter moved');
    const run = JSON.parse(await readFile(join(result.runDir, 'run.json'), 'utf8')) as { settings: { mode: string } };
    assert.equal(run.settings.mode, 'zo');
    const ort = result.heldOutLossOrt as { before: number; after: number };
    assert.ok(Math.abs(ort.before - result.evalLossBefore) < 1e-4 * result.evalLossBefore, `before: agents ${result.evalLossBefore}, onnxruntime ${ort.before}`);
    assert.ok(Math.abs(ort.after - result.evalLossAfter) < 1e-4 * result.evalLossAfter, `after: agents ${result.evalLossAfter}, onnxruntime ${ort.after}`);
    process.stderr.write(`zo run: held-out ${result.evalLossBefore.toFixed(4)} -> ${result.evalLossAfter.toFixed(4)}, step losses ${result.losses[0]!.toFixed(3)} .. ${result.losses.at(-1)!.toFixed(3)}\n`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
