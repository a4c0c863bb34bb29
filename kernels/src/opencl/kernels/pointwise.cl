// Element-wise ops: SwiGLU, residual add, and RoPE. One work-item per element (per rotated pair for RoPE).

inline float sigmoid(float g) { return 1.0f / (1.0f + exp(-g)); }  // exp overflow gives 0, as wanted

// h = silu(g) * u
__kernel void swiglu_fwd(__global float* h, __global const float* g, __global const float* u, ulong n) {
  const size_t i = get_global_id(0);
  if (i >= n) return;
  h[i] = g[i] * sigmoid(g[i]) * u[i];
}

// dg += dh * u * s * (1 + g * (1 - s)), du += dh * g * s, s = sigmoid(g)
__kernel void swiglu_bwd(__global float* dg, __global float* du, __global const float* dh, __global const float* g,
                         __global const float* u, ulong n) {
  const size_t i = get_global_id(0);
  if (i >= n) return;
  const float s = sigmoid(g[i]);
  dg[i] += dh[i] * u[i] * s * (1.0f + g[i] * (1.0f - s));
  du[i] += dh[i] * g[i] * s;
}

// out = a + b (in place allowed)
__kernel void residual_fwd(__global float* out, __global const float* a, __global const float* b, ulong n) {
  const size_t i = get_global_id(0);
  if (i < n) out[i] = a[i] + b[i];
}

// y += x (residual_backward, once per gradient)
__kernel void add_into(__global float* y, __global const float* x, ulong n) {
  const size_t i = get_global_id(0);
  if (i < n) y[i] += x[i];
}

// Rotate-half RoPE on (B,T,NH,HD): pair (i, i + HD/2) of every head rotated by the angle of position pos0 + t.
// cs (T, HD/2, 2) holds cos and sin, computed on the host in double (angles reach thousands of radians, where
// fp32 argument reduction on a GPU loses digits). sign = -1 with accumulate = 1 is the backward (din += R^T dout).
// One work-item per pair; it reads both halves before writing, so out == in works.
__kernel void rope_apply(__global float* out, __global const float* in, __global const float* cs, int T, int NH,
                         int HD, float sign, int accumulate, ulong pairs) {
  const size_t id = get_global_id(0);
  if (id >= pairs) return;
  const int half_hd = HD / 2;
  const int i = id % half_hd;
  const size_t head = id / half_hd;  // (b, t, h) flattened
  const int t = (head / NH) % T;
  const size_t base = head * HD;
  const float cosv = cs[((size_t)t * half_hd + i) * 2], sinv = sign * cs[((size_t)t * half_hd + i) * 2 + 1];
  const float x1 = in[base + i], x2 = in[base + i + half_hd];
  const float y1 = x1 * cosv - x2 * sinv, y2 = x2 * cosv + x1 * sinv;
  if (accumulate) {
    out[base + i] += y1;
    out[base + i + half_hd] += y2;
  } else {
    out[base + i] = y1;
    out[base + i + half_hd] = y2;
  }
}
