// The core's implementation of the UI contract (ConfidantService): devices, virtual phones, model and data
// inspection, training runs in the background with their events, runs list, export and "try it" generation.
// Plain Node: the Electron shell (IPC) and the headless server (WebSocket) both wrap this one object.
import { spawnSync } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { ConfidantService, DatasetPreview, EventMessage, ModelSummary, ParamsOf, RunSummary } from './api/contract.js';
import type { DeviceInfo, TrainEvent } from './api/types.js';
import { connectAdb, createAdb, type Adb } from './adb/client.js';
import { adbServerList, parseAdbServer, serverKey } from './adb/servers.js';
import { DeviceWatchers } from './adb/watch.js';
import { startVirtualPhones, stopVirtualPhones } from './virtual-phone/manager.js';
import { openModelFolder } from './model/model-folder.js';
import { loadTokenizer } from './model/tokenizer.js';
import { packStage } from './model/stage-pack.js';
import { readTextDataset } from './data/text-dataset.js';
import { stopAllAdbAgents } from './deploy/adb-deployer.js';
import { deployerForServers } from './deploy/multi-server-deployer.js';
import { LocalDeployer } from './deploy/local-agent.js';
import { copyRunAdapter } from './export/copy-adapter.js';
import { readPeftAdapter } from './export/peft.js';
import { bundledPaths, type BundledPaths } from './paths.js';
import { chooseTrainingDevices } from './train/training-devices.js';
import { DEFAULT_TRAIN_SETTINGS, runTrainJob } from './train/job.js';
import { LORA_MODULES, targetMask } from './train/lora-modules.js';
import { initialLora } from './train/lora-init.js';
import { generateText } from './train/generate.js';

export interface ServiceOptions {
  repoRoot: string;
  /** The local adb server's port (default 5037); the service starts that server if it is not running. */
  adbPort?: number;
  /** More adb servers to take phones from, "host:port" (other workstations' `adb -a nodaemon server`). */
  adbServers?: string[];
  /** Where runs are written (default <stateDir>/runs). */
  runsDir?: string;
  /**
   * A writable folder for runs, the stage cache and virtual phones (default repoRoot). A packaged app's repoRoot
   * is its read-only resources folder, so the shell passes the user-data folder here.
   */
  stateDir?: string;
}

const PREVIEW_SAMPLES = 3;
/** listDevices reads a ready phone again (RAM, battery, temperatures) when its last reading is older than this. */
const DEVICE_REFRESH_MS = 2000;
const PREVIEW_CHARS = 600;

function adbInstalled(): boolean {
  return spawnSync('sh', ['-c', 'command -v adb'], { stdio: 'ignore' }).status === 0;
}

