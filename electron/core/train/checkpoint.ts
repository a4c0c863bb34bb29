// Checkpoints of a backprop run, runs/<id>/checkpoints/step-N/: every stage's LoRA tensors with their AdamW moments
// (lora.bin) and everything else a resumed run needs to continue exactly (state.json: step, data cursor, RNG seed,
// LR schedule position, plan, losses so far, the settings that shape the numbers). The 'latest' file names the
// newest complete one. Written atomically: a folder is filled under a temporary name and renamed into place, and
// only then is 'latest' replaced (itself atomically), so a crash at any point leaves the previous checkpoint usable.
import { mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { atomicWriteFile, fsyncDir } from '../util/atomic-file.js';
import { ByteReader, ByteWriter } from '../protocol/wire.js';
import { readTensorList, writeTensorList } from '../protocol/tensor.js';
import type { NamedTensor } from '../protocol/messages.js';
import type { TrainPlan } from '../api/types.js';

export const CHECKPOINT_VERSION = 1;

/** Where the training data stands: epochs started (epochOrder(n, seed, epoch - 1) is the current order) and the next index in it. */
export interface DataCursor {
  epoch: number;
  cursor: number;
}

export interface CheckpointState {
  version: number;
  /** Optimizer steps completed; a resumed run starts at step + 1 (AdamW's bias correction uses the step count). */
  step: number;
  totalSteps: number;
  data: DataCursor;
  /** The only randomness of backprop training: the data order (and LoRA init), derived from this seed. */
  rng: { seed: number };
  /** LR schedule position: the schedule is a pure function of (settings, step), so these pin it. */
  lrSchedule: { peakLr: number; warmupSteps: number; totalSteps: number; minLrRatio: number; nextStep: number };
  plan: TrainPlan;
  /** Per-step losses 1..step, so a resumed run reports the whole curve. */
  losses: number[];
  /** Settings that shape the numbers (job.ts's ResumableSettings); a resume takes them from here. */
  settings: Record<string, unknown>;
  timeMs: number;
}

export interface Checkpoint {
  dir: string;
  state: CheckpointState;
  /** Every stage's LoRA values and AdamW moments (.adam_m/.adam_v), global names (layer indices of the whole model). */
  tensors: NamedTensor[];
}

export const checkpointsDir = (runDir: string) => join(runDir, 'checkpoints');
const LATEST = 'latest';
const TENSORS = 'lora.bin';
const STATE = 'state.json';
/** lora.bin starts with this magic, then the protocol's tensor-list encoding (docs/protocol.md). */
const MAGIC = 'CFCKPT01';

export async function writeCheckpoint(runDir: string, state: CheckpointState, tensors: NamedTensor[]): Promise<string> {
  const root = checkpointsDir(runDir);
  await mkdir(root, { recursive: true });
  const name = `step-${state.step}`;
  const tmp = join(root, `.${name}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  await mkdir(tmp);
  try {
    const w = new ByteWriter();
    for (const c of MAGIC) w.u8(c.charCodeAt(0));
    writeTensorList(w, tensors, 'checkpoint tensors');
    await atomicWriteFile(join(tmp, TENSORS), w.toBytes());
    await atomicWriteFile(join(tmp, STATE), JSON.stringify(state, null, 2) + '\n');
    const final = join(root, name);
    // The same step again (a recovery replays from an older checkpoint): the new one replaces it. The old folder is
    // moved aside first because rename cannot replace a non-empty folder.
    if (await exists(final)) {
      const aside = `${tmp}.old`;
      await rename(final, aside);
      await rename(tmp, final);
      await rm(aside, { recursive: true, force: true });
    } else {
      await rename(tmp, final);
    }
    await fsyncDir(root);
    await atomicWriteFile(join(root, LATEST), name + '\n');
    return final;
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** The newest complete checkpoint of a run folder, or null when it has none. */
export async function readLatestCheckpoint(runDir: string): Promise<Checkpoint | null> {
  const root = checkpointsDir(runDir);
  let name: string;
  try {
    name = (await readFile(join(root, LATEST), 'utf8')).trim();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  if (!/^step-\d+$/.test(name)) throw new Error(`${join(root, LATEST)} names "${name}", not a checkpoint folder (step-N)`);
  return readCheckpoint(join(root, name));
}

export async function readCheckpoint(dir: string): Promise<Checkpoint> {
  const state = JSON.parse(await readFile(join(dir, STATE), 'utf8')) as CheckpointState;
  if (state.version !== CHECKPOINT_VERSION) throw new Error(`${dir}: checkpoint version ${state.version}, this build reads ${CHECKPOINT_VERSION}`);
  const bytes = new Uint8Array(await readFile(join(dir, TENSORS)));
  const magic = String.fromCharCode(...bytes.subarray(0, MAGIC.length));
  if (magic !== MAGIC) throw new Error(`${join(dir, TENSORS)} is not a Confidant checkpoint (magic "${magic}")`);
  const r = new ByteReader(bytes.subarray(MAGIC.length));
  const tensors = readTensorList(r, 'checkpoint tensors');
  if (r.remainingBytes !== 0) throw new Error(`${join(dir, TENSORS)} has ${r.remainingBytes} trailing bytes`);
  return { dir, state, tensors };
}

/** The tensors of layers [layerStart, layerEnd): what SET_LORA of that stage takes (a re-plan cuts elsewhere). */
export function tensorsForLayers(tensors: NamedTensor[], layerStart: number, layerEnd: number): NamedTensor[] {
  return tensors.filter((t) => {
    const m = /^model\.layers\.(\d+)\./.exec(t.name);
    if (!m) throw new Error(`checkpoint tensor "${t.name}" has no layer index`);
    const layer = Number(m[1]);
    return layer >= layerStart && layer < layerEnd;
  });
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
