// `confidant plan`: which layers each ready phone would train, which phones are left out and why, predicted memory
// against its budget, the CPU/GPU head split and the predicted step time, without deploying anything. Speeds are the
// documented defaults (plan/default-profile.ts) since PROFILE needs the stage deployed on the phone; the output says so.
import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import { bundledPaths } from '../../core/paths.js';
import { openModel } from '../../core/model/model-folder.js';
import { phonesFromOptions } from './devices.js';
import { DEFAULT_TRAIN_SETTINGS } from '../../core/train/job.js';
import { UsageError, parseCount } from '../args.js';
import { isWeightFormat, WEIGHT_FORMATS } from '../../core/model/quantize.js';
import { planPipeline } from '../../core/plan/partition.js';
import { defaultZoQueriesPerOp, opBatchSize } from '../../core/plan/zo-ops.js';
import { defaultDeviceProfile, DEFAULT_LINK_BYTES_PER_SEC, DEFAULT_PHONE_GFLOPS } from '../../core/plan/default-profile.js';

export async function planCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' },
      devices: { type: 'string' },
      adb: { type: 'string', multiple: true },
      'adb-port': { type: 'string' },
      'seq-len': { type: 'string' },
      'micro-batches': { type: 'string' },
      'micro-batch-size': { type: 'string' },
      'weight-format': { type: 'string' },
      rank: { type: 'string' },
      mode: { type: 'string' },
      queries: { type: 'string' },
      'queries-per-op': { type: 'string' },
      json: { type: 'boolean' },
    },
  });
  const d = DEFAULT_TRAIN_SETTINGS;
  const weightFormat = values['weight-format'] ?? d.weightFormat;
  if (!isWeightFormat(weightFormat)) throw new UsageError(`--weight-format must be one of ${WEIGHT_FORMATS.join(', ')}, got "${weightFormat}"`);
  const mode = values.mode ?? 'backprop';
  if (mode !== 'backprop' && mode !== 'zo') throw new UsageError(`--mode must be backprop or zo, got "${mode}"`);
  const microBatchSize = parseCount(values['micro-batch-size'], '--micro-batch-size', d.microBatchSize);
  const seqLen = parseCount(values['seq-len'], '--seq-len', d.seqLen);
  const zoQueries = parseCount(values.queries, '--queries', d.zoQueries);
  const zoQueriesPerOp = parseCount(values['queries-per-op'], '--queries-per-op', defaultZoQueriesPerOp(zoQueries, microBatchSize, seqLen));
  if (zoQueries % zoQueriesPerOp !== 0) throw new UsageError(`--queries-per-op must divide --queries (${zoQueries}), got ${zoQueriesPerOp}`);
  const settings = {
    loraRank: parseCount(values.rank, '--rank', d.loraRank),
    microBatchSize,
    seqLen,
    microBatches: parseCount(values['micro-batches'], '--micro-batches', d.microBatches),
    weightFormat,
    mode: mode as 'backprop' | 'zo',
    zoQueries,
    zoQueriesPerOp,
  };
  const modelDir = resolve(values.model ?? bundledPaths().modelDir);
  const { config } = await openModel(modelDir);

  const { devices } = await phonesFromOptions(values);

  const rows = opBatchSize(settings) * settings.seqLen;
  const profiles = devices.map((x) => defaultDeviceProfile(config, x.serial, x.budgetBytes, rows, settings.seqLen));
  const plan = planPipeline(config, profiles, settings);
  const assumption = `speeds assumed, not measured: ${DEFAULT_PHONE_GFLOPS} GFLOP/s per phone, adb link ${DEFAULT_LINK_BYTES_PER_SEC / 1e6} MB/s; no GPU split without a PROFILE`;
  if (values.json) {
    console.log(JSON.stringify({ model: modelDir, settings, assumption, ...plan, sim: { stepMs: plan.sim.stepMs, idleFraction: plan.sim.idleFraction } }, null, 2));
    return;
  }
  const mib = (x: number) => `${(x / 2 ** 20).toFixed(0)} MiB`;
  console.log(`plan for ${modelDir} (${config.numLayers} layers), ${mode}, ${settings.microBatches} x [${settings.microBatchSize}, ${settings.seqLen}], ${weightFormat} weights; ` +
    `${plan.stages.length} of ${devices.length} phones used (searched: ${plan.orderSearch})`);
  for (const st of plan.stages) {
    const extra = `${st.hasEmbedding ? ' + embedding' : ''}${st.hasHead ? ' + LM head' : ''}`;
    console.log(`  ${st.serial}: layers ${st.layerStart}-${st.layerEnd - 1}${extra}; memory ${mib(st.predictedBytes)} of ${mib(st.budgetBytes)} ` +
      `(weights ${mib(st.memory.weightBytes)}, activations ${mib(st.memory.keptActivationBytes)}, scratch ${mib(st.memory.scratchBytes + st.memory.workspaceBytes)}); ` +
      `head split: CPU only; F ${st.forwardMs.toFixed(1)} ms, B ${st.backwardMs.toFixed(1)} ms per micro-batch, idle ${(plan.sim.idleFraction[plan.stages.indexOf(st)] * 100).toFixed(0)}%`);
  }
  for (const out of plan.leftOut) console.log(`  ${out.reason}`);
  console.log(`predicted step ${(plan.stepMs / 1000).toFixed(2)} s, ${plan.tokensPerSec.toFixed(0)} tokens/s`);
  console.log(`(${assumption})`);
}
