// `confidant devices`: the phones adb servers see (the local one, plus any `--adb host:port`), with properties, or
// guidance for the ones not ready. One-shot; the app follows devices live (core/adb/watch.ts).
import { parseArgs } from 'node:util';
import type { DeviceInfo } from '../../core/api/types.js';
import { DEFAULT_ADB_ENDPOINT, connectAdb, createAdb, type AdbEndpoint } from '../../core/adb/client.js';
import { listDevices, listDevicesOnServers } from '../../core/adb/devices.js';
import { adbServerList, parseAdbServer, serverKey } from '../../core/adb/servers.js';
import { UsageError, gib } from '../args.js';
import type { Adb } from '../../core/adb/client.js';
import { probeAgentCapabilities } from '../../core/deploy/agent-probe.js';
import { removeConfidantFiles } from '../../core/deploy/phone-cleanup.js';
import { bundledPaths } from '../../core/paths.js';
import { chooseTrainingDevices } from '../../core/train/training-devices.js';
import type { PlanDevice } from '../../core/plan/partition.js';

/** The local server (port --adb-port, default 5037) and every --adb host:port, as the CLI options give them. */
export function adbServersFromOptions(values: { 'adb-port'?: string; adb?: string[] }): AdbEndpoint[] {
  const portText = values['adb-port'];
  if (portText !== undefined && !/^\d+$/.test(portText)) throw new UsageError(`--adb-port must be a port number, got "${portText}"`);
  const local = { ...DEFAULT_ADB_ENDPOINT, ...(portText ? { port: Number(portText) } : {}) };
  const others = (values.adb ?? []).map((text) => {
    try {
      return parseAdbServer(text);
    } catch (err) {
      throw new UsageError(`--adb: ${(err as Error).message}`);
    }
  });
  return adbServerList(local, others);
}

/**
 * The phones a command should use: the ready ones on the local server and every --adb server (or those named by
 * --devices), with their memory budgets; a server that is down is reported on stderr, no ready phone is an error.
 */
export async function phonesFromOptions(values: { 'adb-port'?: string; adb?: string[]; devices?: string }): Promise<{ adbs: Adb[]; devices: PlanDevice[] }> {
  const servers = adbServersFromOptions(values);
  // The local server is connected first: a clear error when it is down.
  const adbs = [await connectAdb(servers[0]), ...servers.slice(1).map((ep) => createAdb(ep))];
  const { devices: all, servers: statuses } = await listDevicesOnServers(adbs);
  for (const st of statuses) if (st.state !== 'ready') console.error(`adb server ${st.server}: ${st.message}`);
  const devices = chooseTrainingDevices(all, values.devices?.split(',').filter(Boolean), serverKey(servers[0]!));
  if (devices.length === 0) throw new Error('no ready phone: plug one in with USB debugging on, or run: confidant virtual start --count 2');
  return { adbs, devices };
}

const ghz = (khz: number) => `${(khz / 1e6).toFixed(2)} GHz`;

/** One line of CPU facts: "8 cores (4x1.80 + 3x2.42 + 1x3.19 GHz)". */
export function cpuSummary(d: Pick<DeviceInfo, 'cpuCores' | 'cpuMaxFreqsKHz'>): string {
  if (d.cpuCores === 0) return '';
  const groups: Array<[number, number]> = [];
  for (const f of d.cpuMaxFreqsKHz) {
    if (f === null) continue;
    const g = groups.find(([k]) => k === f);
    if (g) g[1]++;
    else groups.push([f, 1]);
  }
  groups.sort((a, b) => a[0] - b[0]);
  const detail = groups.length ? ` (${groups.map(([f, n]) => `${n}x${ghz(f).replace(' GHz', '')}`).join(' + ')} GHz)` : '';
  return `${d.cpuCores} cores${detail}`;
}

function describeLine(d: DeviceInfo, showServer: boolean): string {
  const name = showServer ? d.id : d.serial;
  if (d.state !== 'device') return `${name}  ${d.state}\n  ${d.guidance}`;
  const battery = d.batteryPercent === null ? '' : `  battery ${d.batteryPercent}%${d.batteryCharging ? ' charging' : ''}`;
  const temp = d.temperatureC === null ? '' : ` ${d.temperatureC.toFixed(1)}°C`;
  const hottest = d.thermalZones.reduce<DeviceInfo['thermalZones'][number] | null>((m, z) => (m && m.tempC >= z.tempC ? m : z), null);
  const thermal = hottest ? `  hottest ${hottest.type} ${hottest.tempC.toFixed(1)}°C` : '';
  const cpu = cpuSummary(d);
  return `${name}  ${d.manufacturer} ${d.model}${d.virtual ? ' (virtual)' : ''}  Android ${d.androidVersion}  ${d.soc}` +
    `${cpu ? `  ${cpu}` : ''}  ${d.abis.join(',')}  RAM ${gib(d.ramAvailableBytes)} free of ${gib(d.ramTotalBytes)}${battery}${temp}${thermal}` +
    (d.guidance ? `\n  ${d.guidance}` : '');
}

