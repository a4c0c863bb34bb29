#!/usr/bin/env node
// Runs every test tier after `npm run build`: the native C++ tests (ctest), then the TypeScript tests with
// node's test runner (compiled to build/test). Pass file-name filters to run a subset: node scripts/test.mjs adb
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const filters = process.argv.slice(2);

function run(cmd, args) {
  const r = spawnSync(cmd, args, { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

function findTests(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...findTests(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out.sort();
}

if (filters.length === 0) run('ctest', ['--test-dir', 'build/native', '--output-on-failure', '-j', '2']);

const files = findTests('build/test').filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)));
// Integration tests share one adb server and spawn agents: run files one at a time.
run(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=spec', ...files]);
