// `confidant devices --agent` and `--clean` against a virtual phone on a private real adb server: the agent is pushed to its own
// probe folder, started, asked (HELLO) and stopped; the report names the phone's ABI and the CPU backend, and an
// agent that was already running on the phone (a training run's) is left alone. Also: the agent on a virtual phone
// reports that phone's thermal zones in STATS (not the workstation's) and its OpenCL device type in HELLO.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createAdb } from '../../electron/core/adb/client.js';
import { installAgent, startAgent, stopAgent } from '../../electron/core/adb/agent-deploy.js';
import { runShell } from '../../electron/core/adb/shell.js';
import { openTcp } from '../../electron/core/adb/tunnel.js';
import { AgentClient } from '../../electron/core/protocol/agent-client.js';
import { PROBE_DIR } from '../../electron/core/deploy/agent-probe.js';
import { findAgentBinaries } from '../../electron/core/paths.js';
import { startVirtualPhones, stopVirtualPhones, type VirtualPhoneRecord } from '../../electron/core/virtual-phone/manager.js';
import { startTestAdbServer, TEST_ADB_PORT, type TestAdbServer } from '../support/adb-server.js';
import { needLocalAgent, repoRoot } from '../support/local-agent.js';

const PORT = TEST_ADB_PORT + 6;
const server = startTestAdbServer(PORT);
const skip = typeof server === 'string' ? server : needLocalAgent();
const root = mkdtempSync(join(tmpdir(), 'confidant-probe-'));
let phone: VirtualPhoneRecord;

/** Host pids of agent processes (installed on phones as ./agent) whose working directory is `dir`. */
function agentPidsIn(dir: string): number[] {
  const pids = spawnSync('pgrep', ['-x', 'agent'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).map(Number);
  return pids.filter((pid) => {
    try {
      return readlinkSync(`/proc/${pid}/cwd`) === dir;
    } catch {
      return false; // exited meanwhile
    }
  });
}

before(async () => {
  if (skip) return;
  [phone] = await startVirtualPhones({ count: 1, rootDir: root, ramMb: 2048, adb: (server as TestAdbServer).endpoint });
});

after(async () => {
  await stopVirtualPhones(root).catch(() => undefined);
  if (typeof server !== 'string') server.stop();
  rmSync(root, { recursive: true, force: true });
});

test('devices --agent reports each phone agent\'s backends and leaves a running agent alone', { skip, timeout: 120_000 }, async () => {
  const adb = createAdb((server as TestAdbServer).endpoint);
  // A "training" agent already running in the usual folder.
  const installed = await installAgent(adb, phone.serial, { agents: findAgentBinaries(repoRoot()) });
  const training = await startAgent(adb, phone.serial, installed, { memoryBudgetMb: 64 });
  try {
    const r = spawnSync(process.execPath, [join(repoRoot(), 'bin/confidant.js'), 'devices', '--adb-port', String(PORT), '--agent', '--json'], { encoding: 'utf8', timeout: 90_000 });
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    const devices = JSON.parse(r.stdout) as Array<{ serial: string; agent: { abi: string; backends: string[]; opencl: boolean } | { error: string } | null }>;
    const mine = devices.find((d) => d.serial === phone.serial);
    assert.ok(mine?.agent && !('error' in mine.agent), JSON.stringify(mine?.agent));
    const a = mine.agent as { abi: string; backends: string[]; opencl: boolean };
    assert.equal(a.abi, 'x86_64');
    assert.ok(a.backends.some((b) => b.startsWith('cpu(')), a.backends.join(', '));
    assert.equal(a.opencl, a.backends.some((b) => b.startsWith('opencl(')));
    // The training agent still runs; the probe's agent is gone.
    const alive = await runShell(adb, phone.serial, `kill -0 ${training.pid} && echo alive`);
    assert.match(alive.output, /alive/, 'the training agent was stopped by the probe');
    // A virtual phone's processes are this machine's: no agent may still run in the probe folder.
    const probeAgents = agentPidsIn(join(phone.sandboxDir, PROBE_DIR));
    assert.deepEqual(probeAgents, [], 'the probe agent is still running');
    assert.equal(agentPidsIn(join(phone.sandboxDir, installed.remoteDir)).length, 1, 'the training agent runs');
  } finally {
    await stopAgent(adb, phone.serial, installed.remoteDir);
  }
});

test('devices --clean stops Confidant\'s agents and removes its folder from the phone', { skip, timeout: 120_000 }, async () => {
  const adb = createAdb((server as TestAdbServer).endpoint);
  const installed = await installAgent(adb, phone.serial, { agents: findAgentBinaries(repoRoot()) });
  await startAgent(adb, phone.serial, installed, { memoryBudgetMb: 64 });
  assert.equal(agentPidsIn(join(phone.sandboxDir, installed.remoteDir)).length, 1, 'the agent runs before the clean');
  const r = spawnSync(process.execPath, [join(repoRoot(), 'bin/confidant.js'), 'devices', '--adb-port', String(PORT), '--clean'], { encoding: 'utf8', timeout: 90_000 });
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, new RegExp(`${phone.serial}: removed Confidant's agents and files \\(\\d+\\.\\d MiB freed\\)`));
  assert.deepEqual(agentPidsIn(join(phone.sandboxDir, installed.remoteDir)), [], 'the agent still runs');
  // Through the real adb command line, as a user would check.
  const ls = spawnSync('adb', ['-P', String(PORT), '-s', phone.serial, 'shell', `ls -d ${installed.remoteDir} 2>&1 || true`], { encoding: 'utf8' });
  assert.match(ls.stdout, /No such file/, `the folder is still there: ${ls.stdout}`);
});