/** What each ready phone's agent reports (HELLO), or why it could not be asked. */
type AgentReport = { abi: string; cpuThreads: number; backends: string[]; opencl: boolean } | { error: string };

async function probeAgents(devices: DeviceInfo[], adbFor: (d: DeviceInfo) => Adb): Promise<Map<DeviceInfo, AgentReport>> {
  const agents = bundledPaths().agentBinaries;
  const out = new Map<DeviceInfo, AgentReport>();
  for (const d of devices) {
    if (d.state !== 'device' || d.abis.length === 0) continue;
    try {
      const c = await probeAgentCapabilities(adbFor(d), d.serial, agents);
      out.set(d, { abi: c.abi, cpuThreads: c.cpuThreads, backends: c.backends, opencl: c.opencl });
    } catch (err) {
      out.set(d, { error: (err as Error).message.split('\n')[0]! });
    }
  }
  return out;
}

export async function devicesCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      json: { type: 'boolean' }, 'adb-port': { type: 'string' }, adb: { type: 'string', multiple: true },
      agent: { type: 'boolean' }, clean: { type: 'boolean' },
    },
  });
  const servers = adbServersFromOptions(values);
  const adbs = servers.map((ep) => createAdb(ep));
  let devices: DeviceInfo[];
  if (servers.length === 1) {
    // One server: a server that is down is an error (exit 1), as it always was.
    devices = await listDevices(await connectAdb(servers[0]));
  } else {
    const listed = await listDevicesOnServers(adbs);
    // A server that is down does not hide the others' phones; it is reported on stderr (the JSON stays a list).
    for (const s of listed.servers) if (s.state !== 'ready') console.error(`adb server ${s.server}: ${s.message}`);
    if (listed.servers.every((s) => s.state !== 'ready')) {
      throw new Error(`no adb server answered (${servers.map(serverKey).join(', ')})`);
    }
    devices = listed.devices;
  }
  const adbOf = (d: DeviceInfo) => adbs.find((a) => serverKey(a.endpoint) === d.server) ?? adbs[0]!;
  if (values.clean) return cleanPhones(devices, adbOf);
  // --agent: start the agent on each ready phone for a moment and ask what it can do (CPU SIMD, OpenCL device).
  const reports = values.agent ? await probeAgents(devices, adbOf) : null;
  if (values.json) {
    console.log(JSON.stringify(reports ? devices.map((d) => ({ ...d, agent: reports.get(d) ?? null })) : devices, null, 2));
    return;
  }
  printDevices(devices, servers.length > 1, reports);
}

/** --clean: stop Confidant's agents on every ready phone and delete its folder there; a phone that fails is reported. */
async function cleanPhones(devices: DeviceInfo[], adbOf: (d: DeviceInfo) => Adb): Promise<void> {
  let failed = 0;
  for (const d of devices) {
    if (d.state !== 'device') continue;
    try {
      const { bytesFreed } = await removeConfidantFiles(adbOf(d), d.serial);
      console.log(`${d.id}: removed Confidant's agents and files (${(bytesFreed / 2 ** 20).toFixed(1)} MiB freed)`);
    } catch (err) {
      failed++;
      console.error(`${d.id}: ${(err as Error).message}`);
    }
  }
  if (failed > 0) throw new Error(`${failed} phone(s) could not be cleaned`);
}

function printDevices(devices: DeviceInfo[], showServer: boolean, reports: Map<DeviceInfo, AgentReport> | null): void {
  if (devices.length === 0) {
    console.log('No phones attached. Plug one in with USB debugging on, or start virtual phones: confidant virtual start --count 2');
    return;
  }
  for (const d of devices) {
    console.log(describeLine(d, showServer));
    const r = reports?.get(d);
    if (r) console.log(`  agent: ${'error' in r ? `could not ask it: ${r.error}` : `${r.abi}, ${r.cpuThreads} threads, ${r.backends.join(', ')}`}`);
  }
}
