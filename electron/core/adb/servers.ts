// Several adb servers: parsing "host:port" endpoints, the stable device id "<server>/<serial>", and resolving what a
// user selected (ids, or plain serials of the default server) to DeviceInfo. Pure; no network (see devices.ts).
import type { DeviceInfo } from '../api/types.js';
import { DEFAULT_ADB_ENDPOINT, type AdbEndpoint } from './client.js';

/** "host:port" of an endpoint, with localhost spelled 127.0.0.1 so that ids stay stable. */
export function serverKey(endpoint: AdbEndpoint): string {
  const host = endpoint.host === 'localhost' ? '127.0.0.1' : endpoint.host;
  return `${host.includes(':') ? `[${host}]` : host}:${endpoint.port}`;
}

export const DEFAULT_SERVER_KEY = serverKey(DEFAULT_ADB_ENDPOINT);

/**
 * Parses an adb server given by a person: "host:port", "[ipv6]:port", a bare port (local server), or a bare host
 * (port 5037). Throws an Error that shows an example.
 */
export function parseAdbServer(text: string): AdbEndpoint {
  const t = text.trim();
  const bad = () =>
    new Error(`"${text}" is not an adb server: write host:port (e.g. 192.168.1.20:5037 for \`adb -a nodaemon server\` on another machine, or 15037 for a local one on port 15037)`);
  let host: string;
  let portText: string | undefined;
  const v6 = /^\[([0-9a-fA-F:.]+)\](?::(\d+))?$/.exec(t);
  if (v6) [, host, portText] = v6 as unknown as [string, string, string | undefined];
  else if (/^\d+$/.test(t)) [host, portText] = [DEFAULT_ADB_ENDPOINT.host, t];
  else {
    const m = /^([A-Za-z0-9.-]+)(?::(\d+))?$/.exec(t);
    if (!m) throw bad();
    [, host, portText] = m as unknown as [string, string, string | undefined];
  }
  const port = portText === undefined ? DEFAULT_ADB_ENDPOINT.port : Number(portText);
  if (!host || !Number.isInteger(port) || port < 1 || port > 65535) throw bad();
  return { host: host === 'localhost' ? '127.0.0.1' : host, port };
}

/** The default local server first (its port may differ from 5037), then the others, without duplicates. */
export function adbServerList(defaultEndpoint: AdbEndpoint, others: AdbEndpoint[] = []): AdbEndpoint[] {
  const out: AdbEndpoint[] = [];
  for (const ep of [defaultEndpoint, ...others]) {
    if (!out.some((o) => serverKey(o) === serverKey(ep))) out.push(ep);
  }
  return out;
}

export function deviceId(server: string, serial: string): string {
  return `${server}/${serial}`;
}

/** Splits an id at the first "/" after a host:port; a plain serial (no server part) gives server null. */
export function parseDeviceId(id: string): { server: string | null; serial: string } {
  const m = /^((?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d+)\/(.+)$/.exec(id);
  return m ? { server: m[1]!, serial: m[2]! } : { server: null, serial: id };
}

/**
 * Finds each wanted device: an id matches exactly; a plain serial matches on the default server, or on any server
 * where it is the only phone with that serial. Throws an Error naming what is attached when one is missing.
 */
export function resolveDevices(all: DeviceInfo[], wanted: string[], defaultServer = DEFAULT_SERVER_KEY): DeviceInfo[] {
  return wanted.map((w) => {
    const { server, serial } = parseDeviceId(w);
    let found: DeviceInfo | undefined;
    if (server !== null) {
      found = all.find((d) => d.server === server && d.serial === serial);
    } else {
      const same = all.filter((d) => d.serial === serial);
      found = same.find((d) => d.server === defaultServer) ?? (same.length === 1 ? same[0] : undefined);
      if (!found && same.length > 1) {
        throw new Error(`${w} is attached to several adb servers (${same.map((d) => d.server).join(', ')}): select it by id, e.g. ${same[0]!.id}`);
      }
    }
    if (!found) {
      const attached = all.map((d) => (d.server === defaultServer ? d.serial : d.id));
      throw new Error(`device ${w} is not attached (attached: ${attached.join(', ') || 'none'})`);
    }
    return found;
  });
}
