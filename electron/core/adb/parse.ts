// Pure parsers for text that comes back from phones through adb: getprop, /proc/meminfo, dumpsys battery, CPU
// topology and cpufreq, thermal zones, `adb devices`, the `echo __rc=$?` exit-code marker, and the guidance for
// each adb state. No I/O here: every function is tested on captured text.

/** Splits on LF, dropping the CR of CRLF (legacy `adb shell` goes through a pty on real phones and sends CRLF). */
export function splitLines(text: string): string[] {
  return text.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
}

/**
 * `getprop` output: `[key]: [value]` lines. Values may span lines (a `[` opened and closed later); anything else
 * (warnings, banners, blank lines) is ignored.
 */
export function parseGetprop(text: string): Record<string, string> {
  const props: Record<string, string> = {};
  const lines = splitLines(text);
  for (let i = 0; i < lines.length; i++) {
    const m = /^\[([^\]]+)\]:\s*\[(.*)$/.exec(lines[i]!);
    if (!m) continue;
    let rest = m[2]!;
    // Multi-line value: keep reading until a line ends with `]`.
    while (!rest.endsWith(']') && i + 1 < lines.length) {
      i++;
      rest += '\n' + lines[i];
    }
    if (!rest.endsWith(']')) continue;
    props[m[1]!.trim()] = rest.slice(0, -1);
  }
  return props;
}

export interface MemInfo {
  totalBytes: number;
  /** MemAvailable, or MemFree + Buffers + Cached on kernels older than 3.14. */
  availableBytes: number;
}

/** /proc/meminfo: `Key:   123 kB` lines. Returns null when MemTotal is missing. */
export function parseMeminfo(text: string): MemInfo | null {
  const kb: Record<string, number> = {};
  for (const line of splitLines(text)) {
    const m = /^\s*([A-Za-z0-9_()]+):\s+(\d+)(?:\s*kB)?\s*$/.exec(line);
    if (m) kb[m[1]!] = Number(m[2]);
  }
  if (kb.MemTotal === undefined) return null;
  const available = kb.MemAvailable ?? (kb.MemFree ?? 0) + (kb.Buffers ?? 0) + (kb.Cached ?? 0);
  return { totalBytes: kb.MemTotal * 1024, availableBytes: available * 1024 };
}

export interface BatteryInfo {
  percent: number | null;
  temperatureC: number | null;
  /** true while charging (status 2), false on battery or when plugged but not charging; null when unknown. */
  charging: boolean | null;
  /** BatteryManager.BATTERY_STATUS_* as a word: charging, discharging, not charging, full, unknown. */
  status: string | null;
}

/** BatteryManager.BATTERY_STATUS_* (dumpsys prints the number). */
const BATTERY_STATUS: Record<number, string> = { 1: 'unknown', 2: 'charging', 3: 'discharging', 4: 'not charging', 5: 'full' };

/**
 * `dumpsys battery`: level/scale in percent, temperature in tenths of a degree Celsius, status as a number. Only the
 * first occurrence of a key counts (Samsung and others append vendor sections that reuse names in lower case).
 */
export function parseBatteryDump(text: string): BatteryInfo {
  const fields: Record<string, string> = {};
  for (const line of splitLines(text)) {
    const m = /^\s*([A-Za-z][A-Za-z ]*?)\s*:\s*(.*?)\s*$/.exec(line);
    if (m && fields[m[1]!.toLowerCase()] === undefined) fields[m[1]!.toLowerCase()] = m[2]!;
  }
  const num = (k: string) => (fields[k] !== undefined && /^-?\d+(\.\d+)?$/.test(fields[k]!) ? Number(fields[k]) : null);
  const level = num('level');
  const scale = num('scale') ?? 100;
  const temp = num('temperature');
  const statusCode = num('status');
  const status = statusCode === null ? null : (BATTERY_STATUS[statusCode] ?? 'unknown');
  return {
    percent: level === null || scale <= 0 ? null : Math.round((level * 100) / scale),
    temperatureC: temp === null ? null : temp / 10,
    charging: status === null || status === 'unknown' ? null : status === 'charging',
    status,
  };
}

/** A kernel CPU list (`/sys/devices/system/cpu/possible`: "0-7", "0-3,6-7", "0"); [] when unreadable. */
export function parseCpuList(text: string): number[] {
  const line = splitLines(text).map((l) => l.trim()).find((l) => /^\d+(-\d+)?(,\d+(-\d+)?)*$/.test(l));
  if (!line) return [];
  const cpus = new Set<number>();
  for (const part of line.split(',')) {
    const [a, b] = part.split('-').map(Number) as [number, number | undefined];
    // A bogus range from a broken kernel must not become a million-entry array.
    for (let c = a; c <= Math.min(b ?? a, a + 1023); c++) cpus.add(c);
  }
  return [...cpus].sort((x, y) => x - y);
}

