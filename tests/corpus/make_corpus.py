#!/usr/bin/env python3
"""Regenerates the seed corpus of the checkpoint parsers (tests/corpus/<parser>/).
ok-* files must parse, bad-* must be refused with a one-line message; both are
fuzzing seeds (make fuzz). Run from anywhere: python3 tests/corpus/make_corpus.py"""
import json, os, struct

HERE = os.path.dirname(os.path.abspath(__file__))


def put(parser, name, data):
    d = os.path.join(HERE, parser)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def f32(n, start=0.0):
    return struct.pack(f"<{n}f", *[start + 0.01 * i for i in range(n)])


# ---------------------------------------------------------------- json
put("json", "ok-object.json", '{"a": 1, "b": [true, false, null], "c": {"d": "e"}}')
put("json", "ok-numbers.json", '[0, -1, 1.5, -2.5e-3, 1E10, 9223372036854775807, 1e308]')
put("json", "ok-strings.json", r'["\u00e9\ud83d\ude00", "\"\\\/\b\f\n\r\t", "plain"]')
put("json", "bad-trailing.json", '{"a": 1} x')
put("json", "bad-unterminated.json", '{"a": "b')
put("json", "bad-deep.json", "[" * 65 + "]" * 65)
put("json", "bad-surrogate.json", r'["\udc00"]')
put("json", "bad-control.json", '["a\x01b"]')
put("json", "bad-leading-zero.json", "[012]")
put("json", "bad-nul-escape.json", r'["a\u0000b"]')
put("json", "bad-huge-number.json", "[1e999]")


# --------------------------------------------------------- safetensors
def st(header, data=b"", length=None):
    h = json.dumps(header, separators=(",", ":")).encode() if not isinstance(header, bytes) else header
    return struct.pack("<Q", len(h) if length is None else length) + h + data


small = {"__metadata__": {"format": "pt"},
         "a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
         "b": {"dtype": "BF16", "shape": [4], "data_offsets": [24, 32]}}
put("safetensors", "ok-small.safetensors", st(small, bytes(32)))
put("safetensors", "ok-empty.safetensors", st({}))
put("safetensors", "ok-unknown-dtype.safetensors",
    st({"x": {"dtype": "F4X", "shape": [3], "data_offsets": [0, 2]}}, bytes(2)))
put("safetensors", "bad-overlap.safetensors",
    st({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, bytes(12)))
put("safetensors", "bad-len-past-end.safetensors", st({}, length=1000))
put("safetensors", "bad-huge-len.safetensors", st({}, length=1 << 40))
put("safetensors", "bad-shape-overflow.safetensors",
    st({"a": {"dtype": "F32", "shape": [1 << 40, 1 << 40], "data_offsets": [0, 0]}}))
put("safetensors", "bad-span.safetensors",
    st({"a": {"dtype": "F16", "shape": [3], "data_offsets": [0, 4]}}, bytes(4)))
put("safetensors", "bad-outside.safetensors",
    st({"a": {"dtype": "U8", "shape": [9], "data_offsets": [0, 9]}}, bytes(4)))
put("safetensors", "bad-dup.safetensors",
    st(b'{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},'
       b'"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}', bytes(2)))
put("safetensors", "bad-not-object.safetensors", st([1, 2]))
put("safetensors", "bad-short.safetensors", b"\x05\x00\x00")


# ------------------------------------------------------------- llama2c
def l2c_v0(dim, hidden, layers, heads, kv, vocab, seq, shared=True):
    hd = dim // heads
    kvd = hd * kv
    n = vocab * dim + layers * (2 * dim + 2 * dim * dim + 2 * kvd * dim + 3 * dim * hidden) + dim
    n += seq * hd
    if not shared:
        n += vocab * dim
    return struct.pack("<7i", dim, hidden, layers, heads, kv, vocab if shared else -vocab, seq) + f32(n)


def l2c_v1(dim, hidden, layers, heads, kv, vocab, seq, shared):
    hd = dim // heads
    kvd = hd * kv
    n = vocab * dim + layers * (2 * dim + 2 * dim * dim + 2 * kvd * dim + 3 * dim * hidden) + dim
    if not shared:
        n += vocab * dim
    head = struct.pack("<Ii7iB", 0x616B3432, 1, dim, hidden, layers, heads, kv, vocab, seq, shared)
    return head + bytes(256 - len(head)) + f32(n)


put("llama2c", "ok-v0-shared.bin", l2c_v0(4, 6, 1, 2, 2, 8, 2))
put("llama2c", "ok-v0-separate.bin", l2c_v0(4, 6, 2, 2, 1, 8, 3, shared=False))
put("llama2c", "ok-v1-shared.bin", l2c_v1(4, 6, 1, 2, 2, 8, 2, 1))
put("llama2c", "ok-v1-separate.bin", l2c_v1(4, 6, 1, 2, 2, 8, 2, 0))
put("llama2c", "bad-truncated.bin", l2c_v0(4, 6, 1, 2, 2, 8, 2)[:-4])
put("llama2c", "bad-neg-dim.bin", struct.pack("<7i", -4, 6, 1, 2, 2, 8, 2) + f32(100))
put("llama2c", "bad-huge.bin", struct.pack("<7i", 1 << 24, 1 << 24, 1 << 24, 1 << 23, 1 << 23, 1 << 24, 1 << 24))
put("llama2c", "bad-odd-head.bin", struct.pack("<7i", 6, 6, 1, 2, 2, 8, 2) + f32(300))
put("llama2c", "bad-v2.bin", struct.pack("<Ii", 0x616B3432, 2) + bytes(248))
put("llama2c", "bad-short.bin", b"\x01\x02\x03")


# ----------------------------------------------------------- hf_config
llama = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
         "hidden_size": 64, "intermediate_size": 176, "num_hidden_layers": 2,
         "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 512,
         "max_position_embeddings": 128, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
         "tie_word_embeddings": False, "rope_scaling": None}
