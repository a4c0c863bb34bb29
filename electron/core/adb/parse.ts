// Pure parsers for text that comes back from phones through adb: getprop, /proc/meminfo, dumpsys battery,
// `adb devices`, and the `echo __rc=$?` exit-code marker. No I/O here: every function is tested on captured text.

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
}

/** `dumpsys battery`: level/scale in percent, temperature in tenths of a degree Celsius. */
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
  return {
    percent: level === null || scale <= 0 ? null : Math.round((level * 100) / scale),
    temperatureC: temp === null ? null : temp / 10,
  };
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

/** What to tell the user for an adb state other than "device" (empty for "device"). */
export function guidanceForState(state: string, serial: string): string {
  const s = state.toLowerCase();
  if (s === 'device') return '';
  if (s === 'unauthorized') {
    return 'Unlock the phone and accept "Allow USB debugging?" (tick "Always allow from this computer"). ' +
      'No prompt? In Developer options tap "Revoke USB debugging authorisations", then replug the cable.';
  }
  if (s === 'authorizing') return 'adb is waiting for the phone to answer the authorisation: unlock it and wait a few seconds.';
  if (s === 'connecting') return 'adb is connecting to the phone: wait a few seconds.';
  if (s === 'offline') {
    return serial.includes(':')
      ? `adb lost contact with ${serial}: run \`adb disconnect ${serial}\` then \`adb connect ${serial}\`; for a virtual phone, restart it with \`confidant virtual stop\` and \`confidant virtual start\`.`
      : 'adb lost contact with the phone: replug the cable (use a data cable, not a charge-only one) or run `adb reconnect offline`.';
  }
  if (s.startsWith('no permissions')) {
    return 'This user may not open the USB device: add a udev rule for the phone\'s vendor id (or install the ' +
      '`android-sdk-platform-tools-common` package), add yourself to the `plugdev` group, log in again, then ' +
      'replug the phone and run `adb kill-server`.';
  }
  if (s === 'recovery' || s === 'rescue' || s === 'sideload') return `The phone is in ${state} mode: reboot it into Android.`;
  if (s === 'bootloader') return 'The phone is in the bootloader (fastboot): reboot it into Android.';
  if (s === 'host') return 'This entry is another adb host, not a phone.';
  return `adb reports the phone as "${state}": replug it, unlock it, and check that USB debugging is on.`;
}
