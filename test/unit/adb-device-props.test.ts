// Unit tier: device properties from text shaped like real phones' output (Pixel 7 / Tensor G2, Galaxy S23 /
// Snapdragon 8 Gen 2, Redmi / Helio G85, Nexus 5 / MSM8974 with offline cores), the full probe through
// deviceInfoFromProbe, guidance for every adb state, and adb server / device id parsing. Needs no adb.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DeviceInfo } from '../../electron/core/api/types.js';
import { PROBE_COMMAND, blankDeviceInfo, deviceInfoFromProbe } from '../../electron/core/adb/devices.js';
import {
  guidanceForState, isTcpSerial, parseBatteryDump, parseCpuList, parseCpuMaxFreqs, parseMeminfo, parseThermalZones,
  thermalRawToC,
} from '../../electron/core/adb/parse.js';
import { adbServerList, deviceId, parseAdbServer, parseDeviceId, resolveDevices, serverKey } from '../../electron/core/adb/servers.js';
import { cpuSummary } from '../../electron/cli/commands/devices.js';

const crlf = (lines: string[]) => lines.join('\r\n');

// --- Pixel 7 (Android 14, legacy shell through a pty: CRLF) ------------------------------------------------------
const PIXEL7_GETPROP = crlf([
  '[ro.board.platform]: [gs201]',
  '[ro.build.version.release]: [14]',
  '[ro.build.version.sdk]: [34]',
  '[ro.hardware]: [panther]',
  '[ro.product.cpu.abilist]: [arm64-v8a,armeabi-v7a,armeabi]',
  '[ro.product.manufacturer]: [Google]',
  '[ro.product.model]: [Pixel 7]',
  '[ro.soc.manufacturer]: [Google]',
  '[ro.soc.model]: [GS201]',
  '',
]);
const PIXEL7_MEMINFO = crlf([
  'MemTotal:        7706720 kB', 'MemFree:          226496 kB', 'MemAvailable:    3145128 kB', 'Buffers:            3336 kB',
  'Cached:          3037208 kB', 'SwapCached:        69776 kB', 'Active:          2383904 kB', 'Inactive:        2624672 kB',
  'Active(anon):    1030352 kB', 'Inactive(anon):  1013936 kB', 'Active(file):    1353552 kB', 'Inactive(file):  1610736 kB',
  'Unevictable:      182028 kB', 'Mlocked:          180812 kB', 'SwapTotal:       6291452 kB', 'SwapFree:        4015604 kB',
  'Dirty:               280 kB', 'Writeback:             0 kB', 'AnonPages:       2145024 kB', 'Mapped:          1578304 kB',
  'Shmem:             33020 kB', 'KReclaimable:     326508 kB', 'Slab:             597652 kB', 'SReclaimable:     144564 kB',
  'SUnreclaim:       453088 kB', 'KernelStack:       70432 kB', 'ShadowCallStack:   17632 kB', 'PageTables:       166044 kB',
  'CommitLimit:    10144812 kB', 'Committed_AS:   158004496 kB', 'VmallocTotal:   262930368 kB', 'VmallocUsed:      195640 kB',
  'VmallocChunk:          0 kB', 'Percpu:            12928 kB', 'AnonHugePages:         0 kB', 'CmaTotal:         217088 kB',
  'CmaFree:            2452 kB', '',
]);
const PIXEL7_BATTERY = crlf([
  'Current Battery Service state:',
  '  AC powered: false', '  USB powered: false', '  Wireless powered: false', '  Dock powered: false',
  '  Max charging current: 0', '  Max charging voltage: 0', '  Charge counter: 2929000', '  status: 3', '  health: 2',
  '  present: true', '  level: 62', '  scale: 100', '  voltage: 3957', '  temperature: 296', '  technology: Li-ion',
  '  Charging state: 1', '  Charging policy: 1', '  Capacity level: -1', '',
]);
// What the probe's loops print: path and value (cpufreq), path|type|temp (thermal).
const PIXEL7_CPUFREQ = crlf([0, 1, 2, 3, 4, 5, 6, 7].map((c) =>
  `/sys/devices/system/cpu/cpu${c}/cpufreq/cpuinfo_max_freq:${c < 4 ? 1803000 : c < 6 ? 2348000 : 2850000}`).concat(''));
