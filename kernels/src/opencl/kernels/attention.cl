// Causal GQA attention, flash style: no (T,T) matrix is stored. Forward keeps the row log-sum-exp lse; backward
// recomputes the probabilities P = exp(S - lse) and uses D = rowsum(dout * out) (backend.h). Layouts: q, out,
// dout, dq (B,T,NH,HD); k, v, dk, dv (B,T,NKV,HD); lse, D (B,NH,T); query head h reads kv head h / (NH/NKV).
//
// A 16x16 work-group handles a 16 x 16 block of (query, key) pairs at a time. Scores (16 x 16 dot products over
// the head dimension) go through local memory 16 dimensions at a time. The product of the 16 x 16 weights with
// a 16 x HD block (V, K, Q or dout) reads that block staged whole in `blk`, a __local buffer of ATT * hdp floats
// sized by the host (hdp = HD rounded up to 16: 8 KiB at HD 128; mobile GPUs have 32 KiB). Each work-item keeps
// hdp/16 accumulators for "its" dimensions c, c+16, ..., in loops over ATT_MAX_HD/16 that GPUs unroll
// (CONFIDANT_UNROLL, set by the host for GPU devices) so the accumulators stay in registers. PoCL is not asked to:
// its work-group compiler takes minutes on the unrolled kernels (seconds without), and a pragma cannot change
// results. No barrier sits inside these loops. Rows past T in the last block load row T-1 instead (valid memory,
// finite values) and are never written.

// blk[r * hdp + d] = row[d] for the work-item's row r (d < HD; 0 up to hdp). row is this item's row pointer.
inline void stage_block(__local float* blk, __global const float* row, int HD, int hdp) {
  const int c = get_local_id(0), r = get_local_id(1);
  for (int d = c; d < hdp; d += ATT) blk[r * hdp + d] = d < HD ? row[d] : 0.0f;
}

