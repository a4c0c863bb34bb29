// Integration tier "adb": what happens when a phone or its agent dies, through the real adb server and real virtual
// phones running the real agent — a phone killed mid-push and mid-training, heartbeats that notice a killed or
// frozen agent and a frozen phone within 2 s. After each: a clear error naming the phone, nothing left running,
// no `adb forward` left. Happy-path deployment (skip, resume, verify) is deploy-robust.test.ts.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connectAdb, type Adb } from '../../electron/core/adb/client.js';
import { AdbDeployer } from '../../electron/core/deploy/adb-deployer.js';
import type { DeployedAgent } from '../../electron/core/deploy/stage-deployer.js';
import { AgentConnectionError } from '../../electron/core/protocol/agent-client.js';
import { DEFAULT_TRAIN_SETTINGS, runTrainJob } from '../../electron/core/train/job.js';
import { startVirtualPhones, stopVirtualPhones, type VirtualPhoneRecord } from '../../electron/core/virtual-phone/manager.js';
import { findSandboxProcesses } from '../../electron/core/virtual-phone/reap.js';
import { startTestAdbServer, type TestAdbServer } from '../support/adb-server.js';
import { defaultAgentBinary, needLocalAgent, repoRoot } from '../support/local-agent.js';

const server = startTestAdbServer();
const skip = typeof server === 'string' ? server : needLocalAgent();
const srv = server as TestAdbServer;
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

async function waitDead(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (isAlive(pid) && Date.now() < deadline) await sleep(20);
  return !isAlive(pid);
}

/** Waits until nothing the phone started runs any more; returns what still runs after `ms`. */
async function settleProcesses(sandboxDir: string, ms = 4000): Promise<number[]> {
  const deadline = Date.now() + ms;
  while (findSandboxProcesses(sandboxDir).length > 0 && Date.now() < deadline) await sleep(50);
  return findSandboxProcesses(sandboxDir);
}

function agentPid(phone: VirtualPhoneRecord): number {
  return Number(readFileSync(join(phone.sandboxDir, 'data/local/tmp/confidant/agent.pid'), 'utf8').trim());
}

function assertNoForward(serial: string): void {
  const listed = srv.adb(['forward', '--list']);
  assert.equal(listed.status, 0, listed.stderr);
  assert.doesNotMatch(listed.stdout, new RegExp(esc(serial)), 'no adb forward left for the phone');
}

