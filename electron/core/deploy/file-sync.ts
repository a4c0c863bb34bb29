// Makes one file on a phone equal to a local file, dependably: skipped when the phone already holds the same
// sha256, otherwise pushed in segments to `<dest>.partial` (a retry or a later run resumes after the last whole
// segment), verified (size, and sha256 where the phone has sha256sum), and only then renamed to `<dest>`.
// Not a folder sync and not the transfer itself (adb/push.ts).
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { posix } from 'node:path';
import { AdbError, type Adb } from '../adb/client.js';
import { hashTimeoutMs, pushFile, RateMeter, DEFAULT_PUSH_STALL_MS } from '../adb/push.js';
import { runShell, shellQuote } from '../adb/shell.js';

/*
 * Why segments: adb's sync SEND cannot append or seek, and adbd deletes the file of a SEND that breaks off
 * (a virtual phone writes to a temp file and renames at DONE), so a broken push leaves nothing to resume from.
 * Each segment after the first goes to `<dest>.partial.seg` and is appended with `cat >>`, so at most one segment
 * is lost. `<dest>.partial.sha256` says which content the partial file belongs to; `<dest>.sha256` records
 * "sha256 bytes mtime" of a verified file, which is how a phone without sha256sum can skip a file it holds.
 */

export const DEFAULT_SEGMENT_BYTES = 32 * 2 ** 20;
export const DEFAULT_PUSH_ATTEMPTS = 3;
/**
 * A progress report every 200 ms or every 1/32 of the file, whichever comes first, and at every phase change and
 * segment end (adbkit reports every 64 KiB chunk: ~16k reports for a GiB, too many for events.jsonl).
 */
const PROGRESS_EVERY_MS = 200;
const PROGRESS_PARTS = 32;

export type SyncPhase = 'checking' | 'pushing' | 'verifying' | 'skipped' | 'done';

export interface SyncProgress {
  bytesSent: number;
  bytesTotal: number;
  bytesPerSec: number;
  etaMs: number | null;
  phase: SyncPhase;
  /** 1 for the first try; a retry resumes where the partial file on the phone ends. */
  attempt: number;
  /** Bytes already on the phone when this attempt began (not sent again). */
  resumedFromBytes: number;
}

export interface SyncFileOptions {
  /** Permission bits of the final file (default 0o644). */
  mode?: number;
  onProgress?: (p: SyncProgress) => void;
  signal?: AbortSignal;
  /** No progress for this long aborts the transfer (default 15 s); the error names the phone and file. */
  stallMs?: number;
  /** Tries per call (default 3); each retry resumes from the partial file. */
  attempts?: number;
  segmentBytes?: number;
  /**
   * 'auto' (default): hash the file on the phone when it has sha256sum (skip check and verification);
   * 'off': size + the `<dest>.sha256` record only (faster for huge files, blind to same-size corruption).
   */
  remoteSha256?: 'auto' | 'off';
  /** Pause between attempts (default 500 ms, doubled each time). */
  retryDelayMs?: number;
}

export interface SyncFileResult {
  remotePath: string;
  bytes: number;
  sha256: string;
  /** False when the phone already held the same content. */
  pushed: boolean;
  /** How the final file was checked: 'sha256' (phone's sha256sum) or 'size' (+ our record when skipped). */
  verified: 'sha256' | 'size';
  attempts: number;
  /** Bytes not sent again because a partial file from an earlier try was resumed (0 if none). */
  resumedFromBytes: number;
  /** Bytes that went over adb in this call. */
  bytesSent: number;
  ms: number;
}

interface LocalHash {
  sha256: string;
  bytes: number;
}

const hashCache = new Map<string, LocalHash>();

/** sha256 of a local file, remembered by (path, size, mtime) so a second deployment of a stage does not re-read it. */
export async function hashLocalFile(path: string): Promise<LocalHash> {
  const st = await stat(path);
  const key = `${path}\0${st.size}\0${st.mtimeMs}`;
  const known = hashCache.get(key);
  if (known) return known;
  const hash = createHash('sha256');
  await new Promise<void>((resolve, reject) => {
    createReadStream(path).on('data', (c) => hash.update(c)).on('end', resolve).on('error', reject);
  });
  const result = { sha256: hash.digest('hex'), bytes: st.size };
  hashCache.set(key, result);
  return result;
}

interface RemoteState {
  bytes: number | null;
  mtime: number | null;
  /** Content of <dest>.sha256: "sha256 bytes mtime". */
  record: string;
  hasSha256sum: boolean;
  partialBytes: number | null;
  partialOf: string;
}

function paths(remotePath: string) {
  const partial = `${remotePath}.partial`;
  return { dest: remotePath, record: `${remotePath}.sha256`, partial, partialOf: `${partial}.sha256`, segment: `${partial}.seg` };
}

