// Pulls a file from a phone over adb sync (adbkit) into memory or onto disk, with a stall watchdog and a size
// check against STAT. Not for folders.
import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import type * as SyncModule from '@devicefarmer/adbkit/dist/src/adb/sync.js';
import type * as StatsModule from '@devicefarmer/adbkit/dist/src/adb/sync/stats.js';
import { AdbError, type Adb } from './client.js';

export interface PullOptions {
  stallMs?: number;
  onProgress?: (bytesReceived: number) => void;
}

/** The file's bytes; a missing file is an AdbError naming the phone and path. */
export async function pullFile(adb: Adb, serial: string, remotePath: string, options: PullOptions = {}): Promise<Buffer> {
  const chunks: Buffer[] = [];
  await pullInto(adb, serial, remotePath, (c) => chunks.push(c), options);
  return Buffer.concat(chunks);
}

/** Writes the file to `localPath` (through a temp file, renamed at the end). */
export async function pullToFile(adb: Adb, serial: string, remotePath: string, localPath: string, options: PullOptions = {}): Promise<void> {
  const tmp = `${localPath}.partial-${process.pid}`;
  const out = createWriteStream(tmp);
  try {
    await pullInto(adb, serial, remotePath, (c) => out.write(c), options);
    await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
    await rename(tmp, localPath);
  } catch (err) {
    out.destroy();
    await rm(tmp, { force: true });
    throw err;
  }
}

async function pullInto(adb: Adb, serial: string, remotePath: string, sink: (chunk: Buffer) => void, options: PullOptions): Promise<void> {
  const what = `pull of ${serial}:${remotePath}`;
  const sync = await adb.call<SyncModule.default>(`${what}: opening sync`, () => adb.device(serial).syncService());
  const stallMs = options.stallMs ?? 15_000;
  try {
    // adbkit ends a PullTransfer *before* it reports a FAIL, so a missing file would look like an empty one:
    // STAT first, and compare the byte count at the end.
    const st = await adb.call<StatsModule.default>(`${what}: stat`, () => sync.stat(remotePath)).catch((err: unknown) => {
      const code = ((err as AdbError).cause as NodeJS.ErrnoException | undefined)?.code;
      throw new AdbError(`${what} failed: ${code === 'ENOENT' ? 'no such file on the phone' : (err as Error).message}`, 'failed', err);
    });
    if (!st.isFile()) throw new AdbError(`${what} failed: not a regular file (mode 0${st.mode.toString(8)})`, 'failed');
    const expectedBytes = Number(st.size);
    await new Promise<void>((resolve, reject) => {
      const transfer = sync.pull(remotePath);
      let received = 0;
      let lastMoveMs = Date.now();
      let failed: Error | null = null;
      const watchdog = setInterval(() => {
        if (Date.now() - lastMoveMs > stallMs) {
          clearInterval(watchdog);
          reject(new AdbError(`${what} stalled: no data for ${stallMs} ms after ${received} bytes`, 'timeout'));
        }
      }, Math.min(1000, Math.max(50, stallMs / 4)));
      transfer.on('data', (c: Buffer) => {
        received += c.length;
        lastMoveMs = Date.now();
        sink(c);
        options.onProgress?.(received);
      });
      transfer.on('error', (err: Error) => {
        failed ??= err;
        clearInterval(watchdog);
        const m = /^Failure: '(.*)'$/s.exec(err.message);
        reject(new AdbError(`${what} failed: ${m ? `the phone says: ${m[1]}` : err.message}`, 'failed', err));
      });
      transfer.on('end', () => {
        clearInterval(watchdog);
        // Legacy STAT sizes are 32-bit.
        if (failed) return;
        if (received % 2 ** 32 !== expectedBytes % 2 ** 32) {
          setTimeout(() => reject(new AdbError(`${what} failed: got ${received} of ${expectedBytes} bytes`, 'failed')), 50);
        } else resolve();
      });
    });
  } finally {
    sync.end();
  }
}
