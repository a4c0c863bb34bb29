#!/usr/bin/env python3
"""Packs stage files (docs/stage-format.md) from a Hugging Face safetensors folder, for the agent's C++ tests.

An independent implementation of the format (stdlib only: json, struct, zlib), not the product's packer
(electron/core/model/stage-pack.ts). Usage:
  pack_stage.py --hf DIR --out-dir DIR --stage NAME:START:END [--stage ...]   -> DIR/NAME.stage
"""
import argparse
import json
import os
import struct
import zlib

MAGIC = b"CFDSTAGE"
HEADER_BYTES = 96
ALIGN = 64
DTYPES = {"F32": (0, 4), "F16": (1, 2)}


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


def pack(hf_dir, start, end, out_path):
    with open(os.path.join(hf_dir, "config.json")) as f:
        cfg = json.load(f)
    tensors = read_safetensors(os.path.join(hf_dir, "model.safetensors"))
    n_layers = cfg["num_hidden_layers"]
    heads = cfg["num_attention_heads"]
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // heads
    tied = cfg.get("tie_word_embeddings", False) or "lm_head.weight" not in tensors
    flags = (1 if start == 0 else 0) | (2 if end == n_layers else 0) | (4 if tied else 0) | \
            (8 if cfg.get("attention_bias", False) else 0)
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
        code, _ = DTYPES[dtype]
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
        cfg.get("rope_theta", 10000.0), start, end, flags, data_offset, file_bytes) + bytes(16)
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hf", required=True, help="Hugging Face folder (config.json + model.safetensors)")
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--stage", action="append", required=True, help="NAME:START:END (half-open layer range)")
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    for spec in args.stage:
        name, start, end = spec.split(":")
        path = os.path.join(args.out_dir, name + ".stage")
        flags, size = pack(args.hf, int(start), int(end), path)
        print("packed %s: layers [%s, %s) flags 0x%x, %d bytes" % (path, start, end, flags, size))


if __name__ == "__main__":
    main()
