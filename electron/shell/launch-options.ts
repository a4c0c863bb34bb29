// The desktop app's launch options, from its command line and environment: which extra adb servers to take phones
// from (other workstations' `adb -a nodaemon server`, device farms; the same "host:port" form as the CLI's --adb),
// and which adb binary to run (a packaged one first).
// No Electron import, so it is tested in Node.
import { delimiter, join } from 'node:path';
import { parseAdbServer } from '../core/adb/servers.js';

export interface LaunchOptions {
  adbServers: string[];
}

/**
 * `--adb host:port` / `--adb=host:port` (repeatable) on the command line, and CONFIDANT_ADB_SERVERS (comma- or
 * space-separated) in the environment. A malformed entry throws, naming where it came from.
 */
export function launchOptions(argv: readonly string[], env: NodeJS.ProcessEnv): LaunchOptions {
  const found: { text: string; from: string }[] = [];
  for (const text of (env.CONFIDANT_ADB_SERVERS ?? '').split(/[\s,]+/).filter(Boolean)) found.push({ text, from: 'CONFIDANT_ADB_SERVERS' });
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--adb') {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--')) throw new Error('--adb needs a host:port after it');
      found.push({ text: next, from: '--adb' });
      i++;
    } else if (arg.startsWith('--adb=')) {
      found.push({ text: arg.slice('--adb='.length), from: '--adb' });
    }
  }
  const adbServers: string[] = [];
  for (const { text, from } of found) {
    try {
      parseAdbServer(text);
    } catch (err) {
      throw new Error(`${from}: ${(err as Error).message}`);
    }
    if (!adbServers.includes(text)) adbServers.push(text);
  }
  return { adbServers };
}

/**
 * PATH for the packaged app: electron-builder.yml ships adb (platform-tools) under resources/platform-tools when
 * the build had it; that adb goes first, so the app works on a machine without Android tools. Otherwise PATH is
 * returned unchanged and the adb already on it is used.
 */
export function pathWithBundledAdb(resourcesPath: string, path: string | undefined, exists: (p: string) => boolean, platform = process.platform): string | undefined {
  const dir = join(resourcesPath, 'platform-tools');
  if (!exists(join(dir, platform === 'win32' ? 'adb.exe' : 'adb'))) return path;
  return path ? `${dir}${delimiter}${path}` : dir;
}
