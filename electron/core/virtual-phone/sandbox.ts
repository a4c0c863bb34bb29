// The virtual phone's file system: a sandbox folder laid out like Android (/data, /sdcard, /system/bin, /proc, the
// cpufreq and thermal parts of /sys), its build properties, the getprop/dumpsys/nproc scripts, a generated
// /proc/meminfo, and the mapping of device paths to sandbox paths. Every answer comes from the phone's identity, so
// each phone can present a different device. It is not an isolation boundary: commands run as the workstation user.
import { chmodSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { isAbsolute, join, posix, resolve } from 'node:path';

export interface PhoneIdentity {
  /** "Virtual Phone 1" (ro.product.model). */
  modelName: string;
  /** ro.serialno; the adb serial is 127.0.0.1:PORT since the phone is attached over TCP. */
  serialNumber: string;
  ramBytes: number;
  cores: number;
  /** cpuinfo_max_freq of each core in kHz (length = cores); see defaultCpuMaxFreqsKHz. */
  cpuMaxFreqsKHz: number[];
  /** ro.soc.model. */
  socModel: string;
  batteryPercent: number;
  batteryTemperatureC: number;
  batteryCharging: boolean;
}

/**
 * Core frequencies shaped like a phone's clusters: half the cores little (1.80 GHz), one prime core (3.19 GHz) from
 * six cores up, the rest big (2.42 GHz); the values are Snapdragon 8 Gen 2 steps.
 */
export function defaultCpuMaxFreqsKHz(cores: number): number[] {
  if (cores <= 1) return Array.from({ length: Math.max(0, cores) }, () => 2_000_000);
  const little = Math.ceil(cores / 2);
  const prime = cores >= 6 ? 1 : 0;
  const big = cores - little - prime;
  return [...Array(little).fill(1_804_800), ...Array(big).fill(2_419_200), ...Array(prime).fill(3_187_200)] as number[];
}

/** Cluster index of each core (cores with the same max frequency form a cluster), as in thermal zone names. */
function clusterOf(freqs: number[]): number[] {
  const distinct = [...new Set(freqs)].sort((a, b) => a - b);
  return freqs.map((f) => distinct.indexOf(f));
}

/** Paths the shell rewrites into the sandbox; everything else is the workstation's own file system. */
const REWRITTEN_ROOTS = [
  '/data', '/sdcard', '/storage', '/system/bin', '/system/build.prop', '/proc/meminfo', '/proc/cpuinfo',
  '/sys/devices/system/cpu', '/sys/class/thermal',
];

/** Refuses sandbox paths that would need shell quoting once spliced into commands. */
export function checkSandboxDir(sandboxDir: string): string {
  const abs = resolve(sandboxDir);
  if (!/^[A-Za-z0-9_./+@%,-]+$/.test(abs)) {
    throw new Error(`virtual phone sandbox path "${abs}" has spaces or shell characters: choose a plain path`);
  }
  return abs;
}

export function buildProps(id: PhoneIdentity): Record<string, string> {
  const slug = id.modelName.toLowerCase().replace(/[^a-z0-9]+/g, '_');
  return {
    'ro.build.characteristics': 'default',
    'ro.build.fingerprint': `Confidant/${slug}/vphone_x86_64:14/UQ1A.240105.004/1:userdebug/test-keys`,
    'ro.build.id': 'UQ1A.240105.004',
    'ro.build.type': 'userdebug',
    'ro.build.version.release': '14',
    'ro.build.version.sdk': '34',
    'ro.confidant.cores': String(id.cores),
    'ro.confidant.ram_bytes': String(id.ramBytes),
    'ro.confidant.virtual': '1',
    'ro.hardware': 'ranchu',
    'ro.kernel.qemu': '0',
    'ro.product.board': 'vphone',
    'ro.product.brand': 'Confidant',
    'ro.product.cpu.abi': 'x86_64',
    'ro.product.cpu.abilist': 'x86_64',
    'ro.product.cpu.abilist32': '',
    'ro.product.cpu.abilist64': 'x86_64',
    'ro.product.device': 'vphone_x86_64',
    'ro.product.manufacturer': 'Confidant',
    'ro.product.model': id.modelName,
    'ro.product.name': 'vphone_x86_64',
    'ro.board.platform': 'vphone',
    'ro.serialno': id.serialNumber,
    'ro.soc.manufacturer': 'Confidant',
    'ro.soc.model': id.socModel,
    'sys.boot_completed': '1',
  };
}

/** /proc/meminfo in the kernel's layout (values in kB). */
export function meminfoText(totalBytes: number, availableBytes: number): string {
  const kb = (bytes: number) => String(Math.max(0, Math.floor(bytes / 1024))).padStart(8) + ' kB';
  const free = Math.floor(availableBytes * 0.4);
  const cached = Math.floor(availableBytes * 0.5);
  return [
    `MemTotal:       ${kb(totalBytes)}`,
    `MemFree:        ${kb(free)}`,
    `MemAvailable:   ${kb(availableBytes)}`,
    `Buffers:        ${kb(availableBytes * 0.02)}`,
    `Cached:         ${kb(cached)}`,
    `SwapCached:     ${kb(0)}`,
    `SwapTotal:      ${kb(0)}`,
    `SwapFree:       ${kb(0)}`,
    '',
  ].join('\n');
}

function getpropScript(propsFile: string): string {
  return `#!/bin/sh
# getprop of a Confidant virtual phone: reads ${propsFile} (key=value lines).
if [ $# -eq 0 ]; then
  while IFS= read -r line; do
    case "$line" in ''|'#'*) continue ;; esac
    printf '[%s]: [%s]\\n' "\${line%%=*}" "\${line#*=}"
  done < '${propsFile}'
  exit 0
fi
while IFS= read -r line; do
  if [ "\${line%%=*}" = "$1" ]; then printf '%s\\n' "\${line#*=}"; exit 0; fi
done < '${propsFile}'
printf '%s\\n' "\${2:-}"
`;
}

function dumpsysScript(id: PhoneIdentity): string {
  // The layout of Android 14's `dumpsys battery`; status 2 = charging, 3 = discharging (BatteryManager).
  return `#!/bin/sh
# dumpsys of a Confidant virtual phone: only the battery service exists.
case "$1" in
  battery)
    cat <<'BATTERY'
Current Battery Service state:
  AC powered: ${id.batteryCharging}
  USB powered: false
  Wireless powered: false
  Dock powered: false
  Max charging current: ${id.batteryCharging ? 3000000 : 0}
  Max charging voltage: ${id.batteryCharging ? 5000000 : 0}
  Charge counter: ${Math.round(id.batteryPercent * 45000)}
  status: ${id.batteryCharging ? (id.batteryPercent >= 100 ? 5 : 2) : 3}
  health: 2
  present: true
  level: ${Math.round(id.batteryPercent)}
  scale: 100
  voltage: ${3600 + Math.round(id.batteryPercent * 6)}
  temperature: ${Math.round(id.batteryTemperatureC * 10)}
  technology: Li-ion
  Charging state: ${id.batteryCharging ? 1 : 0}
  Charging policy: 1
  Capacity level: -1
BATTERY
    ;;
  *)
    echo "Can't find service: $1"
    exit 0
    ;;
esac
`;
}

/**
 * /sys/class/thermal zones like a Snapdragon phone's: battery and skin near the battery temperature, one zone per
 * core and one for the GPU a few degrees above it, all in millidegrees Celsius.
 */
export function thermalZonesOf(id: PhoneIdentity): Array<{ type: string; milliC: number }> {
  const base = id.batteryTemperatureC * 1000;
  const clusters = clusterOf(id.cpuMaxFreqsKHz);
  const zones = [
    { type: 'battery', milliC: Math.round(base) },
    { type: 'skin-therm', milliC: Math.round(base + 1800) },
  ];
  clusters.forEach((cluster, core) => zones.push({ type: `cpu-${cluster}-${core}-usr`, milliC: Math.round(base + 8000 + cluster * 1500 + (core % 3) * 300) }));
  zones.push({ type: 'gpuss-0-usr', milliC: Math.round(base + 6000) });
  return zones;
}

function cpuinfoText(cores: number): string {
  const blocks: string[] = [];
  for (let i = 0; i < cores; i++) blocks.push(`processor\t: ${i}\nvendor_id\t: Confidant\nmodel name\t: Virtual x86_64\n`);
  return blocks.join('\n');
}

function writeAtomic(path: string, text: string, mode: number): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, path);
}

