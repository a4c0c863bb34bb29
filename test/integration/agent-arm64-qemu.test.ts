// The static linux-arm64 agent (build/agents/arm64-v8a/confidant-agent, the binary pushed to real phones) run under
// qemu-user on this x86 machine and driven by the real TypeScript client: HELLO, a refused command, STATS, SHUTDOWN.
// Not the arm64 kernel tests (ctest under qemu, scripts/test.mjs) nor the adb deployment path.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentClient, AgentError } from '../../electron/core/protocol/agent-client.js';
import { ERROR_CODES } from '../../electron/core/protocol/wire.js';
import { repoRoot } from '../support/local-agent.js';

const BINARY = process.env.CONFIDANT_ARM64_AGENT_BINARY ?? join(repoRoot(), 'build', 'agents', 'arm64-v8a', 'confidant-agent');
const BUDGET_MB = 48;
// qemu-user translates every instruction: start-up and each request are far slower than natively.
const TIMEOUT_MS = 60_000;

function findQemu(): string | undefined {
  for (const cmd of ['qemu-aarch64-static', 'qemu-aarch64']) {
    if (spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0) return cmd;
  }
  return undefined;
}

/** A skip reason when qemu or the arm64 agent is missing (thrown under CI=true, which must run this), else false. */
function needArm64Qemu(qemu: string | undefined): string | false {
  const missing: string[] = [];
  if (!qemu) missing.push('qemu-aarch64-static (apt-get install qemu-user-static)');
  if (!existsSync(BINARY)) missing.push(`the arm64 agent ${BINARY} (npm run build:native:arm64)`);
  if (missing.length === 0) return false;
  const msg = `arm64 agent under qemu: missing ${missing.join('; ')}`;
  if (process.env.CI === 'true') throw new Error(`CI must not skip: ${msg}`);
  process.stderr.write(`\n*** SKIPPING: ${msg}\n`);
  return msg;
}

const qemu = findQemu();
const skip = needArm64Qemu(qemu);
let dir = '';
let child: ChildProcess | undefined;
let output = '';

after(async () => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  if (dir) await rm(dir, { recursive: true, force: true });
});

function exitOf(proc: ChildProcess, ms: number): Promise<number | string> {
  if (proc.exitCode !== null) return Promise.resolve(proc.exitCode);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(`still running after ${ms} ms`), ms);
    proc.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve(code ?? `killed by ${signal}`);
    });
  });
}

function hex4(port: number): string {
  return port.toString(16).toUpperCase().padStart(4, '0');
}

/** Local addresses ("0100007F:1F90") of the sockets listening (state 0A) on `port` in a /proc/net/tcp* table. */
async function listeners(table: string, port: number): Promise<string[]> {
  const text = await readFile(table, 'utf8').catch(() => '');
  return text
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter((f) => f[1]?.endsWith(`:${hex4(port)}`) && f[3] === '0A')
    .map((f) => f[1]);
}

/** The port the agent wrote (atomically, with a trailing newline) and announced on stdout once it listens. */
async function waitForPort(portFile: string, proc: ChildProcess): Promise<number> {
  const deadline = Date.now() + TIMEOUT_MS;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`the arm64 agent exited with ${proc.exitCode} before listening:\n${output}`);
    const m = /^(\d+)\n$/.exec(await readFile(portFile, 'utf8').catch(() => ''));
    // The agent prints its listening line just after writing the port file: wait for both.
    if (m && output.includes(`listening on 127.0.0.1:${m[1]}\n`)) return Number(m[1]);
    if (Date.now() > deadline) throw new Error(`the arm64 agent did not write its port file and listening line in ${TIMEOUT_MS} ms:\n${output}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('the static arm64 agent under qemu: HELLO reports arm64 and the NEON CPU backend, STATS, SHUTDOWN', { skip, timeout: 3 * TIMEOUT_MS }, async () => {
  dir = await mkdtemp(join(tmpdir(), 'confidant-arm64-'));
  const token = randomBytes(16).toString('hex');
  const tokenFile = join(dir, 'token');
  const portFile = join(dir, 'port');
  await writeFile(tokenFile, token, { mode: 0o600 });
  const args = ['--port', '0', '--port-file', portFile, '--token-file', tokenFile, '--idle-timeout-s', '120',
    '--memory-budget-mb', String(BUDGET_MB)];
  // The binary is fully static (glibc included), so qemu needs no -L sysroot.
  const proc = spawn(qemu!, [BINARY, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  child = proc;
  proc.stdout!.on('data', (b: Buffer) => (output += b.toString()));
  proc.stderr!.on('data', (b: Buffer) => (output += b.toString()));
  const port = await waitForPort(portFile, proc);
  // qemu-user makes the host's socket calls, so the kernel's tables show what the arm64 code bound: 127.0.0.1 only.
  assert.deepEqual(await listeners('/proc/net/tcp', port), [`0100007F:${hex4(port)}`]);
  assert.deepEqual(await listeners('/proc/net/tcp6', port), []);

  const client = await AgentClient.connect(net.connect(port, '127.0.0.1'), { token, label: 'arm64 under qemu', timeoutMs: TIMEOUT_MS });
  const caps = client.capabilities;
  // The ABI is compiled in (main.cpp default_abi): arm64-v8a proves the arm64 build answered, not a host binary.
  assert.equal(caps.abi, 'arm64-v8a');
  assert.equal(caps.protocolVersion, 1);
  assert.equal(caps.memoryBudgetBytes, BUDGET_MB * 2 ** 20);
  assert.ok(caps.cpuThreads >= 1, `cpuThreads ${caps.cpuThreads}`);
  const cpu = caps.backendDetails.find((b) => b.name === 'cpu');
  assert.ok(cpu, `no cpu backend in ${JSON.stringify(caps.backends)}`);
  // The CPU backend picks its SIMD level at run time: on arm64 that is NEON (AVX would mean an x86 binary).
  assert.match(cpu.detail ?? '', /neon/, `cpu backend detail: ${cpu.detail}`);
  // A static glibc binary cannot dlopen a phone's OpenCL driver (android-agent/README.md): CPU only.
  assert.equal(caps.opencl, false);

  // A stage command before LOAD_STAGE is refused with NOT_LOADED and the session goes on.
  await assert.rejects(client.gradNorm(), (e: unknown) => e instanceof AgentError && e.code === ERROR_CODES.NOT_LOADED);
  assert.ok(client.isOpen);

  const stats = await client.stats();
  assert.ok(stats.rssBytes > 0 && stats.peakRssBytes >= stats.rssBytes, JSON.stringify(stats));
  assert.equal(stats.forwardCount, 0);
  assert.equal(stats.backwardCount, 0);
  assert.equal(stats.busyUs, 0);
  // Every byte this host sent before the STATS reply: HELLO (16-byte header + u32 version + u32 length + token),
  // GRAD_NORM and STATS (headers only).
  assert.equal(stats.bytesIn, 16 + 4 + 4 + token.length + 16 + 16);
  assert.ok(stats.bytesOut > 16 * 2, `bytesOut ${stats.bytesOut}`);

  await client.shutdown();
  assert.equal(client.isOpen, false);
  assert.equal(await exitOf(proc, TIMEOUT_MS), 0, `agent output:\n${output}`);
});
