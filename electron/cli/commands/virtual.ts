// `confidant virtual start|stop|list`: virtual phones (x86_64, own sandbox and RAM budget) attached to adb.
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { homedir } from 'node:os';
import { listVirtualPhones, startVirtualPhones, stopVirtualPhones } from '../../core/virtual-phone/manager.js';
import { UsageError, gib, parseBytes, parseCount } from '../args.js';

export const VIRTUAL_ROOT = process.env.CONFIDANT_VIRTUAL_DIR ?? join(homedir(), '.confidant', 'virtual-phones');

export async function virtualCommand(argv: string[]): Promise<void> {
  const [action, ...rest] = argv;
  const { values } = parseArgs({
    args: rest,
    options: { count: { type: 'string' }, ram: { type: 'string' }, cores: { type: 'string' }, json: { type: 'boolean' }, 'adb-port': { type: 'string' } },
  });
  const adb = values['adb-port'] ? { port: Number(values['adb-port']) } : undefined;
  if (action === 'start') {
    const ramMb = Math.floor(parseBytes(values.ram ?? '3GiB', '--ram') / 2 ** 20);
    const phones = await startVirtualPhones({ count: parseCount(values.count, '--count', 2), rootDir: VIRTUAL_ROOT, ramMb, cores: parseCount(values.cores, '--cores', 4), detached: true, adb });
    for (const p of phones) console.log(`${p.serial}  ${p.name}  RAM ${gib(p.ramBytes)}  sandbox ${p.sandboxDir}`);
  } else if (action === 'stop') {
    const stopped = await stopVirtualPhones(VIRTUAL_ROOT, { adb });
    console.log(stopped.length ? `stopped ${stopped.map((p) => p.serial).join(', ')}` : 'no virtual phones were running');
  } else if (action === 'list') {
    const phones = listVirtualPhones(VIRTUAL_ROOT);
    if (values.json) console.log(JSON.stringify(phones, null, 2));
    else for (const p of phones) console.log(`${p.serial}  ${p.name}  ${p.alive ? 'running' : 'stopped'}  sandbox ${p.sandboxDir}`);
  } else {
    throw new UsageError('usage: confidant virtual start [--count N] [--ram 3GiB] [--cores 4] | stop | list [--json]');
  }
}
