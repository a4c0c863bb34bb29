#!/usr/bin/env python3
"""Packs stage files (docs/stage-format.md) from a Hugging Face safetensors folder, for the agent's C++ tests.

An independent implementation of the format and of the weight quantisers of kernels/include/confidant/weights.h
(stdlib only: json, math, struct, zlib), not the product's packer (electron/core/model/stage-pack.ts, quantize.ts).
Usage:
  pack_stage.py --hf DIR --out-dir DIR --stage NAME:START:END[:FORMAT] [--stage ...] [--format FORMAT]
                [--config JSON]
      -> DIR/NAME.stage. FORMAT (per stage, else --format) is raw (default: every tensor as stored in the model),
      f32, f16, int8, q4_0 or fp4; the last four apply to the weight matrices (projections, embedding, LM head),
      norms and biases stay as stored, and q4_0 / fp4 store a matrix whose column count is not a multiple of 32
      as f16. --config (a JSON object, or @FILE) is merged over config.json for every stage of the call, e.g.
      '{"rope_scaling": {"rope_type": "llama3", ...}, "sliding_window": 16}': a rope_scaling of type linear or
      llama3 writes flag bit 4 and the tensor rope.inv_freq, a sliding_window flag bit 5 and header field 80.
  pack_stage.py --quantize FORMAT --rows R --cols C --in F32_FILE --out FILE
      -> quantises one row-major little-endian f32 matrix (the cross-check of test/unit/quantize.test.ts and
      test_stage_formats.cpp).
  pack_stage.py --quantize-jobs JOBS.json
      -> the same for a JSON list of {"format", "rows", "cols", "in", "out"} (one process for many matrices).
"""
import argparse
import json
import math
import os
import re
import struct
import zlib

MAGIC = b"CFDSTAGE"
HEADER_BYTES = 96
ALIGN = 64
DTYPES = {"F32": (0, 4), "F16": (1, 2)}
FORMATS = {"f32": 0, "f16": 1, "int8": 2, "q4_0": 3, "fp4": 4}
GROUP = 32
ROPE_INV_FREQ = "rope.inv_freq"
QUANTIZABLE = re.compile(r"^(model\.layers\.\d+\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj)\.weight"
                         r"|lm_head\.weight|model\.embed_tokens\.weight)$")

# ---- IEEE rounding helpers: Python floats are doubles; the C++ reference computes in float. ----
# For +, -, *, / of two floats, the double result rounded once to float equals the float operation (double has
# more than 2 * 24 + 2 bits), so f32(a op b) reproduces the C++ arithmetic exactly.
_F = struct.Struct("<f")
_H = struct.Struct("<e")
_U16 = struct.Struct("<H")


def f32(x):
    """x rounded to the nearest float (ties to even), overflowing to +-inf like a C cast."""
    try:
        return _F.unpack(_F.pack(x))[0]
    except OverflowError:
        return math.copysign(math.inf, x)


def inverse_scale(scale):
    """1 / scale in float, or 0 when that is not finite (zero or subnormal scale), as formats.cpp does."""
    inv = f32(1.0 / scale) if scale != 0.0 else math.inf
    return inv if math.isfinite(inv) else 0.0


def half_bits(x):
    """IEEE binary16 bits of x (a float value), round to nearest even, overflow to inf (CPython's PyFloat_Pack2)."""
    if math.isnan(x):
        return 0x7E00 | (0x8000 if math.copysign(1.0, x) < 0 else 0)
    try:
        return _U16.unpack(_H.pack(x))[0]
    except OverflowError:
        return 0xFC00 if x < 0 else 0x7C00


def half_value(bits):
    return _H.unpack(_U16.pack(bits))[0]


def c_int_trunc(v):
    """static_cast<int>(float) as x86-64 does it: truncate; NaN or out of range gives INT_MIN."""
    if v != v or not (-2147483649.0 < v < 2147483648.0):
        return -2147483648
    return int(v)


def c_lround_int(v):
    """static_cast<int>(std::lround(float)) on x86-64: half away from zero; NaN / huge give LONG_MIN, low 32 bits 0."""
    if v != v or abs(v) >= 9223372036854775808.0:
        return 0
    r = math.floor(abs(v) + 0.5)
    r = -r if v < 0 else r
    return ((r + 2**31) % 2**32) - 2**31


