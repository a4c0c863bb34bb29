// `sync:` of the virtual phone: the legacy file sync protocol (STAT, LIST, SEND, RECV, QUIT) over one stream,
// with paths mapped into the sandbox. Not the v2 protocol (STA2/LST2/SND2/RCV2 are not advertised).
// Spec: AOSP packages/modules/adb/SYNC.TXT / sync.md (8-byte headers: 4-char id + u32 LE length).
import { constants as fsc } from 'node:fs';
import { chmod, lstat, mkdir, open, readdir, rename, rm, utimes, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { devicePathToHost } from '../sandbox.js';
import type { ServiceStream, StreamHandler } from '../transport.js';

/** Largest DATA chunk in either direction (SYNC_DATA_MAX). */
export const SYNC_DATA_MAX_BYTES = 64 * 1024;
const MAX_PATH_BYTES = 1024;
const S_IFMT = 0o170000;
const S_IFLNK = 0o120000;
/** Queued RECV bytes above which we wait for the host's OKAYs. */
const RECV_WINDOW_BYTES = 1024 * 1024;

function header(id: string, value: number): Buffer {
  const b = Buffer.alloc(8);
  b.write(id, 0, 'latin1');
  b.writeUInt32LE(value >>> 0, 4);
  return b;
}

function failMessage(message: string): Buffer {
  const text = Buffer.from(message, 'utf8');
  return Buffer.concat([header('FAIL', text.length), text]);
}

function errnoText(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  const map: Record<string, string> = {
    ENOENT: 'No such file or directory', EACCES: 'Permission denied', EISDIR: 'Is a directory',
    ENOTDIR: 'Not a directory', ENOSPC: 'No space left on device', EEXIST: 'File exists',
  };
  return (e.code && map[e.code]) ?? e.message;
}

let tempCounter = 0;

interface PendingSend {
  devicePath: string;
  hostPath: string;
  tempPath: string;
  mode: number;
  file: FileHandle | null;
  /** First error; once set, data is read and dropped until DONE. */
  failed: string | null;
}

export class SyncSession implements StreamHandler {
  private chunks: Buffer[] = [];
  private bufferedBytes = 0;
  private send: PendingSend | null = null;
  private closed = false;

  constructor(private readonly stream: ServiceStream, private readonly sandboxDir: string) {}

  async onData(data: Buffer): Promise<void> {
    this.chunks.push(data);
    this.bufferedBytes += data.length;
    try {
      await this.process();
    } catch (err) {
      // A protocol violation: report and hang up like adbd does.
      await this.stream.write(failMessage(`protocol error: ${(err as Error).message}`));
      this.stream.close();
      this.closed = true;
    }
  }

  onClose(): void {
    if (this.closed) return;
    this.closed = true;
    void this.abortSend();
  }

  private peek(n: number): Buffer | null {
    if (this.bufferedBytes < n) return null;
    if (this.chunks[0]!.length < n) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0]!.subarray(0, n);
  }

  private take(n: number): Buffer {
    this.peek(n);
    const first = this.chunks[0]!;
    const out = first.subarray(0, n);
    if (first.length === n) this.chunks.shift();
    else this.chunks[0] = first.subarray(n);
    this.bufferedBytes -= n;
    return out;
  }

  private async process(): Promise<void> {
    while (!this.closed) {
      const head = this.peek(8);
      if (!head) return;
      const id = head.toString('latin1', 0, 4);
      const length = head.readUInt32LE(4);
      if (this.send) {
        if (id === 'DATA') {
          if (length > SYNC_DATA_MAX_BYTES) throw new Error(`DATA chunk of ${length} bytes > ${SYNC_DATA_MAX_BYTES}`);
          if (this.bufferedBytes < 8 + length) return;
          this.take(8);
          await this.writeData(this.take(length));
          continue;
        }
        if (id === 'DONE') {
          this.take(8);
          await this.finishSend(length);
          continue;
        }
        throw new Error(`expected DATA or DONE during SEND, got "${id}"`);
      }
      if (id === 'QUIT') {
        this.take(8);
        this.closed = true;
        this.stream.close();
        return;
      }
      if (!['STAT', 'LIST', 'SEND', 'RECV', 'STA2', 'LST2', 'LIS2', 'SND2', 'RCV2'].includes(id)) {
        throw new Error(`unknown sync request "${id}"`);
      }
      if (length > MAX_PATH_BYTES) throw new Error(`${id} path of ${length} bytes > ${MAX_PATH_BYTES}`);
      if (this.bufferedBytes < 8 + length) return;
      this.take(8);
      const arg = this.take(length).toString('utf8');
      switch (id) {
        case 'STAT': await this.stat(arg); break;
        case 'LIST': await this.list(arg); break;
        case 'SEND': await this.beginSend(arg); break;
        case 'RECV': await this.recv(arg); break;
        default:
          await this.stream.write(failMessage(`${id} is not supported (this phone speaks sync v1 only)`));
      }
    }
  }

  private async stat(devicePath: string): Promise<void> {
    const out = Buffer.alloc(16);
    out.write('STAT', 0, 'latin1');
    try {
      // v1 STAT is lstat; a missing path is all zeros (mode 0), not FAIL.
      const st = await lstat(devicePathToHost(this.sandboxDir, devicePath));
      out.writeUInt32LE(st.mode >>> 0, 4);
      out.writeUInt32LE(Math.min(st.size, 0xffffffff), 8);
      out.writeUInt32LE(Math.floor(st.mtimeMs / 1000) >>> 0, 12);
    } catch { /* zeros */ }
    await this.stream.write(out);
  }

  private async list(devicePath: string): Promise<void> {
    const dir = devicePathToHost(this.sandboxDir, devicePath);
    const parts: Buffer[] = [];
    let names: string[] = [];
    try {
      names = ['.', '..', ...(await readdir(dir))];
    } catch { /* adbd answers an unreadable folder with an empty listing */ }
    for (const name of names) {
      try {
        const st = await lstat(join(dir, name));
        const nameBytes = Buffer.from(name, 'utf8');
        const dent = Buffer.alloc(20);
        dent.write('DENT', 0, 'latin1');
        dent.writeUInt32LE(st.mode >>> 0, 4);
        dent.writeUInt32LE(Math.min(st.size, 0xffffffff), 8);
        dent.writeUInt32LE(Math.floor(st.mtimeMs / 1000) >>> 0, 12);
        dent.writeUInt32LE(nameBytes.length, 16);
        parts.push(dent, nameBytes);
      } catch { /* vanished while listing */ }
    }
    const done = Buffer.alloc(20);
    done.write('DONE', 0, 'latin1');
    parts.push(done);
    await this.stream.write(Buffer.concat(parts));
  }

  private async beginSend(arg: string): Promise<void> {
    const comma = arg.lastIndexOf(',');
    const devicePath = comma >= 0 ? arg.slice(0, comma) : arg;
    const modeText = comma >= 0 ? arg.slice(comma + 1) : '';
    const mode = /^\d+$/.test(modeText) ? Number(modeText) : 0o100644;
    const hostPath = devicePathToHost(this.sandboxDir, devicePath);
    const tempPath = join(dirname(hostPath), `.${basename(hostPath)}.confidant-${process.pid}-${++tempCounter}.tmp`);
    const send: PendingSend = { devicePath, hostPath, tempPath, mode, file: null, failed: null };
    this.send = send;
    if ((mode & S_IFMT) === S_IFLNK) {
      send.failed = `${devicePath}: symlinks are not supported by the virtual phone`;
    } else {
      try {
        // Like adbd's secure_mkdirs: the parent folders are created on the fly.
        await mkdir(dirname(hostPath), { recursive: true });
        send.file = await open(tempPath, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_TRUNC, 0o600);
      } catch (err) {
        send.failed = `couldn't create file ${devicePath}: ${errnoText(err)}`;
      }
    }
    // Tell the host at once; the rest of its DATA is read and dropped until DONE, then the stream closes.
    if (send.failed) await this.stream.write(failMessage(send.failed));
  }

  private async writeData(data: Buffer): Promise<void> {
    const send = this.send!;
    if (send.failed || !send.file) return;
    try {
      await send.file.write(data);
    } catch (err) {
      send.failed = `write to ${send.devicePath} failed: ${errnoText(err)}`;
      await this.stream.write(failMessage(send.failed));
      await this.abortSend();
      this.send = send;
    }
  }

  private async finishSend(mtimeSec: number): Promise<void> {
    const send = this.send!;
    this.send = null;
    if (send.failed) {
      await this.abortSend(send);
      this.closed = true;
      this.stream.close();
      return;
    }
    try {
      await send.file!.close();
      send.file = null;
      await chmod(send.tempPath, send.mode & 0o7777);
      if (mtimeSec > 0) await utimes(send.tempPath, mtimeSec, mtimeSec);
      await rename(send.tempPath, send.hostPath);
      await this.stream.write(header('OKAY', 0));
    } catch (err) {
      await this.abortSend(send);
      await this.stream.write(failMessage(`couldn't finish ${send.devicePath}: ${errnoText(err)}`));
      this.closed = true;
      this.stream.close();
    }
  }

  /** Drops a half-written upload: the temp file never becomes the real file. */
  private async abortSend(send: PendingSend | null = this.send): Promise<void> {
    if (!send) return;
    if (this.send === send) this.send = null;
    try { await send.file?.close(); } catch { /* already closed */ }
    send.file = null;
    await rm(send.tempPath, { force: true }).catch(() => undefined);
  }

  private async recv(devicePath: string): Promise<void> {
    let file: FileHandle;
    try {
      file = await open(devicePathToHost(this.sandboxDir, devicePath), 'r');
    } catch (err) {
      await this.stream.write(failMessage(`open failed: ${errnoText(err)}`));
      return;
    }
    try {
      const buf = Buffer.alloc(SYNC_DATA_MAX_BYTES);
      let last: Promise<void> = Promise.resolve();
      for (;;) {
        if (this.closed) return;
        const { bytesRead } = await file.read(buf, 0, buf.length, null);
        if (bytesRead === 0) break;
        last = this.stream.write(Buffer.concat([header('DATA', bytesRead), buf.subarray(0, bytesRead)]));
        if (this.stream.pendingBytes > RECV_WINDOW_BYTES) await last;
      }
      await this.stream.write(header('DONE', 0));
    } catch (err) {
      await this.stream.write(failMessage(`read failed: ${errnoText(err)}`));
    } finally {
      await file.close();
    }
  }
}

export function openSync(stream: ServiceStream, sandboxDir: string): StreamHandler {
  return new SyncSession(stream, sandboxDir);
}
