// Picks the next token from one row of logits: greedy (temperature 0) or sampled with temperature and nucleus
// (top-p) truncation from a seeded generator, so a seed reproduces a continuation. No model, no session.

export interface SamplingOptions {
  /** 0 = greedy (argmax; ties go to the lowest id). */
  temperature: number;
  /** Keep the smallest set of most likely tokens whose probability reaches topP (1 = all). */
  topP: number;
}

export function argmax(logits: Float32Array, offset: number, vocab: number): number {
  let best = 0;
  for (let v = 1; v < vocab; v++) if (logits[offset + v]! > logits[offset + best]!) best = v;
  return best;
}

/** The next id from logits[offset .. offset + vocab); `random` returns floats in [0, 1). */
export function pickToken(logits: Float32Array, offset: number, vocab: number, o: SamplingOptions, random: () => number): number {
  const best = argmax(logits, offset, vocab);
  if (o.temperature <= 0) return best;
  // Softmax at the temperature, in f64, shifted by the maximum so exp never overflows.
  const probs = new Float64Array(vocab);
  let total = 0;
  for (let v = 0; v < vocab; v++) total += probs[v] = Math.exp((logits[offset + v]! - logits[offset + best]!) / o.temperature);
  const ids = Array.from({ length: vocab }, (_, v) => v);
  if (o.topP >= 1) return draw(probs, ids, vocab, total, random); // no truncation: skip the O(V log V) sort
  // Most likely first; equal probabilities by id, so the order (and the draw) never depends on the sort's stability.
  const order = ids.sort((a, b) => probs[b]! - probs[a]! || a - b);
  let kept = 0;
  let mass = 0;
  while (kept < vocab && (kept === 0 || mass < o.topP * total)) mass += probs[order[kept++]!]!;
  return draw(probs, order, kept, mass, random);
}

/** One draw among order[0 .. kept), weighted by probs (which sum to `mass` there). */
function draw(probs: Float64Array, order: number[], kept: number, mass: number, random: () => number): number {
  let r = random() * mass;
  for (let i = 0; i < kept; i++) if ((r -= probs[order[i]!]!) < 0) return order[i]!;
  return order[kept - 1]!; // r landed on the rounding remainder
}