def quantize_q4_0(w, rows, cols):
    """llama.cpp block_q4_0 per 32 elements: half d = max / -8 (max = the signed value of largest magnitude), then
    16 bytes, byte j = q[j] | q[j + 16] << 4, q = min(15, (int)(x * (1/d) + 8.5))."""
    out = bytearray()
    for g in range(0, rows * cols, GROUP):
        x = w[g:g + GROUP]
        amax, mx = 0.0, 0.0
        for v in x:
            if abs(v) > amax:
                amax, mx = abs(v), v
        d = f32(mx / -8.0)
        inv = inverse_scale(d)
        q = [min(15, c_int_trunc(f32(f32(v * inv) + 8.5))) for v in x]
        out += _U16.pack(half_bits(d))
        out += bytes((q[j] | (q[j + 16] << 4)) & 0xFF for j in range(16))
    return bytes(out)


def quantize_fp4(w, rows, cols):
    """Per 32 elements: half d = (max - min) / 15, half m = min, 16 bytes of codes as q4_0, q = clamp(lround((x - m)
    * (1/d)), 0, 15) with the stored (rounded) d and m; w = q * d + m."""
    out = bytearray()
    for g in range(0, rows * cols, GROUP):
        x = w[g:g + GROUP]
        lo = hi = x[0]
        for v in x[1:]:
            if v < lo:
                lo = v
            if hi < v:
                hi = v
        dbits = half_bits(f32(f32(hi - lo) / 15.0))
        mbits = half_bits(lo)
        d, m = half_value(dbits), half_value(mbits)
        inv = inverse_scale(d)
        q = [max(0, min(15, c_lround_int(f32(f32(v - m) * inv)))) for v in x]
        out += _U16.pack(dbits) + _U16.pack(mbits)
        out += bytes(q[j] | (q[j + 16] << 4) for j in range(16))
    return bytes(out)


def quantize_int8(w, rows, cols):
    """rows * cols int8 codes (row-major), zero padding to a multiple of 4, rows f32 scales: per row
    s = max|w| / 127, q = lround(x * (1/s)); w = q * s."""
    codes = bytearray(rows * cols)
    scales = bytearray()
    for r in range(rows):
        x = w[r * cols:(r + 1) * cols]
        amax = 0.0
        for v in x:
            if amax < abs(v):
                amax = abs(v)
        s = f32(amax / 127.0)
        inv = inverse_scale(s)
        for c, v in enumerate(x):
            codes[r * cols + c] = c_lround_int(f32(v * inv)) & 0xFF
        scales += _F.pack(s)
    pad = (-len(codes)) % 4
    return bytes(codes) + bytes(pad) + bytes(scales)


def quantize(fmt, w, rows, cols):
    """w: list of float values (each exactly a float32), row-major rows x cols. Returns the stored bytes."""
    if fmt in ("q4_0", "fp4") and cols % GROUP:
        raise ValueError("%s needs a column count that is a multiple of %d, got %d" % (fmt, GROUP, cols))
    if fmt == "f32":
        return struct.pack("<%df" % len(w), *w)
    if fmt == "f16":
        return b"".join(_U16.pack(half_bits(v)) for v in w)
    if fmt == "int8":
        return quantize_int8(w, rows, cols)
    if fmt == "q4_0":
        return quantize_q4_0(w, rows, cols)
    if fmt == "fp4":
        return quantize_fp4(w, rows, cols)
    raise ValueError("unknown format " + fmt)


