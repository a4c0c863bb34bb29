// Pushes a file (or a byte range of one), a Buffer or a stream to a phone over adb sync (adbkit), with progress
// (bytes, rate, ETA), a stall watchdog and a check of the result on the phone (size, and sha256 where the phone has
// sha256sum). One transfer, written as-is: skipping, resuming and atomic placement are deploy/file-sync.ts.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { PassThrough, Transform, pipeline, type Readable } from 'node:stream';
import type * as SyncModule from '@devicefarmer/adbkit/dist/src/adb/sync.js';
import { AdbError, type Adb } from './client.js';
import { runShell, shellQuote } from './shell.js';

/** Transfer speed over the last few seconds, and the time left at that speed (null until it can be told). */
export interface PushRate {
  bytesPerSec: number;
  etaMs: number | null;
}

export interface PushOptions {
  /** Permission bits on the phone, e.g. 0o755 for executables (default 0o644). */
  mode?: number;
  onProgress?: (bytesSent: number, bytesTotal: number, rate: PushRate) => void;
  /** Only bytes [start, end) of a local file source (a resumed push sends the rest of a file). */
  range?: { start: number; end: number };
  /** Skip the check on the phone (the caller verifies a larger whole, e.g. after appending this part). */
  noVerify?: boolean;
  /** Fail when no bytes move for this long (default 15 s). */
  stallMs?: number;
  /** Overall limit (default: none beyond the stall watchdog). */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Skip the sha256 comparison even when the phone has sha256sum (size is always checked). */
  sizeOnly?: boolean;
}

export interface PushResult {
  bytes: number;
  sha256: string;
  /** 'sha256' when the phone's sha256sum matched, 'size' when only the size could be checked, 'none' with noVerify. */
  verified: 'sha256' | 'size' | 'none';
  ms: number;
}

export const DEFAULT_PUSH_STALL_MS = 15_000;

/**
 * Bytes per second over a sliding window of about `windowMs`, so the rate (and the ETA) follows the link as it is
 * now, not the average since the start (which a slow first second or a resumed offset would skew).
 */
export class RateMeter {
  private samples: Array<{ ms: number; bytes: number }> = [];
  constructor(private readonly windowMs = 3000, private readonly now: () => number = Date.now) {}

  /** `bytes`: the running count moved so far in this session (not including bytes skipped or resumed). */
  add(bytes: number): void {
    const ms = this.now();
    this.samples.push({ ms, bytes });
    while (this.samples.length > 2 && ms - this.samples[1]!.ms >= this.windowMs) this.samples.shift();
  }

  rate(bytesLeft: number): PushRate {
    const first = this.samples[0];
    const last = this.samples.at(-1);
    if (!first || !last || last.ms - first.ms < 50) return { bytesPerSec: 0, etaMs: bytesLeft === 0 ? 0 : null };
    const bytesPerSec = ((last.bytes - first.bytes) * 1000) / (last.ms - first.ms);
    return { bytesPerSec, etaMs: bytesLeft === 0 ? 0 : bytesPerSec > 0 ? Math.round((bytesLeft / bytesPerSec) * 1000) : null };
  }
}

/** A local file path, bytes, or a byte stream of known length (e.g. a shard packed on the fly). */
export type PushSource = string | Buffer | { stream: Readable; bytes: number; label?: string };

