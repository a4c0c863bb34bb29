// Turns detected phones into planner inputs: which are usable, and how much memory a stage may take on each.
// Pure; the numbers are a policy (leave the OS and apps their share), not a measurement.
import type { DeviceInfo } from '../api/types.js';
import { resolveDevices } from '../adb/servers.js';
import type { PlanDevice } from '../plan/partition.js';

/** Share of a phone's available RAM a stage may use: Android kills background processes well before 100%. */
export const USABLE_RAM_FRACTION = 0.6;

export function readyDevices(all: DeviceInfo[], wanted?: string[]): DeviceInfo[] {
  const ready = all.filter((d) => d.state === 'device' && d.abis.length > 0);
  if (!wanted || wanted.length === 0) return ready;
  return wanted.map((serial) => {
    const d = all.find((x) => x.serial === serial);
    if (!d) throw new Error(`device ${serial} is not attached (attached: ${all.map((x) => x.serial).join(', ') || 'none'})`);
    if (!ready.includes(d)) throw new Error(`device ${serial} is ${d.state}: ${d.guidance || 'it cannot run the agent'}`);
    return d;
  });
}

export function planDevices(devices: DeviceInfo[]): PlanDevice[] {
  return devices.map((d) => ({ serial: d.serial, budgetBytes: Math.floor(d.ramAvailableBytes * USABLE_RAM_FRACTION), speed: 1 }));
}

/**
 * The devices a run trains on, over one or more adb servers: the chosen ones (ids "<server>/<serial>", or plain
 * serials of the default server), else every ready one; each must be ready. Their plan names are what the
 * deployer routes by (MultiServerDeployer): the plain serial on the default server, the id elsewhere.
 */
export function chooseTrainingDevices(all: DeviceInfo[], wanted: string[] | undefined, defaultServer: string): PlanDevice[] {
  const chosen = wanted && wanted.length > 0 ? resolveDevices(all, wanted, defaultServer) : all.filter((d) => d.state === 'device' && d.abis.length > 0);
  for (const d of chosen) {
    if (d.state !== 'device' || d.abis.length === 0) throw new Error(`device ${d.id} is ${d.state}: ${d.guidance || 'it cannot run the agent'}`);
  }
  return chosen.map((d) => ({ ...planDevices([d])[0]!, serial: d.server === defaultServer ? d.serial : d.id }));
}