// out, lse. Work-group (0, query block, b * NH + h); item (c, r) = (key / dimension slot, query row).
__kernel __attribute__((reqd_work_group_size(ATT, ATT, 1))) void attention_fwd(
    __global float* out, __global float* lse, __global const float* q, __global const float* k,
    __global const float* v, int T, int NH, int NKV, int HD, float scale, __local float* blk) {
  __local float Qs[ATT][ATT + 1], Ks[ATT][ATT + 1], Ps[ATT][ATT + 1];
  const int c = get_local_id(0), r = get_local_id(1);
  const int qb = get_group_id(1), bh = get_group_id(2);
  const int b = bh / NH, h = bh % NH, kh = h / (NH / NKV);
  const int t = qb * ATT + r, tq = min(t, T - 1);
  const int nch = (HD + ATT - 1) / ATT, hdp = nch * ATT;
  const size_t kv_step = (size_t)NKV * HD;
  __global const float* qrow = q + (((size_t)b * T + tq) * NH + h) * HD;
  __global const float* kbase = k + (size_t)b * T * kv_step + (size_t)kh * HD;
  __global const float* vbase = v + (size_t)b * T * kv_step + (size_t)kh * HD;

  float m = -INFINITY, l = 0.0f, acc[ATT_MAX_CH];
  for (int i = 0; i < ATT_MAX_CH; ++i) acc[i] = 0.0f;
  for (int kb = 0; kb <= qb; ++kb) {  // causal: key blocks up to the diagonal
    const size_t s_load = (size_t)min(kb * ATT + r, T - 1);  // key row this item stages
    float score = 0.0f;
    for (int ch = 0; ch < nch; ++ch) {
      const int d = ch * ATT + c;
      Qs[r][c] = d < HD ? qrow[d] : 0.0f;
      Ks[r][c] = d < HD ? kbase[s_load * kv_step + d] : 0.0f;
      barrier(CLK_LOCAL_MEM_FENCE);
      for (int i = 0; i < ATT; ++i) score += Qs[r][i] * Ks[c][i];
      barrier(CLK_LOCAL_MEM_FENCE);
    }
    score = kb * ATT + c <= tq ? score * scale : -INFINITY;
    Ps[r][c] = score;
    barrier(CLK_LOCAL_MEM_FENCE);
    float mx = m;  // finite: key 0 is in every row's first block
    for (int i = 0; i < ATT; ++i) mx = fmax(mx, Ps[r][i]);
    barrier(CLK_LOCAL_MEM_FENCE);  // every row max read before the scores become probabilities
    Ps[r][c] = exp(score - mx);
    barrier(CLK_LOCAL_MEM_FENCE);
    float rowsum = 0.0f;
    for (int i = 0; i < ATT; ++i) rowsum += Ps[r][i];
    const float alpha = exp(m - mx);  // online softmax rescale; exp(-inf) = 0 on the first block
    l = l * alpha + rowsum;
    m = mx;
    stage_block(blk, vbase + s_load * kv_step, HD, hdp);  // the V block
    barrier(CLK_LOCAL_MEM_FENCE);
#ifdef CONFIDANT_UNROLL
#pragma unroll
#endif
    for (int ch = 0; ch < ATT_MAX_CH; ++ch) {
      if (ch < nch) {
        float o = 0.0f;
        for (int i = 0; i < ATT; ++i) o += Ps[r][i] * blk[i * hdp + ch * ATT + c];
        acc[ch] = acc[ch] * alpha + o;
      }
    }
    barrier(CLK_LOCAL_MEM_FENCE);  // Ps and blk are rewritten by the next block
  }
  if (t < T) {
    __global float* orow = out + (((size_t)b * T + t) * NH + h) * HD;
    const float inv_l = 1.0f / l;
#ifdef CONFIDANT_UNROLL
#pragma unroll
#endif
    for (int ch = 0; ch < ATT_MAX_CH; ++ch) {
      const int d = ch * ATT + c;
      if (ch < nch && d < HD) orow[d] = acc[ch] * inv_l;
    }
    if (c == 0) lse[((size_t)b * NH + h) * T + t] = m + log(l);
  }
}

// D[b,h,t] = dout[b,t,h,:] . out[b,t,h,:], one work-item per (b, t, h) row.
__kernel void attention_bwd_d(__global float* D, __global const float* dout, __global const float* out, int T, int NH,
                              int HD, int rows) {
  const int id = get_global_id(0);
  if (id >= rows) return;
  const int h = id % NH, bt = id / NH, t = bt % T, b = bt / T;
  __global const float* g = dout + (size_t)id * HD;
  __global const float* o = out + (size_t)id * HD;
  float s = 0.0f;
  for (int d = 0; d < HD; ++d) s += g[d] * o[d];
  D[((size_t)b * NH + h) * T + t] = s;
}

