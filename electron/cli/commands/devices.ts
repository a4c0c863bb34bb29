// `confidant devices`: the phones adb servers see (the local one, plus any `--adb host:port`), with properties, or
// guidance for the ones not ready. One-shot; the app follows devices live (core/adb/watch.ts).
import { parseArgs } from 'node:util';
import type { DeviceInfo } from '../../core/api/types.js';
import { DEFAULT_ADB_ENDPOINT, connectAdb, createAdb, type AdbEndpoint } from '../../core/adb/client.js';
import { listDevices, listDevicesOnServers } from '../../core/adb/devices.js';
import { adbServerList, parseAdbServer, serverKey } from '../../core/adb/servers.js';
import { UsageError, gib } from '../args.js';

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

export async function devicesCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { json: { type: 'boolean' }, 'adb-port': { type: 'string' }, adb: { type: 'string', multiple: true } },
  });
  const servers = adbServersFromOptions(values);
  if (servers.length === 1) {
    // One server: a server that is down is an error (exit 1), as it always was.
    const devices = await listDevices(await connectAdb(servers[0]));
    if (values.json) console.log(JSON.stringify(devices, null, 2));
    else printDevices(devices, false);
    return;
  }
  const { devices, servers: statuses } = await listDevicesOnServers(servers.map((ep) => createAdb(ep)));
  // A server that is down does not hide the others' phones; it is reported on stderr (the JSON stays a list).
  for (const s of statuses) if (s.state !== 'ready') console.error(`adb server ${s.server}: ${s.message}`);
  if (values.json) console.log(JSON.stringify(devices, null, 2));
  else printDevices(devices, true);
  if (statuses.every((s) => s.state !== 'ready')) {
    throw new Error(`no adb server answered (${servers.map(serverKey).join(', ')})`);
  }
}

function printDevices(devices: DeviceInfo[], showServer: boolean): void {
  if (devices.length === 0) {
    console.log('No phones attached. Plug one in with USB debugging on, or start virtual phones: confidant virtual start --count 2');
    return;
  }
  for (const d of devices) console.log(describeLine(d, showServer));
}
