// Which devices a pipeline uses, in which order: every ordered subset for few devices, a bounded search for many;
// each candidate split by the exact DP (stage-dp.ts) and judged by its simulated step (simulator.ts), so a slow
// phone or a stage the micro-batches cannot fill is left out with the numbers that say why. Pure; no I/O.
import type { ModelConfig } from '../model/hf-config.js';
import type { DeviceProfile, PlanSettings } from './partition.js';
import { boundaryMs, layoutStepMs, StageTable } from './stage-cost.js';
import { bottlenecksSkipping, splitOrdered, splitSkipping, type Split } from './stage-dp.js';
import { opsPerStep } from './zo-ops.js';

/** Up to this many devices every ordered subset is tried (1,956 for 6); beyond, the bounded search. */
export const MAX_EXHAUSTIVE_DEVICES = 6;

/**
 * A plan that uses more devices is kept when its predicted step is within this fraction of the fastest plan's.
 * 2%: below what the prediction can resolve (speeds are assumed until PROFILE measures them, measured layer times
 * vary by a few percent between runs, and the simulator leaves out the optimiser step and host contention), so a
 * smaller predicted gain is no reason to drop a phone the user connected, whose memory also spreads the stages
 * thinner. Identical phones tie but for the layer rounding, which this absorbs: 16 identical phones for TinyLlama's
 * 22 layers at m = 32 take 311.4 s a step on 11 of them (2 layers a stage), 313.0 s on all 16 (0.5% slower), so
 * all 16 are used. Yet it is well under a real cost: one more stage that does not shorten the slowest adds
 * 1 / (m + S - 1) to the step (5% at m = 16, S = 4), and a phone that becomes the slowest stage costs its whole
 * excess, so those phones are still left out.
 */
export const MORE_DEVICES_TOLERANCE = 0.02;

/** Bounded search: local changes from this many starts, rounds per start, and layouts simulated before it stops. */
const LOCAL_STARTS = 6;
const MAX_LOCAL_ROUNDS = 8;
const MAX_EVALUATIONS = 1000;

export interface Candidate {
  split: Split;
  stepMs: number;
}

export interface LeftOutDevice {
  serial: string;
  /** In words, with the predicted step times. */
  reason: string;
  /**
   * Predicted step of the best plan (found) that uses this device as well as every device of the chosen plan, or
   * where none fits, that uses it in place of others; null when no plan with it fits in memory.
   */
  stepMsWith: number | null;
  /** The chosen plan's predicted step. */
  stepMsWithout: number;
}

export interface DeviceChoice {
  chosen: Candidate;
  leftOut: LeftOutDevice[];
  /** How the devices and orders were searched, in words. */
  description: string;
}

/**
 * Devices with the same profile (speeds, link, budget, memory model inputs) are interchangeable: a layout's split
 * and step depend only on the sequence of their classes, so each class sequence is split and simulated once.
 */
function deviceClasses(devices: readonly DeviceProfile[]): number[] {
  const ids = new Map<string, number>();
  return devices.map((d) => {
    const key = [d.budgetBytes, d.layerForwardMs, d.layerBackwardMs, d.headForwardMs, d.headBackwardMs, d.linkBytesPerSec, d.opOverheadMs, d.agentBaseBytes, d.matmulRowBlock].join('|');
    if (!ids.has(key)) ids.set(key, ids.size);
    return ids.get(key)!;
  });
}

type Evaluated = { cuts: number[]; bottleneckMs: number; totalMs: number; stepMs: number } | null;

class Pool {
  readonly all: Candidate[] = [];
  private readonly byIds = new Map<string, Candidate>();
  private readonly byClasses = new Map<string, Evaluated>();
  constructor(private readonly c: ModelConfig, private readonly t: PlanSettings, readonly tab: StageTable, readonly classes: readonly number[]) {}

