// Small seeded PRNG (mulberry32) and helpers for deterministic splits and shuffles of training data.
// Not cryptographic; the same seed gives the same sequence on every platform (pure 32-bit integer arithmetic).

/** mulberry32: 32-bit state, period 2^32, good enough for shuffling datasets. Returns floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Mixes a seed with stream numbers (e.g. the epoch) into a new 32-bit seed (murmur3 finaliser per step). */
export function deriveSeed(seed: number, ...streams: number[]): number {
  let h = seed >>> 0;
  for (const s of [0x9e3779b9, ...streams]) {
    h = (h ^ (s >>> 0)) >>> 0;
    h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
    h = (h ^ (h >>> 16)) >>> 0;
  }
  return h;
}

/** Uniform integer in [0, n). */
export function randomInt(rng: () => number, n: number): number {
  return Math.floor(rng() * n);
}

/** Fisher-Yates shuffle in place. */
export function shuffleInPlace<T>(items: T[], rng: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = randomInt(rng, i + 1);
    const tmp = items[i]!;
    items[i] = items[j]!;
    items[j] = tmp;
  }
  return items;
}

/** A permutation of 0..count-1, a pure function of (seed, stream...). */
export function permutation(count: number, seed: number, ...streams: number[]): number[] {
  const order = Array.from({ length: count }, (_, i) => i);
  return shuffleInPlace(order, mulberry32(deriveSeed(seed, ...streams)));
}