const PIXEL7_THERMAL = crlf([
  '/sys/class/thermal/thermal_zone0|BIG|46390',
  '/sys/class/thermal/thermal_zone1|MID|44560',
  '/sys/class/thermal/thermal_zone10|neutral_therm|33458',
  '/sys/class/thermal/thermal_zone11|sub-mu|', // unreadable for the shell user: cat printed nothing
  '/sys/class/thermal/thermal_zone2|LITTLE|42875',
  '/sys/class/thermal/thermal_zone3|G3D|41021',
  '/sys/class/thermal/thermal_zone4|TPU|41450',
  '/sys/class/thermal/thermal_zone5|battery|29600',
  '/sys/class/thermal/thermal_zone6|soc|0', // a disabled virtual sensor reads 0
  '/sys/class/thermal/thermal_zone7|skin-therm|31822',
  '',
]);
const SECTION = '__CONFIDANT_SECTION__';
const probe = (...sections: string[]) => sections.join(`${SECTION}\r\n`);

test('Pixel 7: the full probe becomes DeviceInfo (CRLF, 8 cores in three clusters, thermal zones in order)', () => {
  const d = deviceInfoFromProbe('2A191FDH2000EX', probe(PIXEL7_GETPROP, PIXEL7_MEMINFO, PIXEL7_BATTERY, '0-7\r\n', PIXEL7_CPUFREQ, PIXEL7_THERMAL));
  assert.equal(d.id, '127.0.0.1:5037/2A191FDH2000EX');
  assert.equal(d.server, '127.0.0.1:5037');
  assert.equal(d.state, 'device');
  assert.equal(d.guidance, '');
  assert.equal(`${d.manufacturer} ${d.model}`, 'Google Pixel 7');
  assert.equal(d.soc, 'GS201');
  assert.equal(d.androidVersion, '14');
  assert.deepEqual(d.abis, ['arm64-v8a', 'armeabi-v7a', 'armeabi']);
  assert.equal(d.ramTotalBytes, 7706720 * 1024);
  assert.equal(d.ramAvailableBytes, 3145128 * 1024);
  assert.equal(d.cpuCores, 8);
  assert.deepEqual(d.cpuMaxFreqsKHz, [1803000, 1803000, 1803000, 1803000, 2348000, 2348000, 2850000, 2850000]);
  assert.equal(d.batteryPercent, 62);
  assert.equal(d.batteryCharging, false);
  assert.equal(d.temperatureC, 29.6);
  assert.deepEqual(d.thermalZones.map((z) => [z.zone, z.type, z.tempC]), [
    [0, 'BIG', 46.4], [1, 'MID', 44.6], [2, 'LITTLE', 42.9], [3, 'G3D', 41], [4, 'TPU', 41.5], [5, 'battery', 29.6],
    [7, 'skin-therm', 31.8], [10, 'neutral_therm', 33.5],
  ]);
  assert.equal(d.virtual, false);
  assert.equal(cpuSummary(d), '8 cores (4x1.80 + 2x2.35 + 2x2.85 GHz)');
});

// --- Galaxy S23 (SM8550): Samsung's extra battery lines, Qualcomm's non-temperature zones ------------------------
const S23_BATTERY = [
  'Current Battery Service state:',
  '  AC powered: false', '  USB powered: true', '  Wireless powered: false', '  Dock powered: false',
  '  Max charging current: 1500000', '  Max charging voltage: 5000000', '  Charge counter: 2860000', '  status: 2',
  '  health: 2', '  present: true', '  level: 73', '  scale: 100', '  voltage: 4106', '  temperature: 304',
  '  technology: Li-ion', '  Charging state: 1', '  Charging policy: 1', '  Capacity level: -1',
  '  mSecPlugTypeSummary: 2', '  LED Charging: true', '  LED Low Battery: true', '  current now: 1180',
  '  charge counter: 2860000', '  Adaptive Fast Charging Settings: true', '  Super Fast Charging Settings: true',
  '  mSecBatteryInfo.batteryHealth: 1', '  level: 12', // a vendor section repeating a key: the first one counts
  '',
].join('\n');
const S23_THERMAL = [
  '/sys/class/thermal/thermal_zone0|aoss-0|38300',
  '/sys/class/thermal/thermal_zone1|cpuss-0|40100',
  '/sys/class/thermal/thermal_zone12|cpu-1-0-0|43900',
  '/sys/class/thermal/thermal_zone20|gpuss-0|39700',
  '/sys/class/thermal/thermal_zone60|pm8550b-ibat-lvl0|6000', // battery current limiter (mA), not a temperature
  '/sys/class/thermal/thermal_zone61|pm8550b-vbat-lvl0|3200',
  '/sys/class/thermal/thermal_zone62|socd|95', // state-of-charge delta, 0..100
  '/sys/class/thermal/thermal_zone70|battery|30400',
  '/sys/class/thermal/thermal_zone71|xo-therm|34512',
  '',
].join('\n');

