// `confidant devices`: the phones an adb server sees, with properties, or guidance for the ones not ready.
import { parseArgs } from 'node:util';
import { connectAdb } from '../../core/adb/client.js';
import { listDevices } from '../../core/adb/devices.js';
import { gib } from '../args.js';

export async function devicesCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { json: { type: 'boolean' }, 'adb-port': { type: 'string' } } });
  const adb = await connectAdb({ port: values['adb-port'] ? Number(values['adb-port']) : undefined });
  const devices = await listDevices(adb);
  if (values.json) {
    console.log(JSON.stringify(devices, null, 2));
    return;
  }
  if (devices.length === 0) {
    console.log('No phones attached. Plug one in with USB debugging on, or start virtual phones: confidant virtual start --count 2');
    return;
  }
  for (const d of devices) {
    if (d.state !== 'device') {
      console.log(`${d.serial}  ${d.state}\n  ${d.guidance}`);
      continue;
    }
    const battery = d.batteryPercent === null ? '' : `  battery ${d.batteryPercent}%`;
    const temp = d.temperatureC === null ? '' : ` ${d.temperatureC.toFixed(1)}°C`;
    console.log(`${d.serial}  ${d.manufacturer} ${d.model}${d.virtual ? ' (virtual)' : ''}  Android ${d.androidVersion}  ${d.soc}  ${d.abis.join(',')}  RAM ${gib(d.ramAvailableBytes)} free of ${gib(d.ramTotalBytes)}${battery}${temp}`);
    if (d.guidance) console.log(`  ${d.guidance}`);
  }
}
