// The P-RGE forward-only pipeline as the product runs it: `runTrainJob --mode zo` on virtual phones attached to a
// private real adb server, each phone on its own host core (the virtual-phone manager pins them), relaying through
// adb; 2 phones with 2 layers each against 1 phone with all 4. Prints the median step time of each and the ratio
// (goal >= 1.7x; the ideal for 2 balanced stages and m ops per step is 2m / (m + 1): 8 micro-batches with q = 4 cut
// into ops of 2 queries by default (plan/zo-ops.ts) are 16 ops, 1.88x). Not a test.
//   npx tsc -p tsconfig.json && node build/test/bench/zo-virtual-phones.js [--steps N] [--micros M]
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { connectAdb } from '../../electron/core/adb/client.js';
import { AdbDeployer } from '../../electron/core/deploy/adb-deployer.js';
import { DEFAULT_TRAIN_SETTINGS, runTrainJob } from '../../electron/core/train/job.js';
import { startVirtualPhones, stopVirtualPhones, type VirtualPhoneRecord } from '../../electron/core/virtual-phone/manager.js';
import { startTestAdbServer, TEST_ADB_PORT } from '../support/adb-server.js';
import { defaultAgentBinary, repoRoot } from '../support/local-agent.js';
import { ZO_PIPELINE as SHAPE } from './bench-shapes.js';
import { writeRandomLlama } from './random-model.js';
import { defaultZoQueriesPerOp } from '../../electron/core/plan/zo-ops.js';

const { values } = parseArgs({ options: { steps: { type: 'string', default: '4' }, micros: { type: 'string', default: '8' } } });
const STEPS = Number(values.steps);
const MICROS = Number(values.micros);
const QUERIES = 4;
const OPS = MICROS * (QUERIES / defaultZoQueriesPerOp(QUERIES, 1, 64)); // ZO_FORWARD ops per stage and step

async function main(): Promise<void> {
  const server = startTestAdbServer(TEST_ADB_PORT + 20);
  if (typeof server === 'string') throw new Error(`this bench needs adb: ${server}`);
  const dir = await mkdtemp(join(tmpdir(), 'confidant-zo-phones-'));
  try {
    const modelDir = join(dir, 'model');
    await writeRandomLlama(modelDir, SHAPE, 1);
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) await copyFile(join(repoRoot(), 'models/stories260K', f), join(modelDir, f));
    const phones = await startVirtualPhones({ count: 2, rootDir: join(dir, 'phones'), ramMb: 4096, adb: server.endpoint });
    const adb = await connectAdb(server.endpoint);
    const run = async (label: string, stages: Array<[VirtualPhoneRecord, number, number]>) => {
      const stepMs: number[] = [];
      await runTrainJob({
        ...DEFAULT_TRAIN_SETTINGS,
        mode: 'zo', steps: STEPS + 1, microBatches: MICROS, microBatchSize: 1, seqLen: 64, zoQueries: QUERIES,
        evalSequences: 1, samplePrompts: [], checkpointEvery: 1000, replan: false,
        modelDir, datasetPath: join(repoRoot(), 'datasets/demo-stories/stories.txt'),
        runsDir: join(dir, 'runs'), cacheDir: join(dir, 'cache'),
        devices: stages.map(([p]) => ({ serial: p.serial, budgetBytes: 2 ** 31, speed: 1 })),
        layout: stages.map(([p, layerStart, layerEnd]) => ({ serial: p.serial, layerStart, layerEnd })),
        deployer: new AdbDeployer(adb, { x86_64: defaultAgentBinary() }),
        onEvent: (e) => void (e.type === 'step' && e.stepMs !== undefined && e.step > 1 && stepMs.push(e.stepMs)),
      });
      stepMs.sort((a, b) => a - b);
      const median = stepMs[Math.floor(stepMs.length / 2)]!;
      console.log(`${label}: median ${median.toFixed(0)} ms/step over ${stepMs.length} steps (${(1000 * MICROS / median).toFixed(2)} seq/s)`);
      return median;
    };
    console.log(`model: ${SHAPE.description}; ${MICROS} micro-batches of 1 sequence x 64 tokens, ${2 * QUERIES} copies each, ${OPS} ops; phones on host cores ` +
      phones.map((p) => `${p.serial}: ${p.hostCpus?.join(',') ?? 'all'}`).join(', '));
    const one = await run('1 phone, all 4 layers', [[phones[0]!, 0, 4]]);
    const two = await run('2 phones, 2 layers each', [[phones[0]!, 0, 2], [phones[1]!, 2, 4]]);
    console.log(`throughput ratio: ${(one / two).toFixed(2)}x (ideal ${(2 * OPS / (OPS + 1)).toFixed(2)}x)`);
    await stopVirtualPhones(join(dir, 'phones'));
  } finally {
    server.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