export async function createService(opts: ServiceOptions): Promise<ConfidantService & { dispose(): Promise<void> }> {
  const paths: BundledPaths = bundledPaths(opts.repoRoot);
  const stateDir = opts.stateDir ?? paths.root;
  const runsDir = opts.runsDir ?? join(stateDir, 'runs');
  const cacheDir = join(stateDir, '.confidant', 'cache');
  const adbPort = opts.adbPort ?? 5037;
  const phonesRoot = join(stateDir, '.confidant', `app-phones-${process.pid}`);
  const listeners = new Set<(m: EventMessage) => void>();
  const running = new Map<string, AbortController>();
  let adb: Adb | null = null;
  const adbServers = adbServerList({ host: '127.0.0.1', port: adbPort }, (opts.adbServers ?? []).map(parseAdbServer));
  const defaultServer = serverKey(adbServers[0]!);
  let watchers: DeviceWatchers | null = null;

  const broadcast = (data: TrainEvent) => {
    for (const l of listeners) l({ event: 'train-event', data });
  };
  const getAdb = async (): Promise<Adb> => {
    if (!adbInstalled()) throw new Error('adb is not installed: install Android platform-tools (Debian: apt-get install adb)');
    if (!adb) {
      spawnSync('adb', ['-P', String(adbPort), 'start-server'], { stdio: 'ignore' });
      adb = await connectAdb({ port: adbPort });
    }
    return adb;
  };
  /** Live device tracking on every server (started on first use; it rebuilds itself when a server restarts). */
  const getWatchers = async (): Promise<DeviceWatchers> => {
    await getAdb();
    if (!watchers) {
      watchers = new DeviceWatchers(adbServers.map((ep) => createAdb(ep))).start();
      await watchers.firstContact(10_000);
    }
    return watchers;
  };
  const currentDevices = async (): Promise<DeviceInfo[]> => {
    const w = await getWatchers();
    await w.refresh(DEVICE_REFRESH_MS);
    const statuses = w.statuses();
    // Some server answers: show its phones. None does: say why (the watchers keep retrying meanwhile).
    if (statuses.every((st) => st.state !== 'ready')) throw new Error(statuses.map((st) => st.message).join('; '));
    return w.devices();
  };
  const runDirOf = (runId: string) => {
    if (!/^[\w.-]+$/.test(runId)) throw new Error(`"${runId}" is not a run id`);
    return join(runsDir, runId);
  };

  const service: ConfidantService & { dispose(): Promise<void> } = {
    async listDevices(): Promise<DeviceInfo[]> {
      return currentDevices();
    },

    async startVirtualPhones({ count }: ParamsOf<'startVirtualPhones'>): Promise<DeviceInfo[]> {
      const w = await getWatchers();
      const phones = await startVirtualPhones({ count, rootDir: phonesRoot, ramMb: 3072, adb: { port: adbPort } });
      const serials = new Set(phones.map((p) => p.serial));
      // adb says "device"; wait until the tracker has seen them and read their properties.
      const local = w.watchers[0]!;
      const seen = await local.waitFor((list) => [...serials].every((s) => list.some((d) => d.serial === s && d.abis.length > 0)), 20_000, 'the new virtual phones');
      return seen.filter((d) => serials.has(d.serial));
    },

    async inspectModel({ path }: ParamsOf<'inspectModel'>): Promise<ModelSummary> {
      const folder = await openModelFolder(resolve(path));
      let paramCount = 0;
      for (const t of folder.tensors.values()) paramCount += t.info.shape.reduce((a, b) => a * b, 1);
      const c = folder.config;
      return { path: folder.dir, modelType: c.modelType, numLayers: c.numLayers, hiddenSize: c.hiddenSize, vocabSize: c.vocabSize, paramCount };
    },

    async previewDataset({ path }: ParamsOf<'previewDataset'>): Promise<DatasetPreview> {
      const ds = await readTextDataset(resolve(path));
      return {
        path: ds.path,
        samples: ds.documents.slice(0, PREVIEW_SAMPLES).map((d) => (d.text.length > PREVIEW_CHARS ? `${d.text.slice(0, PREVIEW_CHARS)}…` : d.text)),
        count: ds.documents.length,
        errors: ds.issues.map((i) => ({ line: i.line, message: i.message })),
      };
    },

    async startTraining(p: ParamsOf<'startTraining'>): Promise<{ runId: string }> {
      await getAdb();
      // Ids (server/serial) or plain serials of the local server; each server's phones through that server.
      const devices = chooseTrainingDevices(await currentDevices(), p.serials, defaultServer);
      const deployer = deployerForServers((await getWatchers()).watchers.map((w) => w.adb), devices, paths.agentBinaries);
      const abort = new AbortController();
      let resolveStarted!: (runId: string) => void;
      const started = new Promise<string>((res) => (resolveStarted = res));
      const job = runTrainJob({
        ...DEFAULT_TRAIN_SETTINGS,
        modelDir: resolve(p.modelPath),
        datasetPath: resolve(p.datasetPath),
        runsDir,
        cacheDir,
        devices,
        deployer,
        steps: p.steps,
        weightFormat: p.weightFormat ?? DEFAULT_TRAIN_SETTINGS.weightFormat,
        signal: abort.signal,
        onEvent: (e) => {
          if (e.type === 'run-started') {
            running.set(e.runId, abort);
            resolveStarted(e.runId);
          }
          if (e.type === 'run-finished') running.delete(e.runId);
          broadcast(e);
        },
      });
      // A job that fails before its run folder exists rejects here; later failures arrive as run-finished events.
      return { runId: await Promise.race([started, job.then(() => started)]) };
    },

    async stopTraining({ runId }: ParamsOf<'stopTraining'>): Promise<void> {
      const abort = running.get(runId);
      if (!abort) throw new Error(`run ${runId} is not training`);
      abort.abort();
    },

    async listRuns(): Promise<RunSummary[]> {
      const names = await readdir(runsDir).catch(() => [] as string[]);
      const runs: RunSummary[] = [];
      for (const runId of names.sort().reverse()) {
        const text = await readFile(join(runsDir, runId, 'run.json'), 'utf8').catch(() => null);
        if (!text) continue;
        const run = JSON.parse(text) as { steps?: number; losses?: number[] };
        const losses = run.losses ?? [];
        const created = Date.parse(runId.slice(0, 24).replace(/T(\d\d)-(\d\d)-(\d\d)-(\d+)Z/, 'T$1:$2:$3.$4Z'));
        runs.push({ runId, runDir: join(runsDir, runId), createdMs: Number.isNaN(created) ? 0 : created, steps: run.steps ?? losses.length, finalLoss: losses.at(-1) ?? null });
      }
      return runs;
    },

    async exportAdapter({ runId, outDir }: ParamsOf<'exportAdapter'>): Promise<{ outDir: string }> {
      return { outDir: await copyRunAdapter(runDirOf(runId), outDir) };
    },

    async generate({ runId, prompt, maxTokens }: ParamsOf<'generate'>): Promise<{ text: string }> {
      // "Try it" runs on the workstation: the whole model as one stage in a local agent, with the run's adapter.
      const runJson = runId ? (JSON.parse(await readFile(join(runDirOf(runId), 'run.json'), 'utf8')) as { model?: { dir?: string } }) : null;
      const modelDir = runJson?.model?.dir ?? paths.modelDir;
      const folder = await openModelFolder(modelDir);
      const tok = await loadTokenizer(modelDir);
      const adapter = runId ? await readPeftAdapter(join(runDirOf(runId), 'adapter')) : null;
      const rank = adapter?.rank ?? DEFAULT_TRAIN_SETTINGS.loraRank;
      const stageFile = join(cacheDir, `try-it-${process.pid}.cfst`);
      const whole = { layerStart: 0, layerEnd: folder.config.numLayers, hasEmbedding: true, hasHead: true };
      await packStage(folder, whole, stageFile);
      const agent = await new LocalDeployer(paths.agentBinaries.x86_64).deploy('workstation', stageFile, { memoryBudgetBytes: 0 });
      try {
        await agent.client.loadStage({ path: stageFile, loraRank: rank, loraAlpha: adapter?.alpha ?? 2 * rank, targetMask: targetMask(LORA_MODULES), flags: 0 });
        await agent.client.setLora(adapter?.tensors ?? initialLora(folder.config, 0, folder.config.numLayers, rank, LORA_MODULES, 0));
        const full = await generateText([{ serial: 'workstation', client: agent.client }], tok, prompt, {
          maxNewTokens: maxTokens, temperature: 0, seed: 0, stopIds: folder.config.eosTokenIds, maxPositions: folder.config.maxPositionEmbeddings ?? 2048,
        });
        return { text: full.startsWith(prompt) ? full.slice(prompt.length) : full };
      } finally {
        await agent.stop();
      }
    },

    async defaults() {
      return { modelPath: paths.modelDir, datasetPath: paths.datasetPath };
    },

    onEvent(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },

    async dispose() {
      for (const abort of running.values()) abort.abort();
      await stopAllAdbAgents(); // an agent that never got a connection would otherwise idle until its timeout
      if (watchers) await watchers.stop();
      if (adb) await stopVirtualPhones(phonesRoot, { adb: { port: adbPort } }).catch(() => undefined);
    },
  };
  return service;
}
