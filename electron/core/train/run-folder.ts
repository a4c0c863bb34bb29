// One training run's folder, runs/<id>/: run.json (summary, rewritten atomically), events.jsonl (append-only, one
// event per line), eval-set.jsonl (the exact held-out samples evaluated) and the exported adapter.
import { mkdir, appendFile, readFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { atomicWriteFile } from '../util/atomic-file.js';
import type { TrainEvent } from '../api/types.js';

export interface EvalSample {
  tokens: number[];
  targets: number[];
  mask: number[];
}

export class RunFolder {
  private constructor(readonly runId: string, readonly dir: string) {}

  static async create(runsDir: string, now = new Date()): Promise<RunFolder> {
    // Sortable by time, unique across parallel runs.
    const runId = `${now.toISOString().replace(/[:.]/g, '-')}-${randomBytes(3).toString('hex')}`;
    const dir = join(runsDir, runId);
    await mkdir(dir, { recursive: true });
    return new RunFolder(runId, dir);
  }

  /** An existing run folder (resume): its events and run.json are continued, not replaced. */
  static async open(dir: string): Promise<RunFolder> {
    const abs = resolve(dir);
    await readFile(join(abs, 'run.json'), 'utf8').catch((e: NodeJS.ErrnoException) => {
      throw new Error(`${abs} is not a run folder (no readable run.json: ${e.code ?? e.message})`);
    });
    return new RunFolder(basename(abs), abs);
  }

  async readRunJson(): Promise<Record<string, unknown>> {
    return JSON.parse(await readFile(join(this.dir, 'run.json'), 'utf8')) as Record<string, unknown>;
  }

  async appendEvent(e: TrainEvent): Promise<void> {
    await appendFile(join(this.dir, 'events.jsonl'), JSON.stringify(e) + '\n');
  }

  async writeRunJson(summary: unknown): Promise<void> {
    await atomicWriteFile(join(this.dir, 'run.json'), JSON.stringify(summary, null, 2) + '\n');
  }

  /** One JSON object per line: token ids, next-token targets and loss mask, as fed to the model. */
  async writeEvalSet(samples: EvalSample[]): Promise<void> {
    await atomicWriteFile(this.evalSetPath, samples.map((s) => JSON.stringify(s)).join('\n') + '\n');
  }

  get evalSetPath(): string {
    return join(this.dir, 'eval-set.jsonl');
  }

  get adapterDir(): string {
    return join(this.dir, 'adapter');
  }
}
