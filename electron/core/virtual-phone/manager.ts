// Starts and stops fleets of virtual phones as child processes (one sandbox each under a root folder), attaches
// them to an adb server with `adb connect` and waits until adb says "device" (or "unauthorized" for phones that
// start unauthorised), and lets such phones be authorised later. Backs `confidant virtual start|stop|list|authorize`
// and the demo. Not the phone itself (phone.ts) and not device discovery (adb/devices.ts, adb/watch.ts).
import { spawn } from 'node:child_process';
import type { Device } from '@devicefarmer/adbkit';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_ADB_ENDPOINT, createAdb, type Adb, type AdbEndpoint } from '../adb/client.js';
import { serverKey } from '../adb/servers.js';
import { killSandboxProcesses } from './reap.js';
import { allowedHostCpus, hostCpuSets, pinPrefix } from './host-cpus.js';

export interface StartVirtualPhonesOptions {
  count: number;
  /** Each phone gets <rootDir>/phone-<index> as its sandbox; the fleet is recorded in <rootDir>/virtual-phones.json. */
  rootDir: string;
  /** RAM budget per phone in MiB: one value for all, or one per phone (default 4096). */
  ramMb?: number | number[];
  cores?: number;
  adb?: Partial<AdbEndpoint>;
  /** true: the phones outlive this process (CLI `virtual start`); false: they stop when this process dies. */
  detached?: boolean;
  /** Per phone, from spawn to adb state "device" (default 20 s). */
  readyTimeoutMs?: number;
  /** Extra flags for main.js, e.g. ['--verbose']. */
  extraArgs?: string[];
  /** The phones start unauthorised: adb lists them as "unauthorized" until authorizeVirtualPhones(). */
  unauthorized?: boolean;
  /** What the phones report about themselves beyond RAM and cores (same for every phone of this start). */
  profile?: VirtualPhoneProfile;
  /**
   * Give each phone its own host cores (default true, where taskset exists): phones then do not slow each other
   * down, as real phones do not (host-cpus.ts). false: every phone runs on every core.
   */
  pinHostCpus?: boolean;
}

export interface VirtualPhoneProfile {
  /** cpuinfo_max_freq per core in kHz (length = cores, or one value for all); default from the core count. */
  cpuMaxFreqsKHz?: number[];
  socModel?: string;
  batteryPercent?: number;
  batteryTemperatureC?: number;
  batteryCharging?: boolean;
}

export interface VirtualPhoneRecord {
  index: number;
  name: string;
  /** adb serial: 127.0.0.1:PORT. */
  serial: string;
  port: number;
  pid: number;
  sandboxDir: string;
  logFile: string;
  ramBytes: number;
  cores: number;
  adb: AdbEndpoint;
  /** Started unauthorised (records written before this field existed read as false). */
  unauthorized?: boolean;
  /** The host cores the phone and everything it runs are pinned to; absent when unpinned. */
  hostCpus?: number[];
}

const STATE_FILE = 'virtual-phones.json';

/** main.js next to this compiled file (the build folder varies: build/, build/h-adb/, ...). */
export function virtualPhoneMainPath(): string {
  return fileURLToPath(new URL('./main.js', import.meta.url));
}

function statePath(rootDir: string): string {
  return join(rootDir, STATE_FILE);
}

function readState(rootDir: string): VirtualPhoneRecord[] {
  const p = statePath(rootDir);
  if (!existsSync(p)) return [];
  try {
    return JSON.parse(readFileSync(p, 'utf8')) as VirtualPhoneRecord[];
  } catch {
    return [];
  }
}

