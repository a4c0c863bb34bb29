// Splits a file's bytes into lines (LF or CRLF) and decodes each one on its own, so a line that is not valid UTF-8
// is found and named by number instead of turning the whole file into replacement characters.
import { readFile } from 'node:fs/promises';

export interface Line {
  /** The decoded line without its line ending; null when its bytes are not valid UTF-8. */
  text: string | null;
  /** The line holds a NUL byte (usually a binary file). */
  nul: boolean;
}

const fatalUtf8 = new TextDecoder('utf-8', { fatal: true });

/** Refuses UTF-16 and drops a UTF-8 byte-order mark; `path` only names the file in the message. */
export function stripBom(input: Uint8Array, path: string): Uint8Array {
  if (input.length >= 2 && ((input[0] === 0xff && input[1] === 0xfe) || (input[0] === 0xfe && input[1] === 0xff))) {
    throw new Error(`${path}: the file is UTF-16; save it as UTF-8`);
  }
  return input.length >= 3 && input[0] === 0xef && input[1] === 0xbb && input[2] === 0xbf ? input.subarray(3) : input;
}

export function splitLines(bytes: Uint8Array): Line[] {
  const lines: Line[] = [];
  let start = 0;
  for (let i = 0; i <= bytes.length; i++) {
    if (i === bytes.length || bytes[i] === 0x0a) {
      let end = i;
      if (end > start && bytes[end - 1] === 0x0d) end--; // CRLF
      const slice = bytes.subarray(start, end);
      let text: string | null;
      try {
        text = fatalUtf8.decode(slice);
      } catch {
        text = null;
      }
      lines.push({ text, nul: slice.includes(0) });
      start = i + 1;
    }
  }
  // A final newline ends the last line; it does not start an empty one.
  if (bytes.length > 0 && bytes[bytes.length - 1] === 0x0a) lines.pop();
  return lines;
}

/** A dataset file's bytes; a missing file is an error that names it. */
export async function readDatasetFile(path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(`${path}: dataset file not found`);
    throw err;
  }
}