test('Galaxy S23: Samsung battery extras, charging, non-temperature zones left out', () => {
  assert.deepEqual(parseBatteryDump(S23_BATTERY), { percent: 73, temperatureC: 30.4, charging: true, status: 'charging' });
  const zones = parseThermalZones(S23_THERMAL);
  assert.deepEqual(zones.map((z) => z.type), ['aoss-0', 'cpuss-0', 'cpu-1-0-0', 'gpuss-0', 'battery', 'xo-therm']);
  assert.equal(Math.max(...zones.map((z) => z.tempC)), 43.9);
  const props = crlf(['[ro.board.platform]: [kalama]', '[ro.hardware]: [qcom]', '[ro.product.cpu.abilist]: [arm64-v8a]',
    '[ro.product.manufacturer]: [samsung]', '[ro.product.model]: [SM-S911B]', '[ro.soc.model]: [SM8550]', '']);
  const d = deviceInfoFromProbe('R5CW12ABCDE', probe(props, PIXEL7_MEMINFO, S23_BATTERY, '0-7\n', '', S23_THERMAL), '192.168.1.20:5037');
  assert.equal(d.id, '192.168.1.20:5037/R5CW12ABCDE');
  assert.equal(d.soc, 'SM8550');
  assert.equal(d.cpuCores, 8);
  assert.deepEqual(d.cpuMaxFreqsKHz, [], 'no readable cpufreq: frequencies unknown, core count still known');
});

// --- Nexus 5 (Android 6, MSM8974): mpdecision offlines cores, whose cpufreq folders then vanish -------------------
test('Nexus 5: offline cores keep the core count from `possible`, tsens in whole degrees, full battery on USB', () => {
  const props = crlf(['[ro.board.platform]: [msm8974]', '[ro.hardware]: [hammerhead]', '[ro.product.cpu.abi]: [armeabi-v7a]',
    '[ro.product.cpu.abi2]: [armeabi]', '[ro.product.manufacturer]: [LGE]', '[ro.product.model]: [Nexus 5]',
    '[ro.build.version.release]: [6.0.1]', '']);
  const freqs = crlf(['/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq:2265600', '']);
  const thermal = crlf(['/sys/class/thermal/thermal_zone0|tsens_tz_sensor0|37', '/sys/class/thermal/thermal_zone5|tsens_tz_sensor5|41',
    '/sys/class/thermal/thermal_zone7|pm8841_tz|37000', '']);
  const battery = crlf(['Current Battery Service state:', '  AC powered: false', '  USB powered: true', '  Wireless powered: false',
    '  Max charging current: 0', '  status: 5', '  health: 2', '  present: true', '  level: 100', '  scale: 100',
    '  voltage: 4326', '  temperature: 280', '  technology: Li-ion', '']);
  const mem = crlf(['MemTotal:        1899976 kB', 'MemFree:           93616 kB', 'Buffers:           21808 kB', 'Cached:           528444 kB', '']);
  const d = deviceInfoFromProbe('03a5c1d2', probe(props, mem, battery, '0-3\r\n', freqs, thermal));
  assert.deepEqual(d.abis, ['armeabi-v7a', 'armeabi']);
  assert.equal(d.soc, 'msm8974', 'no ro.soc.model before Android 12: the board platform');
  assert.equal(d.cpuCores, 4);
  assert.deepEqual(d.cpuMaxFreqsKHz, [2265600, null, null, null]);
  assert.equal(d.ramAvailableBytes, (93616 + 21808 + 528444) * 1024, 'no MemAvailable on kernel 3.4');
  assert.equal(d.batteryPercent, 100);
  assert.equal(d.batteryCharging, false, 'full: plugged in but not charging');
  assert.deepEqual(d.thermalZones.map((z) => z.tempC), [37, 41, 37]);
});