async function probe(adb: Adb, serial: string, remotePath: string, signal?: AbortSignal): Promise<RemoteState> {
  const p = paths(remotePath);
  const q = shellQuote;
  // Literal paths (not variables): a virtual phone maps /data/... into its sandbox by rewriting the command text.
  const cmd = [
    `echo "dest=$(stat -c '%s %Y' ${q(p.dest)} 2>/dev/null)"`,
    `echo "record=$(head -n 1 ${q(p.record)} 2>/dev/null)"`,
    `echo "partial=$(stat -c %s ${q(p.partial)} 2>/dev/null)"`,
    `echo "partialof=$(head -n 1 ${q(p.partialOf)} 2>/dev/null)"`,
    'if command -v sha256sum >/dev/null 2>&1; then echo sha=1; else echo sha=0; fi',
  ].join('; ');
  const r = await runShell(adb, serial, cmd, { timeoutMs: 15_000, signal });
  const field = (k: string) => new RegExp(`^${k}=(.*?)\\s*$`, 'm').exec(r.output)?.[1] ?? '';
  if (r.exitCode !== 0 || !/^sha=[01]/m.test(r.output)) {
    throw new AdbError(`cannot inspect ${serial}:${remotePath}: ${r.output.trim() || 'no output'}`, 'failed');
  }
  const [bytesText, mtimeText] = field('dest').split(/\s+/);
  const num = (t: string | undefined) => (t !== undefined && /^\d+$/.test(t) ? Number(t) : null);
  return {
    bytes: num(bytesText),
    mtime: num(mtimeText),
    record: field('record'),
    hasSha256sum: field('sha') === '1',
    partialBytes: num(field('partial')),
    partialOf: field('partialof'),
  };
}

async function remoteSha256(adb: Adb, serial: string, remotePath: string, bytes: number, signal?: AbortSignal): Promise<string> {
  const r = await runShell(adb, serial, `sha256sum ${shellQuote(remotePath)}`, { timeoutMs: hashTimeoutMs(bytes), signal });
  const sha = /^([0-9a-f]{64})\b/m.exec(r.output)?.[1];
  if (r.exitCode !== 0 || !sha) throw new AdbError(`sha256sum of ${serial}:${remotePath} failed: ${r.output.trim()}`, 'failed');
  return sha;
}

async function shellChecked(adb: Adb, serial: string, cmd: string, what: string, signal?: AbortSignal, timeoutMs = 30_000): Promise<string> {
  const r = await runShell(adb, serial, cmd, { timeoutMs, signal });
  if (r.exitCode !== 0) {
    throw new AdbError(`${what} on ${serial} failed (${r.exitCode === null ? 'cut off' : `status ${r.exitCode}`}): ${r.output.trim()}`, 'failed');
  }
  return r.output;
}

function isCancel(err: unknown, signal?: AbortSignal): boolean {
  return signal?.aborted === true || /was cancelled/.test((err as Error)?.message ?? '');
}