  /** Splits `order` (all of it, in that order) and simulates it; memoised; undefined when it does not fit. */
  ordered(order: readonly number[]): Candidate | undefined {
    const key = order.map((i) => this.classes[i]).join(',');
    let ev = this.byClasses.get(key);
    if (ev === undefined) {
      const split = splitOrdered(this.tab, order);
      this.byClasses.set(key, (ev = split ? this.simulated(split) : null));
    }
    return ev ? this.record(order, ev) : undefined;
  }

  /** A split found by the skipping DP (same value as splitOrdered on its devices). */
  add(split: Split): Candidate {
    const key = split.order.map((i) => this.classes[i]).join(',');
    let ev = this.byClasses.get(key);
    if (!ev) this.byClasses.set(key, (ev = this.simulated(split)));
    return this.record(split.order, ev);
  }

  private simulated(split: Split): NonNullable<Evaluated> {
    const stepMs = layoutStepMs(this.c, this.t, split.order.map((i) => this.tab.devices[i]), split.cuts);
    return { cuts: split.cuts, bottleneckMs: split.bottleneckMs, totalMs: split.totalMs, stepMs };
  }

  private record(order: readonly number[], ev: NonNullable<Evaluated>): Candidate {
    const key = order.join(',');
    let cand = this.byIds.get(key);
    if (!cand) {
      cand = { split: { order: [...order], cuts: ev.cuts, bottleneckMs: ev.bottleneckMs, totalMs: ev.totalMs }, stepMs: ev.stepMs };
      this.byIds.set(key, cand);
      this.all.push(cand);
    }
    return cand;
  }

  /** Layouts split and simulated (distinct class sequences). */
  get evaluations(): number {
    return this.byClasses.size;
  }
}

function* orderedSubsets(n: number, maxLen: number, prefix: number[] = [], used = new Array<boolean>(n).fill(false)): Generator<number[]> {
  if (prefix.length > 0) yield prefix;
  if (prefix.length === maxLen) return;
  for (let i = 0; i < n; i++) {
    if (used[i]) continue;
    used[i] = true;
    prefix.push(i);
    yield* orderedSubsets(n, maxLen, prefix, used);
    prefix.pop();
    used[i] = false;
  }
}

const layerMs = (d: DeviceProfile, t: PlanSettings) => d.layerForwardMs + (t.mode === 'zo' ? 0 : d.layerBackwardMs);

/** Heuristic orders for many devices; the skipping DP then picks the best subset of each for every stage count. */
function heuristicOrders(devices: readonly DeviceProfile[], t: PlanSettings): Array<[string, number[]]> {
  const idx = devices.map((_, i) => i);
  const slowFirst = [...idx].sort((x, y) => layerMs(devices[y], t) - layerMs(devices[x], t));
  const bigFirst = [...idx].sort((x, y) => devices[y].budgetBytes - devices[x].budgetBytes || layerMs(devices[x], t) - layerMs(devices[y], t));
  const fastest = slowFirst[slowFirst.length - 1];
  return [
    // The last stage also runs the LM head: the fastest phone there.
    ['slowest first', slowFirst],
    ['fastest first', [...slowFirst].reverse()],
    // The first stage keeps the most micro-batches' activations (1F1B) and the embedding: most memory first.
    ['most memory first', bigFirst],
    ['most memory first, fastest last', [...bigFirst.filter((i) => i !== fastest), fastest]],
    // The last stage holds the LM head's weights and logits too: most memory at both ends, the least in between.
    ['most memory at both ends', [...bigFirst.filter((_, j) => j % 2 === 0), ...bigFirst.filter((_, j) => j % 2 === 1).reverse()]],
  ];
}

