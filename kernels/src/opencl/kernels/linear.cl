// Matmuls on packed weights: out = x @ W^T (linear_fwd_*), dx = dout @ W (linear_bwd_*) for W in F32, F16, Q4_0
// and FP4 (weights.h), and out = P^T @ Q (matmul_tn, the LoRA weight gradients). Each 16x16 work-group computes a
// 64x64 output tile, 4x4 per work-item, with the operands staged in local memory 32 reduction steps at a time.
// Weights are decoded from the packed bytes while a tile is loaded; no dequantised copy of W exists.

#define WF_F32 0
#define WF_F16 1
#define WF_Q4_0 2
#define WF_FP4 3

// Eight weights of one row: v[i] = W[row][32*chunk + 4*s + i] and v[4+i] = W[row][32*chunk + 16 + 4*s + i],
// i < 4, s < 4. This is the quantised nibble order (byte j of a group holds elements j and j + 16), so the four
// work-items that share a group each decode four bytes; F32 and F16 use the same pattern so one tile loader
// serves every format. Columns >= C read as 0 (only F32 and F16 can have C % 32 != 0). W points at the view's
// row 0; stride is the view's row stride in bytes.

inline void wload8_f32(__global const uchar* W, ulong stride, int row, int chunk, int s, int C, float* v) {
  __global const float* r = (__global const float*)(W + (ulong)row * stride);
  const int c = chunk * 32 + 4 * s;
  for (int i = 0; i < 4; ++i) {
    v[i] = c + i < C ? r[c + i] : 0.0f;
    v[4 + i] = c + 16 + i < C ? r[c + 16 + i] : 0.0f;
  }
}

inline void wload8_f16(__global const uchar* W, ulong stride, int row, int chunk, int s, int C, float* v) {
  __global const half* r = (__global const half*)(W + (ulong)row * stride);
  const int c = chunk * 32 + 4 * s;
  for (int i = 0; i < 4; ++i) {
    v[i] = c + i < C ? vload_half(c + i, r) : 0.0f;
    v[4 + i] = c + 16 + i < C ? vload_half(c + 16 + i, r) : 0.0f;
  }
}

// Q4_0 group: { half d; uchar qs[16] }, w = (q - 8) * d.
inline void wload8_q4_0(__global const uchar* W, ulong stride, int row, int chunk, int s, float* v) {
  __global const uchar* g = W + (ulong)row * stride + (ulong)chunk * 18;
  const float d = load_half_bytes(g);
  const uchar4 q = vload4(0, g + 2 + 4 * s);
  vstore4(convert_float4(convert_int4(q & (uchar4)(15)) - 8) * d, 0, v);
  vstore4(convert_float4(convert_int4(q >> (uchar4)(4)) - 8) * d, 0, v + 4);
}

// FP4 group: { half d; half m; uchar qs[16] }, w = q * d + m, q decoded with Transformer-Lite's trick: the half
// whose bits are 0x6400 | q is exactly 1024 + q, so an and, an or and one subtraction give q as a float type
// without an int-to-float conversion. q * d is exact in fp32 (4-bit times 11-bit), so contracting the
// multiply-add into an fma or not gives the same result as the reference.
inline void wload8_fp4(__global const uchar* W, ulong stride, int row, int chunk, int s, float* v) {
  __global const uchar* g = W + (ulong)row * stride + (ulong)chunk * 20;
  const float d = load_half_bytes(g), m = load_half_bytes(g + 2);
  const uchar4 q = vload4(0, g + 4 + 4 * s);
#ifdef CONFIDANT_HAVE_FP16
  const half4 k1024 = (half4)((half)1024.0f);
  const float4 lo = convert_float4(as_half4(convert_ushort4(q & (uchar4)(15)) | (ushort4)(0x6400)) - k1024);
  const float4 hi = convert_float4(as_half4(convert_ushort4(q >> (uchar4)(4)) | (ushort4)(0x6400)) - k1024);
#else
  // The same trick in fp32 for drivers without cl_khr_fp16: the float whose bits are 0x4B000000 | q is 2^23 + q.
  const float4 lo = as_float4(convert_uint4(q & (uchar4)(15)) | (uint4)(0x4B000000u)) - (float4)(8388608.0f);
  const float4 hi = as_float4(convert_uint4(q >> (uchar4)(4)) | (uint4)(0x4B000000u)) - (float4)(8388608.0f);
#endif
  vstore4(lo * d + m, 0, v);
  vstore4(hi * d + m, 0, v + 4);
}

