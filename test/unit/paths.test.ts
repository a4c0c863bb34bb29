// Tests findAgentBinaries (electron/core/paths.ts) on a made-up folder tree: the packaged layout (agents/<abi>/),
// the cross builds (build/agents/<abi>/) and the host build, which is what virtual phones run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findAgentBinaries } from '../../electron/core/paths.js';

async function touch(path: string): Promise<void> {
  await mkdir(join(path, '..'), { recursive: true });
  await writeFile(path, '');
}

test('agents are found per ABI in the packaged and build layouts, the host build winning for x86_64', async () => {
  const root = await mkdtemp(join(tmpdir(), 'confidant-paths-'));
  try {
    assert.deepEqual(findAgentBinaries(root), {});
    await touch(join(root, 'agents/arm64-v8a/confidant-agent'));
    await touch(join(root, 'agents/x86_64/confidant-agent'));
    await mkdir(join(root, 'build/agents/armeabi-v7a'), { recursive: true }); // a folder without a binary
    assert.deepEqual(findAgentBinaries(root), {
      'arm64-v8a': join(root, 'agents/arm64-v8a/confidant-agent'),
      x86_64: join(root, 'agents/x86_64/confidant-agent'),
    });
    await touch(join(root, 'build/agents/arm64-v8a/confidant-agent'));
    await touch(join(root, 'build/native/android-agent/confidant-agent'));
    assert.deepEqual(findAgentBinaries(root), {
      'arm64-v8a': join(root, 'build/agents/arm64-v8a/confidant-agent'),
      x86_64: join(root, 'build/native/android-agent/confidant-agent'),
    });
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