/** Makes `remotePath` on the phone hold exactly the bytes of `localPath`; see the file comment for how. */
export async function syncFile(adb: Adb, serial: string, localPath: string, remotePath: string, options: SyncFileOptions = {}): Promise<SyncFileResult> {
  const started = Date.now();
  const mode = options.mode ?? 0o644;
  const p = paths(remotePath);
  const q = shellQuote;
  const file = posix.basename(remotePath);
  const { sha256, bytes } = await hashLocalFile(localPath);
  const maxAttempts = Math.max(1, options.attempts ?? DEFAULT_PUSH_ATTEMPTS);
  const segmentBytes = Math.max(64 * 1024, options.segmentBytes ?? DEFAULT_SEGMENT_BYTES);
  const record = (mtime: number) => `${sha256} ${bytes} ${mtime}`;

  let attempt = 1;
  let resumedFromBytes = 0;
  let sentThisCall = 0;
  let lastReportMs = 0;
  let lastReportBytes = 0;
  const meter = new RateMeter();
  const report = (phase: SyncPhase, bytesSent: number, force = false) => {
    if (!options.onProgress) return;
    const now = Date.now();
    if (!force && now - lastReportMs < PROGRESS_EVERY_MS && bytesSent - lastReportBytes < bytes / PROGRESS_PARTS) return;
    lastReportMs = now;
    lastReportBytes = bytesSent;
    const rate = meter.rate(bytes - bytesSent);
    options.onProgress({ bytesSent, bytesTotal: bytes, bytesPerSec: rate.bytesPerSec, etaMs: rate.etaMs, phase, attempt, resumedFromBytes });
  };
  const result = (pushed: boolean, verified: 'sha256' | 'size'): SyncFileResult =>
    ({ remotePath, bytes, sha256, pushed, verified, attempts: attempt, resumedFromBytes, bytesSent: sentThisCall, ms: Date.now() - started });

  report('checking', 0, true);
  let state = await probe(adb, serial, remotePath, options.signal);
  const useSha = state.hasSha256sum && options.remoteSha256 !== 'off';

  // Already there? The phone's own hash is the proof; without sha256sum, our record of size and mtime is.
  if (state.bytes === bytes && state.mtime !== null) {
    const same = useSha
      ? (await remoteSha256(adb, serial, p.dest, bytes, options.signal)) === sha256
      : state.record === record(state.mtime);
    if (same) {
      await shellChecked(adb, serial,
        `chmod ${mode.toString(8)} ${q(p.dest)} && echo ${q(record(state.mtime))} > ${q(p.record)}`, `marking ${p.dest}`, options.signal);
      report('skipped', bytes, true);
      return result(false, useSha ? 'sha256' : 'size');
    }
  }

  const errors: string[] = [];
  for (;;) {
    try {
      // Resume only a partial file of this very content; anything else starts over.
      let offset = state.partialOf === sha256 && state.partialBytes !== null && state.partialBytes <= bytes ? state.partialBytes : 0;
      if (offset === 0) {
        await shellChecked(adb, serial,
          `mkdir -p ${q(posix.dirname(remotePath))} && rm -f ${q(p.record)} ${q(p.partial)} ${q(p.segment)} && echo ${sha256} > ${q(p.partialOf)}`,
          `preparing ${p.partial}`, options.signal);
      }
      resumedFromBytes = offset;
      meter.add(sentThisCall);
      report('pushing', offset, true);
      while (offset < bytes) {
        const end = Math.min(bytes, offset + segmentBytes);
        const base = sentThisCall;
        // The first segment becomes the partial file itself; later ones are appended to it.
        const target = offset === 0 ? p.partial : p.segment;
        await pushFile(adb, serial, localPath, target, {
          range: { start: offset, end },
          noVerify: true,
          signal: options.signal,
          stallMs: options.stallMs ?? DEFAULT_PUSH_STALL_MS,
          onProgress: (sent) => {
            meter.add(base + sent);
            report('pushing', offset + sent);
          },
        });
        sentThisCall = base + (end - offset);
        if (target === p.segment) {
          const out = await shellChecked(adb, serial,
            `cat ${q(p.segment)} >> ${q(p.partial)} && rm -f ${q(p.segment)} && stat -c %s ${q(p.partial)}`,
            `appending to ${p.partial}`, options.signal, 60_000 + Math.ceil((end - offset) / 20_000));
          const now = Number(out.trim().split('\n').at(-1));
          if (now !== end) throw new AdbError(`${serial}:${p.partial} has ${now} bytes after appending, expected ${end}`, 'failed');
        }
        offset = end;
        if (offset < bytes) report('pushing', offset, true);
      }

      report('verifying', bytes, true);
      const st = (await shellChecked(adb, serial, `stat -c %s ${q(p.partial)}`, `checking ${p.partial}`, options.signal)).trim();
      if (Number(st) !== bytes) {
        await runShell(adb, serial, `rm -f ${q(p.partial)} ${q(p.partialOf)}`).catch(() => undefined);
        throw new AdbError(`verification of ${serial}:${remotePath} failed: the pushed file has ${st} bytes, expected ${bytes}`, 'failed');
      }
      if (useSha) {
        const got = await remoteSha256(adb, serial, p.partial, bytes, options.signal);
        if (got !== sha256) {
          // Corrupt somewhere: no prefix can be trusted, so the next try pushes the whole file.
          await runShell(adb, serial, `rm -f ${q(p.partial)} ${q(p.partialOf)}`).catch(() => undefined);
          throw new AdbError(`verification of ${serial}:${remotePath} failed: sha256 on the phone is ${got}, expected ${sha256} (${localPath})`, 'failed');
        }
      }
      // Into place only now: nothing ever runs on a half-pushed or unverified file.
      const out = await shellChecked(adb, serial,
        `chmod ${mode.toString(8)} ${q(p.partial)} && mv -f ${q(p.partial)} ${q(p.dest)} && rm -f ${q(p.partialOf)} && stat -c %Y ${q(p.dest)}`,
        `moving ${p.partial} into place`, options.signal);
      const mtime = Number(out.trim().split('\n').at(-1));
      await shellChecked(adb, serial, `echo ${q(record(mtime))} > ${q(p.record)}`, `recording ${p.record}`, options.signal);
      report('done', bytes, true);
      return result(true, useSha ? 'sha256' : 'size');
    } catch (err) {
      const message = (err as Error).message;
      if (isCancel(err, options.signal)) {
        throw new AdbError(`push of ${file} to ${serial} was cancelled (the partial file stays for a later resume)`, 'failed', err);
      }
      errors.push(`try ${attempt}: ${message}`);
      if (attempt >= maxAttempts) {
        throw new AdbError(`could not push ${localPath} to ${serial}:${remotePath} after ${attempt} tries:\n${errors.join('\n')}`,
          (err as AdbError).code ?? 'failed', err);
      }
      await new Promise((r) => setTimeout(r, (options.retryDelayMs ?? 500) * 2 ** (attempt - 1)));
      attempt++;
      try {
        state = await probe(adb, serial, remotePath, options.signal);
      } catch (probeErr) {
        // The phone is gone (or adb is): another try cannot help.
        const why = /failed: (?:Failure: )?(.*)$/s.exec((probeErr as Error).message)?.[1] ?? (probeErr as Error).message;
        errors.push(`then ${serial} could not be reached over adb: ${why.replace(/^'(.*)'$/, '$1')}`);
        throw new AdbError(`could not push ${localPath} to ${serial}:${remotePath}:\n${errors.join('\n')}`, 'failed', err);
      }
    }
  }
}