function writeState(rootDir: string, records: VirtualPhoneRecord[]): void {
  mkdirSync(rootDir, { recursive: true });
  const p = statePath(rootDir);
  const tmp = `${p}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(records, null, 2) + '\n');
  renameSync(tmp, p);
}

/** True when `pid` is alive and is the virtual phone serving `sandboxDir` (guards against recycled pids). */
export function isPhoneProcess(record: Pick<VirtualPhoneRecord, 'pid' | 'sandboxDir'>): boolean {
  try {
    process.kill(record.pid, 0);
  } catch {
    return false;
  }
  try {
    const cmdline = readFileSync(`/proc/${record.pid}/cmdline`, 'utf8');
    return cmdline.includes('main.js') && cmdline.includes(record.sandboxDir);
  } catch {
    return true; // no /proc (macOS): trust the signal check
  }
}

function logTail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function spawnPhone(index: number, options: StartVirtualPhonesOptions, adbEndpoint: AdbEndpoint, hostCpus: number[] | null): Promise<VirtualPhoneRecord> {
  const ramList = Array.isArray(options.ramMb) ? options.ramMb : null;
  const ramMb = ramList ? ramList[(index - 1) % ramList.length]! : (options.ramMb as number | undefined) ?? 4096;
  const cores = options.cores ?? 4;
  const name = `Virtual Phone ${index}`;
  const sandboxDir = resolve(options.rootDir, `phone-${index}`);
  mkdirSync(sandboxDir, { recursive: true });
  const logFile = resolve(options.rootDir, `phone-${index}.log`);
  const logFd = openSync(logFile, 'a');
  const args = [
    virtualPhoneMainPath(), '--port', '0', '--sandbox', sandboxDir, '--ram-mb', String(ramMb), '--cores', String(cores),
    '--name', name, '--serial', `CONFVIRT${String(index).padStart(4, '0')}`,
    ...(options.detached ? [] : ['--parent-pid', String(process.pid)]),
    ...profileArgs(options.profile),
    ...(options.unauthorized ? ['--unauthorized'] : []),
    ...(options.extraArgs ?? []),
  ];
  // Own process group: a Ctrl-C aimed at the CLI does not hit the phones before they are detached from adb. In the
  // desktop app process.execPath is the Electron binary, which runs a script as plain Node only when told to.
  const env = process.versions.electron ? { ...process.env, ELECTRON_RUN_AS_NODE: '1' } : process.env;
  // taskset execs the phone in place (same pid); the phone's shells, and so its agents, inherit the cores.
  const pin = hostCpus ? pinPrefix(hostCpus) : null;
  const [command, ...commandArgs] = pin ? [...pin, process.execPath, ...args] : [process.execPath, ...args];
  const child = spawn(command!, commandArgs, { detached: true, stdio: ['ignore', 'pipe', logFd], env });
  closeSync(logFd);
  const timeoutMs = options.readyTimeoutMs ?? 20_000;
  const port = await new Promise<number>((resolvePort, reject) => {
    let text = '';
    const timer = setTimeout(() => fail(`did not print its ready line within ${timeoutMs} ms`), timeoutMs);
    const fail = (why: string) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`virtual phone ${index} ${why}. Log ${logFile}:\n${logTail(logFile)}`));
    };
    child.stdout!.on('data', (c: Buffer) => {
      text += c.toString('utf8');
      const m = /virtual-phone ready 127\.0\.0\.1:(\d+)/.exec(text);
      if (m) {
        clearTimeout(timer);
        resolvePort(Number(m[1]));
      }
    });
    child.once('exit', (code, signal) => fail(`exited during start (code ${code}, signal ${signal})`));
    child.once('error', (err) => fail(`could not be spawned: ${err.message}`));
  });
  child.removeAllListeners('exit');
  child.stdout!.destroy();
  child.unref();
  return {
    index, name, serial: `127.0.0.1:${port}`, port, pid: child.pid!, sandboxDir, logFile,
    ramBytes: ramMb * 1024 * 1024, cores, adb: adbEndpoint, unauthorized: !!options.unauthorized,
    ...(pin && hostCpus ? { hostCpus } : {}),
  };
}

function profileArgs(p: VirtualPhoneProfile | undefined): string[] {
  if (!p) return [];
  return [
    ...(p.cpuMaxFreqsKHz ? ['--cpu-max-khz', p.cpuMaxFreqsKHz.join(',')] : []),
    ...(p.socModel ? ['--soc', p.socModel] : []),
    ...(p.batteryPercent !== undefined ? ['--battery-percent', String(p.batteryPercent)] : []),
    ...(p.batteryTemperatureC !== undefined ? ['--battery-temp-c', String(p.batteryTemperatureC)] : []),
    ...(p.batteryCharging !== undefined ? ['--charging', p.batteryCharging ? '1' : '0'] : []),
  ];
}

/** Virtual phones listen on 127.0.0.1: only an adb server on this machine can `adb connect` them. */
function checkLocalServer(endpoint: AdbEndpoint): void {
  if (!/^(127\.\d+\.\d+\.\d+|localhost|::1)$/.test(endpoint.host)) {
    throw new Error(`virtual phones listen on 127.0.0.1 only, so adb server ${serverKey(endpoint)} on another machine ` +
      'cannot reach them: start them with an adb server of this machine (e.g. --adb 127.0.0.1:5037)');
  }
}

/**
 * Waits until `adb devices` lists every serial in `want` ("device", or "unauthorized" for unauthorised phones; an
 * `adb connect`ed device is "offline" until the handshake and "authorizing" while adb tries its keys).
 */
async function waitForState(adb: Adb, serials: string[], timeoutMs: number, want = 'device'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    const devices = await adb.call<Device[]>('adb devices', () => adb.client.listDevices(), 10_000);
    const states = new Map(devices.map((d) => [d.id, String(d.type)]));
    const waiting = serials.filter((s) => states.get(s) !== want);
    if (waiting.length === 0) return;
    last = waiting.map((s) => `${s}: ${states.get(s) ?? 'not listed'}`).join(', ');
    if (Date.now() > deadline) throw new Error(`virtual phones not ready in adb after ${timeoutMs} ms (${last})`);
    await sleep(100);
  }
}

/** Starts `count` phones, attaches them to adb, records them; returns their records (serials inside). */
export async function startVirtualPhones(options: StartVirtualPhonesOptions): Promise<VirtualPhoneRecord[]> {
  if (!(options.count >= 1)) throw new Error(`virtual phone count must be at least 1, got ${options.count}`);
  const rootDir = resolve(options.rootDir);
  const opts = { ...options, rootDir };
  const adb = createAdb(options.adb);
  checkLocalServer(adb.endpoint);
  const existing = listVirtualPhones(rootDir).filter((r) => r.alive);
  const firstIndex = existing.reduce((m, r) => Math.max(m, r.index), 0) + 1;
  // Running phones keep their cores; the new ones take the next sets of an even split over all of them.
  const cpuSets = options.pinHostCpus === false ? null : hostCpuSets(existing.length + options.count, allowedHostCpus());
  const started: VirtualPhoneRecord[] = [];
  try {
    for (let i = 0; i < options.count; i++) started.push(await spawnPhone(firstIndex + i, opts, adb.endpoint, cpuSets?.[existing.length + i] ?? null));
    writeState(rootDir, [...existing.map(({ alive: _alive, ...r }) => r), ...started]);
    for (const r of started) {
      try {
        await adb.call(`adb connect ${r.serial}`, () => adb.client.connect('127.0.0.1', r.port), 15_000);
      } catch (err) {
        // adb answers "failed to authenticate to HOST:PORT" for a phone that refuses it, yet keeps it listed as
        // "unauthorized", which is what an unauthorised phone is for.
        if (!(options.unauthorized && /failed to authenticate/.test((err as Error).message))) throw err;
      }
    }
    await waitForState(adb, started.map((r) => r.serial), options.readyTimeoutMs ?? 20_000, options.unauthorized ? 'unauthorized' : 'device');
    return started;
  } catch (err) {
    for (const r of started) await stopOne(adb, r).catch(() => undefined);
    writeState(rootDir, existing.map(({ alive: _alive, ...r }) => r));
    throw err;
  }
}

async function stopOne(adb: Adb, r: VirtualPhoneRecord): Promise<void> {
  // Disconnect first: otherwise adb keeps the serial as "offline" and retries it for a while.
  await adb.call(`adb disconnect ${r.serial}`, () => adb.client.disconnect('127.0.0.1', r.port), 5000).catch(() => undefined);
  if (isPhoneProcess(r)) {
    try { process.kill(r.pid, 'SIGTERM'); } catch { /* gone */ }
    const deadline = Date.now() + 4000;
    while (isPhoneProcess(r) && Date.now() < deadline) await sleep(50);
    if (isPhoneProcess(r)) {
      try { process.kill(r.pid, 'SIGKILL'); } catch { /* gone */ }
    }
  }
  // The phone kills its own processes on SIGTERM; after a SIGKILL (or a crash) that is our job.
  await killSandboxProcesses(r.sandboxDir, 1000);
}

/**
 * Stops the recorded phones under rootDir: all, those whose serial is listed, and/or those attached to the given
 * adb server. Returns what it stopped.
 */
export async function stopVirtualPhones(rootDir: string, options: { adb?: Partial<AdbEndpoint>; serials?: string[] } = {}): Promise<VirtualPhoneRecord[]> {
  const root = resolve(rootDir);
  const records = readState(root);
  const server = options.adb ? serverKey({ ...DEFAULT_ADB_ENDPOINT, ...options.adb }) : null;
  const chosen = records.filter((r) => (!options.serials || options.serials.includes(r.serial)) && (!server || serverKey(r.adb) === server));
  for (const r of chosen) {
    await stopOne(createAdb(r.adb), r);
  }
  writeState(root, records.filter((r) => !chosen.includes(r)));
  return chosen;
}

/**
 * The user taps "Allow" on unauthorised phones (the running ones under rootDir, or those listed): each is told so
 * (SIGUSR2), and this waits until its adb server lists it as "device". Returns the serials authorised.
 */
export async function authorizeVirtualPhones(rootDir: string, options: { serials?: string[]; timeoutMs?: number } = {}): Promise<string[]> {
  const root = resolve(rootDir);
  const records = listVirtualPhones(root).filter((r) => r.alive && (options.serials ? options.serials.includes(r.serial) : r.unauthorized));
  const missing = (options.serials ?? []).filter((s) => !records.some((r) => r.serial === s));
  if (missing.length > 0) throw new Error(`no running virtual phone ${missing.join(', ')} under ${root} (see \`confidant virtual list\`)`);
  for (const r of records) process.kill(r.pid, 'SIGUSR2');
  const byServer = new Map<string, VirtualPhoneRecord[]>();
  for (const r of records) byServer.set(serverKey(r.adb), [...(byServer.get(serverKey(r.adb)) ?? []), r]);
  for (const group of byServer.values()) {
    await waitForState(createAdb(group[0]!.adb), group.map((r) => r.serial), options.timeoutMs ?? 10_000);
  }
  const authorised = new Set(records.map((r) => r.serial));
  writeState(root, readState(root).map((r) => (authorised.has(r.serial) ? { ...r, unauthorized: false } : r)));
  return records.map((r) => r.serial);
}

/** The recorded phones under rootDir, with whether each process is still alive. */
export function listVirtualPhones(rootDir: string): Array<VirtualPhoneRecord & { alive: boolean }> {
  return readState(resolve(rootDir)).map((r) => ({ ...r, alive: isPhoneProcess(r) }));
}
