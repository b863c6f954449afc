#!/usr/bin/env python3
"""Reference fixtures for fathom's GGUF reader and dequantisers (tests/test_gguf_quants.cpp).

Writes into tests/fixtures/gguf/ (or --out DIR):
  quants.safetensors   for every supported ggml type T: "T.data" (U8, the raw blocks) and
                       "T.expected" (F32, gguf.quants.dequantize of those blocks)
  writer.gguf          a small GGUF v3 file written by gguf.GGUFWriter: metadata of every value
                       type (incl. typed and nested arrays), tensors of several ggml types
  writer.json          what gguf.GGUFReader reads back from writer.gguf (keys, value types,
                       values, tensor names / types / ne / offsets), for the C++ reader to match
  writer_expected.safetensors   "<tensor>" (F32): each writer.gguf tensor dequantised by gguf
  writer_be.gguf       the same writer's big-endian output (one key, one tensor): must be refused
  smollm2_rows.safetensors   with the shared SmolLM2 file (--shared): the first two rows of a few
                       of its tensors (Q8_0, Q4_1, F32) as gguf dequantises them, "<tensor>" (F32)

Block bytes are random with a fixed seed; the f16 scale fields of the quantised types are
overwritten with finite, modest f16 values (|d| in [1e-4, 4]; a few subnormal) so that the
reference's float32 arithmetic is exercised on ordinary numbers. Deterministic: a rerun writes
identical bytes.
"""
import argparse
import json
import os
import struct

import numpy as np
from safetensors.numpy import save_file

import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize

# type -> (number of blocks, byte offsets of the f16 scale fields inside a block)
TYPES = {
    T.F32: (67, []),
    T.F16: (67, []),
    T.BF16: (67, []),
    T.Q4_0: (5, [0]),
    T.Q4_1: (5, [0, 2]),
    T.Q5_0: (5, [0]),
    T.Q5_1: (5, [0, 2]),
    T.Q8_0: (5, [0]),
    T.Q2_K: (3, [80, 82]),
    T.Q3_K: (3, [108]),
    T.Q4_K: (3, [0, 2]),
    T.Q5_K: (3, [0, 2]),
    T.Q6_K: (3, [208]),
}


def f16_scales(rng, n):
    """n finite f16 values: signed, |x| in [1e-4, 4] log-uniform, every 7th one subnormal."""
    mag = np.exp(rng.uniform(np.log(1e-4), np.log(4.0), n))
    sign = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    v = (sign * mag).astype(np.float16)
    sub = np.arange(n) % 7 == 3
    v[sub] = (sign[sub] * rng.integers(1, 1024, sub.sum()) * 2.0**-24).astype(np.float16)
    return v


def make_blocks(rng, qtype):
    n_blocks, scale_offsets = TYPES[qtype]
    block_elems, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
    if qtype == T.F32:
        v = rng.standard_normal(n_blocks).astype(np.float32)
        v[:6] = [0.0, -0.0, np.inf, -np.inf, 1e-40, -3e-45]  # zeros, infinities, subnormals
        return v.view(np.uint8)
    if qtype == T.F16:
        bits = rng.integers(0, 1 << 16, n_blocks, dtype=np.uint32).astype(np.uint16)
        bits[(bits & 0x7C00) == 0x7C00] &= 0xFC00  # NaN payloads -> inf (NaN bits are not compared)
        bits[:4] = [0x0000, 0x8000, 0x0001, 0x83FF]  # zeros and subnormals
        return bits.view(np.uint8)
    if qtype == T.BF16:  # any bits, NaNs included: the reference is a pure bit shift
        return rng.integers(0, 256, 2 * n_blocks, dtype=np.uint32).astype(np.uint8)
    raw = rng.integers(0, 256, (n_blocks, block_bytes), dtype=np.uint32).astype(np.uint8)
    for off in scale_offsets:
        raw[:, off:off + 2] = f16_scales(rng, n_blocks).view(np.uint8).reshape(n_blocks, 2)
    return raw.reshape(-1)


