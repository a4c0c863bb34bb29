// Finds and kills every process a virtual phone started, detached ones included (`setsid nohup x &` leaves the
// shell's process group): each shell gets a marker variable that its descendants inherit. Not a process manager.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

/** Environment variable whose value is the sandbox folder; set on every shell the phone spawns. */
export const SANDBOX_MARKER_ENV = 'CONFIDANT_VIRTUAL_PHONE_SANDBOX';

function markerEntry(sandboxDir: string): Buffer {
  return Buffer.from(`${SANDBOX_MARKER_ENV}=${sandboxDir}\0`);
}

function hasMarker(pid: number, marker: Buffer): boolean {
  try {
    const env = readFileSync(`/proc/${pid}/environ`);
    return env.indexOf(marker) === 0 || env.indexOf(Buffer.concat([Buffer.from('\0'), marker])) >= 0;
  } catch {
    return false;
  }
}

function pidFilePids(dir: string, depth = 0): number[] {
  if (depth > 8) return [];
  const out: number[] = [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of names) {
    const p = join(dir, name);
    if (name.endsWith('.pid')) {
      try {
        const pid = Number.parseInt(readFileSync(p, 'utf8').trim(), 10);
        if (Number.isInteger(pid) && pid > 1) out.push(pid);
      } catch { /* a folder named *.pid, or unreadable: skip */ }
    } else if (name !== 'proc' && name !== 'system') {
      try {
        if (readdirSync(p)) out.push(...pidFilePids(p, depth + 1));
      } catch { /* not a folder */ }
    }
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Pids of live processes started by the phone with this sandbox. On Linux: every process carrying the marker,
 * plus pids from *.pid files that carry it too (a stale pid file may name a recycled pid of someone else's
 * process). Elsewhere /proc is missing, so the *.pid files are all we have.
 */
export function findSandboxProcesses(sandboxDir: string): number[] {
  const marker = markerEntry(sandboxDir);
  const found = new Set<number>();
  let procNames: string[] = [];
  try {
    procNames = readdirSync('/proc');
  } catch { /* not Linux */ }
  const haveProc = procNames.length > 0;
  for (const name of procNames) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid !== process.pid && hasMarker(pid, marker)) found.add(pid);
  }
  for (const pid of pidFilePids(sandboxDir)) {
    if (pid === process.pid || !alive(pid)) continue;
    if (!haveProc || hasMarker(pid, marker)) found.add(pid);
  }
  return [...found].sort((a, b) => a - b);
}

/** Resident memory of the given processes, from /proc/PID/statm (0 where unreadable). */
export function residentBytes(pids: number[]): number {
  let total = 0;
  for (const pid of pids) {
    try {
      const pages = Number(readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]);
      if (Number.isFinite(pages)) total += pages * 4096;
    } catch { /* gone */ }
  }
  return total;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** SIGTERM to every phone process (and their groups), SIGKILL after graceMs; returns the pids it found. */
export async function killSandboxProcesses(sandboxDir: string, graceMs = 1500, extraGroups: number[] = []): Promise<number[]> {
  const pids = findSandboxProcesses(sandboxDir);
  const signalAll = (signal: NodeJS.Signals) => {
    for (const pgid of extraGroups) {
      try { process.kill(-pgid, signal); } catch { /* group gone */ }
    }
    for (const pid of pids) {
      try { process.kill(pid, signal); } catch { /* gone */ }
    }
  };
  if (pids.length === 0 && extraGroups.length === 0) return pids;
  signalAll('SIGTERM');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (findSandboxProcesses(sandboxDir).length === 0 && extraGroups.every((g) => !alive(g))) return pids;
    await sleep(50);
  }
  signalAll('SIGKILL');
  for (const pid of findSandboxProcesses(sandboxDir)) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  }
  return pids;
}