/** Creates the Android-like folders and writes the identity files; safe to run again on an existing sandbox. */
export function prepareSandbox(sandboxDir: string, id: PhoneIdentity): void {
  const dir = checkSandboxDir(sandboxDir);
  for (const sub of ['data/local/tmp', 'sdcard', 'storage', 'system/bin', 'proc', 'sys/devices/system/cpu', 'sys/class/thermal']) {
    mkdirSync(join(dir, sub), { recursive: true });
  }
  const propsFile = join(dir, 'system/build.prop');
  const props = buildProps(id);
  const lines = Object.keys(props).sort().map((k) => `${k}=${props[k]}`);
  writeAtomic(propsFile, lines.join('\n') + '\n', 0o644);
  writeAtomic(join(dir, 'system/bin/getprop'), getpropScript(propsFile), 0o755);
  writeAtomic(join(dir, 'system/bin/dumpsys'), dumpsysScript(id), 0o755);
  writeAtomic(join(dir, 'system/bin/nproc'), `#!/bin/sh\necho ${id.cores}\n`, 0o755);
  writeAtomic(join(dir, 'proc/cpuinfo'), cpuinfoText(id.cores), 0o444);
  writeCpuAndThermal(dir, id);
  writeMeminfo(dir, id.ramBytes, Math.floor(id.ramBytes * 0.85));
}