test('Helio G85 thermal zones: MediaTek names, an absent sensor at -127 °C, a decidegree driver', () => {
  const zones = parseThermalZones([
    '/sys/class/thermal/thermal_zone0|mtktscpu|45123', '/sys/class/thermal/thermal_zone1|mtktspmic|41000',
    '/sys/class/thermal/thermal_zone2|mtktsbattery|30000', '/sys/class/thermal/thermal_zone3|mtktsbtsmdpa|-127000',
    '/sys/class/thermal/thermal_zone4|mtkts_bts|392', 'cat: /sys/class/thermal/thermal_zone9/temp: Permission denied',
  ].join('\n'));
  assert.deepEqual(zones.map((z) => [z.type, z.tempC]), [['mtktscpu', 45.1], ['mtktspmic', 41], ['mtktsbattery', 30], ['mtkts_bts', 39.2]]);
  assert.equal(thermalRawToC(-273000), null);
  assert.equal(thermalRawToC(0), null);
  assert.equal(thermalRawToC(-5000), -5);
});

test('cpu lists and cpufreq lines: ranges, gaps, sandbox prefixes, unreadable files', () => {
  assert.deepEqual(parseCpuList('0-7\n'), [0, 1, 2, 3, 4, 5, 6, 7]);
  assert.deepEqual(parseCpuList('0-3,6-7\r\n'), [0, 1, 2, 3, 6, 7]);
  assert.deepEqual(parseCpuList('0\n'), [0]);
  assert.deepEqual(parseCpuList('cat: /sys/devices/system/cpu/possible: No such file or directory\n'), []);
  const f = parseCpuMaxFreqs([
    '/tmp/vp/phone-1/sys/devices/system/cpu/cpu10/cpufreq/cpuinfo_max_freq:3187200',
    '/sys/devices/system/cpu/cpu2/cpufreq/cpuinfo_max_freq:',
    '/sys/devices/system/cpu/cpu[0-9]*/cpufreq/cpuinfo_max_freq:', // the glob matched nothing
  ].join('\n'));
  assert.deepEqual([...f.entries()], [[10, 3187200]]);
  const noCpufreq = deviceInfoFromProbe('x', probe('[ro.product.cpu.abilist]: [x86_64]', '', '', '', '', ''));
  assert.equal(noCpufreq.cpuCores, 0);
  assert.equal(cpuSummary(noCpufreq), '');
});

test('meminfo of a Pixel 7 with every field', () => {
  assert.deepEqual(parseMeminfo(PIXEL7_MEMINFO), { totalBytes: 7706720 * 1024, availableBytes: 3145128 * 1024 });
});

test('guidance names what to do for every adb state, and the server when it is not the default', () => {
  const states = ['unauthorized', 'authorizing', 'connecting', 'offline', 'no permissions (missing udev rules? user is in the plugdev group); see [http://developer.android.com/tools/device.html]',
    'recovery', 'rescue', 'sideload', 'bootloader', 'detached', 'host', 'unknown'];
  for (const s of states) {
    const g = guidanceForState(s, 'R58N12ABC');
    assert.ok(g.length > 20, `guidance for ${s}: "${g}"`);
  }
  assert.match(guidanceForState('no permissions (user in plugdev group; are your udev rules wrong?)', 'X'), /udev/);
  assert.match(guidanceForState('insufficient permissions for device', 'X'), /udev/);
  assert.match(guidanceForState('recovery', 'X'), /Reboot system now/);
  assert.match(guidanceForState('bootloader', 'X'), /fastboot reboot/);
  assert.match(guidanceForState('detached', 'X'), /adb -s X attach/);
  // A network phone that is not authorised: accept on the phone, then reconnect; a local one may be virtual.
  assert.match(guidanceForState('unauthorized', '192.168.1.7:5555'), /Allow debugging[\s\S]*adb disconnect 192\.168\.1\.7:5555/);
  assert.doesNotMatch(guidanceForState('unauthorized', '192.168.1.7:5555'), /virtual/);
  assert.match(guidanceForState('unauthorized', '127.0.0.1:40101'), /confidant virtual authorize --serial 127\.0\.0\.1:40101/);
  // Commands point at the server the phone is on.
  assert.match(guidanceForState('offline', '127.0.0.1:40101', '127.0.0.1:15037'), /`adb -P 15037 disconnect 127\.0\.0\.1:40101`/);
  assert.match(guidanceForState('offline', '127.0.0.1:40101', '10.0.0.5:5037'), /`adb -H 10\.0\.0\.5 -P 5037 disconnect/);
  assert.match(guidanceForState('offline', '127.0.0.1:40101', '127.0.0.1:5037'), /`adb disconnect/);
  assert.equal(isTcpSerial('127.0.0.1:40101'), true);
  assert.equal(isTcpSerial('emulator-5554'), false);
  assert.equal(isTcpSerial('adb-R58N12ABC-xYz._adb-tls-connect._tcp'), false);
});