describe('deployment failure paths', { skip }, () => {
  let root = '';
  let adb: Adb;
  const agents = { x86_64: defaultAgentBinary() };

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'confidant-deployfail-'));
    adb = await connectAdb(srv.endpoint);
  });

  after(async () => {
    if (root) {
      for (const sub of await readdir(root).catch(() => [] as string[])) {
        await stopVirtualPhones(join(root, sub), { adb: srv.endpoint }).catch(() => undefined);
      }
      rmSync(root, { recursive: true, force: true });
    }
    srv.stop();
  });

  async function phones(name: string, count: number): Promise<VirtualPhoneRecord[]> {
    return startVirtualPhones({ count, rootDir: join(root, name), ramMb: 2048, adb: srv.endpoint });
  }

  test('a phone killed mid-push: clear error naming phone and file, no agent started, nothing left running, no forward', async (t) => {
    const [phone] = (await phones('push-kill', 1)) as [VirtualPhoneRecord];
    const stage = join(root, 'big-stage.cfst');
    writeFileSync(stage, randomBytes(64 * 2 ** 20));
    const deployer = new AdbDeployer(adb, agents, { segmentBytes: 8 * 2 ** 20, stallMs: 3000 });
    let killedAt = 0;
    let killedAtBytes = 0;
    const t0 = Date.now();
    await assert.rejects(deployer.deploy(phone.serial, stage, {
      memoryBudgetBytes: 2 ** 28,
      onProgress: (p) => {
        if (!killedAt && p.file === 'big-stage.cfst' && p.phase === 'pushing' && p.bytesSent > 4 * 2 ** 20) {
          killedAt = Date.now();
          killedAtBytes = p.bytesSent;
          process.kill(phone.pid, 'SIGKILL');
        }
      },
    }), (err: Error) => {
      t.diagnostic(`${err.message} (${Date.now() - killedAt} ms after the kill at ${killedAtBytes} bytes)`);
      assert.match(err.message, new RegExp(`${esc(stage)} to ${esc(phone.serial)}:/data/local/tmp/confidant/big-stage\\.cfst`));
      return true;
    });
    assert.ok(killedAt > 0 && killedAtBytes < 64 * 2 ** 20, 'the phone died during the push');
    assert.ok(Date.now() - killedAt < 8000, `noticed after ${Date.now() - killedAt} ms (${Date.now() - t0} ms in all)`);
    assert.ok(!isAlive(phone.pid));
    assert.deepEqual(await settleProcesses(phone.sandboxDir), [], 'no agent, no shell left from the phone');
    assert.ok(!existsSync(join(phone.sandboxDir, 'data/local/tmp/confidant/agent.pid')), 'the agent was never started on a half-pushed stage');
    assert.ok(!existsSync(join(phone.sandboxDir, 'data/local/tmp/confidant/big-stage.cfst')), 'no half file under the final name');
    assertNoForward(phone.serial);
  });

  test('heartbeat: a killed agent, a frozen agent and a frozen phone fail the session within 2 s, naming the phone', async (t) => {
    const [phone, phone2] = (await phones('heartbeat', 2)) as [VirtualPhoneRecord, VirtualPhoneRecord];
    const stage = join(root, 'small-stage.cfst');
    writeFileSync(stage, randomBytes(4096));
    const deployer = new AdbDeployer(adb, agents);
    const deployed: DeployedAgent[] = [];
    const deploy = async (p: VirtualPhoneRecord) => {
      const d = await deployer.deploy(p.serial, stage, { memoryBudgetBytes: 2 ** 28 });
      deployed.push(d);
      await d.client.stats(); // the session works
      return d;
    };
    /** Fires `hit`, then measures how long a pending request (and the session) takes to fail. */
    const timeFailure = async (d: DeployedAgent, hit: () => void) => {
      await sleep(1200); // a few heartbeats first, so a stale tick timer cannot pass for detection
      const t0 = Date.now();
      hit();
      // STATS after the hit: without a heartbeat a frozen agent would leave it waiting for the 120 s request limit.
      const err = await Promise.race([
        d.client.stats().then(() => null, (e: Error) => e),
        sleep(5000).then(() => new Error('the session did not fail within 5 s')),
      ]);
      const ms = Date.now() - t0;
      assert.ok(err instanceof AgentConnectionError, `request failed with ${err}`);
      return { err, ms };
    };
    try {
      // 1. Agent killed.
      let d = await deploy(phone);
      let pid = agentPid(phone);
      let r = await timeFailure(d, () => process.kill(pid, 'SIGKILL'));
      t.diagnostic(`killed agent: ${r.ms} ms: ${r.err.message}`);
      assert.ok(r.ms < 2000, `noticed after ${r.ms} ms`);
      assert.match(r.err.message, new RegExp(esc(phone.serial)));
      await d.stop();

      // 2. Agent frozen (SIGSTOP): the tunnel stays open, only the heartbeat can tell.
      d = await deploy(phone);
      pid = agentPid(phone);
      r = await timeFailure(d, () => process.kill(pid, 'SIGSTOP'));
      t.diagnostic(`frozen agent: ${r.ms} ms: ${r.err.message}`);
      assert.ok(r.ms < 2000, `noticed after ${r.ms} ms`);
      assert.equal((r.err as AgentConnectionError).reason, 'heartbeat');
      assert.match(r.err.message, new RegExp(`the agent \\(pid ${pid}\\) on phone ${esc(phone.serial)} is no longer running \\(stopped\\)`));
      await d.stop();
      assert.ok(await waitDead(pid, 1000), 'stop() kills a frozen agent');

      // 3. Phone frozen: no ticks at all.
      d = await deploy(phone2);
      r = await timeFailure(d, () => process.kill(phone2.pid, 'SIGSTOP'));
      t.diagnostic(`frozen phone: ${r.ms} ms: ${r.err.message}`);
      assert.ok(r.ms < 2000, `noticed after ${r.ms} ms`);
      assert.match(r.err.message, new RegExp(`phone ${esc(phone2.serial)} stopped answering`));
      process.kill(phone2.pid, 'SIGKILL');
      const t1 = Date.now();
      await d.stop();
      assert.ok(Date.now() - t1 < 8000, `stop() on a dead phone took ${Date.now() - t1} ms`);
    } finally {
      await Promise.all(deployed.map((d) => d.stop()));
    }
    assert.deepEqual(await settleProcesses(phone.sandboxDir), [], 'no agent or heartbeat shell left on the phone');
    assert.deepEqual(await settleProcesses(phone2.sandboxDir), [], 'the agent on the dead phone exited with its connection');
    assertNoForward(phone.serial);
    assertNoForward(phone2.serial);
  });

  test('a phone killed mid-training: the job fails naming it, the other phone\'s agent is stopped, nothing left running', async (t) => {
    const [a, b] = (await phones('train-kill', 2)) as [VirtualPhoneRecord, VirtualPhoneRecord];
    const runsDir = join(root, 'runs');
    let killedAt = 0;
    const t0 = Date.now();
    const job = runTrainJob({
      ...DEFAULT_TRAIN_SETTINGS,
      // No re-planning here (train-recovery.test.ts covers it): the failure path itself must be clean.
      maxRecoveries: 0,
      steps: 400,
      evalSequences: 4,
      samplePrompts: [],
      modelDir: join(repoRoot(), 'models/stories260K'),
      datasetPath: join(repoRoot(), 'datasets/demo-stories/stories.txt'),
      runsDir,
      cacheDir: join(root, 'cache'),
      devices: [a, b].map((p) => ({ serial: p.serial, budgetBytes: 2 ** 30, speed: 1 })),
      deployer: new AdbDeployer(adb, agents),
      onEvent: (e) => {
        // A few steps in, from a timer: the kill lands while requests are in flight, not between events.
        if (e.type === 'step' && e.step === 3 && !killedAt) {
          setTimeout(() => {
            killedAt = Date.now();
            process.kill(b.pid, 'SIGKILL');
          }, 20);
        }
      },
    });
    await assert.rejects(job, (err: Error) => {
      t.diagnostic(`${err.message} (${Date.now() - killedAt} ms after the kill, ${Date.now() - t0} ms in all)`);
      assert.match(err.message, new RegExp(esc(b.serial)));
      return true;
    });
    assert.ok(killedAt > 0, 'the phone was killed during training');
    assert.ok(Date.now() - killedAt < 5000, `the job ended ${Date.now() - killedAt} ms after the kill`);
    const [runId] = await readdir(runsDir);
    const run = JSON.parse(readFileSync(join(runsDir, runId!, 'run.json'), 'utf8'));
    assert.equal(run.status, 'failed');
    assert.match(run.error, new RegExp(esc(b.serial)));
    assert.match(run.error, new RegExp(`phone ${esc(b.serial)} no longer answers over adb`), 'the job says the phone is gone');
    assert.ok(!isAlive(b.pid));
    assert.deepEqual(await settleProcesses(a.sandboxDir), [], 'the surviving phone runs no agent and no heartbeat shell');
    assert.ok(!existsSync(join(a.sandboxDir, 'data/local/tmp/confidant/agent.pid')), 'the agent on the surviving phone was stopped');
    assert.deepEqual(await settleProcesses(b.sandboxDir), [], 'the agent on the killed phone exited');
    assertNoForward(a.serial);
    assertNoForward(b.serial);
  });

  test('a phone that fails to deploy: the run fails naming it and the agent already started on the other phone is stopped', async (t) => {
    const [a, b] = (await phones('deploy-fail', 2)) as [VirtualPhoneRecord, VirtualPhoneRecord];
    process.kill(b.pid, 'SIGKILL');
    const job = runTrainJob({
      ...DEFAULT_TRAIN_SETTINGS,
      steps: 2,
      samplePrompts: [],
      modelDir: join(repoRoot(), 'models/stories260K'),
      datasetPath: join(repoRoot(), 'datasets/demo-stories/stories.txt'),
      runsDir: join(root, 'runs2'),
      cacheDir: join(root, 'cache2'),
      devices: [a, b].map((p) => ({ serial: p.serial, budgetBytes: 2 ** 30, speed: 1 })),
      deployer: new AdbDeployer(adb, agents),
    });
    await assert.rejects(job, (err: Error) => {
      t.diagnostic(err.message);
      assert.match(err.message, new RegExp(esc(b.serial)));
      return true;
    });
    // Nothing may start on the healthy phone after the job has given up either.
    await sleep(1500);
    assert.deepEqual(await settleProcesses(a.sandboxDir), [], 'no agent left on the healthy phone');
    assert.ok(!existsSync(join(a.sandboxDir, 'data/local/tmp/confidant/agent.pid')));
    assertNoForward(a.serial);
  });

  test('cancelling a run mid-training stops the agents, leaves nothing running and (when asked) deletes the stage files', async (t) => {
    const [a, b] = (await phones('cancel', 2)) as [VirtualPhoneRecord, VirtualPhoneRecord];
    const abort = new AbortController();
    let abortedAt = 0;
    const job = runTrainJob({
      ...DEFAULT_TRAIN_SETTINGS,
      steps: 400,
      evalSequences: 4,
      samplePrompts: [],
      modelDir: join(repoRoot(), 'models/stories260K'),
      datasetPath: join(repoRoot(), 'datasets/demo-stories/stories.txt'),
      runsDir: join(root, 'runs3'),
      cacheDir: join(root, 'cache3'),
      devices: [a, b].map((p) => ({ serial: p.serial, budgetBytes: 2 ** 30, speed: 1 })),
      deployer: new AdbDeployer(adb, agents, { deleteStageOnStop: true }),
      signal: abort.signal,
      onEvent: (e) => {
        if (e.type === 'step' && e.step === 2 && !abortedAt) {
          setTimeout(() => {
            abortedAt = Date.now();
            abort.abort();
          }, 10);
        }
      },
    });
    await assert.rejects(job, /training was stopped/);
    const ms = Date.now() - abortedAt;
    t.diagnostic(`the job ended ${ms} ms after the cancel`);
    assert.ok(abortedAt > 0 && ms < 3000, `the job ended ${ms} ms after the cancel`);
    for (const p of [a, b]) {
      assert.deepEqual(await settleProcesses(p.sandboxDir), [], `no agent or heartbeat shell left on ${p.serial}`);
      const left = await readdir(join(p.sandboxDir, 'data/local/tmp/confidant'));
      assert.deepEqual(left.filter((n) => n.endsWith('.cfst') || n.includes('.cfst.')), [], `stage files deleted on ${p.serial}`);
      assert.ok(!left.includes('agent.pid'));
      assertNoForward(p.serial);
    }
  });
});
