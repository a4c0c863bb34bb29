// The P-RGE perturbation stream z of kernels/include/confidant/prge.h, bit for bit, on the host: Philox4x32-10 keyed
// by (seed, step, query, parameter id), then the libm-free Box–Muller the header spells out. The agents regenerate z
// themselves; the host needs it only to check them (an independent MeZO reference in tests) and for tools that
// replay a ZO run. JS numbers are IEEE doubles with no fused multiply-add, so following the header's operation order
// gives the same doubles as the C++ build (checked against test/fixtures/prge/z-golden.json).

const PHILOX_M0 = 0xd2511f53;
const PHILOX_M1 = 0xcd9e8d57;
const PHILOX_W0 = 0x9e3779b9;
const PHILOX_W1 = 0xbb67ae85;

/** High 32 bits of the 64-bit product of two u32, exact (16-bit limbs keep every partial product below 2^53). */
function mulhi32(a: number, b: number): number {
  const aHi = a >>> 16, aLo = a & 0xffff, bHi = b >>> 16, bLo = b & 0xffff;
  const cross = ((aLo * bLo) >>> 16) + ((aHi * bLo) & 0xffff) + aLo * bHi; // < 2^33
  return (aHi * bHi + ((aHi * bLo) >>> 16) + Math.floor(cross / 65536)) >>> 0;
}

export function philox4x32_10(counter: readonly number[], key: readonly number[]): [number, number, number, number] {
  let [c0, c1, c2, c3] = counter.map((x) => x >>> 0);
  let k0 = key[0] >>> 0, k1 = key[1] >>> 0;
  for (let r = 0; r < 10; r++) {
    if (r > 0) ((k0 = (k0 + PHILOX_W0) >>> 0), (k1 = (k1 + PHILOX_W1) >>> 0));
    const h0 = mulhi32(PHILOX_M0, c0), l0 = Math.imul(PHILOX_M0, c0) >>> 0;
    const h1 = mulhi32(PHILOX_M1, c2), l1 = Math.imul(PHILOX_M1, c2) >>> 0;
    [c0, c1, c2, c3] = [(h1 ^ c1 ^ k0) >>> 0, l1, (h0 ^ c3 ^ k1) >>> 0, l0];
  }
  return [c0, c1, c2, c3];
}

const SQRT2 = 1.4142135623730951; // 0x1.6a09e667f3bcdp+0
const LN2 = 0.6931471805599453; // 0x1.62e42fefa39efp-1
const PI_2M32 = Math.PI * 2 ** -32; // exact: a power-of-two scaling of the double pi
const L = Array.from({ length: 12 }, (_, k) => 1 / (2 * k + 1));
const factorial = (n: number): number => (n <= 1 ? 1 : n * factorial(n - 1)); // exact in doubles up to 17!
const S = Array.from({ length: 9 }, (_, k) => (k % 2 ? -1 : 1) / factorial(2 * k + 1));
const C = Array.from({ length: 9 }, (_, k) => (k % 2 ? -1 : 1) / factorial(2 * k));

/** ln((k1 + 0.5) 2^-32) by the header's atanh series. */
function lnU32(k1: number): number {
  const v = 2 * k1 + 1;
  let e = Math.floor(Math.log2(v)); // v < 2^33 is exact; correct the rare log2 rounding below
  while (2 ** e > v) e--;
  while (2 ** (e + 1) <= v) e++;
  let m = v * 2 ** -e;
  if (m > SQRT2) ((m = m * 0.5), (e = e + 1));
  const s = (m - 1) / (m + 1);
  const s2 = s * s;
  let p = L[11];
  for (let k = 10; k >= 0; k--) p = p * s2 + L[k];
  const t = s * p;
  return (e - 33) * LN2 + (t + t);
}

/** (cos, sin) of 2 pi (k2 + 0.5) 2^-32 by quadrant reduction and Taylor polynomials, as in the header. */
function sincosU32(k2: number): [number, number] {
  const w = 2 * k2 + 1;
  let q = Math.floor(w / 2 ** 31);
  let j = w % 2 ** 31;
  if (j > 2 ** 30) ((j -= 2 ** 31), (q = (q + 1) & 3));
  const a = j * PI_2M32;
  const a2 = a * a;
  let ps = S[8], pc = C[8];
  for (let k = 7; k >= 0; k--) ((ps = ps * a2 + S[k]), (pc = pc * a2 + C[k]));
  const sa = a * ps, ca = pc;
  return ([[ca, sa], [-sa, ca], [-ca, -sa], [sa, -ca]] as const)[q] as [number, number];
}

/** Box–Muller pair in double, before the rounding to f32. */
export function normalPair(k1: number, k2: number): [number, number] {
  const r = Math.sqrt(-2 * lnU32(k1));
  const [c, s] = sincosU32(k2);
  return [r * c, r * s];
}

/** Elements [0, n) of the f32 stream of (seed, step, query, paramId); seed below 2^53 as on the wire. */
export function zStream(n: number, seed: number, step: number, query: number, paramId: number): Float32Array {
  const key = [seed % 2 ** 32, Math.floor(seed / 2 ** 32)];
  const out = new Float32Array(n);
  for (let b = 0; 4 * b < n; b++) {
    const x = philox4x32_10([b, paramId, query, step], key);
    for (let p = 0; p < 2; p++) {
      const [z0, z1] = normalPair(x[2 * p], x[2 * p + 1]);
      if (4 * b + 2 * p < n) out[4 * b + 2 * p] = z0;
      if (4 * b + 2 * p + 1 < n) out[4 * b + 2 * p + 1] = z1;
    }
  }
  return out;
}

/** docs/protocol.md: the parameter id of the B of global layer l, module m (target_mask bit order), is 7·l + m. */
export function zoParamId(layer: number, moduleBit: number): number {
  return 7 * layer + moduleBit;
}
