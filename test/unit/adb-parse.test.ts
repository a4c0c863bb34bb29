// Unit tier: the pure parsers of adb/parse.ts (and the pure helpers of devices.ts and agent-deploy.ts) on captured
// phone output, CRLF and noise included. Needs no adb and no phone.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pickAgentBinary } from '../../electron/core/adb/agent-deploy.js';
import { deviceInfoFromProbe } from '../../electron/core/adb/devices.js';
import {
  abiList, guidanceForState, parseAdbDevices, parseBatteryDump, parseExitMarker, parseGetprop, parseMeminfo,
  splitSections, withExitMarker,
} from '../../electron/core/adb/parse.js';

// Shape of `adb shell getprop` on a Pixel over the legacy (pty) shell: CRLF, a multi-line value, a warning line.
const GETPROP_CRLF = [
  'WARNING: linker: libfoo.so has text relocations',
  '[dalvik.vm.heapsize]: [512m]',
  '[persist.sys.motd]: [line one',
  'line two]',
  '[ro.board.platform]: [gs201]',
  '[ro.build.version.release]: [14]',
  '[ro.build.version.sdk]: [34]',
  '[ro.empty]: []',
  '[ro.product.cpu.abi]: [arm64-v8a]',
  '[ro.product.cpu.abilist]: [arm64-v8a,armeabi-v7a,armeabi]',
  '[ro.product.manufacturer]: [Google]',
  '[ro.product.model]: [Pixel 7]',
  '[ro.soc.model]: [Tensor G2]',
  '',
].join('\r\n');

test('parseGetprop: CRLF, noise, multi-line and empty values', () => {
  const p = parseGetprop(GETPROP_CRLF);
  assert.equal(p['ro.product.model'], 'Pixel 7');
  assert.equal(p['ro.build.version.release'], '14');
  assert.equal(p['persist.sys.motd'], 'line one\nline two');
  assert.equal(p['ro.empty'], '');
  assert.equal(Object.keys(p).length, 11);
  assert.deepEqual(abiList(p), ['arm64-v8a', 'armeabi-v7a', 'armeabi']);
});

test('abiList falls back to ro.product.cpu.abi/abi2 on old phones', () => {
  assert.deepEqual(abiList({ 'ro.product.cpu.abi': 'armeabi-v7a', 'ro.product.cpu.abi2': 'armeabi' }), ['armeabi-v7a', 'armeabi']);
  assert.deepEqual(abiList({}), []);
});

const MEMINFO = `MemTotal:        7843120 kB\r\nMemFree:          180412 kB\r\nMemAvailable:    3105536 kB\r\nBuffers:            5128 kB\r\nCached:          2901336 kB\r\nSwapCached:        21232 kB\r\nHugePages_Total:       0\r\n`;

test('parseMeminfo: kB to bytes, MemAvailable preferred, old kernels fall back', () => {
  assert.deepEqual(parseMeminfo(MEMINFO), { totalBytes: 7843120 * 1024, availableBytes: 3105536 * 1024 });
  assert.deepEqual(parseMeminfo('MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 10 kB\nCached: 200 kB\n'),
    { totalBytes: 1024000, availableBytes: 310 * 1024 });
  assert.equal(parseMeminfo('cat: /proc/meminfo: Permission denied\n'), null);
});

const BATTERY = [
  'Current Battery Service state:',
  '  (UPDATES STOPPED -- use \'reset\' to restart)',
  '  AC powered: false',
  '  USB powered: true',
  '  Max charging current: 500000',
  '  status: 2',
  '  present: true',
  '  level: 43',
  '  scale: 50',
  '  voltage: 3876',
  '  temperature: 287',
  '  technology: Li-ion',
  '  Capacity level: 3',
  '',
].join('\r\n');

test('parseBatteryDump: level/scale percent, tenths of a degree, no battery', () => {
  assert.deepEqual(parseBatteryDump(BATTERY), { percent: 86, temperatureC: 28.7, charging: true, status: 'charging' });
  assert.deepEqual(parseBatteryDump("Can't find service: battery\n"), { percent: null, temperatureC: null, charging: null, status: null });
});

