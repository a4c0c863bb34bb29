// `confidant virtual start|stop|list|authorize`: virtual phones (x86_64, each its own process, sandbox and RAM
// budget) attached to an adb server of this machine; optionally unauthorised, to try the "Allow debugging?" path.
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { homedir } from 'node:os';
import { createAdb, type AdbEndpoint } from '../../core/adb/client.js';
import { listDevicesOnServers } from '../../core/adb/devices.js';
import { serverKey } from '../../core/adb/servers.js';
import {
  authorizeVirtualPhones, listVirtualPhones, startVirtualPhones, stopVirtualPhones, type VirtualPhoneProfile, type VirtualPhoneRecord,
} from '../../core/virtual-phone/manager.js';
import { UsageError, gib, parseBytes, parseCount } from '../args.js';
import { adbServersFromOptions } from './devices.js';

export const VIRTUAL_ROOT = process.env.CONFIDANT_VIRTUAL_DIR ?? join(homedir(), '.confidant', 'virtual-phones');

const USAGE = 'usage: confidant virtual start [--count N] [--ram 3GiB] [--cores 4] [--cpu-max-khz K1,K2,...] [--battery 80]\n' +
  '                 [--unauthorized] [--adb host:port | --adb-port P]\n' +
  '       confidant virtual stop [--serial S]... [--adb host:port | --adb-port P]\n' +
  '       confidant virtual list [--json]\n' +
  '       confidant virtual authorize [--serial S]...   (as if the user tapped "Allow" on unauthorised phones)';

/** The one server phones attach to: --adb host:port, else the local one on --adb-port (default 5037). */
function targetServer(values: { 'adb-port'?: string; adb?: string[] }): AdbEndpoint | undefined {
  if (!values.adb?.length && values['adb-port'] === undefined) return undefined;
  if ((values.adb?.length ?? 0) > 1) throw new UsageError('--adb names the one adb server the phones attach to: give it once');
  const servers = adbServersFromOptions(values);
  return values.adb?.length ? servers.at(-1) : servers[0];
}

/** Where the phone really runs: its own host cores, or every core when it could not be pinned. */
function hostCores(p: VirtualPhoneRecord): string {
  return p.hostCpus ? `on host core${p.hostCpus.length > 1 ? 's' : ''} ${p.hostCpus.join(',')}` : 'on every host core';
}

function profileFrom(values: { 'cpu-max-khz'?: string; battery?: string }, cores: number): VirtualPhoneProfile | undefined {
  const profile: VirtualPhoneProfile = {};
  if (values['cpu-max-khz'] !== undefined) {
    const list = values['cpu-max-khz'].split(',').map((t) => t.trim());
    if (list.some((t) => !/^\d+$/.test(t) || Number(t) === 0) || (list.length !== 1 && list.length !== cores)) {
      throw new UsageError(`--cpu-max-khz takes one frequency in kHz for all cores or one per core (${cores}), got "${values['cpu-max-khz']}"`);
    }
    profile.cpuMaxFreqsKHz = list.length === 1 ? Array(cores).fill(Number(list[0])) as number[] : list.map(Number);
  }
  if (values.battery !== undefined) {
    const n = Number(values.battery);
    if (!Number.isInteger(n) || n < 0 || n > 100) throw new UsageError(`--battery must be a percentage 0..100, got "${values.battery}"`);
    profile.batteryPercent = n;
  }
  return Object.keys(profile).length ? profile : undefined;
}

export async function virtualCommand(argv: string[]): Promise<void> {
  const [action, ...rest] = argv;
  const { values } = parseArgs({
    args: rest,
    options: {
      count: { type: 'string' }, ram: { type: 'string' }, cores: { type: 'string' }, json: { type: 'boolean' },
      'adb-port': { type: 'string' }, adb: { type: 'string', multiple: true }, 'cpu-max-khz': { type: 'string' },
      battery: { type: 'string' }, unauthorized: { type: 'boolean' }, serial: { type: 'string', multiple: true },
    },
  });
  const adb = targetServer(values);
  if (action === 'start') {
    const ramMb = Math.floor(parseBytes(values.ram ?? '3GiB', '--ram') / 2 ** 20);
    const cores = parseCount(values.cores, '--cores', 4);
    const phones = await startVirtualPhones({
      count: parseCount(values.count, '--count', 2), rootDir: VIRTUAL_ROOT, ramMb, cores, detached: true, adb,
      unauthorized: values.unauthorized, profile: profileFrom(values, cores),
    });
    for (const p of phones) {
      console.log(`${p.serial}  ${p.name}  RAM ${gib(p.ramBytes)}  ${p.cores} cores  ${hostCores(p)}  adb ${serverKey(p.adb)}` +
        `${p.unauthorized ? '  unauthorized' : ''}  sandbox ${p.sandboxDir}`);
    }
    if (values.unauthorized) console.log(`allow them with: confidant virtual authorize${phones.map((p) => ` --serial ${p.serial}`).join('')}`);
  } else if (action === 'stop') {
    const stopped = await stopVirtualPhones(VIRTUAL_ROOT, { adb, serials: values.serial });
    console.log(stopped.length ? `stopped ${stopped.map((p) => p.serial).join(', ')}` : 'no virtual phones were running');
  } else if (action === 'list') {
    const phones = listVirtualPhones(VIRTUAL_ROOT);
    // What each phone's adb server says about it (a server may have restarted and forgotten it).
    const servers = [...new Map(phones.map((p) => [serverKey(p.adb), p.adb])).values()];
    const { devices } = await listDevicesOnServers(servers.map((ep) => createAdb(ep)), 5000);
    const adbState = (p: (typeof phones)[number]) =>
      devices.find((d) => d.server === serverKey(p.adb) && d.serial === p.serial)?.state ?? 'not attached';
    if (values.json) console.log(JSON.stringify(phones.map((p) => ({ ...p, adbState: adbState(p) })), null, 2));
    else if (phones.length === 0) console.log('no virtual phones (start some: confidant virtual start --count 2)');
    else {
      for (const p of phones) {
        console.log(`${p.serial}  ${p.name}  ${p.alive ? 'running' : 'stopped'}  adb ${serverKey(p.adb)}: ${adbState(p)}` +
          `  RAM ${gib(p.ramBytes)}  ${p.cores} cores  ${hostCores(p)}  sandbox ${p.sandboxDir}`);
      }
    }
  } else if (action === 'authorize') {
    const serials = await authorizeVirtualPhones(VIRTUAL_ROOT, { serials: values.serial });
    console.log(serials.length ? `authorised ${serials.join(', ')}` : 'no unauthorised virtual phones are running');
  } else {
    throw new UsageError(USAGE);
  }
}