test('adb servers: host:port, bare port, IPv6, errors; the default server first and once', () => {
  assert.deepEqual(parseAdbServer('192.168.1.20:5037'), { host: '192.168.1.20', port: 5037 });
  assert.deepEqual(parseAdbServer('15037'), { host: '127.0.0.1', port: 15037 });
  assert.deepEqual(parseAdbServer('localhost:15038'), { host: '127.0.0.1', port: 15038 });
  assert.deepEqual(parseAdbServer('farm.example.org'), { host: 'farm.example.org', port: 5037 });
  assert.deepEqual(parseAdbServer('[::1]:5037'), { host: '::1', port: 5037 });
  assert.equal(serverKey({ host: '::1', port: 5037 }), '[::1]:5037');
  assert.throws(() => parseAdbServer('host:99999'), /is not an adb server: write host:port/);
  assert.throws(() => parseAdbServer('a b:1'), /is not an adb server/);
  const list = adbServerList({ host: '127.0.0.1', port: 15037 }, [parseAdbServer('15038'), parseAdbServer('localhost:15037')]);
  assert.deepEqual(list.map(serverKey), ['127.0.0.1:15037', '127.0.0.1:15038']);
});

test('device ids: server/serial, TCP serials inside ids, plain serials resolve on the default server', () => {
  assert.equal(deviceId('127.0.0.1:15037', 'emulator-5554'), '127.0.0.1:15037/emulator-5554');
  assert.deepEqual(parseDeviceId('127.0.0.1:15037/127.0.0.1:40101'), { server: '127.0.0.1:15037', serial: '127.0.0.1:40101' });
  assert.deepEqual(parseDeviceId('127.0.0.1:40101'), { server: null, serial: '127.0.0.1:40101' });
  assert.deepEqual(parseDeviceId('R58N12ABC'), { server: null, serial: 'R58N12ABC' });
  const dev = (server: string, serial: string): DeviceInfo => blankDeviceInfo(serial, 'device', '', server);
  const all = [dev('127.0.0.1:5037', 'A'), dev('127.0.0.1:5038', 'A'), dev('127.0.0.1:5038', 'B')];
  assert.deepEqual(resolveDevices(all, ['A', 'B'], '127.0.0.1:5037').map((d) => d.id), ['127.0.0.1:5037/A', '127.0.0.1:5038/B']);
  assert.deepEqual(resolveDevices(all, ['127.0.0.1:5038/A']).map((d) => d.id), ['127.0.0.1:5038/A']);
  assert.throws(() => resolveDevices(all, ['A'], '127.0.0.1:9999'), /A is attached to several adb servers \(127\.0\.0\.1:5037, 127\.0\.0\.1:5038\): select it by id/);
  assert.throws(() => resolveDevices(all, ['127.0.0.1:5037/B'], '127.0.0.1:5037'), /device 127\.0\.0\.1:5037\/B is not attached \(attached: A, 127\.0\.0\.1:5038\/A, 127\.0\.0\.1:5038\/B\)/);
});

test('the probe is one shell line whose sections stay in order', () => {
  assert.equal(PROBE_COMMAND.split(`echo ${SECTION}`).length, 6);
  assert.match(PROBE_COMMAND, /^getprop; echo __CONFIDANT_SECTION__; cat \/proc\/meminfo;/);
  assert.doesNotMatch(PROBE_COMMAND, /\n/);
});
