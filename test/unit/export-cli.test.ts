// `confidant export` as a user runs it (bin/confidant.js in a child process) on a hand-made run folder: each format
// writes its output and lists the files, an existing output is refused (exit 1) until --overwrite, usage mistakes
// exit 2, and a moved base model is named with the --model fix. The outputs' contents are checked by the other
// export tests; here the command's contract.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../support/local-agent.js';
import { makeRunFolder } from '../support/export-run.js';

const ROOT = repoRoot();
const MODEL_DIR = join(ROOT, 'models', 'stories260K');

function confidant(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'confidant.js'), 'export', ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('confidant export writes peft, gguf and merged outputs from a run folder', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cfd-export-cli-'));
  try {
    const run = await makeRunFolder(join(dir, 'run'), MODEL_DIR, { seed: 11 });
    const outs = { peft: join(dir, 'peft'), gguf: join(dir, 'adapter.gguf'), merged: join(dir, 'merged') };

    const peft = confidant('--run', run.runDir, '--format', 'peft', '--out', outs.peft);
    assert.equal(peft.status, 0, peft.stderr);
    assert.match(peft.stdout, /PEFT adapter written to .*peft\n {2}adapter_config\.json\s+[\d.]+ MiB\n {2}adapter_model\.safetensors/);
    assert.ok((await readFile(join(outs.peft, 'adapter_model.safetensors'))).equals(await readFile(join(run.runDir, 'adapter', 'adapter_model.safetensors'))));

    const gguf = confidant('--run', run.runDir, '--format', 'gguf', '--out', outs.gguf, '--json');
    assert.equal(gguf.status, 0, gguf.stderr);
    const g = JSON.parse(gguf.stdout) as { format: string; out: string; files: { name: string; bytes: number }[] };
    assert.equal(g.format, 'gguf');
    assert.equal(g.out, outs.gguf);
    const bytes = await readFile(outs.gguf);
    assert.equal(bytes.toString('latin1', 0, 4), 'GGUF');
    assert.deepEqual(g.files, [{ name: 'adapter.gguf', bytes: bytes.length }]);

    const merged = confidant('--run', run.runDir, '--format', 'merged', '--out', outs.merged);
    assert.equal(merged.status, 0, merged.stderr);
    assert.match(merged.stdout, /merged model written to .*merged\n/);
    assert.ok((await readdir(outs.merged)).includes('model.safetensors'));

    // Existing outputs: refused without --overwrite, replaced with it.
    for (const [format, out] of Object.entries(outs)) {
      const again = confidant('--run', run.runDir, '--format', format, '--out', out);
      assert.equal(again.status, 1, `${format}: ${again.stdout}`);
      assert.match(again.stderr, /already exists .*allow overwriting/);
      const over = confidant('--run', run.runDir, '--format', format, '--out', out, '--overwrite');
      assert.equal(over.status, 0, over.stderr);
    }
    assert.deepEqual((await readdir(dir)).sort(), ['adapter.gguf', 'merged', 'peft', 'run'], 'no temporary files left');

    // Usage mistakes exit 2; a moved base model says how to fix it, and --model fixes it.
    assert.equal(confidant('--run', run.runDir, '--format', 'onnx', '--out', join(dir, 'x')).status, 2);
    assert.equal(confidant('--run', run.runDir, '--format', 'merged', '--out', join(dir, 'x'), '--dtype', 'f16').status, 2);
    assert.equal(confidant('--run', run.runDir).status, 2);
    await writeFile(join(run.runDir, 'run.json'), JSON.stringify({ model: { dir: join(dir, 'moved-away') } }));
    const moved = confidant('--run', run.runDir, '--format', 'gguf', '--out', join(dir, 'b.gguf'));
    assert.equal(moved.status, 1);
    assert.match(moved.stderr, /moved-away \(run\.json model\.dir\) is missing or moved: pass its new path with --model PATH/);
    const fixed = confidant('--run', run.runDir, '--format', 'gguf', '--out', join(dir, 'b.gguf'), '--model', MODEL_DIR, '--dtype', 'f16');
    assert.equal(fixed.status, 0, fixed.stderr);
    assert.match(fixed.stdout, /GGUF LoRA adapter written to .*b\.gguf/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
