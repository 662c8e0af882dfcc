"""A packaged GGUF made ready for the CPU runtime without a float copy of its weights.

The GGUF's quantised blocks are read one tensor at a time (`read_header` finds them without
decoding the vocabulary; transformers' torch kernels dequantise them, gguf's own numpy ones
where transformers has none) and quantised again into what the runtime runs: symmetric int4 in
blocks of GROUP along each row, one float scale per block, the layout ONNX Runtime's
MatMulNBits reads (the layers' modules named to `checkpoint` in 8 bits instead, in blocks of the
same size: make bench measures them against the shipped model). The result is a checkpoint in
Olive's quantised format, which onnxruntime-genai's model builder turns into the ONNX model as
it is, instead of building a float32 graph of the whole model and quantising that (about 14 GB
and 80 s for the 1.5B model, on top of a bf16 copy).

A matrix the model ties (its embedding, which is also its lm_head) is written once, as lm_head's
4-bit weights, which the builder's embedding reads: llama.cpp stores it twice, in two precisions,
and the builder would quantise the second copy itself in numpy (10 s for Qwen's 150k rows).

Every code is written with the zero point 8 (128 in 8 bits), the value MatMulNBits assumes when
it has none; the builder's fused q/k/v projection wants zero points to concatenate, so they are
written and then removed from the built graph (`finish_graph`): ONNX Runtime's AVX2 kernel for
one row of activations is wrong with explicit zero points (onnxruntime issue 29853).
"""

from __future__ import annotations

import re
import struct
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from embeddings.errors import DocqaError
from qa.runtimes.ort import BLOCK

GROUP = BLOCK  # weights per block, each with its own scale (what the builder is told too)
ZERO_POINT = 8  # the code of 0.0: codes 0..15 stand for -8..7 times the block's scale
PIECE = 1 << 21  # weights dequantised and quantised at a time


def format_name(group: int = GROUP, eight_bit: tuple[str, ...] = ()) -> str:
    """What this module writes; a change to it makes new cached models (see qa/models.py int4)."""
    return f"olive-int4-symmetric-g{group}-v2" + "".join(f"+{name}:8" for name in eight_bit)


# GGUF tensor names (llama.cpp's) -> Hugging Face names, for the architectures whose weights
# llama.cpp stores unpermuted (llama's q and k are permuted for its rotary layout, qwen2's are not).
ARCHITECTURES = ("qwen2",)
_LAYER = {
    "attn_norm": "input_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_norm": "post_attention_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
_TOP = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}


def hf_name(gguf_name: str) -> str:
    """`blk.3.attn_q.weight` -> `model.layers.3.self_attn.q_proj.weight`."""
    module, _, kind = gguf_name.rpartition(".")
    if module in _TOP:
        return f"{_TOP[module]}.{kind}"
    layer = re.fullmatch(r"blk\.(\d+)\.(\w+)", module)
    if layer is None or layer.group(2) not in _LAYER:
        raise DocqaError(f"the GGUF holds a tensor docqa cannot place: {gguf_name}")
    return f"model.layers.{layer.group(1)}.{_LAYER[layer.group(2)]}.{kind}"


class Tensor(NamedTuple):
    name: str
    shape: tuple[int, ...]  # in torch order (GGUF lists the fastest-moving dimension first)
    kind: int  # ggml type
    start: int  # byte offset in the file
    size: int  # bytes


