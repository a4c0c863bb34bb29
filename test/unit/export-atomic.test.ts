// Export outputs are never replaced silently and never left half-written: for each format an existing output is
// refused without overwrite (and left as it was), replaced whole with it, and a failure in the middle of writing
// (a corrupt adapter tensor met after earlier tensors were written) leaves the old output and no temporary files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportRun, type ExportFormat } from '../../electron/core/export/export-run.js';
import { writeGgufLora } from '../../electron/core/export/gguf-lora.js';
import { writeMergedModel } from '../../electron/core/export/merged.js';
import { openRunBaseModel, readRunAdapter, type RunAdapter } from '../../electron/core/export/run-adapter.js';
import { repoRoot } from '../support/local-agent.js';
import { makeRunFolder } from '../support/export-run.js';

const MODEL_DIR = join(repoRoot(), 'models', 'stories260K');

async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'cfd-export-atomic-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** An existing output of `format` at `out`: a folder with a user's file, or a file. */
async function existing(format: ExportFormat, out: string): Promise<void> {
  if (format === 'gguf') return writeFile(out, 'user file');
  await mkdir(out);
  await writeFile(join(out, 'keep.txt'), 'user file');
}

async function stillExisting(format: ExportFormat, out: string): Promise<boolean> {
  const path = format === 'gguf' ? out : join(out, 'keep.txt');
  return (await readFile(path, 'utf8').catch(() => '')) === 'user file';
}

for (const format of ['peft', 'gguf', 'merged'] as const) {
  test(`${format} export refuses an existing output without overwrite and replaces it whole with it`, async () => {
    await withTempDir(async (dir) => {
      const run = await makeRunFolder(join(dir, 'run'), MODEL_DIR, { seed: 2 });
      const outRoot = join(dir, 'out');
      await mkdir(outRoot);
      const out = join(outRoot, format === 'gguf' ? 'adapter.gguf' : 'folder');
      await existing(format, out);
      await assert.rejects(exportRun({ runDir: run.runDir, format, out }), (err: Error) => {
        assert.equal(err.name, 'OutputExistsError');
        assert.match(err.message, format === 'gguf' ? /already exists \(a file of 9 bytes\): choose another path or allow overwriting/ : /already exists and is not empty \(keep\.txt\): choose another path or allow overwriting/);
        return true;
      });
      assert.ok(await stillExisting(format, out), 'the existing output is untouched');
      const r = await exportRun({ runDir: run.runDir, format, out, overwrite: true });
      assert.ok(!(await stillExisting(format, out)), 'replaced');
      assert.ok(r.files.length > 0 && r.files.every((f) => f.bytes > 0));
      if (format !== 'gguf') assert.deepEqual((await readdir(out)).sort(), r.files.map((f) => f.name).sort(), 'only the new files, nothing of the old folder');
      assert.deepEqual(await readdir(outRoot), [format === 'gguf' ? 'adapter.gguf' : 'folder'], 'no temporary or old copies left');
    });
  });
}

test('a failure in the middle of writing leaves the previous output and no temporary files', async () => {
  await withTempDir(async (dir) => {
    const run = await makeRunFolder(join(dir, 'run'), MODEL_DIR, { seed: 4 });
    const base = await openRunBaseModel(run.runDir);
    const good = await readRunAdapter(run.runDir, base);
    // The last module's B is cut short: everything before it is written first, then the writer meets it.
    const last = good.modules.length - 1;
    const corrupt: RunAdapter = { ...good, modules: good.modules.map((m, i) => (i === last ? { ...m, b: m.b.subarray(1), outDim: m.outDim - 1 } : m)) };
    const outRoot = join(dir, 'out');
    await mkdir(outRoot);

    const merged = join(outRoot, 'merged');
    await existing('merged', merged);
    await assert.rejects(writeMergedModel(base, corrupt, merged, { overwrite: true }), /LoRA merge: weight has \d+ values, expected/);
    assert.ok(await stillExisting('merged', merged));
    assert.deepEqual(await readdir(merged), ['keep.txt']);

    const gguf = join(outRoot, 'adapter.gguf');
    await existing('gguf', gguf);
    await assert.rejects(writeGgufLora(corrupt, base.config, gguf), /GGUF tensor blk\.4\.ffn_down\.weight\.lora_b: ne \[4, 63\] hold 252 values, data has 255/);
    assert.ok(await stillExisting('gguf', gguf));

    assert.deepEqual((await readdir(outRoot)).sort(), ['adapter.gguf', 'merged'], 'no temporary files or folders left');
  });
});

test('an adapter whose shapes do not fit the base model is refused before anything is written', async () => {
  await withTempDir(async (dir) => {
    const run = await makeRunFolder(join(dir, 'run'), MODEL_DIR, { seed: 6 });
    // The same weights under a config that says 3 layers: the adapter's layers 3 and 4 have nothing to adapt.
    const other = join(dir, 'other-model');
    await mkdir(other);
    for (const f of ['tokenizer.json', 'model.safetensors']) await writeFile(join(other, f), await readFile(join(MODEL_DIR, f)));
    const config = JSON.parse(await readFile(join(MODEL_DIR, 'config.json'), 'utf8')) as Record<string, unknown>;
    await writeFile(join(other, 'config.json'), JSON.stringify({ ...config, num_hidden_layers: 3 }));
    await assert.rejects(
      exportRun({ runDir: run.runDir, format: 'merged', out: join(dir, 'm'), modelDir: other }),
      /"model\.layers\.3\.self_attn\.q_proj\.lora_A" is for layer 3, but the base model has 3 layers/,
    );
    assert.deepEqual((await readdir(dir)).sort(), ['other-model', 'run']);
  });
});