def to_floats(dtype, data):
    """Source tensor bytes as a list of float32 values."""
    if dtype == "F32":
        return list(struct.unpack("<%df" % (len(data) // 4), data))
    if dtype == "F16":
        return list(struct.unpack("<%de" % (len(data) // 2), data))
    if dtype == "BF16":
        return [_F.unpack(struct.pack("<I", b << 16))[0] for b in struct.unpack("<%dH" % (len(data) // 2), data)]
    raise ValueError("cannot read dtype %s as floats" % dtype)


def stored(name, dtype, shape, data, fmt):
    """(dtype code, bytes) of one tensor packed as fmt (raw: as in the model)."""
    if fmt == "raw" or len(shape) != 2 or not QUANTIZABLE.match(name):
        if dtype not in DTYPES:
            raise ValueError("%s: dtype %s cannot be stored as is" % (name, dtype))
        return DTYPES[dtype][0], data
    if fmt in ("q4_0", "fp4") and shape[1] % GROUP:
        fmt = "f16"  # grouped formats need cols % 32 == 0: the documented fallback
    if (fmt, dtype) in (("f32", "F32"), ("f16", "F16")):
        return FORMATS[fmt], data
    return FORMATS[fmt], quantize(fmt, to_floats(dtype, data), shape[0], shape[1])


# ---- RoPE frequencies (flag bit 4) and the attention window (flag bit 5) ----
# Written independently of electron/core/model/rope.ts. The plain table is the agent's own
# (ref::rope_default_inv_freq: 1 / theta^(2i/D) in double, rounded once to float), so a scaling that leaves a
# frequency unchanged stores exactly the value the agent computes without the flag. The scaling rules then follow
# transformers' modeling_rope_utils operation by operation on float32 tensors: every step rounds to float, a Python
# scalar is used as a float, and `scalar / tensor` is reciprocal(tensor) * scalar (torch's Tensor.__rtruediv__).


def default_inv_freq(head_dim, theta):
    return [f32(1.0 / math.pow(theta, 2.0 * i / head_dim)) for i in range(head_dim // 2)]


def _rope_number(rs, key, minimum, exclusive=False):
    v = rs.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or \
            (v <= minimum if exclusive else v < minimum):
        raise ValueError("rope_scaling.%s must be a number %s %s, got %r" % (key, ">" if exclusive else ">=",
                                                                          minimum, v))
    return float(v)


def llama3_inv_freq(inv_freq, factor, low_freq_factor, high_freq_factor, old_context_len):
    """transformers' _compute_llama3_parameters on a float32 inv_freq: pairs whose wavelength exceeds
    old_context_len / low_freq_factor turn factor times slower, those below old_context_len / high_freq_factor are
    kept, the band between is interpolated with smooth = (old_context_len / wavelen - low) / (high - low)."""
    low_freq_wavelen = old_context_len / low_freq_factor  # Python floats, as in transformers
    high_freq_wavelen = old_context_len / high_freq_factor
    two_pi, fac = f32(2 * math.pi), f32(factor)
    out = []
    for f in inv_freq:
        wavelen = f32(f32(1.0 / f) * two_pi)                       # 2 * math.pi / inv_freq
        llama = f32(f / fac) if wavelen > f32(low_freq_wavelen) else f  # torch.where(wavelen > low, inv / factor, inv)
        smooth = f32(f32(f32(f32(1.0 / wavelen) * f32(old_context_len)) - f32(low_freq_factor))
                     / f32(high_freq_factor - low_freq_factor))
        smoothed = f32(f32(f32(f32(1.0 - smooth) * llama) / fac) + f32(smooth * llama))
        medium = not (wavelen < f32(high_freq_wavelen)) and not (wavelen > f32(low_freq_wavelen))
        out.append(smoothed if medium else llama)
    return out


def rope_inv_freq(cfg, head_dim):
    """The stage's rope.inv_freq table (floats) for config.json's rope_scaling, or None for plain RoPE (no tensor,
    no flag: the agent computes the table from rope_theta)."""
    rs = cfg.get("rope_scaling")
    if rs is None:
        return None
    if not isinstance(rs, dict):
        raise ValueError("rope_scaling must be an object or null, got %r" % (rs,))
    kind = rs.get("rope_type", rs.get("type"))
    if kind == "default":
        return None
    base = default_inv_freq(head_dim, f32(cfg.get("rope_theta", 10000.0)))
    if kind == "linear":
        fac = f32(_rope_number(rs, "factor", 1.0))
        return [f32(f / fac) for f in base]  # inv_freq /= factor
    if kind == "llama3":
        low = _rope_number(rs, "low_freq_factor", 0.0, exclusive=True)
        high = _rope_number(rs, "high_freq_factor", 0.0, exclusive=True)
        if not high > low:
            raise ValueError("rope_scaling.high_freq_factor %r must exceed low_freq_factor %r" % (high, low))
        return llama3_inv_freq(base, _rope_number(rs, "factor", 1.0), low, high,
                               _rope_number(rs, "original_max_position_embeddings", 1.0))
    raise ValueError("rope_scaling type %r is not supported (default, linear, llama3)" % (kind,))


def sliding_window_of(cfg):
    """config.json's attention window (header field 80, flag bit 5), 0 for none. Qwen2 configs carry a window that
    transformers applies only with use_sliding_window."""
    if cfg.get("model_type") == "qwen2" and cfg.get("use_sliding_window") is not True:
        return 0
    w = cfg.get("sliding_window")
    if w is None:
        return 0
    if isinstance(w, bool) or not isinstance(w, int) or not 0 < w < 2**32:
        raise ValueError("sliding_window must be a positive integer or null, got %r" % (w,))
    return w


def align(n):
    return (n + ALIGN - 1) // ALIGN * ALIGN


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (hlen,) = struct.unpack_from("<Q", raw, 0)
    header = json.loads(raw[8:8 + hlen])
    base = 8 + hlen
    tensors = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        start, end = meta["data_offsets"]
        tensors[name] = (meta["dtype"], list(meta["shape"]), raw[base + start:base + end])
    return tensors


def stage_tensor_names(cfg, start, end, flags):
    names = []
    if flags & 16:
        names.append(ROPE_INV_FREQ)
    if flags & 1:
        names.append("model.embed_tokens.weight")
    for i in range(start, end):
        p = "model.layers.%d." % i
        names += [p + "input_layernorm.weight"] + [p + "self_attn.%s_proj.weight" % m for m in "qkvo"]
        if flags & 8:
            names += [p + "self_attn.%s_proj.bias" % m for m in "qkv"]
        names += [p + "post_attention_layernorm.weight"] + [p + "mlp.%s_proj.weight" % m for m in ("gate", "up", "down")]
    if flags & 2:
        names.append("model.norm.weight")
        if not flags & 4:
            names.append("lm_head.weight")
        elif not flags & 1:
            names.append("model.embed_tokens.weight")
    return names


def pack(hf_dir, start, end, out_path, fmt="raw", config_patch=None):
    with open(os.path.join(hf_dir, "config.json")) as f:
        cfg = json.load(f)
    cfg.update(config_patch or {})
    tensors = read_safetensors(os.path.join(hf_dir, "model.safetensors"))
    n_layers = cfg["num_hidden_layers"]
    heads = cfg["num_attention_heads"]
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // heads
    tied = cfg.get("tie_word_embeddings", False) or "lm_head.weight" not in tensors
    inv_freq = rope_inv_freq(cfg, head_dim)
    window = sliding_window_of(cfg)
    flags = (1 if start == 0 else 0) | (2 if end == n_layers else 0) | (4 if tied else 0) | \
            (8 if cfg.get("attention_bias", False) else 0) | (16 if inv_freq is not None else 0) | \
            (32 if window else 0)
    if inv_freq is not None:
        if ROPE_INV_FREQ in tensors:
            raise ValueError("the model itself has a tensor named %s" % ROPE_INV_FREQ)
        tensors[ROPE_INV_FREQ] = ("F32", [head_dim // 2], struct.pack("<%df" % len(inv_freq), *inv_freq))
    names = stage_tensor_names(cfg, start, end, flags)

    table_bytes = 0
    for name in names:
        table_bytes += 2 + len(name.encode()) + 2 + 8 * len(tensors[name][1]) + 8 + 8 + 4
    data_offset = align(HEADER_BYTES + table_bytes)
    offset = data_offset
    table = b""
    layout = []
    for name in names:
        dtype, shape, data = tensors[name]
        code, data = stored(name, dtype, shape, data, fmt)
        nb = name.encode()
        table += struct.pack("<H", len(nb)) + nb + struct.pack("<BB", code, len(shape))
        table += b"".join(struct.pack("<Q", d) for d in shape)
        table += struct.pack("<QQI", offset, len(data), zlib.crc32(data) & 0xFFFFFFFF)
        layout.append((offset, data))
        offset = align(offset + len(data))
    file_bytes = layout[-1][0] + len(layout[-1][1]) if layout else data_offset

    header = MAGIC + struct.pack(
        "<IIIIIIIIIffIIIQQ", 1, len(names), cfg["hidden_size"], cfg["intermediate_size"], n_layers, heads,
        cfg.get("num_key_value_heads", heads), head_dim, cfg["vocab_size"], cfg["rms_norm_eps"],
        cfg.get("rope_theta", 10000.0), start, end, flags, data_offset, file_bytes) + struct.pack("<I", window) + \
        bytes(12)
    assert len(header) == HEADER_BYTES
    out = bytearray(file_bytes)
    out[0:HEADER_BYTES] = header
    out[HEADER_BYTES:HEADER_BYTES + len(table)] = table
    for off, data in layout:
        out[off:off + len(data)] = data
    tmp = out_path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(out)
    os.replace(tmp, out_path)
    return flags, file_bytes


def quantize_file(fmt, rows, cols, in_path, out_path):
    with open(in_path, "rb") as f:
        raw = f.read()
    if len(raw) != rows * cols * 4:
        raise SystemExit("%s: %d bytes, a [%d, %d] f32 matrix has %d" % (in_path, len(raw), rows, cols, rows * cols * 4))
    out = quantize(fmt, list(struct.unpack("<%df" % (rows * cols), raw)), rows, cols)
    with open(out_path, "wb") as f:
        f.write(out)


def main():
    formats = ["raw"] + list(FORMATS)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hf", help="Hugging Face folder (config.json + model.safetensors)")
    ap.add_argument("--out-dir")
    ap.add_argument("--stage", action="append", help="NAME:START:END[:FORMAT] (half-open layer range)")
    ap.add_argument("--format", default="raw", choices=formats, help="weight format of stages that name none")
    ap.add_argument("--config", help="JSON object (or @FILE) merged over config.json, e.g. rope_scaling, sliding_window")
    ap.add_argument("--quantize", choices=list(FORMATS), help="quantise one f32 matrix (--rows --cols --in --out)")
    ap.add_argument("--rows", type=int)
    ap.add_argument("--cols", type=int)
    ap.add_argument("--in", dest="in_path")
    ap.add_argument("--out")
    ap.add_argument("--quantize-jobs", help="JSON list of {format, rows, cols, in, out}")
    args = ap.parse_args()
    if args.quantize_jobs:
        with open(args.quantize_jobs) as f:
            for job in json.load(f):
                if job["format"] not in FORMATS:
                    raise SystemExit("unknown format %r in %s" % (job["format"], args.quantize_jobs))
                quantize_file(job["format"], int(job["rows"]), int(job["cols"]), job["in"], job["out"])
        return
    if args.quantize:
        if None in (args.rows, args.cols, args.in_path, args.out):
            ap.error("--quantize needs --rows, --cols, --in and --out")
        quantize_file(args.quantize, args.rows, args.cols, args.in_path, args.out)
        return
    if not (args.hf and args.out_dir and args.stage):
        ap.error("packing needs --hf, --out-dir and at least one --stage")
    patch = None
    if args.config:
        text = args.config
        if text.startswith("@"):
            with open(text[1:]) as f:
                text = f.read()
        try:
            patch = json.loads(text)
        except ValueError as e:
            ap.error("--config: not JSON: %s" % e)
        if not isinstance(patch, dict):
            ap.error("--config must be a JSON object")
    os.makedirs(args.out_dir, exist_ok=True)
    for spec in args.stage:
        parts = spec.split(":")
        if len(parts) not in (3, 4) or (len(parts) == 4 and parts[3] not in formats):
            ap.error("--stage %s: expected NAME:START:END[:FORMAT], FORMAT one of %s" % (spec, ", ".join(formats)))
        name, start, end = parts[:3]
        fmt = parts[3] if len(parts) == 4 else args.format
        path = os.path.join(args.out_dir, name + ".stage")
        try:
            flags, size = pack(args.hf, int(start), int(end), path, fmt, patch)
        except ValueError as e:
            raise SystemExit("pack_stage.py: %s: %s" % (path, e))
        print("packed %s: layers [%s, %s) flags 0x%x, %s, %d bytes" % (path, start, end, flags, fmt, size))


if __name__ == "__main__":
    main()
