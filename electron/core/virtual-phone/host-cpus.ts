// Which of this workstation's cores each virtual phone runs on. A phone has its own cores: two phones never slow
// each other down, and what an agent measures alone (PROFILE) is what it gets while the others train. Virtual
// phones on one workstation share its cores, so the manager gives each phone its own set of host cores (taskset),
// and the agent, which sizes its thread pool by its CPU affinity, runs as many threads as its phone has cores.
// With more phones than cores the sets wrap around and phones share cores again (said in the log).
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

/** Parses a kernel CPU list such as "0-3,8,10-11" into ids. */
export function parseCpuList(text: string): number[] {
  const out: number[] = [];
  for (const part of text.trim().split(',')) {
    if (part === '') continue;
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) throw new Error(`not a CPU list: "${text}"`);
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo) throw new Error(`not a CPU list: "${text}"`);
    for (let c = lo; c <= hi; c++) out.push(c);
  }
  return out;
}

/** The cores this process may run on (its cpuset: a container may allow fewer than the machine has). */
export function allowedHostCpus(statusText?: string): number[] {
  let text = statusText;
  if (text === undefined) {
    try {
      text = readFileSync('/proc/self/status', 'utf8');
    } catch {
      text = '';
    }
  }
  const m = /^Cpus_allowed_list:\s*(\S+)/m.exec(text);
  const cpus = m ? parseCpuList(m[1]!) : [];
  return cpus.length > 0 ? cpus : Array.from({ length: availableParallelism() }, (_, i) => i);
}

/**
 * Host core sets for `total` phones, in order: each gets floor(cores / total) cores (at least 1), contiguous, so
 * no two phones share a core while there are enough; beyond that the sets wrap around the cores.
 */
export function hostCpuSets(total: number, cpus: readonly number[]): number[][] {
  if (!(Number.isInteger(total) && total >= 1)) throw new Error(`phone count must be a whole number >= 1, got ${total}`);
  if (cpus.length === 0) throw new Error('no host cores to place virtual phones on');
  const per = Math.max(1, Math.floor(cpus.length / total));
  return Array.from({ length: total }, (_, p) => Array.from({ length: per }, (_, k) => cpus[(p * per + k) % cpus.length]!));
}

/** `taskset -c LIST` as a command prefix where the platform can pin (Linux with util-linux), else null. */
export function pinPrefix(cpus: readonly number[]): string[] | null {
  if (process.platform !== 'linux' || !tasksetAvailable()) return null;
  return ['taskset', '-c', cpus.join(',')];
}

let tasksetFound: boolean | undefined;
function tasksetAvailable(): boolean {
  tasksetFound ??= spawnSync('taskset', ['--version'], { stdio: 'ignore' }).status === 0;
  return tasksetFound;
}