put("hf_config", "ok-llama.json", json.dumps(llama, indent=2))
put("hf_config", "ok-minimal.json", json.dumps({k: llama[k] for k in (
    "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size")}))
put("hf_config", "bad-rope-scaling.json", json.dumps(dict(llama, rope_scaling={"type": "linear", "factor": 2})))
put("hf_config", "bad-string-dim.json", json.dumps(dict(llama, hidden_size="64")))
put("hf_config", "bad-kv.json", json.dumps(dict(llama, num_key_value_heads=3)))
put("hf_config", "bad-bias.json", json.dumps(dict(llama, attention_bias=True)))
put("hf_config", "bad-missing.json", json.dumps({"hidden_size": 64}))

# -------------------------------------------------------- shard_config
shard = {"format": "ryz-shard", "format_version": 1, "source": "synthetic:tiny", "tp": 2,
         "model": {"dim": 64, "hidden": 176, "n_layers": 2, "n_heads": 4, "n_kv_heads": 4,
                   "vocab": 512, "seq_len": 128, "norm_eps": 1e-5, "rope_base": 10000},
         "files": [{"file": f"rank{r}.safetensors", "sha256": "0" * 63 + str(r)} for r in range(2)]}
put("shard_config", "ok-tp2.json", json.dumps(shard, indent=2))
put("shard_config", "bad-files-count.json", json.dumps(dict(shard, tp=4)))
put("shard_config", "bad-sha.json", json.dumps(dict(shard, files=[{"file": "rank0.safetensors", "sha256": "xyz"},
                                                                   shard["files"][1]])))
put("shard_config", "bad-version.json", json.dumps(dict(shard, format_version=2)))
put("shard_config", "bad-path.json", json.dumps(dict(shard, files=[{"file": "/etc/passwd", "sha256": "0" * 64},
                                                                    shard["files"][1]])))


# ----------------------------------------------------------- tokenizer
def tokenizer(pieces, max_len=None):
    max_len = max_len or max(len(p) for p, _ in pieces)
    out = struct.pack("<i", max_len)
    for p, s in pieces:
        out += struct.pack("<fi", s, len(p)) + p
    return out


base = [(b"<unk>", 0.0), (b"\n<s>\n", 0.0), (b"\n</s>\n", 0.0)] + \
       [(f"<0x{i:02X}>".encode(), 0.0) for i in range(256)]
words = [b" ", b"H", b"e", b"l", b"o", b"w", b"r", b"d", b"z", b"He", b"ll", b"llo", b"Hello", b" w",
         b"or", b"ld", b"orld", b" world", b"zz", "ö".encode(), "你".encode()]
words += [b"x%d" % i for i in range(300 - len(base) - len(words))]
tok = tokenizer(base + [(w, -float(i)) for i, w in enumerate(words)])
put("tokenizer", "ok-300.bin", tok)
put("tokenizer", "bad-truncated.bin", tok[:-3])
put("tokenizer", "bad-long-piece.bin", struct.pack("<i", 2) + tok[4:])
put("tokenizer", "bad-nan-score.bin", tokenizer([(b"a", float("nan"))] * 300))
put("tokenizer", "bad-no-space.bin", tokenizer(base + [(b"q%d" % i, 0.0) for i in range(300 - len(base))]))
