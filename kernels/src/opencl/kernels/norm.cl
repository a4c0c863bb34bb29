// RMSNorm (HF LlamaRMSNorm): out = x * rstd * w, rstd = 1 / sqrt(mean(x^2) + eps), and its backward.
// One work-group of NORM_WG items per row; sums in fp32 (the reference uses double: fine at these widths).

// Sum of v over the work-group; red must hold NORM_WG floats. Ends with a barrier so red can be reused.
inline float group_sum(__local float* red, float v) {
  const int lid = get_local_id(0);
  red[lid] = v;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int off = NORM_WG / 2; off > 0; off >>= 1) {
    if (lid < off) red[lid] += red[lid + off];
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  const float total = red[0];
  barrier(CLK_LOCAL_MEM_FENCE);
  return total;
}

// out, x (N,C); rstd (N); w (C). In place (out == x) is fine: the row is summed before it is written.
__kernel __attribute__((reqd_work_group_size(NORM_WG, 1, 1))) void rmsnorm_fwd(
    __global float* out, __global float* rstd, __global const float* x, __global const float* w, int C, float eps) {
  __local float red[NORM_WG];
  const int n = get_group_id(0), lid = get_local_id(0);
  __global const float* xn = x + (size_t)n * C;
  float ss = 0.0f;
  for (int c = lid; c < C; c += NORM_WG) ss += xn[c] * xn[c];
  const float r = 1.0f / sqrt(group_sum(red, ss) / C + eps);
  for (int c = lid; c < C; c += NORM_WG) out[(size_t)n * C + c] = xn[c] * r * w[c];
  if (lid == 0) rstd[n] = r;
}

// dx += r * (w * dout - x * r^2 * mean(w * dout * x)), row by row.
__kernel __attribute__((reqd_work_group_size(NORM_WG, 1, 1))) void rmsnorm_bwd_dx(
    __global float* dx, __global const float* dout, __global const float* x, __global const float* w,
    __global const float* rstd, int C) {
  __local float red[NORM_WG];
  const int n = get_group_id(0), lid = get_local_id(0);
  const size_t base = (size_t)n * C;
  float dot = 0.0f;
  for (int c = lid; c < C; c += NORM_WG) dot += w[c] * dout[base + c] * x[base + c];
  const float r = rstd[n];
  const float kx = r * r * group_sum(red, dot) / C;
  for (int c = lid; c < C; c += NORM_WG) dx[base + c] += r * (w[c] * dout[base + c] - x[base + c] * kx);
}

// dw[c] += sum_n dout[n,c] * x[n,c] * rstd[n]; one work-item per column, so reads are coalesced across items.
__kernel void rmsnorm_bwd_dw(__global float* dw, __global const float* dout, __global const float* x,
                             __global const float* rstd, int N, int C) {
  const int c = get_global_id(0);
  if (c >= C) return;
  float s = 0.0f;
  for (int n = 0; n < N; ++n) s += dout[(size_t)n * C + c] * x[(size_t)n * C + c] * rstd[n];
  dw[c] += s;
}
