// Atomic file creation: write to a temporary sibling, fsync, rename over the target, fsync the folder.
// Readers see either the old file or the complete new one, never a partial write; it is not a lock.
import { randomBytes } from 'node:crypto';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** A temporary path in the same folder as `path` (same filesystem, so rename is atomic). */
export function tempSiblingPath(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
}

/** fsync a folder so a rename inside it survives a crash; some platforms cannot open folders, which is harmless. */
export async function fsyncDir(dir: string): Promise<void> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch {
    // Windows cannot fsync a directory; the rename is still atomic there.
  } finally {
    await fh?.close();
  }
}

/**
 * Calls `write` with a handle on a fresh temporary file, then fsyncs and renames it to `path`.
 * On any error the temporary file is removed and `path` is left untouched.
 */
export async function writeFileAtomically<T>(path: string, write: (fh: FileHandle, tempPath: string) => Promise<T>): Promise<T> {
  const tempPath = tempSiblingPath(path);
  const fh = await open(tempPath, 'wx+', 0o644);
  let closed = false;
  try {
    const result = await write(fh, tempPath);
    await fh.sync();
    await fh.close();
    closed = true;
    await rename(tempPath, path);
    await fsyncDir(dirname(path));
    return result;
  } catch (err) {
    if (!closed) await fh.close().catch(() => undefined);
    await rm(tempPath, { force: true }).catch(() => undefined);
    throw err;
  }
}

/** Writes all of `buf` at `position` (a single write call may write less). */
export async function writeFully(fh: FileHandle, buf: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesWritten } = await fh.write(buf, done, buf.length - done, position + done);
    done += bytesWritten;
  }
}

/** Replaces `path` atomically with `data`. */
export async function atomicWriteFile(path: string, data: string | Uint8Array): Promise<void> {
  await writeFileAtomically(path, async (fh) => {
    await fh.writeFile(data);
  });
}
