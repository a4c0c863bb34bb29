// The core's implementation of the UI contract (ConfidantService): devices, virtual phones, model and data
// inspection, training runs in the background with their events, runs list, export and "try it" generation.
// Plain Node: the Electron shell (IPC) and the headless server (WebSocket) both wrap this one object.
import { spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { AgentReport, ConfidantService, DatasetPreview, RunDetails, EventMessage, ModelSummary, ParamsOf, PlanPreview, RunSummary } from './api/contract.js';
import type { DeviceInfo, TrainEvent } from './api/types.js';
import { connectAdb, createAdb, type Adb } from './adb/client.js';
import { adbServerList, parseAdbServer, serverKey } from './adb/servers.js';
import { DeviceWatchers } from './adb/watch.js';
import { startVirtualPhones, stopVirtualPhones } from './virtual-phone/manager.js';
import { openModel } from './model/model-folder.js';
import { modelFacts } from './model/model-summary.js';
import { loadTokenizer } from './model/tokenizer.js';
import { buildDatasetPreview } from './data/preview.js';
import { stopAllAdbAgents } from './deploy/adb-deployer.js';
import { probeAgentCapabilities } from './deploy/agent-probe.js';
import { deployerForServers } from './deploy/multi-server-deployer.js';
import { exportRun } from './export/export-run.js';
import { bundledPaths, type BundledPaths } from './paths.js';
import { chooseTrainingDevices } from './train/training-devices.js';
import { defaultZoQueriesPerOp } from './plan/zo-ops.js';
import { DEFAULT_TRAIN_SETTINGS, runTrainJob } from './train/job.js';
import { checkRunId, listRunSummaries, readRunDetails } from './train/run-details.js';
import { TryItGenerator } from './onnx/try-it.js';
import { previewPlan } from './plan/plan-preview.js';
import { targetMask } from './train/lora-modules.js';
import { PauseGate } from './train/pause-gate.js';

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
  const tryIt = new TryItGenerator();
  const running = new Map<string, { abort: AbortController; pause: PauseGate }>();
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
      // Plugging, unplugging and authorising show at once; RAM and battery readings come with listDevices.
      watchers.on('devices', (list: DeviceInfo[]) => {
        for (const l of listeners) l({ event: 'devices', data: list });
      });
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
    checkRunId(runId);
    return join(runsDir, runId);
  };

  const service: ConfidantService & { dispose(): Promise<void> } = {
    async listDevices(): Promise<DeviceInfo[]> {
      return currentDevices();
    },

    async probeDevice({ id }: ParamsOf<'probeDevice'>): Promise<AgentReport> {
      const w = await getWatchers();
      const device = w.devices().find((d) => d.id === id);
      if (!device) throw new Error(`no phone ${id} is attached (it may have been unplugged): refresh the list`);
      if (device.state !== 'device' || device.abis.length === 0) throw new Error(`${id} is not ready (${device.state}): ${device.guidance}`);
      const watcher = w.watchers.find((x) => serverKey(x.adb.endpoint) === device.server) ?? w.watchers[0]!;
      const c = await probeAgentCapabilities(watcher.adb, device.serial, paths.agentBinaries);
      return { abi: c.abi, cpuThreads: c.cpuThreads, backends: c.backends, opencl: c.opencl, openclDeviceType: c.openclDeviceType };
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
      const folder = await openModel(resolve(path));
      return { path: folder.dir, ...modelFacts(folder) };
    },

    async previewDataset({ path, modelPath, options = {}, examples = PREVIEW_SAMPLES }: ParamsOf<'previewDataset'>): Promise<DatasetPreview> {
      const modelDir = resolve(modelPath ?? paths.modelDir);
      const d = DEFAULT_TRAIN_SETTINGS;
      const details = await buildDatasetPreview(resolve(path), await loadTokenizer(modelDir), modelDir, { dataset: options, seqLen: options.seqLen ?? d.seqLen, validationFraction: d.validationFraction, seed: d.seed, examples });
      const samples = details.examples.map((e) => e.segments.map((seg) => seg.text).join(''));
      return { path: resolve(path), samples, count: details.stats.examples, errors: details.badRows.map((r) => ({ line: r.line, message: r.message })), details };
    },

    async planTraining(p: ParamsOf<'planTraining'>): Promise<PlanPreview> {
      const devices = chooseTrainingDevices(await currentDevices(), p.serials, defaultServer);
      const { config } = await openModel(resolve(p.modelPath));
      const d = DEFAULT_TRAIN_SETTINGS;
      const seqLen = p.seqLen ?? d.seqLen;
      const settings = {
        loraRank: d.loraRank, microBatchSize: d.microBatchSize, microBatches: d.microBatches, seqLen,
        weightFormat: p.weightFormat ?? d.weightFormat, mode: p.mode ?? d.mode, zoQueries: d.zoQueries, targetMask: targetMask(d.loraModules),
        // As the run will cut P-RGE's copies into ops (job.ts): the preview's bubble is the run's.
        zoQueriesPerOp: defaultZoQueriesPerOp(d.zoQueries, d.microBatchSize, seqLen),
      };
      return previewPlan(config, devices, settings, p.layout);
    },

    async startTraining(p: ParamsOf<'startTraining'>): Promise<{ runId: string }> {
      await getAdb();
      // Ids (server/serial) or plain serials of the local server; each server's phones through that server.
      const devices = chooseTrainingDevices(await currentDevices(), p.serials, defaultServer);
      const deployer = deployerForServers((await getWatchers()).watchers.map((w) => w.adb), devices, paths.agentBinaries, {
        deleteStageOnStop: p.removeStageFiles ?? false,
      });
      const abort = new AbortController();
      const pause = new PauseGate();
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
        mode: p.mode ?? DEFAULT_TRAIN_SETTINGS.mode,
        dataset: p.dataset,
        seqLen: p.dataset?.seqLen ?? DEFAULT_TRAIN_SETTINGS.seqLen,
        layout: p.layout,
        replan: p.replan,
        pause,
        signal: abort.signal,
        onEvent: (e) => {
          if (e.type === 'run-started') {
            running.set(e.runId, { abort, pause });
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
      const run = running.get(runId);
      if (!run) throw new Error(`run ${runId} is not training`);
      run.abort.abort();
    },

    async pauseTraining({ runId, paused }: ParamsOf<'pauseTraining'>): Promise<void> {
      const run = running.get(runId);
      if (!run) throw new Error(`run ${runId} is not training`);
      // The job announces the hold ('hold' event) when it reaches the next step boundary, not here.
      run.pause.set(paused);
    },

    async listRuns(): Promise<RunSummary[]> {
      return listRunSummaries(runsDir);
    },

    async openRun({ runId }: ParamsOf<'openRun'>): Promise<RunDetails> {
      return readRunDetails(runsDir, runId);
    },

    async exportAdapter({ runId, format, outDir, overwrite, modelDir }: ParamsOf<'exportAdapter'>) {
      const r = await exportRun({ runDir: runDirOf(runId), format, out: outDir, overwrite, modelDir });
      return { outDir: r.out, files: r.files };
    },

    async generate({ runId, prompt, maxTokens, temperature, topP, seed, streamId }: ParamsOf<'generate'>): Promise<{ text: string }> {
      // "Try it" runs on the workstation with onnxruntime: the run's model plus its adapter, or the bundled model.
      const runDir = runId ? runDirOf(runId) : null;
      const runJson = runDir ? (JSON.parse(await readFile(join(runDir, 'run.json'), 'utf8')) as { model?: { dir?: string } }) : null;
      const request = { modelDir: runJson?.model?.dir ?? paths.modelDir, runDir, prompt, maxNewTokens: maxTokens, temperature: temperature ?? 0, topP: topP ?? 1, seed: seed ?? 0, streamId };
      const { text } = await tryIt.generate(request, (piece, index) => {
        if (streamId) for (const l of listeners) l({ event: 'generate-token', data: { streamId, index, piece } });
      });
      return { text };
    },

    async stopGenerate({ streamId }: ParamsOf<'stopGenerate'>): Promise<void> {
      tryIt.stop(streamId);
    },

    async defaults() {
      return { modelPath: paths.modelDir, datasetPath: paths.datasetPath };
    },

    onEvent(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },

    async dispose() {
      await tryIt.dispose();
      for (const r of running.values()) r.abort.abort();
      await stopAllAdbAgents(); // an agent that never got a connection would otherwise idle until its timeout
      if (watchers) await watchers.stop();
      if (adb) await stopVirtualPhones(phonesRoot, { adb: { port: adbPort } }).catch(() => undefined);
    },
  };
  return service;
}