// fmt is a literal at every call site, so the branches fold away when the kernels below inline this.
inline void wload8(const int fmt, __global const uchar* W, ulong stride, int row, int chunk, int s, int C, float* v) {
  if (fmt == WF_F32) wload8_f32(W, stride, row, chunk, s, C, v);
  else if (fmt == WF_F16) wload8_f16(W, stride, row, chunk, s, C, v);
  else if (fmt == WF_Q4_0) wload8_q4_0(W, stride, row, chunk, s, v);
  else wload8_fp4(W, stride, row, chunk, s, v);
}

// acc[i][j] += A[k][4 ty + i] * B[k][4 tx + j] over the TK staged steps: each work-item owns a 4 x 4 block of
// the output tile, read from local memory as two float4 per step (16 multiply-adds per 2 loads).
inline void tile_mma(__local float (*A)[TILE + TPAD], __local float (*B)[TILE + TPAD], float acc[4][4]) {
  const int tx = get_local_id(0), ty = get_local_id(1);
  for (int k = 0; k < TK; ++k) {
    const float4 a = vload4(ty, A[k]), b = vload4(tx, B[k]);
    const float av[4] = {a.x, a.y, a.z, a.w}, bv[4] = {b.x, b.y, b.z, b.w};
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 4; ++j) acc[i][j] += av[i] * bv[j];
  }
}

// As[k][r] = A[r0 + r][k0 + k] for a row-major (rows, cols) matrix, 0 outside it; coalesced along k.
inline void load_rows_tile(__local float (*As)[TILE + TPAD], __global const float* A, int rows, int cols, int r0,
                           int k0) {
  const int tid = get_local_id(1) * 16 + get_local_id(0);
  for (int e = tid; e < TILE * TK; e += 256) {
    const int r = e / TK, k = e % TK;
    As[k][r] = (r0 + r < rows && k0 + k < cols) ? A[(size_t)(r0 + r) * cols + k0 + k] : 0.0f;
  }
}

