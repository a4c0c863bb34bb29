// Numeric comparisons shared by tests that hold two implementations' outputs against each other.
import assert from 'node:assert/strict';

/** max |a - b| / max |b|: the largest difference relative to the reference's scale (b is the reference). */
export function relMaxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, 'compared arrays differ in length');
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return diff / scale;
}
