#!/usr/bin/env node
// Runs every test tier after `npm run build`: the native C++ tests (ctest), the same native tests cross-built for
// arm64 and run under qemu-user (build/native-arm64, see scripts/build-arm64.sh), a bounded libFuzzer run on the
// agent's parser (scripts/fuzz.sh, into build/fuzz), then the TypeScript tests with
// node's test runner (compiled to build/test). Pass file-name filters to run a subset: node scripts/test.mjs adb
// The arm64 tier needs aarch64-linux-gnu-g++ and qemu-aarch64-static, the fuzz tier (scripts/fuzz.sh) clang: without
// them each is a loud SKIP locally and a failure when CI=true.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
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

function onPath(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

function arm64Tier() {
  const ci = process.env.CI === 'true';
  const missing = [];
  if (!onPath('aarch64-linux-gnu-g++')) missing.push('aarch64-linux-gnu-g++ (apt-get install g++-aarch64-linux-gnu)');
  if (!onPath('qemu-aarch64-static') && !onPath('qemu-aarch64')) missing.push('qemu-aarch64-static (apt-get install qemu-user-static)');
  if (missing.length === 0 && !existsSync('build/native-arm64/CTestTestfile.cmake')) {
    missing.push('the arm64 build (build/native-arm64: run npm run build or bash scripts/build-arm64.sh)');
  }
  if (missing.length > 0) {
    const why = `arm64 native tests (qemu): missing ${missing.join('; ')}`;
    if (ci) {
      console.error(`FAILED: ${why}; CI=true requires them (scripts/setup.sh installs the tools)`);
      process.exit(1);
    }
    const bar = '#'.repeat(100);
    console.error(`${bar}\n## SKIP ${why}\n## Run scripts/setup.sh to get them; on CI (CI=true) this is a failure.\n${bar}`);
    return;
  }
  const t0 = Date.now();
  console.log('arm64 native tests: ctest --test-dir build/native-arm64 (under qemu-aarch64-static)');
  run('ctest', ['--test-dir', 'build/native-arm64', '--output-on-failure', '-j', '2']);
  console.log(`arm64 native tests: passed in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

// libFuzzer on the agent's frame reader, payload decoders and request dispatch (scripts/fuzz.sh: clang + ASan +
// UBSan, about 80 s). Needs clang; fuzz.sh itself also refuses (CI) or skips (locally) without libFuzzer's runtime.
function fuzzTier() {
  if (!onPath('clang++')) {
    const why = 'agent fuzz tier: missing clang++ (apt-get install clang libclang-rt-dev)';
    if (process.env.CI === 'true') {
      console.error(`FAILED: ${why}; CI=true requires it (scripts/setup.sh installs it)`);
      process.exit(1);
    }
    const bar = '#'.repeat(100);
    console.error(`${bar}\n## *** SKIPPING ${why}\n## Run scripts/setup.sh to get it; on CI (CI=true) this is a failure.\n${bar}`);
    return;
  }
  const t0 = Date.now();
  run('bash', ['scripts/fuzz.sh']);
  console.log(`agent fuzz tier: passed in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

if (filters.length === 0) {
  run('ctest', ['--test-dir', 'build/native', '--output-on-failure', '-j', '2']);
  arm64Tier();
  fuzzTier();
}

const files = findTests('build/test').filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)));
// Integration tests share one adb server and spawn agents: run files one at a time.
run(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=spec', ...files]);