/** Orders one local change away: swap two stages, replace a device by an unused one, add one, drop one, move one. */
function* neighbours(order: readonly number[], classes: readonly number[], L: number): Generator<number[]> {
  const k = order.length;
  for (let p = 0; p < k; p++) for (let q = p + 1; q < k; q++) {
    if (classes[order[p]] === classes[order[q]]) continue;
    const o = [...order];
    [o[p], o[q]] = [o[q], o[p]];
    yield o;
  }
  for (const u of unusedByClass(order, classes)) {
    for (let p = 0; p < k; p++) if (classes[order[p]] !== classes[u]) yield [...order.slice(0, p), u, ...order.slice(p + 1)];
    if (k < L) for (let p = 0; p <= k; p++) yield [...order.slice(0, p), u, ...order.slice(p)];
  }
  if (k > 1) for (let p = 0; p < k; p++) yield [...order.slice(0, p), ...order.slice(p + 1)];
  // Moves to or from either end, where the order matters most (embedding and most activations first, head last).
  for (let p = 0; p < k; p++) for (const q of [0, k - 1]) {
    if (Math.abs(p - q) < 2) continue;
    const there = [...order.slice(0, p), ...order.slice(p + 1)];
    there.splice(q, 0, order[p]);
    yield there;
    const back = [...order.slice(0, q), ...order.slice(q + 1)];
    back.splice(p, 0, order[q]);
    yield back;
  }
}

/** One unused device of each class (interchangeable ones would give the same layouts). */
function unusedByClass(order: readonly number[], classes: readonly number[]): number[] {
  const seen = new Set<number>();
  const out: number[] = [];
  classes.forEach((k, i) => {
    if (order.includes(i) || seen.has(k)) return;
    seen.add(k);
    out.push(i);
  });
  return out;
}

const includesAll = (big: readonly number[], small: readonly number[]) => small.every((i) => big.includes(i));

/**
 * The fastest candidate, then the candidate with the most devices among those that use all of its devices and
 * are predicted within MORE_DEVICES_TOLERANCE of it. Ties keep the earlier candidate (enumeration order).
 */
export function chooseCandidate(all: readonly Candidate[]): { fastest: Candidate; chosen: Candidate } {
  let fastest = all[0];
  for (const cand of all) if (cand.stepMs < fastest.stepMs) fastest = cand;
  let chosen = fastest;
  for (const cand of all) {
    if (cand.stepMs > fastest.stepMs * (1 + MORE_DEVICES_TOLERANCE) || !includesAll(cand.split.order, fastest.split.order)) continue;
    const more = cand.split.order.length - chosen.split.order.length;
    if (more > 0 || (more === 0 && cand.stepMs < chosen.stepMs)) chosen = cand;
  }
  return { fastest, chosen };
}

