// IEEE 754 binary16 <-> binary32 conversion: f16 tensors on the wire (activation relay) and f16 weights on disk.
// Not a numeric library: scalars and whole arrays only, f32 -> f16 rounds to nearest, ties to even.

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** f16 bit pattern (u16) of `value` after rounding it to f32 and then to f16 (nearest, ties to even). */
export function f32ToF16Bits(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp32 = (x >>> 23) & 0xff;
  const mant32 = x & 0x7fffff;
  if (exp32 === 0xff) return sign | 0x7c00 | (mant32 !== 0 ? 0x200 | (mant32 >>> 13) : 0); // inf, NaN (quiet)
  const exp16 = exp32 - 127 + 15;
  if (exp16 >= 0x1f) return sign | 0x7c00; // overflow rounds to infinity
  if (exp16 <= 0) {
    // f16 subnormal: value = m * 2^-24, so drop (14 - exp16) bits of the 24-bit significand.
    if (exp16 < -10) return sign; // below half the smallest subnormal: rounds to (signed) zero
    const significand = mant32 | 0x800000;
    const shift = 14 - exp16;
    let m = significand >>> shift;
    const rest = significand & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rest > halfway || (rest === halfway && (m & 1) === 1)) m += 1; // may carry into the smallest normal
    return sign | m;
  }
  let h = (exp16 << 10) | (mant32 >>> 13);
  const rest = mant32 & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1) === 1)) h += 1; // a carry may step up to infinity: correct
  return sign | h;
}

/** The value an f16 bit pattern holds (exact in f32 and f64). */
export function f16BitsToF32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant !== 0 ? NaN : sign * Infinity;
  return sign * (1024 + mant) * 2 ** (exp - 25);
}

export function f32ArrayToF16(src: Float32Array): Uint16Array {
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32ToF16Bits(src[i]!);
  return out;
}

export function f16ArrayToF32(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f16BitsToF32(src[i]!);
  return out;
}
