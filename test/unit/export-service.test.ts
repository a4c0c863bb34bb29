// The app's export path: the exportAdapter API method, validated by the contract and run by the real service on a
// run folder in its runs folder, for each format, with the refusal message the Export step offers to override.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dispatchCall } from '../../electron/core/api/contract.js';
import { createService } from '../../electron/core/service.js';
import { repoRoot } from '../support/local-agent.js';
import { makeRunFolder } from '../support/export-run.js';

test('exportAdapter writes each format through the service and refuses an existing output until overwrite', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cfd-export-service-'));
  const service = await createService({ repoRoot: repoRoot(), runsDir: join(dir, 'runs'), stateDir: dir, adbPort: Number(process.env.CONFIDANT_TEST_ADB_PORT ?? 18037) });
  try {
    await makeRunFolder(join(dir, 'runs', 'r1'), join(repoRoot(), 'models', 'stories260K'), { seed: 13 });
    for (const [format, name] of [['peft', 'peft'], ['gguf', 'a.gguf'], ['merged', 'merged']] as const) {
      const outDir = join(dir, 'out', name);
      const reply = await dispatchCall(service, 'exportAdapter', { runId: 'r1', format, outDir });
      assert.ok(reply.ok, JSON.stringify(reply));
      const result = reply.result as { outDir: string; files: { name: string; bytes: number }[] };
      assert.equal(result.outDir, outDir);
      for (const f of result.files) {
        const path = format === 'gguf' ? outDir : join(outDir, f.name);
        assert.equal((await stat(path)).size, f.bytes, `${format}: ${f.name} size`);
      }
      const again = await dispatchCall(service, 'exportAdapter', { runId: 'r1', format, outDir });
      assert.ok(!again.ok && /already exists/.test(again.error.message), `${format}: refused: ${JSON.stringify(again)}`);
      const over = await dispatchCall(service, 'exportAdapter', { runId: 'r1', format, outDir, overwrite: true });
      assert.ok(over.ok, JSON.stringify(over));
    }
    const bad = await dispatchCall(service, 'exportAdapter', { runId: 'r1', format: 'onnx', outDir: join(dir, 'x') });
    assert.ok(!bad.ok && bad.error.code === 'bad-params' && /format must be 'peft', 'gguf' or 'merged'/.test(bad.error.message), JSON.stringify(bad));
  } finally {
    await service.dispose();
    await rm(dir, { recursive: true, force: true });
  }
});
