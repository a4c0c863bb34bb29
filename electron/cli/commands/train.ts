// `confidant train`: fine-tune a model on a dataset over the phones attached to adb (all ready ones by default).
import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import { bundledPaths } from '../../core/paths.js';
import { openModel } from '../../core/model/model-folder.js';
import { deployerForServers } from '../../core/deploy/multi-server-deployer.js';
import { phonesFromOptions } from './devices.js';
import { DEFAULT_TRAIN_SETTINGS, runTrainJob, TRAINING_MODES, type TrainingMode } from '../../core/train/job.js';
import { UsageError, parseCount } from '../args.js';
import { isWeightFormat, WEIGHT_FORMATS } from '../../core/model/quantize.js';
import { printEvent } from '../progress.js';
import { DATASET_ARG_OPTIONS, datasetOptionsFromArgs } from './data.js';
import { checkBadRows, readDataset } from '../../core/data/read-dataset.js';
import { formatBadRows } from '../../core/data/bad-rows.js';
import { readLatestCheckpoint } from '../../core/train/checkpoint.js';

export async function trainCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' },
      data: { type: 'string' },
      devices: { type: 'string' },
      steps: { type: 'string' },
      'micro-batches': { type: 'string' },
      'micro-batch-size': { type: 'string' },
      'seq-len': { type: 'string' },
      rank: { type: 'string' },
      'weight-format': { type: 'string' },
      lr: { type: 'string' },
      seed: { type: 'string' },
      'runs-dir': { type: 'string' },
      'adb-port': { type: 'string' },
      adb: { type: 'string', multiple: true },
      json: { type: 'boolean' },
      'remove-stage-files': { type: 'boolean' },
      resume: { type: 'string' },
      'checkpoint-every': { type: 'string' },
      relay: { type: 'string' },
      mode: { type: 'string' },
      'zo-queries': { type: 'string' },
      'zo-eps': { type: 'string' },
      'zo-queries-per-op': { type: 'string' },
      ...DATASET_ARG_OPTIONS,
    },
  });
  const paths = bundledPaths();
  const d = DEFAULT_TRAIN_SETTINGS;
  const lr = values.lr === undefined ? d.peakLr : Number(values.lr);
  if (!(lr > 0)) throw new UsageError(`--lr must be a positive number, got "${values.lr}"`);
  const rank = parseCount(values.rank, '--rank', d.loraRank);
  const weightFormat = values['weight-format'] ?? d.weightFormat;
  if (!isWeightFormat(weightFormat)) throw new UsageError(`--weight-format must be one of ${WEIGHT_FORMATS.join(', ')}, got "${weightFormat}"`);
  const relay = values.relay ?? d.relay;
  if (relay !== 'f16' && relay !== 'f32') throw new UsageError(`--relay must be f16 or f32, got "${values.relay}"`);
  const checkpointEvery = parseCount(values['checkpoint-every'], '--checkpoint-every', d.checkpointEvery);
  const mode = values.mode ?? d.mode;
  if (!(mode in TRAINING_MODES)) throw new UsageError(`--mode must be one of ${Object.keys(TRAINING_MODES).join(', ')}, got "${values.mode}"`);
  const zoEps = values['zo-eps'] === undefined ? d.zoEps : Number(values['zo-eps']);
  if (!(zoEps > 0)) throw new UsageError(`--zo-eps must be a positive number, got "${values['zo-eps']}"`);
  const zoQueries = parseCount(values['zo-queries'], '--zo-queries', d.zoQueries);
  const zoQueriesPerOp = values['zo-queries-per-op'] === undefined ? undefined : parseCount(values['zo-queries-per-op'], '--zo-queries-per-op', 1);
  if (zoQueriesPerOp !== undefined && zoQueries % zoQueriesPerOp !== 0) {
    throw new UsageError(`--zo-queries-per-op must divide --zo-queries (${zoQueries}), got ${zoQueriesPerOp}`);
  }
  // --resume: the run's own model, data and settings (from its latest checkpoint) replace the command line's.
  const resumeFrom = values.resume === undefined ? undefined : resolve(values.resume);
  const resumeCk = resumeFrom ? await readLatestCheckpoint(resumeFrom) : null;
  if (resumeFrom && !resumeCk) throw new UsageError(`--resume ${resumeFrom}: no checkpoint there (checkpoints/latest); is it a run folder (runs/<id>)?`);
  const resumed = (resumeCk?.state.settings ?? {}) as { modelDir?: string; datasetPath?: string; dataset?: ReturnType<typeof datasetOptionsFromArgs> };
  const dataset = resumed.dataset ?? datasetOptionsFromArgs(values);
  const modelDir = resolve(resumed.modelDir ?? values.model ?? paths.modelDir);
  await openModel(modelDir); // a bad model folder or GGUF file is reported before any phone is touched
  // So is a bad dataset; rows that are skipped are listed, so skipping is never silent.
  const datasetPath = resolve(resumed.datasetPath ?? values.data ?? paths.datasetPath);
  const read = await readDataset(datasetPath, dataset);
  checkBadRows(read, dataset.skipBadRows ?? false);
  if (read.badRows.length) console.error(`skipping ${read.badRows.length} bad rows of ${datasetPath}:\n${formatBadRows(read.badRows)}`);
  const { adbs, devices } = await phonesFromOptions(values);
  const json = values.json ?? false;
  const result = await runTrainJob({
    ...d,
    modelDir,
    datasetPath,
    runsDir: resolve(values['runs-dir'] ?? paths.runsDir),
    cacheDir: paths.cacheDir,
    devices,
    // Stage files stay on the phones unless asked (the next run with the same split then skips the push).
    deployer: deployerForServers(adbs, devices, paths.agentBinaries, { deleteStageOnStop: values['remove-stage-files'] ?? false }),
    steps: parseCount(values.steps, '--steps', d.steps),
    microBatches: parseCount(values['micro-batches'], '--micro-batches', d.microBatches),
    microBatchSize: parseCount(values['micro-batch-size'], '--micro-batch-size', d.microBatchSize),
    seqLen: parseCount(values['seq-len'], '--seq-len', d.seqLen),
    dataset,
    loraRank: rank,
    loraAlpha: 2 * rank,
    weightFormat,
    peakLr: lr,
    seed: parseCount(values.seed, '--seed', d.seed, 0),
    relay,
    checkpointEvery,
    mode: mode as TrainingMode,
    zoQueries,
    zoQueriesPerOp,
    zoEps,
    resumeFrom,
    onEvent: (e) => printEvent(e, json),
  });
  if (!json) console.log(`held-out loss ${result.evalLossBefore.toFixed(4)} -> ${result.evalLossAfter.toFixed(4)}; adapter ${result.adapterDir}`);
}
