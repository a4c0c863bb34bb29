// Small command-line helpers shared by the `confidant` subcommands: byte sizes, integers, output. No commands here.

const UNITS: Record<string, number> = { '': 1, b: 1, k: 2 ** 10, kb: 1e3, kib: 2 ** 10, m: 2 ** 20, mb: 1e6, mib: 2 ** 20, g: 2 ** 30, gb: 1e9, gib: 2 ** 30 };

/** "3GiB", "512MiB", "2g", "1000000" → bytes. */
export function parseBytes(text: string, what: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const unit = m ? UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new UsageError(`${what}: "${text}" is not a size (examples: 3GiB, 512MiB)`);
  return Math.round(Number(m[1]) * unit);
}

export function parseCount(text: string | undefined, what: string, fallback: number, min = 1): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`${what} must be an integer >= ${min}, got "${text}"`);
  return n;
}

/** A mistake in how the command was called: printed with the usage, exit status 2. */
export class UsageError extends Error {}

export const gib = (bytes: number) => `${(bytes / 2 ** 30).toFixed(2)} GiB`;
export const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