def gen_quants(out, rng):
    tensors = {}
    for qtype in TYPES:
        data = make_blocks(rng, qtype)
        block_elems, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
        expected = dequantize(data.reshape(1, -1), qtype).reshape(-1)
        assert expected.dtype == np.float32
        assert expected.size == data.size // block_bytes * block_elems
        finite = np.isfinite(expected) | (qtype in (T.F32, T.F16, T.BF16))
        assert finite.all(), qtype.name
        tensors[f"{qtype.name}.data"] = data
        tensors[f"{qtype.name}.expected"] = expected
    save_file(tensors, os.path.join(out, "quants.safetensors"))


def gen_writer(out, rng):
    path = os.path.join(out, "writer.gguf")
    w = gguf.GGUFWriter(path, arch="llama")  # writes general.architecture first
    V = gguf.GGUFValueType
    w.add_uint8("test.u8", 250)
    w.add_int8("test.i8", -128)
    w.add_uint16("test.u16", 65535)
    w.add_int16("test.i16", -32768)
    w.add_uint32("test.u32", 4294967295)
    w.add_int32("test.i32", -2147483648)
    w.add_float32("test.f32", 0.1)
    w.add_uint64("test.u64", 18446744073709551615)
    w.add_int64("test.i64", -9223372036854775808)
    w.add_float64("test.f64", 2.0 / 3.0)
    w.add_bool("test.bool_true", True)
    w.add_bool("test.bool_false", False)
    w.add_string("test.string", "héllo, GGUF ✓")
    w.add_string("test.empty_string", "")
    w.add_array("test.strings", ["a", "bc", "", "Ġthe"])
    w.add_array("test.int32s", [1, -2, 3])
    w.add_array("test.float32s", [0.5, -1.25, 3.0e-8])
    w.add_array("test.bools", [True, False, True])
    w.add_key_value("test.uint16s", [1, 2, 65535], V.ARRAY, sub_type=V.UINT16)
    w.add_key_value("test.int64s", [-(1 << 40), 7], V.ARRAY, sub_type=V.INT64)
    w.add_key_value("test.float64s", [1.0 / 3.0, -2.5], V.ARRAY, sub_type=V.FLOAT64)
    w.add_key_value("test.uint8s", [0, 255], V.ARRAY, sub_type=V.UINT8)
    w.add_array("test.nested", [[1, 2, 3], [4], [5, 6]])
    w.add_array("test.nested_strings", [["x", "y"], ["z"]])
    w.add_array("test.nested2", [[[1.5], [2.5, 3.5]], [[4.5]]])
    w.add_uint32("llama.block_count", 2)

    data = {}
    shapes = {  # name -> (type, torch-order shape)
        "f32.weight": (T.F32, (3, 5)),
        "f16.weight": (T.F16, (2, 8)),
        "bf16.weight": (T.BF16, (4,)),
        "q8_0.weight": (T.Q8_0, (3, 64)),
        "q4_1.weight": (T.Q4_1, (2, 32)),
        "q4_k.weight": (T.Q4_K, (2, 256)),
        "q6_k.weight": (T.Q6_K, (1, 256)),
    }
    for name, (qtype, shape) in shapes.items():
        block_elems, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
        n = int(np.prod(shape))
        if qtype == T.F32:
            arr = rng.standard_normal(shape).astype(np.float32)
            w.add_tensor(name, arr)
        elif qtype == T.F16:
            arr = rng.standard_normal(shape).astype(np.float16)
            w.add_tensor(name, arr)
        else:
            raw = make_blocks_for(rng, qtype, n // block_elems).reshape(*shape[:-1], -1)
            w.add_tensor(name, raw, raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    # Read back with the reference reader: the C++ reader must agree on all of it.
    r = gguf.GGUFReader(path)
    kvs = []
    for field in r.fields.values():
        kvs.append({"key": field.name, "type": [t.name for t in field.types],
                    "value": field_value(field)})
    tensors = []
    for t in r.tensors:
        tensors.append({"name": t.name, "type": int(t.tensor_type), "ne": [int(x) for x in t.shape],
                        "offset": int(t.data_offset - r.data_offset), "nbytes": int(t.n_bytes)})
        deq = dequantize(np.asarray(t.data), t.tensor_type).astype(np.float32)
        data[t.name] = np.ascontiguousarray(deq.reshape(-1))
    meta = {"version": int(r.fields["GGUF.version"].parts[-1][0]), "alignment": int(r.alignment),
            "data_offset": int(r.data_offset), "kvs": [kv for kv in kvs if not kv["key"].startswith("GGUF.")],
            "tensors": tensors}
    with open(os.path.join(out, "writer.json"), "w") as f:
        json.dump(meta, f, indent=1, ensure_ascii=False)
        f.write("\n")
    save_file(data, os.path.join(out, "writer_expected.safetensors"))

    be = os.path.join(out, "writer_be.gguf")
    wb = gguf.GGUFWriter(be, arch="llama", endianess=gguf.GGUFEndian.BIG)
    wb.add_tensor("x", np.arange(4, dtype=np.float32))
    wb.write_header_to_file()
    wb.write_kv_data_to_file()
    wb.write_tensors_to_file()
    wb.close()


def make_blocks_for(rng, qtype, n_blocks):
    saved = TYPES[qtype]
    TYPES[qtype] = (n_blocks, saved[1])
    try:
        return make_blocks(rng, qtype)
    finally:
        TYPES[qtype] = saved


def field_value(field):
    """A GGUFReader field as plain JSON: scalars and flat arrays as GGUFReader's contents() gives
    them; arrays as {"elem_type", "items"} decoded from the parts GGUFReader read (it keeps only
    the outer element type of nested arrays), checked against contents() where it is flat."""
    V = gguf.GGUFValueType
    if field.types[0] != V.ARRAY:
        v = field.contents()
        return float(v) if field.types[0] in (V.FLOAT32, V.FLOAT64) else v
    raw = b"".join(np.asarray(p).tobytes() for p in field.parts[3:])
    val, end = decode(raw, 0, 9)
    assert end == len(raw), field.name
    if len(field.types) == 2:
        assert val["items"] == field.contents(), field.name
    return val


FMT = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


def decode(raw, pos, vtype):
    if vtype == 8:
        (n,) = struct.unpack_from("<Q", raw, pos)
        return raw[pos + 8:pos + 8 + n].decode("utf-8"), pos + 8 + n
    if vtype == 9:
        et, n = struct.unpack_from("<IQ", raw, pos)
        pos += 12
        out = []
        for _ in range(n):
            v, pos = decode(raw, pos, et)
            out.append(v)
        return {"elem_type": gguf.GGUFValueType(et).name, "items": out}, pos
    fmt = FMT[int(vtype)]
    (v,) = struct.unpack_from(fmt, raw, pos)
    if vtype in (6, 12):
        v = float(v)
    return v, pos + struct.calcsize(fmt)


SMOLLM2 = "models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_TENSORS = ["token_embd.weight", "blk.0.attn_q.weight", "blk.29.ffn_down.weight", "output_norm.weight"]


def gen_real(out, shared):
    path = os.path.join(shared, SMOLLM2)
    r = gguf.GGUFReader(path)
    by_name = {t.name: t for t in r.tensors}
    rows = {}
    for name in SMOLLM2_TENSORS:
        t = by_name[name]
        data = np.asarray(t.data)
        if data.ndim == 1:
            data = data.reshape(1, -1)
        rows[name] = np.ascontiguousarray(dequantize(data[:2], t.tensor_type).astype(np.float32).reshape(-1))
    save_file(rows, os.path.join(out, "smollm2_rows.safetensors"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "gguf"))
    ap.add_argument("--shared", default=os.environ.get("FATHOM_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "shared")),
                    help="folder holding the real SmolLM2 GGUF file (default $FATHOM_SHARED or ../shared)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(20240611)
    gen_quants(args.out, rng)
    gen_writer(args.out, rng)
    gen_real(args.out, args.shared)
    mine = ["quants.safetensors", "writer.gguf", "writer.json", "writer_expected.safetensors", "writer_be.gguf", "smollm2_rows.safetensors"]
    total = sum(os.path.getsize(os.path.join(args.out, f)) for f in mine)
    print(f"wrote {args.out} ({total} bytes)")


if __name__ == "__main__":
    main()