// out (N,OC) = [out +] alpha * x (N,C) @ W^T [+ bias]. Work-group (o tile, n tile).
inline void linear_fwd(const int fmt, __local float (*Xs)[TILE + TPAD], __local float (*Ws)[TILE + TPAD],
                       __global float* out, __global const float* x, __global const uchar* W, ulong w_stride,
                       __global const float* bias, int has_bias, int N, int C, int OC, float alpha, int accumulate) {
  const int tx = get_local_id(0), ty = get_local_id(1), tid = ty * 16 + tx;
  const int o0 = get_group_id(0) * TILE, n0 = get_group_id(1) * TILE;
  const int wrow = tid >> 2, s = tid & 3;  // the W row this item decodes, and its quarter of the group
  float acc[4][4] = {{0.0f}};
  float v[8];
  for (int k0 = 0; k0 < C; k0 += TK) {
    load_rows_tile(Xs, x, N, C, n0, k0);
    if (o0 + wrow < OC) {
      wload8(fmt, W, w_stride, o0 + wrow, k0 / TK, s, C, v);
    } else {
      for (int i = 0; i < 8; ++i) v[i] = 0.0f;
    }
    for (int i = 0; i < 4; ++i) {
      Ws[4 * s + i][wrow] = v[i];
      Ws[16 + 4 * s + i][wrow] = v[4 + i];
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    tile_mma(Xs, Ws, acc);
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  for (int i = 0; i < 4; ++i) {
    const int n = n0 + 4 * ty + i;
    if (n >= N) continue;
    for (int j = 0; j < 4; ++j) {
      const int o = o0 + 4 * tx + j;
      if (o >= OC) continue;
      const float r = alpha * acc[i][j] + (has_bias ? bias[o] : 0.0f);
      const size_t idx = (size_t)n * OC + o;
      out[idx] = accumulate ? out[idx] + r : r;
    }
  }
}

// dx (N,C) = [dx +] alpha * dout (N,OC) @ W (OC,C). Work-group (c tile, n tile); the W tile is 32 rows x 64
// columns, i.e. two groups per row, each decoded by four work-items.
inline void linear_bwd(const int fmt, __local float (*Ds)[TILE + TPAD], __local float (*Ws)[TILE + TPAD],
                       __global float* dx, __global const float* dout, __global const uchar* W, ulong w_stride, int N,
                       int C, int OC, float alpha, int accumulate) {
  const int tx = get_local_id(0), ty = get_local_id(1), tid = ty * 16 + tx;
  const int c0 = get_group_id(0) * TILE, n0 = get_group_id(1) * TILE;
  const int unit = tid >> 2, s = tid & 3, wrow = unit >> 1, part = unit & 1;
  const int chunk = c0 / 32 + part;
  float acc[4][4] = {{0.0f}};
  float v[8];
  for (int k0 = 0; k0 < OC; k0 += TK) {
    load_rows_tile(Ds, dout, N, OC, n0, k0);
    if (k0 + wrow < OC && chunk * 32 < C) {
      wload8(fmt, W, w_stride, k0 + wrow, chunk, s, C, v);
    } else {
      for (int i = 0; i < 8; ++i) v[i] = 0.0f;
    }
    for (int i = 0; i < 4; ++i) {
      Ws[wrow][part * 32 + 4 * s + i] = v[i];
      Ws[wrow][part * 32 + 16 + 4 * s + i] = v[4 + i];
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    tile_mma(Ds, Ws, acc);
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  for (int i = 0; i < 4; ++i) {
    const int n = n0 + 4 * ty + i;
    if (n >= N) continue;
    for (int j = 0; j < 4; ++j) {
      const int c = c0 + 4 * tx + j;
      if (c >= C) continue;
      const size_t idx = (size_t)n * C + c;
      dx[idx] = accumulate ? dx[idx] + alpha * acc[i][j] : alpha * acc[i][j];
    }
  }
}

// OpenCL 1.2 allows __local variables only at kernel scope, hence the per-format wrappers.
#define LINEAR_KERNELS(NAME, FMT)                                                                                  \
  __kernel __attribute__((reqd_work_group_size(16, 16, 1))) void linear_fwd_##NAME(                                \
      __global float* out, __global const float* x, __global const uchar* W, ulong w_stride,                       \
      __global const float* bias, int has_bias, int N, int C, int OC, float alpha, int accumulate) {               \
    __local float Xs[TK][TILE + TPAD], Ws[TK][TILE + TPAD];                                                              \
    linear_fwd(FMT, Xs, Ws, out, x, W, w_stride, bias, has_bias, N, C, OC, alpha, accumulate);                     \
  }                                                                                                                \
  __kernel __attribute__((reqd_work_group_size(16, 16, 1))) void linear_bwd_##NAME(                                \
      __global float* dx, __global const float* dout, __global const uchar* W, ulong w_stride, int N, int C,       \
      int OC, float alpha, int accumulate) {                                                                       \
    __local float Ds[TK][TILE + TPAD], Ws[TK][TILE + TPAD];                                                              \
    linear_bwd(FMT, Ds, Ws, dx, dout, W, w_stride, N, C, OC, alpha, accumulate);                                   \
  }

LINEAR_KERNELS(f32, WF_F32)
LINEAR_KERNELS(f16, WF_F16)
LINEAR_KERNELS(q4_0, WF_Q4_0)
LINEAR_KERNELS(fp4, WF_FP4)

// out (I,J) = [out +] alpha * P^T @ Q with P (N,I), Q (N,J): the reduction runs over the rows of both, as in
// dB = dout^T @ xa and dA = dxa^T @ x. Work-group (j tile, i tile).
__kernel __attribute__((reqd_work_group_size(16, 16, 1))) void matmul_tn(__global float* out, __global const float* P,
                                                                         __global const float* Q, int N, int I, int J,
                                                                         float alpha, int accumulate) {
  __local float Ps[TK][TILE + TPAD], Qs[TK][TILE + TPAD];
  const int tx = get_local_id(0), ty = get_local_id(1), tid = ty * 16 + tx;
  const int j0 = get_group_id(0) * TILE, i0 = get_group_id(1) * TILE;
  float acc[4][4] = {{0.0f}};
  for (int k0 = 0; k0 < N; k0 += TK) {
    for (int e = tid; e < TILE * TK; e += 256) {  // coalesced along the tile's columns
      const int k = e / TILE, c = e % TILE, n = k0 + k;
      Ps[k][c] = (n < N && i0 + c < I) ? P[(size_t)n * I + i0 + c] : 0.0f;
      Qs[k][c] = (n < N && j0 + c < J) ? Q[(size_t)n * J + j0 + c] : 0.0f;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    tile_mma(Ps, Qs, acc);
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  for (int i = 0; i < 4; ++i) {
    const int r = i0 + 4 * ty + i;
    if (r >= I) continue;
    for (int j = 0; j < 4; ++j) {
      const int c = j0 + 4 * tx + j;
      if (c >= J) continue;
      const size_t idx = (size_t)r * J + c;
      out[idx] = accumulate ? out[idx] + alpha * acc[i][j] : alpha * acc[i][j];
    }
  }
}