test('the agent on a virtual phone reads the phone\'s own thermal zones for STATS and names its OpenCL device type', { skip, timeout: 120_000 }, async () => {
  const adb = createAdb((server as TestAdbServer).endpoint);
  const installed = await installAgent(adb, phone.serial, { agents: findAgentBinaries(repoRoot()) });
  const agent = await startAgent(adb, phone.serial, installed, { memoryBudgetMb: 64 });
  const client = await AgentClient.connect(await openTcp(adb, phone.serial, agent.port), { token: agent.token, label: phone.serial });
  try {
    // The phone's zones as its sandbox holds them (sandbox.ts thermalZonesOf): CPU cores and the GPU are the chip.
    const thermal = join(phone.sandboxDir, 'sys/class/thermal');
    const zones = readdirSync(thermal).map((dir) => ({
      dir: join(thermal, dir),
      type: readFileSync(join(thermal, dir, 'type'), 'utf8').trim(),
      milliC: Number(readFileSync(join(thermal, dir, 'temp'), 'utf8')),
    }));
    const chip = zones.filter((z) => /^(cpu|gpuss)-/.test(z.type)).sort((a, b) => b.milliC - a.milliC);
    assert.ok(chip.length >= 2, JSON.stringify(zones));
    let st = await client.stats();
    assert.deepEqual([st.temperatureMillicelsius, st.temperatureZone], [chip[0]!.milliC, chip[0]!.type], JSON.stringify(zones));
    // A zone the workstation cannot have: the GPU at 81.375 C is what the next STATS reports.
    const gpu = chip.find((z) => z.type.startsWith('gpuss-'))!;
    writeFileSync(join(gpu.dir, 'temp'), '81375\n');
    st = await client.stats();
    assert.deepEqual([st.temperatureMillicelsius, st.temperatureZone], [81375, gpu.type]);
    assert.equal(st.primaryBusyUs, 0);
    assert.equal(st.secondaryBusyUs, 0);
    // HELLO: no OpenCL here, or PoCL's CPU device (type cpu), never a guess from the name.
    const caps = client.capabilities;
    if (!caps.opencl) assert.equal(caps.openclDeviceType, null);
    else if (caps.backends.some((b) => /^opencl\((pthread|cpu)-/.test(b))) assert.equal(caps.openclDeviceType, 'cpu', caps.backends.join(', '));
    else assert.ok(caps.openclDeviceType !== null, caps.backends.join(', '));
  } finally {
    client.close();
    await stopAgent(adb, phone.serial, installed.remoteDir);
  }
});