/**
 * Lines `.../cpuN/cpufreq/cpuinfo_max_freq:KHZ` (the probe prints path and value; the path may carry a prefix, e.g.
 * a virtual phone's sandbox). Returns kHz by CPU number; unreadable files (empty value, error text) are skipped.
 */
export function parseCpuMaxFreqs(text: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const line of splitLines(text)) {
    const m = /\/cpu(\d+)\/cpufreq\/cpuinfo_max_freq:\s*(\d+)\s*$/.exec(line);
    if (m && Number(m[2]) > 0) out.set(Number(m[1]), Number(m[2]));
  }
  return out;
}

export interface ThermalZone {
  /** thermal_zoneN's N. */
  zone: number;
  /** The zone's `type` file: battery, cpu-1-0-usr, mtktscpu, skin-therm, ... */
  type: string;
  tempC: number;
}

/**
 * A thermal zone's raw `temp`: millidegrees Celsius by the kernel ABI, but some vendor drivers report tenths or
 * whole degrees; the size of the number tells which. Returns null for sentinels (disabled zones read 0, -273000,
 * or absurd values).
 */
export function thermalRawToC(raw: number): number | null {
  if (!Number.isFinite(raw) || raw === 0) return null;
  const abs = Math.abs(raw);
  const c = abs >= 1000 ? raw / 1000 : abs >= 150 ? raw / 10 : raw;
  return c < -40 || c > 150 ? null : Math.round(c * 10) / 10;
}

/**
 * Zones that are not thermometers: Qualcomm's battery current/voltage limiters (pm8550b-ibat-lvl0, vbat, vph-lvl1,
 * bcl), state-of-charge delta (socd, 0..100) and limits-management zones would read as temperatures.
 */
const NOT_A_TEMPERATURE = /ibat|vbat|vph|socd|bcl|lmh|-lvl\d|current|voltage/i;

/** Lines `PATH/thermal_zoneN|TYPE|TEMP` from the probe; zones without a usable reading are left out. */
export function parseThermalZones(text: string): ThermalZone[] {
  const out: ThermalZone[] = [];
  for (const line of splitLines(text)) {
    const m = /thermal_zone(\d+)\|([^|]*)\|\s*(-?\d+)\s*$/.exec(line);
    if (!m || NOT_A_TEMPERATURE.test(m[2]!)) continue;
    const tempC = thermalRawToC(Number(m[3]));
    if (tempC === null) continue;
    out.push({ zone: Number(m[1]), type: m[2]!.trim() || `zone${m[1]}`, tempC });
  }
  return out.sort((a, b) => a.zone - b.zone);
}

export const EXIT_MARKER = '__rc=';

/** The suffix shell commands get so that the legacy (exit-status-less) shell reports one. */
export function withExitMarker(command: string): string {
  // A subshell keeps `exit N` from skipping the echo; the newline ends a trailing `#` comment or `&`.
  return `(${command}\n); echo ${EXIT_MARKER}$?`;
}

export interface ShellResult {
  output: string;
  /** null when the marker is missing (the stream was cut before the command finished). */
  exitCode: number | null;
}

/**
 * Splits `...output...__rc=N` (the marker may follow output without a newline, and end with CRLF). The last
 * marker wins; text after it (stderr that overtook nothing but arrived late on a two-pipe shell) stays output.
 */
export function parseExitMarker(text: string): ShellResult {
  const re = /__rc=(\d+)[ \t]*\r?(?:\n|$)/g;
  let last: RegExpExecArray | null = null;
  for (let m = re.exec(text); m; m = re.exec(text)) last = m;
  if (!last) return { output: text, exitCode: null };
  return { output: text.slice(0, last.index) + text.slice(last.index + last[0].length), exitCode: Number(last[1]) };
}

/** Cuts combined output at marker lines (`echo MARKER` between commands); CR-tolerant. */
export function splitSections(text: string, marker: string): string[] {
  const out: string[] = [];
  let current: string[] = [];
  for (const line of splitLines(text)) {
    if (line.trim() === marker) {
      out.push(current.join('\n'));
      current = [];
    } else current.push(line);
  }
  out.push(current.join('\n'));
  return out;
}

