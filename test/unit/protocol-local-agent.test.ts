// Runs AgentClient against the real native agent binary on loopback (no adb): handshake, errors that keep the
// session open, shutdown, and that stop() never leaves the process running. Skips loudly when it is not built.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AgentError } from '../../electron/core/protocol/agent-client.js';
import { defaultAgentBinary, needLocalAgent, startLocalAgent } from '../support/local-agent.js';

// CONFIDANT_AGENT_BINARY lets a private build be tested without touching build/native.
const binary = process.env.CONFIDANT_AGENT_BINARY ?? defaultAgentBinary();
const skip = needLocalAgent(binary);

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('local agent: HELLO reports capabilities; stage commands before LOAD_STAGE are NOT_LOADED', { skip }, async () => {
  const agent = await startLocalAgent({ binary, memoryBudgetMb: 96, timeoutMs: 5000 });
  try {
    const caps = agent.client.capabilities;
    assert.equal(caps.protocolVersion, 1);
    assert.equal(caps.memoryBudgetBytes, 96 * 1024 * 1024);
    assert.ok(caps.backends.length > 0, `no backends in ${JSON.stringify(caps)}`);
    assert.ok(caps.cpuThreads > 0);
    const stats = await agent.client.stats();
    assert.ok(stats.rssBytes > 0, `rss ${stats.rssBytes}`);
    const notLoaded = (e: unknown) => e instanceof AgentError && e.codeName === 'NOT_LOADED';
    await assert.rejects(agent.client.zeroGrad(), notLoaded);
    await assert.rejects(
      agent.client.loadStage({ path: '/nonexistent/stage.cfst', loraRank: 4, loraAlpha: 8, targetMask: 1, flags: 0 }),
      (e: unknown) => e instanceof AgentError && e.codeName === 'LOAD_FAILED' && /nonexistent/.test(e.message),
    );
    assert.equal(agent.client.isOpen, true);
    assert.equal((await agent.client.stats()).forwardCount, 0);
  } finally {
    await agent.stop();
  }
  assert.equal(isRunning(agent.process.pid!), false);
});

test('local agent: SHUTDOWN makes the process exit on its own', { skip }, async () => {
  const agent = await startLocalAgent({ binary, timeoutMs: 5000 });
  try {
    await agent.client.shutdown();
    const code = await new Promise<number | null>((resolve) => {
      if (agent.process.exitCode !== null) resolve(agent.process.exitCode);
      else agent.process.once('exit', (c) => resolve(c));
    });
    assert.equal(code, 0);
  } finally {
    await agent.stop();
  }
});

test('an idle session: the agent ends it after its silence timeout, unless the client keeps it alive', { skip }, async () => {
  const silent = ['--host-silence-timeout-s', '1'];
  const quiet = await startLocalAgent({ binary, timeoutMs: 5000, extraArgs: silent, keepAliveMs: 0 });
  const kept = await startLocalAgent({ binary, timeoutMs: 5000, extraArgs: silent, keepAliveMs: 300 });
  try {
    const exitCode = await new Promise<number | null>((resolve) => quiet.process.once('exit', (c) => resolve(c)));
    assert.equal(exitCode, 3, 'the silent session ends with the idle exit code');
    await assert.rejects(quiet.client.stats(), /closed|connection/i);
    // 2.5 s of the caller doing nothing: the keep-alive's STATS kept the other session open.
    await new Promise((r) => setTimeout(r, 2500));
    assert.equal(kept.process.exitCode, null, 'the kept-alive agent is still running');
    const st = await kept.client.stats();
    assert.ok(st.bytesIn > 0);
  } finally {
    await quiet.stop();
    await kept.stop();
  }
});

test('local agent: stop() kills the process even with the session still open', { skip }, async () => {
  const agent = await startLocalAgent({ binary, timeoutMs: 5000 });
  const pid = agent.process.pid!;
  assert.equal(isRunning(pid), true);
  await agent.stop();
  await agent.stop(); // idempotent
  assert.equal(isRunning(pid), false);
});

test('local agent: stop() escalates to SIGKILL when the agent does not exit (stopped process)', { skip }, async () => {
  const agent = await startLocalAgent({ binary, timeoutMs: 5000 });
  const pid = agent.process.pid!;
  process.kill(pid, 'SIGSTOP'); // cannot react to the closed connection or SIGTERM any more
  await agent.stop();
  assert.equal(isRunning(pid), false);
  assert.equal(agent.process.signalCode, 'SIGKILL');
});
