// Runs shell commands on a phone through adbkit and returns {output, exitCode}: the legacy shell service has no
// exit status, so `echo __rc=$?` is appended and parsed. Not for long-running or interactive processes.
import type { Duplex } from 'node:stream';
import { AdbError, type Adb } from './client.js';
import { parseExitMarker, withExitMarker, type ShellResult } from './parse.js';

export interface ShellOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
}

export const DEFAULT_SHELL_TIMEOUT_MS = 30_000;

/** Reads a stream to its end, with a deadline and an abort signal; destroys the stream when either fires. */
export function readAll(stream: Duplex, what: string, { timeoutMs = DEFAULT_SHELL_TIMEOUT_MS, signal }: ShellOptions = {}): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (err: Error | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (err) {
        stream.destroy();
        reject(err);
      } else resolve(Buffer.concat(chunks));
    };
    const onAbort = () => finish(new AdbError(`${what} was cancelled`, 'failed'));
    const timer = setTimeout(() => finish(new AdbError(`${what} timed out after ${timeoutMs} ms`, 'timeout')), timeoutMs);
    if (signal?.aborted) return onAbort();
    signal?.addEventListener('abort', onAbort);
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => finish(null));
    stream.on('close', () => finish(null));
    stream.on('error', (err: Error) => finish(new AdbError(`${what} failed: ${err.message}`, 'failed', err)));
  });
}

/** Raw output of a command (stdout and stderr mixed, as the legacy shell gives them). */
export async function shellRaw(adb: Adb, serial: string, command: string, options: ShellOptions = {}): Promise<string> {
  const what = `adb shell on ${serial} (${command.length > 80 ? command.slice(0, 80) + '...' : command})`;
  const timeoutMs = options.timeoutMs ?? DEFAULT_SHELL_TIMEOUT_MS;
  const stream = await adb.call<Duplex>(what, () => adb.device(serial).shell(command), timeoutMs);
  return (await readAll(stream, what, { ...options, timeoutMs })).toString('utf8');
}

/** Runs `command` and returns its output and exit status (null if the stream ended before the command did). */
export async function runShell(adb: Adb, serial: string, command: string, options: ShellOptions = {}): Promise<ShellResult> {
  return parseExitMarker(await shellRaw(adb, serial, withExitMarker(command), options));
}

/** Like runShell, but a non-zero (or missing) exit status is an error carrying the command's output. */
export async function runShellChecked(adb: Adb, serial: string, command: string, options: ShellOptions = {}): Promise<string> {
  const r = await runShell(adb, serial, command, options);
  if (r.exitCode !== 0) {
    const status = r.exitCode === null ? 'was cut off before it finished (phone disconnected?)' : `exited with status ${r.exitCode}`;
    const tail = r.output.trim().split('\n').slice(-10).join('\n');
    throw new AdbError(`on ${serial}, \`${command}\` ${status}${tail ? `:\n${tail}` : ''}`, 'failed');
  }
  return r.output;
}

/** Quotes one word for the phone's sh (toybox/mksh), like adbkit's own escaping. */
export function shellQuote(word: string): string {
  return `'${word.replace(/'/g, `'"'"'`)}'`;
}
