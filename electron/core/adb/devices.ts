// Lists the phones an adb server sees as DeviceInfo: properties, RAM and battery for ready ones (one shell round
// trip each), guidance text for the rest (unauthorized, offline, no permissions, ...). Does not track changes.
import type { DeviceInfo } from '../api/types.js';
import type { Device } from '@devicefarmer/adbkit';
import type { Adb } from './client.js';
import { abiList, guidanceForState, parseBatteryDump, parseGetprop, parseMeminfo, splitSections } from './parse.js';
import { shellRaw } from './shell.js';

const SECTION = '__CONFIDANT_SECTION__';

function blank(serial: string, state: string, guidance: string): DeviceInfo {
  return {
    serial, state, guidance, manufacturer: '', model: '', androidVersion: '', soc: '', abis: [],
    ramTotalBytes: 0, ramAvailableBytes: 0, batteryPercent: null, temperatureC: null, virtual: false,
  };
}

/** Pure: builds a DeviceInfo from the text of `getprop; echo S; cat /proc/meminfo; echo S; dumpsys battery`. */
export function deviceInfoFromProbe(serial: string, probeText: string): DeviceInfo {
  const [propText = '', memText = '', batteryText = ''] = splitSections(probeText, SECTION);
  const props = parseGetprop(propText);
  const mem = parseMeminfo(memText);
  const battery = parseBatteryDump(batteryText);
  const info = blank(serial, 'device', '');
  info.manufacturer = props['ro.product.manufacturer'] ?? '';
  info.model = props['ro.product.model'] ?? '';
  info.androidVersion = props['ro.build.version.release'] ?? '';
  info.soc = props['ro.soc.model'] || props['ro.board.platform'] || props['ro.hardware'] || '';
  info.abis = abiList(props);
  info.ramTotalBytes = mem?.totalBytes ?? 0;
  info.ramAvailableBytes = mem?.availableBytes ?? 0;
  info.batteryPercent = battery.percent;
  info.temperatureC = battery.temperatureC;
  // Our virtual phones say so; the Android emulator sets ro.kernel.qemu=1.
  info.virtual = props['ro.confidant.virtual'] === '1' || props['ro.kernel.qemu'] === '1';
  if (Object.keys(props).length === 0) {
    info.guidance = 'The phone answered but `getprop` printed nothing: is it still booting? Try again in a few seconds.';
  } else if (info.abis.length === 0) {
    info.guidance = 'The phone does not report its CPU ABIs (ro.product.cpu.abilist): no agent binary can be chosen.';
  }
  return info;
}

/** Reads one ready phone's properties, memory and battery. */
export async function describeDevice(adb: Adb, serial: string, timeoutMs = 15_000): Promise<DeviceInfo> {
  const text = await shellRaw(adb, serial,
    `getprop; echo ${SECTION}; cat /proc/meminfo; echo ${SECTION}; dumpsys battery 2>/dev/null`, { timeoutMs });
  return deviceInfoFromProbe(serial, text);
}

/** Every device the server lists; a ready phone that fails to answer is reported with guidance, not thrown. */
export async function listDevices(adb: Adb, timeoutMs = 15_000): Promise<DeviceInfo[]> {
  const devices = await adb.call<Device[]>(`adb devices (server ${adb.endpoint.host}:${adb.endpoint.port})`, () => adb.client.listDevices(), timeoutMs);
  return Promise.all(devices.map(async (d): Promise<DeviceInfo> => {
    const state = String(d.type);
    if (state !== 'device') return blank(d.id, state, guidanceForState(state, d.id));
    try {
      return await describeDevice(adb, d.id, timeoutMs);
    } catch (err) {
      return blank(d.id, state, `The phone is attached but did not answer: ${(err as Error).message}. Unlock it, or replug it.`);
    }
  }));
}
