// Which host cores each virtual phone gets (electron/core/virtual-phone/host-cpus.ts): kernel CPU lists parsed as the
// kernel writes them, the process's own allowed cores read from /proc/self/status, and an even split that gives no
// two phones a core while there are enough, wrapping around when there are not.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { allowedHostCpus, hostCpuSets, parseCpuList } from '../../electron/core/virtual-phone/host-cpus.js';

test('kernel CPU lists parse into ids; anything else is refused', () => {
  assert.deepEqual(parseCpuList('0'), [0]);
  assert.deepEqual(parseCpuList('0-3'), [0, 1, 2, 3]);
  assert.deepEqual(parseCpuList('0-1,4,6-7\n'), [0, 1, 4, 6, 7]);
  for (const bad of ['a', '3-1', '1,,x', '-2']) assert.throws(() => parseCpuList(bad), /not a CPU list/, bad);
});

test('the allowed cores come from Cpus_allowed_list (a container may allow fewer than the machine has)', () => {
  assert.deepEqual(allowedHostCpus('Name:\tnode\nCpus_allowed:\t0c\nCpus_allowed_list:\t2-3\n'), [2, 3]);
  // No such line (not Linux): every core the OS reports.
  assert.ok(allowedHostCpus('Name:\tnode\n').length >= 1);
  // This process: the kernel's own answer, when there is one.
  let status = '';
  try {
    status = readFileSync('/proc/self/status', 'utf8');
  } catch {
    return;
  }
  const line = /^Cpus_allowed_list:\s*(\S+)/m.exec(status);
  if (line) assert.deepEqual(allowedHostCpus(), parseCpuList(line[1]!));
});

test('phones get disjoint core sets while there are enough cores, and share in turn when not', () => {
  assert.deepEqual(hostCpuSets(2, [0, 1]), [[0], [1]]);
  assert.deepEqual(hostCpuSets(2, [0, 1, 2, 3, 4]), [[0, 1], [2, 3]]);
  assert.deepEqual(hostCpuSets(1, [4, 5, 6]), [[4, 5, 6]]);
  // Three phones on two cores: one core each, the third back on the first core.
  assert.deepEqual(hostCpuSets(3, [0, 1]), [[0], [1], [0]]);
  for (let cores = 1; cores <= 9; cores++) {
    const cpus = Array.from({ length: cores }, (_, i) => 10 + i);
    for (let phones = 1; phones <= 9; phones++) {
      const sets = hostCpuSets(phones, cpus);
      assert.equal(sets.length, phones);
      const used = sets.flat();
      assert.ok(used.every((c) => cpus.includes(c)), 'only allowed cores');
      assert.ok(sets.every((s) => s.length === Math.max(1, Math.floor(cores / phones))), 'even shares');
      if (phones <= cores) assert.equal(new Set(used).size, used.length, `${phones} phones on ${cores} cores share none`);
    }
  }
  assert.throws(() => hostCpuSets(0, [0]), /whole number >= 1/);
  assert.throws(() => hostCpuSets(1, []), /no host cores/);
});
