// `confidant demo` (npm run demo): the built-in default job. Two virtual phones attached to the real adb server
// (or local agent processes when adb is not installed, said clearly), the bundled model and stories, a short
// LoRA fine-tune, the PEFT export, and before/after samples.
import { parseArgs } from 'node:util';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { bundledPaths } from '../../core/paths.js';
import { connectAdb } from '../../core/adb/client.js';
import { listDevices } from '../../core/adb/devices.js';
import { startVirtualPhones, stopVirtualPhones } from '../../core/virtual-phone/manager.js';
import { AdbDeployer } from '../../core/deploy/adb-deployer.js';
import { LocalDeployer } from '../../core/deploy/local-agent.js';
import type { StageDeployer } from '../../core/deploy/stage-deployer.js';
import type { PlanDevice } from '../../core/plan/partition.js';
import { planDevices, readyDevices } from '../../core/train/training-devices.js';
import { DEFAULT_TRAIN_SETTINGS, runTrainJob, type TrainJobResult } from '../../core/train/job.js';
import { parseCount } from '../args.js';
import { printEvent } from '../progress.js';

const PHONES = 2;
const PHONE_RAM_MB = 3072;

function adbInstalled(): boolean {
  return spawnSync('sh', ['-c', 'command -v adb'], { stdio: 'ignore' }).status === 0;
}

export async function demoCommand(argv: string[]): Promise<TrainJobResult> {
  const { values } = parseArgs({ args: argv, options: { steps: { type: 'string' }, json: { type: 'boolean' }, 'adb-port': { type: 'string' }, 'runs-dir': { type: 'string' } } });
  const paths = bundledPaths();
  if (!paths.agentBinaries.x86_64) throw new Error('the agent is not built (build/native/android-agent/confidant-agent): run npm run build');
  const json = values.json ?? false;
  const say = (line: string) => (json ? undefined : console.log(line));
  const adbPort = values['adb-port'] ? Number(values['adb-port']) : 5037;
  const virtualRoot = join(paths.root, '.confidant', `demo-phones-${process.pid}`);

  let deployer: StageDeployer;
  let devices: PlanDevice[];
  let stopPhones = async () => {};
  if (adbInstalled()) {
    // The user's adb server, started if needed, exactly as `adb devices` would.
    spawnSync('adb', ['-P', String(adbPort), 'start-server'], { stdio: 'ignore' });
    const adb = await connectAdb({ port: adbPort });
    say(`path: adb. Starting ${PHONES} virtual phones and attaching them to the adb server at 127.0.0.1:${adbPort} (adb connect)`);
    const phones = await startVirtualPhones({ count: PHONES, rootDir: virtualRoot, ramMb: PHONE_RAM_MB, adb: { port: adbPort } });
    stopPhones = async () => void (await stopVirtualPhones(virtualRoot, { adb: { port: adbPort } }).catch(() => undefined));
    const infos = readyDevices(await listDevices(adb), phones.map((p) => p.serial));
    for (const d of infos) say(`  ${d.serial}: ${d.manufacturer} ${d.model}, ${d.abis.join(',')}, ${(d.ramTotalBytes / 2 ** 30).toFixed(1)} GiB RAM`);
    devices = planDevices(infos);
    deployer = new AdbDeployer(adb, paths.agentBinaries);
  } else {
    say('path: local. The adb binary is not installed (apt-get install adb), so the two "phones" are local agent processes without adb.');
    devices = Array.from({ length: PHONES }, (_, i) => ({ serial: `local-${i}`, budgetBytes: PHONE_RAM_MB * 2 ** 20 * 0.6, speed: 1 }));
    deployer = new LocalDeployer(paths.agentBinaries.x86_64);
  }

  try {
    const result = await runTrainJob({
      ...DEFAULT_TRAIN_SETTINGS,
      steps: parseCount(values.steps, '--steps', DEFAULT_TRAIN_SETTINGS.steps),
      modelDir: paths.modelDir,
      datasetPath: paths.datasetPath,
      runsDir: values['runs-dir'] ?? paths.runsDir,
      cacheDir: paths.cacheDir,
      devices,
      deployer,
      onEvent: (e) => printEvent(e, json),
    });
    if (json) {
      console.log(JSON.stringify({ type: 'demo-result', ...result }));
    } else {
      console.log(`\nheld-out loss: ${result.evalLossBefore.toFixed(4)} before, ${result.evalLossAfter.toFixed(4)} after`);
      const ort = result.heldOutLossOrt;
      console.log('error' in ort
        ? `  (the onnxruntime check could not run: ${ort.error})`
        : `  onnxruntime, independently from the exported adapter: ${ort.before.toFixed(4)} before, ${ort.after.toFixed(4)} after`);
      result.samplesBefore.forEach((s, i) => console.log(`\nbefore: ${s}\nafter:  ${result.samplesAfter[i]}`));
      console.log(`\nrun folder: ${result.runDir}\nPEFT adapter: ${result.adapterDir}`);
    }
    return result;
  } finally {
    await stopPhones();
  }
}