test('exit marker: appended command, parse with and without newline, CRLF, late stderr, cut stream', () => {
  assert.equal(withExitMarker('ls /x'), '(ls /x\n); echo __rc=$?');
  assert.deepEqual(parseExitMarker('a\nb\n__rc=0\n'), { output: 'a\nb\n', exitCode: 0 });
  assert.deepEqual(parseExitMarker('abc__rc=12\r\n'), { output: 'abc', exitCode: 12 });
  assert.deepEqual(parseExitMarker('x\r\n__rc=1'), { output: 'x\r\n', exitCode: 1 });
  assert.deepEqual(parseExitMarker('__rc=2\nls: late error\n'), { output: 'ls: late error\n', exitCode: 2 });
  assert.deepEqual(parseExitMarker('partial output'), { output: 'partial output', exitCode: null });
  // The last marker wins when a command prints one itself.
  assert.deepEqual(parseExitMarker('__rc=9\n__rc=0\n'), { output: '__rc=9\n', exitCode: 0 });
});

test('splitSections cuts at marker lines, CR-tolerant', () => {
  assert.deepEqual(splitSections('a\r\nS\r\nb\nc\nS\n', 'S'), ['a', 'b\nc', '']);
});

test('parseAdbDevices: daemon noise, states with spaces, TCP serials', () => {
  const text = [
    '* daemon not running; starting now at tcp:5037',
    '* daemon started successfully',
    'List of devices attached',
    'R58N12ABC\tdevice',
    '0123456789ABCDEF\tunauthorized',
    'emulator-5554\toffline',
    '1-1.2\tno permissions (user in plugdev group; are your udev rules wrong?); see [http://developer.android.com/tools/device.html]',
    '127.0.0.1:40101\tdevice',
    '',
  ].join('\r\n');
  const d = parseAdbDevices(text);
  assert.deepEqual(d.map((x) => x.serial), ['R58N12ABC', '0123456789ABCDEF', 'emulator-5554', '1-1.2', '127.0.0.1:40101']);
  assert.match(d[3]!.state, /^no permissions \(user in plugdev group/);
});

test('guidanceForState: actionable text for each non-ready state, empty when ready', () => {
  assert.equal(guidanceForState('device', 'X'), '');
  assert.match(guidanceForState('unauthorized', 'X'), /Allow USB debugging/);
  assert.match(guidanceForState('offline', '127.0.0.1:5555'), /adb disconnect 127\.0\.0\.1:5555/);
  assert.match(guidanceForState('offline', 'R58N'), /replug/);
  assert.match(guidanceForState('no permissions (user in plugdev group; are your udev rules wrong?)', 'X'), /udev/);
  assert.match(guidanceForState('authorizing', 'X'), /unlock/);
  assert.match(guidanceForState('sideload', 'X'), /reboot/);
  assert.match(guidanceForState('weird-new-state', 'X'), /"weird-new-state"/);
});

test('deviceInfoFromProbe builds DeviceInfo from one combined probe', () => {
  const probe = `${GETPROP_CRLF}__CONFIDANT_SECTION__\r\n${MEMINFO}__CONFIDANT_SECTION__\r\n${BATTERY}`;
  const d = deviceInfoFromProbe('R58N12ABC', probe);
  assert.equal(d.model, 'Pixel 7');
  assert.equal(d.manufacturer, 'Google');
  assert.equal(d.soc, 'Tensor G2');
  assert.deepEqual(d.abis, ['arm64-v8a', 'armeabi-v7a', 'armeabi']);
  assert.equal(d.ramTotalBytes, 7843120 * 1024);
  assert.equal(d.batteryPercent, 86);
  assert.equal(d.virtual, false);
  assert.equal(d.guidance, '');
  assert.match(deviceInfoFromProbe('X', '').guidance, /getprop/);
});

test('pickAgentBinary follows the phone\'s ABI order and names what is missing', () => {
  const agents = { x86_64: '/b/x86_64/agent', 'armeabi-v7a': '/b/v7/agent', 'arm64-v8a': '/b/arm64/agent' };
  assert.deepEqual(pickAgentBinary(['arm64-v8a', 'armeabi-v7a'], agents), { abi: 'arm64-v8a', path: '/b/arm64/agent' });
  assert.deepEqual(pickAgentBinary(['riscv64', 'armeabi-v7a'], agents), { abi: 'armeabi-v7a', path: '/b/v7/agent' });
  assert.throws(() => pickAgentBinary(['riscv64'], { x86_64: '/b' }, 'R58N'),
    /no agent binary fits R58N: it runs riscv64, built agents: x86_64/);
  assert.throws(() => pickAgentBinary([], {}, 'R58N'), /\(no ABI reported\), built agents: none/);
});