/** ABIs in preference order: ro.product.cpu.abilist, else abi then abi2 (pre-Lollipop). */
export function abiList(props: Record<string, string>): string[] {
  const list = (props['ro.product.cpu.abilist'] ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  if (list.length > 0) return list;
  return [props['ro.product.cpu.abi'], props['ro.product.cpu.abi2']].filter((s): s is string => !!s && s.trim() !== '');
}

export interface AdbDeviceLine {
  serial: string;
  state: string;
}

/** `adb devices` text: `serial<TAB>state`; the state may contain spaces ("no permissions (...)"). */
export function parseAdbDevices(text: string): AdbDeviceLine[] {
  const out: AdbDeviceLine[] = [];
  for (const line of splitLines(text)) {
    if (line.startsWith('List of devices') || line.startsWith('*') || line.trim() === '') continue;
    const tab = line.indexOf('\t');
    if (tab <= 0) continue;
    out.push({ serial: line.slice(0, tab).trim(), state: line.slice(tab + 1).trim() });
  }
  return out;
}

/** True for `adb connect`ed serials (host:port), which are reconnected differently from USB ones. */
export function isTcpSerial(serial: string): boolean {
  return /^(\[[0-9a-fA-F:.]+\]|[\w.-]+):\d+$/.test(serial);
}

const LOOPBACK_SERIAL = /^(127\.\d+\.\d+\.\d+|localhost|\[::1\]):\d+$/;

/**
 * What to tell the user for an adb state other than "device" (empty for "device"). The states are adb's own words
 * (transport.cpp to_string(ConnectionState)); anything new gets a generic but still actionable sentence.
 */
export function guidanceForState(state: string, serial: string, server?: string): string {
  const text = guidanceText(state, serial);
  // For a server other than the default, the adb commands in the text must name it.
  const m = server ? /^(.*):(\d+)$/.exec(server) : null;
  if (!m || server === '127.0.0.1:5037' || server === 'localhost:5037') return text;
  const flags = `${m[1] === '127.0.0.1' || m[1] === 'localhost' ? '' : `-H ${m[1]} `}-P ${m[2]}`;
  return text.replaceAll('`adb ', `\`adb ${flags} `);
}

function guidanceText(state: string, serial: string): string {
  const s = state.toLowerCase().trim();
  const tcp = isTcpSerial(serial);
  if (s === 'device') return '';
  if (s === 'unauthorized') {
    if (tcp) {
      const virtual = LOOPBACK_SERIAL.test(serial)
        ? ` If it is a Confidant virtual phone started with --unauthorized, run \`confidant virtual authorize --serial ${serial}\`.`
        : '';
      return 'The phone has not allowed this computer to debug it: unlock it and accept "Allow debugging?" ' +
        `(tick "Always allow"), then run \`adb disconnect ${serial}\` and \`adb connect ${serial}\`.${virtual}`;
    }
    return 'Unlock the phone and accept "Allow USB debugging?" (tick "Always allow from this computer"). ' +
      'No prompt? In Developer options tap "Revoke USB debugging authorisations", then replug the cable.';
  }
  if (s === 'authorizing') return 'adb is waiting for the phone to answer the authorisation: unlock it and wait a few seconds.';
  if (s === 'connecting') {
    return 'adb is connecting to the phone: wait a few seconds. If it stays here, replug it (USB) or run ' +
      `\`adb disconnect ${serial}\` then \`adb connect ${serial}\` (network).`;
  }
  if (s === 'offline') {
    return tcp
      ? `adb lost contact with ${serial}: run \`adb disconnect ${serial}\` then \`adb connect ${serial}\`; for a virtual phone, restart it with \`confidant virtual stop\` and \`confidant virtual start\`.`
      : 'adb lost contact with the phone: replug the cable (use a data cable, not a charge-only one) or run `adb reconnect offline`.';
  }
  if (s.startsWith('no permissions') || s.startsWith('insufficient permissions')) {
    return 'This user may not open the USB device: add a udev rule for the phone\'s vendor id (or install the ' +
      '`android-sdk-platform-tools-common` package), add yourself to the `plugdev` group, log in again, then ' +
      'replug the phone and run `adb kill-server`.';
  }
  if (s === 'recovery') return 'The phone is in recovery mode: choose "Reboot system now" (or run `adb reboot`) to start Android.';
  if (s === 'rescue') return 'The phone is in rescue mode: choose "Reboot system now" to start Android.';
  if (s === 'sideload') return 'The phone is in sideload mode (installing an update over adb): let it finish, then reboot it into Android.';
  if (s === 'bootloader') return 'The phone is in the bootloader (fastboot): run `fastboot reboot` or choose "Start" on its screen to boot Android.';
  if (s === 'detached') return `adb has detached the phone: run \`adb -s ${serial} attach\`.`;
  if (s === 'host') return 'This entry is another adb host, not a phone.';
  return `adb reports the phone as "${state}": replug it, unlock it, and check that USB debugging is on.`;
}
