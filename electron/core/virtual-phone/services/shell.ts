// `shell:CMD` / `exec:CMD` of the virtual phone: runs CMD with /bin/sh inside the sandbox, raw stdout+stderr
// to the host, CLSE at exit (the legacy, non-v2 shell: no exit status, no pty). Not an interactive shell.
import { spawn, type ChildProcess } from 'node:child_process';
import { rewriteCommand } from '../sandbox.js';
import type { ServiceStream, StreamHandler } from '../transport.js';

export interface ShellContext {
  sandboxDir: string;
  /** Environment for the shell (PATH with the sandbox's system/bin first, the reap marker, ...). */
  env: NodeJS.ProcessEnv;
  /** Called with the pid (= process group id) of each shell, and again when it has exited. */
  onSpawn(pid: number): void;
  onExit(pid: number): void;
  /** Called before each command, e.g. to regenerate /proc/meminfo. */
  beforeRun?(): void;
}

/** Queued output above which we stop reading the child's pipes until the host catches up. */
const PAUSE_ABOVE_BYTES = 1024 * 1024;
/** After the shell exits, how long to wait for pipes still held open by background children. */
const PIPE_GRACE_MS = 200;

export function openShell(command: string, stream: ServiceStream, ctx: ShellContext): StreamHandler {
  if (command.trim() === '') {
    void stream.write(Buffer.from(
      'confidant virtual phone: interactive shell is not supported; run a command instead: adb shell CMD\n'));
    stream.close();
    return { onData() {}, onClose() {} };
  }
  ctx.beforeRun?.();
  let child: ChildProcess;
  try {
    // `exec 2>&1`: one pipe for both, so stderr keeps its place in the output as through a phone's pty
    // (two pipes would let an error line arrive after the `echo __rc=$?` that follows it).
    child = spawn('/bin/sh', ['-c', `exec 2>&1\n${rewriteCommand(ctx.sandboxDir, command)}`], {
      cwd: ctx.sandboxDir,
      env: ctx.env,
      // Own process group, so closing the stream or stopping the phone can kill the whole pipeline.
      detached: true,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
  } catch (err) {
    void stream.write(Buffer.from(`/system/bin/sh: ${(err as Error).message}\n`));
    stream.close();
    return { onData() {}, onClose() {} };
  }
  const pid = child.pid;
  if (pid !== undefined) ctx.onSpawn(pid);
  let exited = false;
  let finished = false;

  const finish = () => {
    if (finished) return;
    finished = true;
    child.stdout?.destroy();
    child.stderr?.destroy();
    stream.close();
  };

  const forward = (data: Buffer) => {
    const sent = stream.write(data);
    if (stream.pendingBytes > PAUSE_ABOVE_BYTES) {
      child.stdout?.pause();
      child.stderr?.pause();
      void sent.then(() => {
        child.stdout?.resume();
        child.stderr?.resume();
      });
    }
  };
  child.stdout?.on('data', forward);
  child.stderr?.on('data', forward);
  child.stdin?.on('error', () => { /* the command does not read stdin: EPIPE is expected */ });
  child.on('error', (err) => {
    void stream.write(Buffer.from(`/system/bin/sh: ${err.message}\n`));
    finish();
  });
  child.on('exit', () => {
    exited = true;
    if (pid !== undefined) ctx.onExit(pid);
    setTimeout(finish, PIPE_GRACE_MS).unref();
  });
  child.on('close', finish);

  return {
    async onData(data: Buffer) {
      if (!child.stdin || child.stdin.destroyed) return;
      if (!child.stdin.write(data)) {
        await new Promise<void>((resolve) => {
          child.stdin!.once('drain', resolve);
          child.stdin!.once('close', resolve);
        });
      }
    },
    onClose() {
      finished = true;
      // The host hung up (adb client gone, timeout): like adbd closing the pty, end the command's group.
      if (!exited && pid !== undefined) {
        try { process.kill(-pid, 'SIGHUP'); } catch { /* already gone */ }
        setTimeout(() => {
          if (!exited) {
            try { process.kill(-pid, 'SIGKILL'); } catch { /* already gone */ }
          }
        }, 2000).unref();
      }
      child.stdin?.destroy();
    },
  };
}
