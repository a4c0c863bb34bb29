// `confidant train`: fine-tune a model on a dataset over the phones attached to adb (all ready ones by default).
import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import { bundledPaths } from '../../core/paths.js';
import { openModelFolder } from '../../core/model/model-folder.js';
import { connectAdb, createAdb } from '../../core/adb/client.js';
import { listDevicesOnServers } from '../../core/adb/devices.js';
import { serverKey } from '../../core/adb/servers.js';
import { deployerForServers } from '../../core/deploy/multi-server-deployer.js';
import { chooseTrainingDevices } from '../../core/train/training-devices.js';
import { adbServersFromOptions } from './devices.js';
import { DEFAULT_TRAIN_SETTINGS, runTrainJob } from '../../core/train/job.js';
import { UsageError, parseCount } from '../args.js';
import { isWeightFormat, WEIGHT_FORMATS } from '../../core/model/quantize.js';
import { printEvent } from '../progress.js';

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
    },
  });
  const paths = bundledPaths();
  const d = DEFAULT_TRAIN_SETTINGS;
  const lr = values.lr === undefined ? d.peakLr : Number(values.lr);
  if (!(lr > 0)) throw new UsageError(`--lr must be a positive number, got "${values.lr}"`);
  const rank = parseCount(values.rank, '--rank', d.loraRank);
  const weightFormat = values['weight-format'] ?? d.weightFormat;
  if (!isWeightFormat(weightFormat)) throw new UsageError(`--weight-format must be one of ${WEIGHT_FORMATS.join(', ')}, got "${weightFormat}"`);
  const modelDir = resolve(values.model ?? paths.modelDir);
  await openModelFolder(modelDir); // a bad model folder is reported before any phone is touched
  // The local adb server (checked: a clear error when it is down) and any --adb host:port servers.
  const servers = adbServersFromOptions(values);
  const adbs = [await connectAdb(servers[0]), ...servers.slice(1).map((ep) => createAdb(ep))];
  const { devices: all, servers: statuses } = await listDevicesOnServers(adbs);
  for (const st of statuses) if (st.state !== 'ready') console.error(`adb server ${st.server}: ${st.message}`);
  const devices = chooseTrainingDevices(all, values.devices?.split(',').filter(Boolean), serverKey(servers[0]!));
  if (devices.length === 0) throw new Error('no ready phone: plug one in with USB debugging on, or run: confidant virtual start --count 2');
  const json = values.json ?? false;
  const result = await runTrainJob({
    ...d,
    modelDir,
    datasetPath: resolve(values.data ?? paths.datasetPath),
    runsDir: resolve(values['runs-dir'] ?? paths.runsDir),
    cacheDir: paths.cacheDir,
    devices,
    deployer: deployerForServers(adbs, devices, paths.agentBinaries),
    steps: parseCount(values.steps, '--steps', d.steps),
    microBatches: parseCount(values['micro-batches'], '--micro-batches', d.microBatches),
    microBatchSize: parseCount(values['micro-batch-size'], '--micro-batch-size', d.microBatchSize),
    seqLen: parseCount(values['seq-len'], '--seq-len', d.seqLen),
    loraRank: rank,
    loraAlpha: 2 * rank,
    weightFormat,
    peakLr: lr,
    seed: parseCount(values.seed, '--seed', d.seed, 0),
    onEvent: (e) => printEvent(e, json),
  });
  if (!json) console.log(`held-out loss ${result.evalLossBefore.toFixed(4)} -> ${result.evalLossAfter.toFixed(4)}; adapter ${result.adapterDir}`);
}