const fmtMs = (ms: number) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`);
const gib = (x: number) => `${(x / 2 ** 30).toFixed(2)} GiB`;

/**
 * Why each unused device is unused, with numbers against the chosen plan. The question a user asks is "why not this
 * one as well?", so the first answer is the best plan that uses it together with every phone of the chosen plan
 * (always slower: within MORE_DEVICES_TOLERANCE of the fastest it would have been chosen). Where no such plan fits
 * (memory, or no layer left to give), the best plan that uses it in place of others.
 */
function leftOutReasons(tab: StageTable, all: readonly Candidate[], chosen: Candidate, exhaustive: boolean): LeftOutDevice[] {
  const out: LeftOutDevice[] = [];
  const L = tab.L;
  const k = chosen.split.order.length;
  const found = exhaustive ? '' : ' found';
  tab.devices.forEach((d, i) => {
    if (chosen.split.order.includes(i)) return;
    let added: Candidate | undefined;
    let withIt: Candidate | undefined;
    for (const cand of all) {
      const o = cand.split.order;
      if (!o.includes(i)) continue;
      if (!withIt || cand.stepMs < withIt.stepMs) withIt = cand;
      if (includesAll(o, chosen.split.order) && (!added || cand.stepMs < added.stepMs)) added = cand;
    }
    const pct = (x: number, y: number) => `${((x / y - 1) * 100).toFixed(1)}%`;
    if (added) {
      out.push({
        serial: d.serial, stepMsWith: added.stepMs, stepMsWithout: chosen.stepMs,
        reason: `${d.serial} is left out: it would slow the pipeline (using it as well is predicted at ${fmtMs(added.stepMs)} per step, ` +
          `${pct(added.stepMs, chosen.stepMs)} slower than ${fmtMs(chosen.stepMs)} without it)`,
      });
      return;
    }
    if (withIt) {
      const why = k >= L
        ? `the model's ${L} layers already take one phone each (a stage holds at least one layer)`
        : `no plan${found} that adds it to these ${k} phones fits every phone's memory budget`;
      const slower = withIt.stepMs > chosen.stepMs * (1 + 1e-9) ? `${pct(withIt.stepMs, chosen.stepMs)} slower than` : 'no faster than';
      out.push({
        serial: d.serial, stepMsWith: withIt.stepMs, stepMsWithout: chosen.stepMs,
        reason: `${d.serial} is left out: ${why}; using it in place of another is predicted at ${fmtMs(withIt.stepMs)} per step, ${slower} ${fmtMs(chosen.stepMs)}`,
      });
      return;
    }
    // The least a stage on it could need: one layer, as the last stage or else with one stage behind it.
    let leastBytes = Infinity;
    for (let a = 0; a < L; a++) leastBytes = Math.min(leastBytes, tab.bytesOf(i, a, a + 1, a + 1 === L ? 0 : 1));
    const why = leastBytes > d.budgetBytes
      ? `its ${gib(d.budgetBytes)} budget holds no stage (one layer needs at least ${gib(leastBytes)})`
      : `no plan${found} that uses it fits every phone's memory budget`;
    out.push({ serial: d.serial, stepMsWith: null, stepMsWithout: chosen.stepMs, reason: `${d.serial} is left out: ${why}` });
  });
  return out;
}

/**
 * Chooses devices, order and split: exhaustive over every ordered subset for up to MAX_EXHAUSTIVE_DEVICES devices;
 * beyond, the skipping DP on a few heuristic orders (every subset of each, every stage count), then local changes
 * from the best until none helps. Undefined when nothing fits in memory.
 */
