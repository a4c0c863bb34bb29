// Where the checkout's bundled files and built binaries are, resolved from this module's own location
// (build/electron/core/paths.js → repository root). A packaged app passes its resource folder instead.
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The folder holding package.json, found by walking up from this file. */
export function findRepoRoot(from = dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = resolve(from); ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json above ${from}: run Confidant from its checkout or package`);
  }
}

export interface BundledPaths {
  root: string;
  modelDir: string;
  datasetPath: string;
  /** Agent binary per Android ABI; only the ABIs built on this machine are listed. */
  agentBinaries: Record<string, string>;
  runsDir: string;
  cacheDir: string;
}

/**
 * The agent binaries on this machine, keyed by Android ABI: <root>/agents/<abi>/confidant-agent (the packaged
 * app's layout) and build/agents/<abi>/ (scripts/build-arm64.sh and NDK builds), then the host build for x86_64
 * (virtual phones and x86_64 emulators), which wins over an older copy in the per-ABI folders.
 */
export function findAgentBinaries(root: string): Record<string, string> {
  const found: Record<string, string> = {};
  for (const dir of [join(root, 'agents'), join(root, 'build/agents')]) {
    if (!existsSync(dir)) continue;
    for (const abi of readdirSync(dir)) {
      const binary = join(dir, abi, 'confidant-agent');
      if (existsSync(binary)) found[abi] = binary;
    }
  }
  const hostAgent = join(root, 'build/native/android-agent/confidant-agent');
  if (existsSync(hostAgent)) found.x86_64 = hostAgent;
  return found;
}

export function bundledPaths(root = findRepoRoot()): BundledPaths {
  return {
    root,
    modelDir: join(root, 'models/stories260K'),
    datasetPath: join(root, 'datasets/demo-stories/stories.txt'),
    agentBinaries: findAgentBinaries(root),
    runsDir: join(root, 'runs'),
    cacheDir: join(root, '.confidant/cache'),
  };
}