function writeCpuAndThermal(dir: string, id: PhoneIdentity): void {
  const cpuRoot = join(dir, 'sys/devices/system/cpu');
  const thermalRoot = join(dir, 'sys/class/thermal');
  // A restarted phone may have fewer cores or zones than last time: start from empty folders.
  rmSync(cpuRoot, { recursive: true, force: true });
  rmSync(thermalRoot, { recursive: true, force: true });
  const range = id.cores > 1 ? `0-${id.cores - 1}\n` : '0\n';
  mkdirSync(cpuRoot, { recursive: true });
  for (const name of ['possible', 'present', 'online']) writeAtomic(join(cpuRoot, name), range, 0o444);
  id.cpuMaxFreqsKHz.forEach((khz, core) => {
    const freqDir = join(cpuRoot, `cpu${core}`, 'cpufreq');
    mkdirSync(freqDir, { recursive: true });
    writeAtomic(join(freqDir, 'cpuinfo_max_freq'), `${khz}\n`, 0o444);
    writeAtomic(join(freqDir, 'cpuinfo_min_freq'), `${Math.min(khz, 300_000)}\n`, 0o444);
  });
  thermalZonesOf(id).forEach((z, n) => {
    const zoneDir = join(thermalRoot, `thermal_zone${n}`);
    mkdirSync(zoneDir, { recursive: true });
    writeAtomic(join(zoneDir, 'type'), `${z.type}\n`, 0o444);
    writeAtomic(join(zoneDir, 'temp'), `${z.milliC}\n`, 0o444);
  });
}

export function writeMeminfo(sandboxDir: string, totalBytes: number, availableBytes: number): void {
  writeAtomic(join(sandboxDir, 'proc/meminfo'), meminfoText(totalBytes, availableBytes), 0o444);
}

/** Maps a device path (sync service) into the sandbox; `..` cannot climb out of it. */
export function devicePathToHost(sandboxDir: string, devicePath: string): string {
  const normal = posix.normalize('/' + devicePath.replace(/\\/g, '/'));
  return normal === '/' ? sandboxDir : join(sandboxDir, normal);
}

/**
 * Rewrites the Android paths in a shell command into the sandbox, where they start a word (after a blank, a
 * quote, `=`, `:`, a redirection or a separator). A textual rewrite, not a chroot: paths built at run time
 * (`X=/da; $X"ta"`) escape it, which is fine for a test double that runs our own commands.
 */
export function rewriteCommand(sandboxDir: string, command: string): string {
  if (!isAbsolute(sandboxDir)) throw new Error(`sandbox path must be absolute: ${sandboxDir}`);
  const roots = REWRITTEN_ROOTS.map((r) => r.replace(/[./]/g, (c) => `\\${c}`)).join('|');
  const re = new RegExp(`(^|[\\s'"=:;|&()<>\`])(${roots})(?=$|[/\\s'";|&()<>\`])`, 'g');
  return command.replace(re, (_m, lead: string, path: string) => `${lead}${sandboxDir}${path}`);
}