export function chooseDevices(c: ModelConfig, devices: readonly DeviceProfile[], t: PlanSettings, opts: { exhaustiveUpTo?: number } = {}): DeviceChoice | undefined {
  const n = devices.length;
  const L = c.numLayers;
  const tab = new StageTable(c, devices, t);
  const classes = deviceClasses(devices);
  const pool = new Pool(c, t, tab, classes);
  const exhaustive = n <= (opts.exhaustiveUpTo ?? MAX_EXHAUSTIVE_DEVICES);
  let description: string;
  if (exhaustive) {
    for (const order of orderedSubsets(n, Math.min(n, L))) pool.ordered(order);
    description = `every order of every subset of the ${n} devices (${pool.evaluations} layouts simulated)`;
  } else {
    const orders = heuristicOrders(devices, t);
    const caps = orders.map(([, order]) => bottlenecksSkipping(tab, order));
    // The second pass (the costly one) only where it can matter: per stage count, the orders within 5% of its least
    // bottleneck, stage counts by the uniform-pipeline estimate (m + k - 1) x bottleneck, and none once the
    // bottleneck stage's own m micro-batches (its transfers aside, which overlap) outlast the best step found.
    const m = opsPerStep(t);
    const maxTransferMs = Math.max(...devices.map((d) => 2 * boundaryMs(c, t, d) * (t.mode === 'zo' ? 1 : 2)));
    const least = Array.from({ length: Math.min(n, L) }, (_, k) => Math.min(...caps.map((cs) => cs[k])));
    const counts = least.map((_, k) => k).filter((k) => least[k] < Infinity).sort((x, y) => (m + x) * least[x] - (m + y) * least[y]);
    for (const k of counts) {
      const best = pool.all.length ? chooseCandidate(pool.all).fastest.stepMs : Infinity;
      if (m * (least[k] - maxTransferMs) >= best * (1 + MORE_DEVICES_TOLERANCE)) continue;
      orders.forEach(([, order], o) => {
        const split = caps[o][k] <= least[k] * 1.05 ? splitSkipping(tab, order, k + 1, caps[o][k]) : undefined;
        if (split) pool.add(split);
      });
    }
    if (pool.all.length === 0) return undefined;
    const first = pool.evaluations;
    // Local changes from the few best plans so far, best first: one start can sit in a local optimum that takes
    // two changes at once to leave (drop a phone and reorder the rest for memory).
    const starts = [...pool.all].sort((x, y) => x.stepMs - y.stepMs).slice(0, LOCAL_STARTS);
    for (const s0 of starts) {
      let best = s0;
      for (let round = 0; round < MAX_LOCAL_ROUNDS && pool.evaluations < MAX_EVALUATIONS; round++) {
        let next = best;
        for (const order of neighbours(best.split.order, classes, L)) {
          const cand = pool.ordered(order);
          if (cand && cand.stepMs < next.stepMs) next = cand;
          if (pool.evaluations >= MAX_EVALUATIONS) break;
        }
        if (next === best) break;
        best = next;
      }
    }
    // Plans with more devices within the tolerance: add unused devices to the fastest one while it stays within.
    const fastest = chooseCandidate(pool.all).fastest;
    for (let grown = fastest; grown.split.order.length < Math.min(n, L);) {
      let next: Candidate | undefined;
      for (const u of unusedByClass(grown.split.order, classes)) {
        for (let p = 0; p <= grown.split.order.length; p++) {
          const cand = pool.ordered([...grown.split.order.slice(0, p), u, ...grown.split.order.slice(p)]);
          if (cand && (!next || cand.stepMs < next.stepMs)) next = cand;
        }
      }
      if (!next || next.stepMs > fastest.stepMs * (1 + MORE_DEVICES_TOLERANCE)) break;
      grown = next;
    }
    description = `${orders.map(([name]) => `"${name}"`).join(', ')} orders with any subset (${first} layouts simulated), ` +
      `then local changes (${pool.evaluations - first} more)`;
  }
  if (pool.all.length === 0) return undefined;
  let { chosen } = chooseCandidate(pool.all);
  // The numbers for each left-out device (leftOutReasons): the chosen plan with it added at every position, or where
  // that never fits, swapped in for each device. Those layouts are new candidates too: should one change the choice,
  // the new choice gets its own (a few rounds at most; the choice is always made on every layout simulated).
  for (let round = 0; !exhaustive && round < 3; round++) {
    const order = chosen.split.order;
    for (let u = 0; u < n; u++) {
      if (order.includes(u)) continue;
      let fits = false;
      if (order.length < L) for (let p = 0; p <= order.length; p++) fits = pool.ordered([...order.slice(0, p), u, ...order.slice(p)]) !== undefined || fits;
      if (!fits) for (let p = 0; p < order.length; p++) pool.ordered([...order.slice(0, p), u, ...order.slice(p + 1)]);
    }
    const again = chooseCandidate(pool.all).chosen;
    if (again === chosen) break;
    chosen = again;
  }
  return { chosen, leftOut: leftOutReasons(tab, pool.all, chosen, exhaustive), description };
}

/** Whether any subset, order and split fits in memory (speed ignored): the DP's first pass only. */
export function anyFits(c: ModelConfig, devices: readonly DeviceProfile[], t: PlanSettings): boolean {
  const tab = new StageTable(c, devices, t);
  if (devices.length <= MAX_EXHAUSTIVE_DEVICES) {
    for (const order of orderedSubsets(devices.length, Math.min(devices.length, c.numLayers))) if (splitOrdered(tab, order)) return true;
    return false;
  }
  return heuristicOrders(devices, t).some(([, order]) => bottlenecksSkipping(tab, order).some((cap) => cap < Infinity));
}