// dq += sum_s dS[t,s] k_s with dS = P * (dout.v - D) * scale. Work-group and items as attention_fwd.
__kernel __attribute__((reqd_work_group_size(ATT, ATT, 1))) void attention_bwd_dq(
    __global float* dq, __global const float* dout, __global const float* q, __global const float* k,
    __global const float* v, __global const float* lse, __global const float* D, int T, int NH, int NKV, int HD,
    float scale, __local float* blk) {
  __local float Qs[ATT][ATT + 1], Gs[ATT][ATT + 1], Ks[ATT][ATT + 1], Vs[ATT][ATT + 1], Ss[ATT][ATT + 1];
  const int c = get_local_id(0), r = get_local_id(1);
  const int qb = get_group_id(1), bh = get_group_id(2);
  const int b = bh / NH, h = bh % NH, kh = h / (NH / NKV);
  const int t = qb * ATT + r, tq = min(t, T - 1);
  const int nch = (HD + ATT - 1) / ATT, hdp = nch * ATT;
  const size_t kv_step = (size_t)NKV * HD, row = ((size_t)b * T + tq) * NH + h;
  __global const float* qrow = q + row * HD;
  __global const float* grow = dout + row * HD;
  __global const float* kbase = k + (size_t)b * T * kv_step + (size_t)kh * HD;
  __global const float* vbase = v + (size_t)b * T * kv_step + (size_t)kh * HD;
  const float L = lse[((size_t)b * NH + h) * T + tq], Dt = D[((size_t)b * NH + h) * T + tq];

  float acc[ATT_MAX_CH];
  for (int i = 0; i < ATT_MAX_CH; ++i) acc[i] = 0.0f;
  for (int kb = 0; kb <= qb; ++kb) {
    const size_t s_load = (size_t)min(kb * ATT + r, T - 1);
    float score = 0.0f, dp = 0.0f;
    for (int ch = 0; ch < nch; ++ch) {
      const int d = ch * ATT + c;
      Qs[r][c] = d < HD ? qrow[d] : 0.0f;
      Gs[r][c] = d < HD ? grow[d] : 0.0f;
      Ks[r][c] = d < HD ? kbase[s_load * kv_step + d] : 0.0f;
      Vs[r][c] = d < HD ? vbase[s_load * kv_step + d] : 0.0f;
      barrier(CLK_LOCAL_MEM_FENCE);
      for (int i = 0; i < ATT; ++i) {
        score += Qs[r][i] * Ks[c][i];
        dp += Gs[r][i] * Vs[c][i];
      }
      barrier(CLK_LOCAL_MEM_FENCE);
    }
    const float p = kb * ATT + c <= tq ? exp(score * scale - L) : 0.0f;
    Ss[r][c] = p * (dp - Dt) * scale;
    stage_block(blk, kbase + s_load * kv_step, HD, hdp);  // the K block
    barrier(CLK_LOCAL_MEM_FENCE);
#ifdef CONFIDANT_UNROLL
#pragma unroll
#endif
    for (int ch = 0; ch < ATT_MAX_CH; ++ch) {
      if (ch < nch) {
        float g = 0.0f;
        for (int i = 0; i < ATT; ++i) g += Ss[r][i] * blk[i * hdp + ch * ATT + c];
        acc[ch] += g;
      }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  if (t < T) {
    __global float* dqrow = dq + (((size_t)b * T + t) * NH + h) * HD;
#ifdef CONFIDANT_UNROLL
#pragma unroll
#endif
    for (int ch = 0; ch < ATT_MAX_CH; ++ch) {
      const int d = ch * ATT + c;
      if (ch < nch && d < HD) dqrow[d] += acc[ch];
    }
  }
}

// dk += sum_t dS[t,s] q_t and dv += sum_t P[t,s] dout_t over the query heads of kv head kh and every query block
// at or after this key block; each work-group owns its key rows, so no atomics are needed. Work-group
// (0, key block, b * NKV + kh); item (c, r) = (query / dimension slot, key row).
__kernel __attribute__((reqd_work_group_size(ATT, ATT, 1))) void attention_bwd_dkv(
    __global float* dk, __global float* dv, __global const float* dout, __global const float* q,
    __global const float* k, __global const float* v, __global const float* lse, __global const float* D, int T,
    int NH, int NKV, int HD, float scale, __local float* blk) {
  __local float Qs[ATT][ATT + 1], Gs[ATT][ATT + 1], Ks[ATT][ATT + 1], Vs[ATT][ATT + 1];
  __local float Ps[ATT][ATT + 1], Ss[ATT][ATT + 1];
  const int c = get_local_id(0), r = get_local_id(1);
  const int kb = get_group_id(1), bk = get_group_id(2);
  const int b = bk / NKV, kh = bk % NKV, group = NH / NKV;
  const int s_key = kb * ATT + r;
  const int nch = (HD + ATT - 1) / ATT, hdp = nch * ATT, nqb = (T + ATT - 1) / ATT;
  const size_t q_step = (size_t)NH * HD;
  __global const float* krow = k + (((size_t)b * T + min(s_key, T - 1)) * NKV + kh) * HD;
  __global const float* vrow = v + (((size_t)b * T + min(s_key, T - 1)) * NKV + kh) * HD;

  float dk_acc[ATT_MAX_CH], dv_acc[ATT_MAX_CH];
  for (int i = 0; i < ATT_MAX_CH; ++i) dk_acc[i] = dv_acc[i] = 0.0f;
  for (int h = kh * group; h < (kh + 1) * group; ++h) {
    __global const float* qbase = q + (size_t)b * T * q_step + (size_t)h * HD;
    __global const float* gbase = dout + (size_t)b * T * q_step + (size_t)h * HD;
    __global const float* lse_h = lse + ((size_t)b * NH + h) * T;
    __global const float* D_h = D + ((size_t)b * NH + h) * T;
    for (int qb = kb; qb < nqb; ++qb) {
      const size_t t_load = (size_t)min(qb * ATT + r, T - 1);  // query row this item stages
      float score = 0.0f, dp = 0.0f;
      for (int ch = 0; ch < nch; ++ch) {
        const int d = ch * ATT + c;
        Ks[r][c] = d < HD ? krow[d] : 0.0f;
        Vs[r][c] = d < HD ? vrow[d] : 0.0f;
        Qs[r][c] = d < HD ? qbase[t_load * q_step + d] : 0.0f;
        Gs[r][c] = d < HD ? gbase[t_load * q_step + d] : 0.0f;
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int i = 0; i < ATT; ++i) {
          score += Ks[r][i] * Qs[c][i];
          dp += Vs[r][i] * Gs[c][i];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
      }
      const int t = qb * ATT + c;  // the query of this item's (key r, query c) pair
      const bool valid = t < T && s_key <= t;
      const float p = valid ? exp(score * scale - lse_h[t]) : 0.0f;
      Ps[r][c] = p;
      Ss[r][c] = valid ? p * (dp - D_h[t]) * scale : 0.0f;
      // dk from the Q block, then dv from the dout block, through the same staging buffer.
      stage_block(blk, qbase + t_load * q_step, HD, hdp);
      barrier(CLK_LOCAL_MEM_FENCE);  // also publishes Ps and Ss
#ifdef CONFIDANT_UNROLL
#pragma unroll
#endif
      for (int ch = 0; ch < ATT_MAX_CH; ++ch) {
        if (ch < nch) {
          float g = 0.0f;
          for (int i = 0; i < ATT; ++i) g += Ss[r][i] * blk[i * hdp + ch * ATT + c];
          dk_acc[ch] += g;
        }
      }
      barrier(CLK_LOCAL_MEM_FENCE);
      stage_block(blk, gbase + t_load * q_step, HD, hdp);
      barrier(CLK_LOCAL_MEM_FENCE);
#ifdef CONFIDANT_UNROLL
#pragma unroll
#endif
      for (int ch = 0; ch < ATT_MAX_CH; ++ch) {
        if (ch < nch) {
          float g = 0.0f;
          for (int i = 0; i < ATT; ++i) g += Ps[r][i] * blk[i * hdp + ch * ATT + c];
          dv_acc[ch] += g;
        }
      }
      barrier(CLK_LOCAL_MEM_FENCE);
    }
  }
  if (s_key < T) {
    const size_t row = ((size_t)b * T + s_key) * NKV + kh;
#ifdef CONFIDANT_UNROLL
#pragma unroll
#endif
    for (int ch = 0; ch < ATT_MAX_CH; ++ch) {
      const int d = ch * ATT + c;
      if (ch < nch && d < HD) {
        dk[row * HD + d] += dk_acc[ch];
        dv[row * HD + d] += dv_acc[ch];
      }
    }
  }
}
