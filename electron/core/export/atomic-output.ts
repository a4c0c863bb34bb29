// Where an export lands: an output folder assembled under a temporary sibling and renamed into place, or a single
// file checked before an atomic writer replaces it. Either way an existing output is refused unless the caller asked
// to overwrite, and a failure leaves neither a partial output nor temporary files behind.
import { randomBytes } from 'node:crypto';
import { cp, mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { fsyncDir } from '../util/atomic-file.js';

/** The output exists and overwriting was not allowed; the UI recognises it by this class name over the wire. */
export class OutputExistsError extends Error {
  constructor(readonly path: string, state: string) {
    super(`${path} already exists ${state}: choose another path or allow overwriting`);
    this.name = 'OutputExistsError';
  }
}

async function statOrNull(path: string) {
  try {
    return await stat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** Entries of an existing folder, null when there is none; a file in the way is an error. */
async function existingFolder(dir: string): Promise<string[] | null> {
  const s = await statOrNull(dir);
  if (!s) return null;
  if (!s.isDirectory()) throw new Error(`${dir} exists and is not a folder: choose another output folder`);
  return readdir(dir);
}

/** Refuses a non-empty `dir` without `overwrite` (an empty folder is taken as the user's chosen place). */
export async function checkFolderTarget(dirIn: string, overwrite: boolean): Promise<string> {
  const dir = resolve(dirIn);
  const entries = await existingFolder(dir);
  if (entries && entries.length > 0 && !overwrite) {
    throw new OutputExistsError(dir, `and is not empty (${entries.slice(0, 3).join(', ')}${entries.length > 3 ? ', ...' : ''})`);
  }
  return dir;
}

/**
 * Calls `fill` with a fresh temporary folder beside `outDir`, fsyncs it and renames it to `outDir`. An existing
 * `outDir` (allowed by checkFolderTarget) is moved aside first, since rename cannot replace a non-empty folder,
 * and deleted only once the new folder is in place; on failure the old folder is put back.
 */
export async function writeFolderAtomically<T>(outDirIn: string, overwrite: boolean, fill: (tempDir: string) => Promise<T>): Promise<T> {
  const outDir = await checkFolderTarget(outDirIn, overwrite);
  const parent = dirname(outDir);
  await mkdir(parent, { recursive: true });
  const tag = `${process.pid}-${randomBytes(4).toString('hex')}`;
  const tempDir = join(parent, `.${basename(outDir)}.tmp-${tag}`);
  await mkdir(tempDir);
  try {
    const result = await fill(tempDir);
    await fsyncDir(tempDir);
    // Checked again: the folder may have appeared while the (possibly long) fill ran.
    const existing = await existingFolder(outDir);
    if (existing && existing.length > 0 && !overwrite) throw new OutputExistsError(outDir, 'and is not empty (it appeared while exporting)');
    if (existing) {
      const oldDir = join(parent, `.${basename(outDir)}.old-${tag}`);
      await rename(outDir, oldDir);
      try {
        await rename(tempDir, outDir);
      } catch (err) {
        await rename(oldDir, outDir).catch(() => undefined);
        throw err;
      }
      await rm(oldDir, { recursive: true, force: true });
    } else {
      await rename(tempDir, outDir);
    }
    await fsyncDir(parent);
    return result;
  } catch (err) {
    await rm(tempDir, { recursive: true, force: true }).catch(() => undefined);
    throw err;
  }
}

/** Refuses an existing file at `path` without `overwrite`; the caller then writes it with writeFileAtomically. */
export async function checkFileTarget(pathIn: string, overwrite: boolean): Promise<string> {
  const path = resolve(pathIn);
  const s = await statOrNull(path);
  if (s?.isDirectory()) throw new Error(`${path} is a folder: give a file path for this format (e.g. ${join(path, 'adapter.gguf')})`);
  if (s && !overwrite) throw new OutputExistsError(path, `(a file of ${s.size} bytes)`);
  await mkdir(dirname(path), { recursive: true });
  return path;
}

/** Copies `from` to `to` and fsyncs the copy, so the folder rename that follows publishes complete files. */
export async function copyFileDurably(from: string, to: string): Promise<void> {
  await cp(from, to);
  const fh = await open(to, 'r+');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
