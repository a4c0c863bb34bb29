// Where the checkout's bundled files and built binaries are, resolved from this module's own location
// (build/electron/core/paths.js → repository root). A packaged app passes its resource folder instead.
import { existsSync } from 'node:fs';
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

export function bundledPaths(root = findRepoRoot()): BundledPaths {
  const hostAgent = join(root, 'build/native/android-agent/confidant-agent');
  return {
    root,
    modelDir: join(root, 'models/stories260K'),
    datasetPath: join(root, 'datasets/demo-stories/stories.txt'),
    agentBinaries: existsSync(hostAgent) ? { x86_64: hostAgent } : {},
    runsDir: join(root, 'runs'),
    cacheDir: join(root, '.confidant/cache'),
  };
}
