// Lists the phones adb servers see as DeviceInfo: properties, RAM, CPUs, battery and thermal zones for ready ones
// (one shell round trip each), guidance text for the rest (unauthorized, offline, no permissions, ...). One-shot;
// live tracking with reconnection is watch.ts.
import type { AdbServerStatus, DeviceInfo } from '../api/types.js';
import type { Device } from '@devicefarmer/adbkit';
import type { Adb } from './client.js';
import {
  abiList, guidanceForState, parseBatteryDump, parseCpuList, parseCpuMaxFreqs, parseGetprop, parseMeminfo,
  parseThermalZones, splitSections,
} from './parse.js';
import { DEFAULT_SERVER_KEY, deviceId, serverKey } from './servers.js';
import { shellRaw } from './shell.js';

const SECTION = '__CONFIDANT_SECTION__';

/**
 * One shell command for everything we read: each section's errors stay inside it (2>/dev/null), and loops print
 * the file name with the value so a missing core or zone cannot shift the others.
 */
export const PROBE_COMMAND = [
  'getprop',
  'cat /proc/meminfo',
  'dumpsys battery 2>/dev/null',
  'cat /sys/devices/system/cpu/possible 2>/dev/null',
  'for f in /sys/devices/system/cpu/cpu[0-9]*/cpufreq/cpuinfo_max_freq; do echo "$f:$(cat $f 2>/dev/null)"; done',
  'for z in /sys/class/thermal/thermal_zone[0-9]*; do echo "$z|$(cat $z/type 2>/dev/null)|$(cat $z/temp 2>/dev/null)"; done',
].join(`; echo ${SECTION}; `);

/** A DeviceInfo with nothing known beyond its state (for phones that are not ready, or did not answer). */
export function blankDeviceInfo(serial: string, state: string, guidance: string, server = DEFAULT_SERVER_KEY): DeviceInfo {
  return {
    id: deviceId(server, serial), server, serial, state, guidance, manufacturer: '', model: '', androidVersion: '', soc: '',
    abis: [], ramTotalBytes: 0, ramAvailableBytes: 0, cpuCores: 0, cpuMaxFreqsKHz: [], batteryPercent: null,
    batteryCharging: null, temperatureC: null, thermalZones: [], virtual: false,
  };
}

/** Pure: builds a DeviceInfo from the output of PROBE_COMMAND (sections cut at marker lines). */
export function deviceInfoFromProbe(serial: string, probeText: string, server = DEFAULT_SERVER_KEY): DeviceInfo {
  const [propText = '', memText = '', batteryText = '', possibleText = '', freqText = '', thermalText = ''] =
    splitSections(probeText, SECTION);
  const props = parseGetprop(propText);
  const mem = parseMeminfo(memText);
  const battery = parseBatteryDump(batteryText);
  const freqs = parseCpuMaxFreqs(freqText);
  const possible = parseCpuList(possibleText);
  // Offline cores lose their cpufreq folder on older kernels, so `possible` is the core count; without it, the
  // highest CPU number with a frequency is the best we have.
  const cores = possible.length > 0 ? Math.max(...possible) + 1 : freqs.size > 0 ? Math.max(...freqs.keys()) + 1 : 0;
  const info = blankDeviceInfo(serial, 'device', '', server);
  info.manufacturer = props['ro.product.manufacturer'] ?? '';
  info.model = props['ro.product.model'] ?? '';
  info.androidVersion = props['ro.build.version.release'] ?? '';
  info.soc = props['ro.soc.model'] || props['ro.board.platform'] || props['ro.hardware'] || '';
  info.abis = abiList(props);
  info.ramTotalBytes = mem?.totalBytes ?? 0;
  info.ramAvailableBytes = mem?.availableBytes ?? 0;
  info.cpuCores = cores;
  info.cpuMaxFreqsKHz = freqs.size === 0 ? [] : Array.from({ length: cores }, (_, i) => freqs.get(i) ?? null);
  info.batteryPercent = battery.percent;
  info.batteryCharging = battery.charging;
  info.temperatureC = battery.temperatureC;
  info.thermalZones = parseThermalZones(thermalText);
  // Our virtual phones say so; the Android emulator sets ro.kernel.qemu=1.
  info.virtual = props['ro.confidant.virtual'] === '1' || props['ro.kernel.qemu'] === '1';
  if (Object.keys(props).length === 0) {
    info.guidance = 'The phone answered but `getprop` printed nothing: is it still booting? Try again in a few seconds.';
  } else if (info.abis.length === 0) {
    info.guidance = 'The phone does not report its CPU ABIs (ro.product.cpu.abilist): no agent binary can be chosen.';
  }
  return info;
}

/** Reads one ready phone's properties, memory, CPUs, battery and thermal zones. */
export async function describeDevice(adb: Adb, serial: string, timeoutMs = 15_000): Promise<DeviceInfo> {
  const text = await shellRaw(adb, serial, PROBE_COMMAND, { timeoutMs });
  return deviceInfoFromProbe(serial, text, serverKey(adb.endpoint));
}

/** DeviceInfo for one entry of adb's list: described when ready, guidance otherwise; never throws. */
export async function deviceInfoFor(adb: Adb, serial: string, state: string, timeoutMs = 15_000): Promise<DeviceInfo> {
  const server = serverKey(adb.endpoint);
  if (state !== 'device') return blankDeviceInfo(serial, state, guidanceForState(state, serial, server), server);
  try {
    return await describeDevice(adb, serial, timeoutMs);
  } catch (err) {
    return blankDeviceInfo(serial, state, `The phone is attached but did not answer: ${(err as Error).message}. Unlock it, or replug it.`, server);
  }
}

/** Every device the server lists; a ready phone that fails to answer is reported with guidance, not thrown. */
export async function listDevices(adb: Adb, timeoutMs = 15_000): Promise<DeviceInfo[]> {
  const devices = await adb.call<Device[]>(`adb devices (server ${serverKey(adb.endpoint)})`, () => adb.client.listDevices(), timeoutMs);
  return Promise.all(devices.map((d) => deviceInfoFor(adb, d.id, String(d.type), timeoutMs)));
}

/**
 * Every device of several servers, with each server's status: a server that is down is reported in `servers`
 * (state unavailable, message saying how to start it) instead of failing the whole listing.
 */
export async function listDevicesOnServers(adbs: Adb[], timeoutMs = 15_000): Promise<{ devices: DeviceInfo[]; servers: AdbServerStatus[] }> {
  const results = await Promise.all(adbs.map(async (adb) => {
    const server = serverKey(adb.endpoint);
    try {
      const devices = await listDevices(adb, timeoutMs);
      return { devices, status: { server, state: 'ready', message: '', retryInMs: null } satisfies AdbServerStatus };
    } catch (err) {
      return { devices: [], status: { server, state: 'unavailable', message: (err as Error).message, retryInMs: null } satisfies AdbServerStatus };
    }
  }));
  return { devices: results.flatMap((r) => r.devices), servers: results.map((r) => r.status) };
}