def read_header(gguf: Path) -> tuple[dict, list[Tensor]]:
    """The GGUF's scalar metadata (arrays by their length) and its table of tensors, without
    decoding the vocabulary (gguf's own reader decodes every token, 10 s for Qwen's 150k)."""
    from gguf.constants import GGML_QUANT_SIZES, GGUFValueType

    blob = np.memmap(gguf, mode="r", dtype=np.uint8)
    scalars = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
    position = 0

    def take(fmt: str):
        nonlocal position
        values = struct.unpack_from("<" + fmt, blob, position)
        position += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    def text() -> str:
        nonlocal position
        length = take("Q")
        position += length
        return bytes(blob[position - length : position]).decode("utf-8")

    def value(kind: int):
        nonlocal position
        if kind in scalars:
            return take(scalars[kind])
        if kind == GGUFValueType.STRING:
            return text()
        item, count = take("IQ")
        if item in scalars:
            position += count * struct.calcsize(scalars[item])
        else:  # strings (tokens, merges) or nested arrays: walked, not kept
            for _ in range(count):
                value(item)
        return count

    magic, version, tensor_count, key_count = take("4sIQQ")
    if magic != b"GGUF" or version < 2:
        raise DocqaError(f"{gguf} is not a GGUF file of version 2 or later")
    metadata = {}
    for _ in range(key_count):
        key = text()
        metadata[key] = value(take("I"))
    table = []
    for _ in range(tensor_count):
        name = text()
        dims = take(f"{take('I')}Q")
        dims = (dims,) if isinstance(dims, int) else dims
        kind, offset = take("IQ")
        if kind not in GGML_QUANT_SIZES:
            raise DocqaError(
                f"{gguf.name}: {name} is of a ggml type ({kind}) gguf cannot read: pip install -U gguf"
            )
        block, size = GGML_QUANT_SIZES[kind]
        table.append((name, tuple(reversed(dims)), kind, offset, int(np.prod(dims)) // block * size))
    alignment = metadata.get("general.alignment", 32)
    data = (position + alignment - 1) // alignment * alignment
    return metadata, [
        Tensor(name, shape, kind, data + offset, size) for name, shape, kind, offset, size in table
    ]


def dequantise(raw: np.ndarray, kind: int) -> torch.Tensor:
    """The float32 values of one tensor's GGUF bytes: transformers' torch kernels where they
    know the type (they use every core), gguf's own numpy ones for the rest."""
    from transformers.integrations.gguf.dequant import GGML_BLOCK, dequantize

    if kind == 0:  # F32
        return torch.from_numpy(raw.copy().view(np.float32))
    if kind == 1:  # F16
        return torch.from_numpy(raw.copy().view(np.float16)).float()
    if kind in GGML_BLOCK:
        return dequantize(torch.from_numpy(raw.copy()), kind, torch.float32)
    from gguf.quants import dequantize as numpy_dequantize

    return torch.from_numpy(numpy_dequantize(raw, kind).astype(np.float32).reshape(-1))


def quantise(weight: torch.Tensor, group: int = GROUP, bits: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int4 (or int8) of a [rows, columns] float matrix, in blocks of `group` along each
    row: (codes [rows, columns / 2] packed two to a byte, low nibble first, or [rows, columns] one
    to a byte; scales [rows, blocks]). A block's scale maps its largest-magnitude weight to the
    lowest code (-8 or -128), as ONNX Runtime's own quantiser."""
    rows, columns = weight.shape
    if columns % group:
        raise DocqaError(f"a weight matrix of {columns} columns does not split into blocks of {group}")
    zero = _zero_point(bits)
    blocks = weight.float().reshape(rows, columns // group, group)
    high, low = blocks.amax(dim=2, keepdim=True), blocks.amin(dim=2, keepdim=True)
    extreme = torch.where(-low > high, low, high)
    scales = extreme / -zero
    inverse = torch.where(extreme == 0, 0.0, -zero / extreme)
    codes = blocks.mul(inverse).round_().add_(zero).clamp_(0, 2 * zero - 1).to(torch.uint8)
    if bits == 8:
        return codes.reshape(rows, columns), scales.reshape(rows, columns // group)
    pairs = codes.reshape(rows, columns // 2, 2)
    return pairs[..., 0] | (pairs[..., 1] << 4), scales.reshape(rows, columns // group)


def dequantised(codes: torch.Tensor, scales: torch.Tensor, bits: int = 4) -> torch.Tensor:
    """The float matrix `quantise` stands for (what MatMulNBits multiplies with)."""
    if bits == 4:
        low, high = (codes & 0xF).int(), (codes >> 4).int()
        values = torch.stack([low, high], dim=-1).reshape(codes.shape[0], -1) - ZERO_POINT
    else:
        values = codes.int() - _zero_point(bits)
    rows, blocks = scales.shape
    return (values.reshape(rows, blocks, -1) * scales[..., None]).reshape(values.shape)


def _zero_point(bits: int) -> int:
    if bits not in (4, 8):
        raise DocqaError(f"weights are written in 4 or 8 bits, not {bits}")
    return 1 << (bits - 1)


def checkpoint(
    gguf: Path, out: Path, chat_template: str, group: int = GROUP, eight_bit: tuple[str, ...] = ()
) -> int:
    """Write into `out` the Olive-format 4-bit checkpoint of `gguf` in blocks of `group`, with its
    config, tokenizer and generation config, one tensor at a time (progress on stderr); the
    modules named in `eight_bit` (in every layer: "q_proj", "o_proj", ...) in 8 bits. Returns
    its layer count."""
    from safetensors.torch import save_file
    from tqdm import tqdm

    projections = {module.split(".")[-1] for module in _LAYER.values() if module.endswith("_proj")}
    if set(eight_bit) - projections:
        raise DocqaError(
            f"only a layer's projections ({', '.join(sorted(projections))}) are written in 8 bits"
        )
    metadata, table = read_header(gguf)
    architecture = metadata.get("general.architecture")
    if architecture not in ARCHITECTURES:
        raise DocqaError(
            f"{gguf.name} is a {architecture} model; docqa imports {', '.join(ARCHITECTURES)} GGUFs. "
            "Pass its Hugging Face folder or id with --model instead."
        )
    blob = np.memmap(gguf, mode="r", dtype=np.uint8)
    tied = tied_embeddings(blob, table)
    if tied:  # written once, as lm_head's 4-bit weights, which the builder's embedding reads
        found = {t.name: t for t in table}
        matrix = found.get("output.weight") or found["token_embd.weight"]
        table = [t for t in table if t.name not in ("token_embd.weight", "output.weight")]
        table.append(matrix._replace(name="output.weight"))
    config = _config(metadata, tied)
    modules = (hf_name(t.name).removesuffix(".weight") for t in table)
    wide = {module for module in modules if module.split(".")[-1] in eight_bit}
    config.quantization_config = {"quant_method": "olive", "bits": 4, "group_size": group,
                                  "overrides": {name: {"bits": 8, "group_size": group} for name in sorted(wide)}}  # fmt: skip
    config.save_pretrained(out)
    _generation_config(config).save_pretrained(out)
    _tokenizer(gguf, config, chat_template).save_pretrained(out)

    tensors: dict[str, torch.Tensor] = {}
    for info in tqdm(table, desc="quantising weights", unit="tensor", file=sys.stderr):
        name = hf_name(info.name)
        if len(info.shape) == 1:  # norms and biases stay float
            values = dequantise(blob[info.start : info.start + info.size], info.kind)
            tensors[name] = values[: info.shape[0]]
            continue
        rows, columns = info.shape
        if name == "model.embed_tokens.weight":  # a lookup table, quantised by the builder as Gather
            embedding = tensors[name] = torch.empty(info.shape, dtype=torch.bfloat16)
            for first, end, values in _rows(blob, info):
                embedding[first:end] = values
            continue
        base = name.removesuffix(".weight")
        bits = 8 if base in wide else 4
        per_byte = 8 // bits
        codes = tensors[f"{base}.qweight"] = torch.empty((rows, columns // per_byte), dtype=torch.uint8)
        scales = tensors[f"{base}.scales"] = torch.empty((rows, columns // group))
        for first, end, values in _rows(blob, info):
            codes[first:end], scales[first:end] = quantise(values, group, bits)
        groups, zero = columns // group, _zero_point(bits)
        tensors[f"{base}.qzeros"] = torch.full(
            (rows, -(-groups // per_byte)), zero if bits == 8 else zero | zero << 4, dtype=torch.uint8
        )
    save_file(tensors, str(out / "model.safetensors"))
    return config.num_hidden_layers


def tied_embeddings(blob: np.ndarray, table: list[Tensor], rows: int = 2048) -> bool:
    """Whether the model's embedding and its lm_head are one matrix. A GGUF without `output`
    ties them; llama.cpp also writes a tied matrix twice, each in its own precision (Q4_K_M:
    the embedding Q4_K, the output Q6_K), which its first `rows` rows tell apart from two
    trained matrices (cosine 0.997 row by row for Qwen2.5's, near 0 for unrelated ones)."""
    found = {t.name: t for t in table}
    if "output.weight" not in found:
        return True
    embedding, output = found.get("token_embd.weight"), found["output.weight"]
    if embedding is None or embedding.shape != output.shape:
        return False
    a, b = (next(_rows(blob, t, rows))[2] for t in (embedding, output))
    return float(torch.nn.functional.cosine_similarity(a, b, dim=1).mean()) > 0.99


def _rows(blob: np.ndarray, info: Tensor, rows: int | None = None) -> Iterator[tuple[int, int, torch.Tensor]]:
    """A matrix's float32 values a few rows at a time, (first row, end row, values): `rows` at a
    time, or by default pieces of about PIECE weights, which stay in the CPU's caches and reuse
    memory, where whole matrices (up to 930 MB for lm_head) would fault in fresh pages for every
    step of the arithmetic."""
    from gguf.constants import GGML_QUANT_SIZES

    total, columns = info.shape
    block, size = GGML_QUANT_SIZES[info.kind]
    row_bytes = columns // block * size  # a GGUF row is a whole number of blocks
    step = rows or max(1, PIECE // columns)
    for first in range(0, total, step):
        end = min(total, first + step)
        raw = blob[info.start + first * row_bytes : info.start + end * row_bytes]
        yield first, end, dequantise(raw, info.kind)[: (end - first) * columns].reshape(end - first, columns)


def finish_graph(model_file: Path) -> int:
    """Two fixes to the builder's graph, in place. The zero points (all ZERO_POINT, or 128 in 8
    bits) go from its MatMulNBits nodes, which then assume them: the same values, the symmetric
    kernels; their bytes stay unused in the weights file (under 3% of it). A tied embedding
    (GatherBlockQuantized) reads lm_head's 4-bit weights and scales through views of the same
    bytes, shaped as it wants them ([vocabulary, columns / 2] and [vocabulary, blocks]): the
    builder reshapes the weights in the graph, which ONNX Runtime would fold into a 146 MB copy,
    and passes the scales flat, as MatMulNBits takes them, which ONNX Runtime refuses. Returns how
    many zero points were removed."""
    import onnx

    model = onnx.load(str(model_file), load_external_data=False)
    graph, dropped = model.graph, set()
    for node in graph.node:
        if node.op_type == "MatMulNBits" and len(node.input) > 3 and node.input[3]:
            if len(node.input) > 4:
                raise DocqaError(f"{node.name} has inputs past its zero points; it was not changed")
            dropped.add(node.input[3])
            del node.input[3]
    stored = {tensor.name: tensor for tensor in graph.initializer}
    made_by = {output: node for node in graph.node for output in node.output}
    matmul_of = {node.input[1]: node for node in graph.node if node.op_type == "MatMulNBits"}
    for node in [n for n in graph.node if n.op_type == "GatherBlockQuantized"]:
        reshape = made_by.get(node.input[0])
        if reshape is None or reshape.op_type != "Reshape" or reshape.input[0] not in matmul_of:
            continue  # an embedding of its own
        size = {a.name: onnx.helper.get_attribute_value(a) for a in matmul_of[reshape.input[0]].attribute}
        rows, blocks = size["N"], -(-size["K"] // size["block_size"])  # rows padded to whole blocks
        node.input[0] = _view(graph, stored[reshape.input[0]], [rows, blocks * size["block_size"] // 2])
        node.input[2] = _view(graph, stored[node.input[2]], [rows, blocks])
        if len(node.input) == 4 and node.input[3] in dropped:
            del node.input[3]
        graph.node.remove(reshape)
    used = {name for node in graph.node for name in node.input} | {value.name for value in graph.output}
    for node in [n for n in graph.node if n.op_type == "Constant" and n.output[0] not in used]:
        graph.node.remove(node)  # the Reshape's shape
    kept = [tensor for tensor in graph.initializer if tensor.name in used]  # the zero points
    del graph.initializer[:]
    graph.initializer.extend(kept)
    onnx.save(model, str(model_file))
    return len(dropped)


def _view(graph, tensor, dims: list[int]) -> str:
    """A second initializer over `tensor`'s bytes in the weights file, shaped `dims`."""
    import onnx

    view = onnx.TensorProto()
    view.CopyFrom(tensor)
    view.name = f"{tensor.name}/{'x'.join(map(str, dims))}"
    del view.dims[:]
    view.dims.extend(dims)
    graph.initializer.append(view)
    return view.name


def _config(metadata: dict, tied: bool):
    """The transformers config the GGUF's metadata describes, through transformers' own map of
    GGUF keys (the same values its GGUF loader reads, without parsing the vocabulary)."""
    from transformers import AutoConfig
    from transformers.integrations.ggml import GGUF_CONFIG_MAPPING
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    architecture = metadata["general.architecture"]
    values = {
        "architectures": [
            MODEL_FOR_CAUSAL_LM_MAPPING_NAMES[architecture]
        ],  # the builder picks its graph by this
        "tie_word_embeddings": tied,
    }
    for section in (architecture, "tokenizer"):
        for key, target in GGUF_CONFIG_MAPPING[section].items():
            if target and f"{section}.{key}" in metadata:
                values[target] = metadata[f"{section}.{key}"]
    values.setdefault("vocab_size", metadata["tokenizer.ggml.tokens"])  # an array's length, unparsed
    return AutoConfig.for_model(architecture, **values)


def _generation_config(config):
    from transformers import GenerationConfig

    return GenerationConfig.from_model_config(config)


def _tokenizer(gguf: Path, config, chat_template: str):
    """The tokenizer transformers' GGUF loader builds, from the vocabulary and merges alone."""
    from transformers.integrations.gguf.gguf_tokenizer_mapping import (
        convert_gguf_tokenizer,
        get_gguf_tokenizer,
    )
    from transformers.models.auto.tokenization_auto import TOKENIZER_MAPPING_NAMES, tokenizer_class_from_name

    architecture, vocabulary, settings = get_gguf_tokenizer(str(gguf))
    backend, more = convert_gguf_tokenizer(architecture, vocabulary)
    kind = tokenizer_class_from_name(TOKENIZER_MAPPING_NAMES[config.model_type])
    tokenizer = kind(tokenizer_object=backend, **settings, **more)
    if not tokenizer.chat_template:
        tokenizer.chat_template = chat_template
    return tokenizer