function describeTransferError(err: unknown): string {
  const e = err as Error;
  if (e?.name === 'PrematureEOFError' || /Premature end/i.test(e?.message ?? '')) {
    return 'the connection closed before the phone confirmed the file (phone disconnected, or adb server stopped)';
  }
  if (/^Failure: '/.test(e?.message ?? '')) return `the phone refused it: ${e.message.slice(10, -1)}`;
  return e?.message ?? String(err);
}

/** Pushes `source` (a local path or bytes) to `remotePath`, then verifies it on the phone. */
export async function pushFile(adb: Adb, serial: string, source: PushSource, remotePath: string,
  options: PushOptions = {}): Promise<PushResult> {
  const range = options.range;
  if (range && typeof source !== 'string') throw new RangeError('a byte range needs a local file source');
  const label = typeof source === 'string' ? (range ? `${source} [${range.start}, ${range.end})` : source)
    : Buffer.isBuffer(source) ? `${source.length}-byte buffer` : source.label ?? `${source.bytes}-byte stream`;
  const what = `push of ${label} to ${serial}:${remotePath}`;
  const started = Date.now();
  const total = range ? range.end - range.start : typeof source === 'string' ? (await stat(source)).size
    : Buffer.isBuffer(source) ? source.length : source.bytes;
  if (range && (range.start < 0 || total <= 0)) throw new RangeError(`bad byte range [${range.start}, ${range.end})`);
  const hash = createHash('sha256');
  // Hash what actually goes out, so the comparison covers the bytes adbkit read.
  const tap = new Transform({ transform(chunk: Buffer, _enc, cb) { hash.update(chunk); cb(null, chunk); } });
  let input: Readable;
  if (typeof source === 'string') {
    input = range ? createReadStream(source, { start: range.start, end: range.end - 1 }) : createReadStream(source);
  } else if (!Buffer.isBuffer(source)) {
    input = source.stream;
  } else {
    // A byte-mode stream: adbkit reads it with read(64 KiB), which an object-mode Readable.from would ignore.
    const pass = new PassThrough();
    pass.end(source);
    input = pass;
  }
  pipeline(input, tap, () => { /* errors reach adbkit through tap's 'error' */ });

  if (options.signal?.aborted) {
    tap.destroy();
    throw new AdbError(`${what} was cancelled`, 'failed');
  }
  const stallMs = options.stallMs ?? DEFAULT_PUSH_STALL_MS;
  // Opening the sync service on a hung phone never answers: that is a stall too.
  const sync = await adb.call<SyncModule.default>(`${what}: opening sync`, () => adb.device(serial).syncService(), options.timeoutMs ?? stallMs)
    .catch((err: unknown) => {
      tap.destroy(); // closes the source file too
      throw err;
    });
  try {
    await new Promise<void>((resolve, reject) => {
      let failed: Error | null = null;
      let settled = false;
      let lastBytes = 0;
      const meter = new RateMeter();
      meter.add(0);
      const transfer = sync.push(tap, remotePath, options.mode ?? 0o644);
      const settle = (err: Error | null) => {
        if (settled) return;
        settled = true;
        clearInterval(watchdog);
        if (overall) clearTimeout(overall);
        options.signal?.removeEventListener('abort', onAbort);
        if (err) {
          // Hang up so adbkit's reader and writer stop, and the phone drops its temp file.
          tap.destroy();
          sync.end();
          reject(err);
        } else resolve();
      };
      let lastMoveMs = Date.now();
      const watchdog = setInterval(() => {
        if (Date.now() - lastMoveMs > stallMs) {
          settle(new AdbError(`${what} stalled: no progress for ${stallMs} ms at ${lastBytes} of ${total} bytes`, 'timeout'));
        }
      }, Math.min(1000, Math.max(50, stallMs / 4)));
      const overall = options.timeoutMs
        ? setTimeout(() => settle(new AdbError(`${what} timed out after ${options.timeoutMs} ms`, 'timeout')), options.timeoutMs)
        : null;
      const onAbort = () => settle(new AdbError(`${what} was cancelled`, 'failed'));
      if (options.signal?.aborted) return onAbort();
      options.signal?.addEventListener('abort', onAbort);
      transfer.on('progress', (s: { bytesTransferred: number }) => {
        lastMoveMs = Date.now();
        lastBytes = s.bytesTransferred;
        meter.add(s.bytesTransferred);
        options.onProgress?.(s.bytesTransferred, total, meter.rate(total - s.bytesTransferred));
      });
      // adbkit emits 'end' after 'error' too: remember the error and let it win.
      transfer.on('error', (err: Error) => {
        failed ??= err;
        settle(new AdbError(`${what} failed: ${describeTransferError(err)}`, 'failed', err));
      });
      transfer.on('end', () => {
        if (failed) settle(new AdbError(`${what} failed: ${describeTransferError(failed)}`, 'failed', failed));
        else settle(null);
      });
    });
  } finally {
    sync.end();
  }
  const localSha = hash.digest('hex');
  if (options.noVerify) return { bytes: total, sha256: localSha, verified: 'none', ms: Date.now() - started };
  const verified = await verifyRemote(adb, serial, remotePath, total, options.sizeOnly ? null : localSha, what);
  return { bytes: total, sha256: localSha, verified, ms: Date.now() - started };
}

/** Time allowed for sha256sum of `bytes` on a slow phone (about 20 MB/s from flash) plus a margin. */
export function hashTimeoutMs(bytes: number): number {
  return 30_000 + Math.ceil(bytes / 20_000);
}

/** Checks size (and sha256 unless null) of a file on the phone; throws an error naming file and phone. */
export async function verifyRemote(adb: Adb, serial: string, remotePath: string, bytes: number, sha256: string | null,
  what = `file ${serial}:${remotePath}`): Promise<'sha256' | 'size'> {
  const q = shellQuote(remotePath);
  const cmd = sha256
    ? `stat -c %s ${q}; if command -v sha256sum >/dev/null 2>&1; then sha256sum ${q}; else echo __no_sha256sum; fi`
    : `stat -c %s ${q}`;
  const r = await runShell(adb, serial, cmd, { timeoutMs: hashTimeoutMs(bytes) });
  const lines = r.output.split('\n').map((l) => l.trim()).filter(Boolean);
  const remoteBytes = lines[0] !== undefined && /^\d+$/.test(lines[0]) ? Number(lines[0]) : NaN;
  if (r.exitCode !== 0 || !(remoteBytes === bytes)) {
    throw new AdbError(`${what}: verify failed: phone has ${Number.isNaN(remoteBytes) ? `no readable file (${lines.join(' ') || 'no output'})` : `${remoteBytes} bytes`}, expected ${bytes}`, 'failed');
  }
  if (!sha256 || lines[1] === '__no_sha256sum') return 'size';
  const remoteSha = (lines[1] ?? '').split(/\s+/)[0];
  if (remoteSha !== sha256) {
    throw new AdbError(`${what}: verify failed: sha256 on the phone is ${remoteSha || '(none)'}, expected ${sha256}`, 'failed');
  }
  return 'sha256';
}
