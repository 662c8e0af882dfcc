"""A packaged GGUF into the CPU runtime's 4-bit model without a float copy: the quantiser against
ONNX Runtime's own, the zero points removed from a real MatMulNBits graph without changing
its output, a tied embedding reading lm_head's weights where they lie, and the small packaged
model's import against transformers' own GGUF loader."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
import torch

from embeddings.errors import DocqaError
from qa import gguf_int4, models


def test_int4_codes_stand_for_the_weights_within_a_step():
    group = gguf_int4.GROUP
    weight = torch.randn(64, 8 * group) * torch.linspace(0.01, 3, 8 * group)
    weight[5, :group] = 0.0  # a block of zeros stays zeros
    codes, scales = gguf_int4.quantise(weight)
    assert codes.shape == (64, 4 * group) and codes.dtype == torch.uint8 and scales.shape == (64, 8)
    back = gguf_int4.dequantised(codes, scales)
    step = scales.abs().repeat_interleave(group, dim=1)
    error = (back - weight).abs()
    # Half a step inside the codes' range; up to one step at its far end (7 steps one way, 8 the other).
    assert torch.all(error <= step + 1e-6) and (error <= step / 2 + 1e-6).float().mean() > 0.99
    assert torch.all(back[5, :group] == 0)
    blocks = weight.reshape(64, 8, group)
    largest = blocks.abs().argmax(dim=2, keepdim=True)  # each block's largest weight is exact
    assert torch.allclose(back.reshape(64, 8, group).gather(2, largest), blocks.gather(2, largest))


def test_int8_codes_stand_for_the_weights_within_a_step_and_far_closer_than_int4():
    group = gguf_int4.GROUP
    weight = torch.randn(16, 4 * group) * torch.linspace(0.01, 3, 4 * group)
    codes, scales = gguf_int4.quantise(weight, bits=8)
    assert codes.shape == (16, 4 * group) and codes.dtype == torch.uint8 and scales.shape == (16, 4)
    back = gguf_int4.dequantised(codes, scales, bits=8)
    step = scales.abs().repeat_interleave(group, dim=1)
    error = (back - weight).abs()
    assert torch.all(error <= step + 1e-6) and (error <= step / 2 + 1e-6).float().mean() > 0.99
    four_bit = gguf_int4.dequantised(*gguf_int4.quantise(weight))
    assert (back - weight).square().mean() < (four_bit - weight).square().mean() / 100


def test_only_a_layer_s_projections_are_written_in_8_bits(tmp_path):
    with pytest.raises(DocqaError, match="only a layer's projections"):  # before the GGUF is read
        gguf_int4.checkpoint(tmp_path / "absent.gguf", tmp_path, "", eight_bit=("lm_head",))
    with pytest.raises(DocqaError, match="4 or 8 bits"):
        gguf_int4.quantise(torch.zeros(2, gguf_int4.GROUP), bits=2)


def test_int4_codes_are_the_ones_onnx_runtime_would_write():
    from onnxruntime.capi._pybind_state import quantize_matmul_4bits

    weight = torch.randn(96, 512)
    codes, scales = gguf_int4.quantise(weight)
    rows, columns = weight.shape
    blocks = columns // gguf_int4.GROUP
    theirs = np.zeros((rows, blocks, gguf_int4.GROUP // 2), np.uint8)
    their_scales = np.zeros((rows, blocks), np.float32)
    zero_points = np.zeros((rows, (blocks + 1) // 2), np.uint8)
    quantize_matmul_4bits(theirs, np.ascontiguousarray(weight.numpy().T), their_scales, zero_points,
                          gguf_int4.GROUP, rows, columns, True)  # fmt: skip
    assert np.allclose(scales.numpy(), their_scales, rtol=1e-6)
    assert (codes.numpy().reshape(theirs.shape) == theirs).mean() > 0.999  # rounding ties may differ


def test_gguf_names_become_hugging_face_names_and_an_unknown_one_is_refused():
    assert gguf_int4.hf_name("blk.3.attn_q.weight") == "model.layers.3.self_attn.q_proj.weight"
    assert gguf_int4.hf_name("blk.0.attn_k.bias") == "model.layers.0.self_attn.k_proj.bias"
    assert gguf_int4.hf_name("token_embd.weight") == "model.embed_tokens.weight"
    assert gguf_int4.hf_name("output.weight") == "lm_head.weight"
    with pytest.raises(DocqaError, match="cannot place: blk.1.ssm_conv1d.weight"):
        gguf_int4.hf_name("blk.1.ssm_conv1d.weight")


def _matmul_nbits(
    weight: torch.Tensor, x: str, y: str, with_zero_points: bool, bits: int = 4
) -> tuple[list, object]:
    """`weight` as a MatMulNBits node from `x` to `y` (its initialisers codes, scales and, all
    the code of 0.0, zero_points) and those initialisers."""
    from onnx import helper, numpy_helper

    rows, columns = weight.shape  # MatMulNBits: N = rows (outputs), K = columns (inputs)
    codes, scales = gguf_int4.quantise(weight, bits=bits)
    blocks, per_byte = columns // gguf_int4.GROUP, 8 // bits
    initialisers = [
        numpy_helper.from_array(codes.numpy().reshape(rows, blocks, gguf_int4.GROUP // per_byte), "codes"),
        numpy_helper.from_array(scales.numpy().reshape(-1), "scales"),
    ]
    if with_zero_points:
        zero = 0x88 if bits == 4 else 0x80
        initialisers.append(
            numpy_helper.from_array(np.full(rows * -(-blocks // per_byte), zero, np.uint8), "zero_points")
        )
    node = helper.make_node("MatMulNBits", [x, *(t.name for t in initialisers)], [y], domain="com.microsoft",
                            K=columns, N=rows, bits=bits, block_size=gguf_int4.GROUP, accuracy_level=4)  # fmt: skip
    return initialisers, node


def _matmul_nbits_model(path, weight: torch.Tensor, with_zero_points: bool, bits: int = 4):
    import onnx
    from onnx import TensorProto, helper

    rows, columns = weight.shape
    initialisers, node = _matmul_nbits(weight, "x", "y", with_zero_points, bits)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, columns])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, rows])], initialisers)  # fmt: skip
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    )
    onnx.save(model, str(path))


@pytest.mark.parametrize("bits", [4, 8])
def test_zero_points_removed_from_the_graph_leave_its_output_as_it_was(tmp_path, bits):
    import onnx
    import onnxruntime

    torch.manual_seed(0)
    weight, x = torch.randn(64, 256), np.random.default_rng(0).standard_normal((1, 256)).astype(np.float32)
    _matmul_nbits_model(tmp_path / "with.onnx", weight, with_zero_points=True, bits=bits)
    _matmul_nbits_model(tmp_path / "without.onnx", weight, with_zero_points=False, bits=bits)
    expected = onnxruntime.InferenceSession(str(tmp_path / "without.onnx")).run(None, {"x": x})[0]

    assert gguf_int4.finish_graph(tmp_path / "with.onnx") == 1
    model = onnx.load(str(tmp_path / "with.onnx"))
    assert [list(n.input) for n in model.graph.node] == [["x", "codes", "scales"]]
    assert [t.name for t in model.graph.initializer] == ["codes", "scales"]
    got = onnxruntime.InferenceSession(str(tmp_path / "with.onnx")).run(None, {"x": x})[0]
    assert np.array_equal(got, expected)
    if bits == 8:  # ONNX Runtime reads the zero points written (128) as it reads none
        _matmul_nbits_model(tmp_path / "kept.onnx", weight, with_zero_points=True, bits=bits)
        assert np.array_equal(
            onnxruntime.InferenceSession(str(tmp_path / "kept.onnx")).run(None, {"x": x})[0], expected
        )
    reference = x @ gguf_int4.dequantised(*gguf_int4.quantise(weight, bits=bits), bits=bits).numpy().T
    assert np.allclose(got, reference, rtol=0.05, atol=0.05 * np.abs(reference).max())  # int8 activations


def _tied_model(path, weight: torch.Tensor) -> None:
    """lm_head and a tied embedding as the model builder writes them: the embedding reads lm_head's
    4-bit weights through a Reshape in the graph and its scales flat; every tensor in one file."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rows, columns = weight.shape
    initialisers, lm_head = _matmul_nbits(weight, "h", "logits", with_zero_points=True)
    initialisers.append(numpy_helper.from_array(np.array([rows, columns // 2], np.int64), "shape"))
    nodes = [
        lm_head,
        helper.make_node("Reshape", ["codes", "shape"], ["reshaped"]),
        helper.make_node(
            "GatherBlockQuantized",
            ["reshaped", "ids", "scales", "zero_points"],
            ["embedded"],
            domain="com.microsoft",
            bits=4,
            block_size=gguf_int4.GROUP,
            gather_axis=0,
            quantize_axis=1,
        ),
    ]
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("h", TensorProto.FLOAT, [1, columns]),
         helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 3])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, rows]),
         helper.make_tensor_value_info("embedded", TensorProto.FLOAT, [1, 3, columns])],
        initialisers,
    )  # fmt: skip
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    )
    onnx.save(model, str(path), save_as_external_data=True, location="model.onnx.data", size_threshold=1024)


def test_a_tied_embedding_reads_lm_head_s_4bit_weights_where_they_lie(tmp_path):
    """The builder's graph for a tied embedding is refused by ONNX Runtime (flat scales) and would
    copy lm_head's weights (the Reshape, folded); after `finish_graph` the embedding reads views
    of lm_head's own bytes and gives its rows' values."""
    import onnx
    import onnxruntime

    torch.manual_seed(0)
    weight = torch.randn(200, 4 * gguf_int4.GROUP)  # scales big enough to lie in the weights file
    _tied_model(tmp_path / "model.onnx", weight)
    with pytest.raises(Exception, match="rank"):
        onnxruntime.InferenceSession(str(tmp_path / "model.onnx"))
    size = (tmp_path / "model.onnx.data").stat().st_size

    assert gguf_int4.finish_graph(tmp_path / "model.onnx") == 1
    model = onnx.load(str(tmp_path / "model.onnx"), load_external_data=False)
    assert [n.op_type for n in model.graph.node] == ["MatMulNBits", "GatherBlockQuantized"]
    assert all(len(n.input) == 3 for n in model.graph.node), "no zero points"
    where = {t.name: {e.key: e.value for e in t.external_data} for t in model.graph.initializer}
    gather = model.graph.node[1]
    assert where[gather.input[0]]["offset"] == where["codes"]["offset"]
    assert where[gather.input[2]]["offset"] == where["scales"]["offset"]
    assert (tmp_path / "model.onnx.data").stat().st_size == size, "the same bytes, nothing written twice"

    ids = np.array([[0, 199, 57]], np.int64)
    h = np.random.default_rng(0).standard_normal((1, weight.shape[1])).astype(np.float32)
    logits, embedded = onnxruntime.InferenceSession(str(tmp_path / "model.onnx")).run(
        None, {"h": h, "ids": ids}
    )
    values = gguf_int4.dequantised(*gguf_int4.quantise(weight)).numpy()
    assert np.allclose(embedded[0], values[ids[0]], atol=1e-6)
    reference = h @ values.T
    assert np.allclose(logits, reference, rtol=0.05, atol=0.05 * np.abs(reference).max())  # int8 activations


def _f32_gguf(matrices: dict[str, np.ndarray]) -> tuple[np.ndarray, list[gguf_int4.Tensor]]:
    """A GGUF's tensor bytes and table, every tensor F32 (ggml type 0)."""
    table, start = [], 0
    for name, matrix in matrices.items():
        table.append(gguf_int4.Tensor(name, matrix.shape, 0, start, matrix.size * 4))
        start += matrix.size * 4
    blob = np.concatenate(
        [np.frombuffer(m.astype(np.float32).tobytes(), np.uint8) for m in matrices.values()]
    )
    return blob, table


def test_an_embedding_written_twice_in_two_precisions_is_one_matrix_and_two_trained_ones_are_two():
    rng = np.random.default_rng(0)
    output = rng.standard_normal((300, 64))
    coarser = output + rng.standard_normal(output.shape) * 0.05  # as llama.cpp's Q4_K beside its Q6_K
    assert gguf_int4.tied_embeddings(
        *_f32_gguf({"token_embd.weight": coarser, "output.weight": output}), rows=128
    )
    other = rng.standard_normal(output.shape)
    assert not gguf_int4.tied_embeddings(
        *_f32_gguf({"token_embd.weight": other, "output.weight": output}), rows=128
    )
    assert gguf_int4.tied_embeddings(*_f32_gguf({"token_embd.weight": output})), "no output: tied"


def test_the_small_packaged_model_imports_as_transformers_reads_its_gguf():
    """The 4-bit model's config, tokenizer and stop tokens are those of the bf16 folder that
    transformers' own GGUF loader wrote, and its graph has no zero points."""
    import onnx
    from transformers import AutoConfig, AutoTokenizer, GenerationConfig

    ours, theirs = models.int4(models.SMALL), models.locate(models.SMALL)
    assert (
        GenerationConfig.from_pretrained(ours).eos_token_id
        == GenerationConfig.from_pretrained(theirs).eos_token_id
    )
    mine, reference = AutoTokenizer.from_pretrained(ours), AutoTokenizer.from_pretrained(theirs)
    chat = [
        {"role": "system", "content": "Answer."},
        {"role": "user", "content": "Où était la réunion? 50,000 t 🙂"},
    ]
    text = reference.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    assert mine.apply_chat_template(chat, add_generation_prompt=True, tokenize=False) == text
    assert mine(text)["input_ids"] == reference(text)["input_ids"]
    built = json.loads((ours / "genai_config.json").read_text())["model"]
    config = AutoConfig.from_pretrained(theirs)
    assert (built["decoder"]["num_hidden_layers"], built["vocab_size"]) == (
        config.num_hidden_layers,
        config.vocab_size,
    )
    graph = onnx.load(str(ours / "model.onnx"), load_external_data=False).graph
    matmuls = [n for n in graph.node if n.op_type == "MatMulNBits"]
    assert matmuls and all(len(n.input) == 3 for n in matmuls)
    embedding = next(n for n in graph.node if n.op_type == "GatherBlockQuantized")
    assert embedding.input[0].startswith("lm_head."), "Qwen2.5 ties its embedding: stored once"


def test_a_packaged_model_whose_checksum_differs_is_not_built(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCQA_CACHE", str(tmp_path))
    tampered = models.PackagedModel(
        **{**models.QWEN_CODER_05B.__dict__, "name": "tampered", "parts": models.QWEN_CODER_05B.parts[:1]}
    )
    with pytest.raises(DocqaError, match="does not match its known checksum"):
        models.packaged_int4(tampered, tmp_path / "models" / "tampered-int4", report=lambda m: None)
    left = [p.name for p in (tmp_path / "models").iterdir() if p.suffix != ".lock"]  # the lock file stays
    assert not left, "nothing half-built is left behind"


def test_one_process_converts_at_a_time_and_the_next_removes_what_a_killed_one_left(tmp_path):
    folder = tmp_path / "models" / "tiny-onnx-int4-0123"
    killed = tmp_path / "models" / f".{folder.name}.4242.tmp"  # a conversion killed midway
    killed.mkdir(parents=True)
    (killed / "model.onnx.data").write_bytes(b"half")
    made, said = [], []

    def make(work):
        made.append(work)
        time.sleep(0.5)  # long enough for the other thread to find the conversion running
        (work / "COMPLETE").write_text("done\n")

    threads = [
        threading.Thread(target=models._made_once, args=(folder, make, "tiny", said.append)) for _ in "ab"
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(made) == 1 and (folder / "COMPLETE").is_file(), "converted once"
    assert any("waiting for it" in m for m in said), "the second says why it waits"
    assert not killed.exists(), "the killed conversion's folder is gone"


def test_the_header_reader_finds_every_tensor_where_gguf_s_own_reader_does(tmp_path):
    from gguf import GGUFReader

    gguf = tmp_path / "small.gguf"
    models.join(models.QWEN_CODER_05B, gguf)
    metadata, table = gguf_int4.read_header(gguf)
    reference = GGUFReader(str(gguf))
    assert metadata["general.architecture"] == "qwen2" and metadata["tokenizer.ggml.tokens"] == 151936
    assert [(t.name, t.kind, t.start, t.size) for t in table] == [
        (t.name, int(t.tensor_type), int(t.data_offset), int(t.n_bytes)) for t in reference.tensors
    ]
    kinds = {t.kind for t in table}
    assert kinds - {0, 1} and 6 in kinds, "quantised tensors, Q5_0 among them (read by gguf's own kernels)"
    q5 = next(t for t in reference.tensors if t.tensor_type == 6)
    ours = next(t for t in table if t.name == q5.name)
    blob = np.memmap(gguf, mode="r", dtype=np.uint8)
    from gguf.quants import dequantize

    assert np.allclose(gguf_int4.dequantise(blob[ours.start : ours.start + ours.size], ours.kind).numpy(),
                       dequantize(q5.data, q5.tensor_type).reshape(-1))  # fmt: skip


def test_weights_quantised_a_few_rows_at_a_time_are_those_of_whole_matrices(tmp_path, monkeypatch):
    from safetensors.torch import load_file

    gguf = tmp_path / "small.gguf"
    models.join(models.QWEN_CODER_05B, gguf)
    written = []
    for piece in (
        1 << 40,
        100 * 896,
    ):  # each matrix whole; 100 rows of 896 weights at a time, the last piece short
        monkeypatch.setattr(gguf_int4, "PIECE", piece)
        out = tmp_path / f"piece-{piece}"
        out.mkdir()
        gguf_int4.checkpoint(gguf, out, models.QWEN_CODER_05B.chat_template)
        written.append(load_file(out / "model.safetensors"))
    whole, pieces = written
    assert whole.keys() == pieces.keys() and len(whole) > 100
    assert all(torch.equal(whole[name], pieces[name]) for name in whole)


def test_a_model_folder_changed_in_its_tokenizer_or_chat_template_is_converted_anew(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    template = tmp_path / "chat_template.jinja"
    template.write_text("{{ messages }}")
    before = models._files_signature(tmp_path)
    template.write_text("{{ messages }} edited")
    assert models._files_signature(tmp_path) != before


def test_a_converted_model_damaged_since_is_converted_again_not_loaded(tmp_path):
    folder, made, said = tmp_path / "models" / "tiny-onnx-int4-0123", [], []

    def make(work):
        made.append(work)
        (work / "model.onnx.data").write_bytes(b"weights" * 100)
        (work / "COMPLETE").write_text("done\n")

    models._made_once(folder, make, "tiny", said.append)
    models._made_once(folder, make, "tiny", said.append)
    assert len(made) == 1, "a whole one is reused"
    with (folder / "model.onnx.data").open("r+b") as data:
        data.truncate(100)  # cut short (a full disk, a copy that stopped)
    models._made_once(folder, make, "tiny", said.append)
    assert len(made) == 2 and (folder / "model.onnx.data").stat().st_size == 700
    assert any("is damaged (model.onnx.data changed); converting it again" in m for m in said)


def test_a_converted_model_kept_without_its_sizes_is_checked_by_its_weights_offsets(tmp_path):
    """A folder made before docqa kept its files' sizes: whole, it is reused (its sizes kept from
    then on); its weights cut short, it is made again rather than loaded."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    def make(work):
        weight = numpy_helper.from_array(np.arange(4096, dtype=np.float32), "weight")
        graph = helper.make_graph([helper.make_node("Identity", ["weight"], ["out"])], "tiny", [],
                                  [helper.make_tensor_value_info("out", onnx.TensorProto.FLOAT, [4096])], [weight])  # fmt: skip
        onnx.save_model(helper.make_model(graph), str(work / "model.onnx"), save_as_external_data=True,
                        all_tensors_to_one_file=True, location="model.onnx.data", size_threshold=0)  # fmt: skip
        (work / "COMPLETE").write_text("done\n")
        made.append(work)

    folder, made, said = tmp_path / "models" / "tiny-onnx-int4-0123", [], []
    models._made_once(folder, make, "tiny", said.append)
    (folder / models.SIZES).unlink()  # as an older docqa left it
    models._made_once(folder, make, "tiny", said.append)
    assert len(made) == 1 and (folder / models.SIZES).is_file(), "whole: reused, its sizes kept now"
    (folder / models.SIZES).unlink()
    with (folder / "model.onnx.data").open("r+b") as data:
        data.truncate(1000)
    models._made_once(folder, make, "tiny", said.append)
    assert len(made) == 2 and (folder / "model.onnx.data").stat().st_size == 4096 * 4


def test_a_safetensors_folder_kept_without_its_sizes_is_checked_by_its_header(tmp_path):
    from safetensors.torch import save_file

    folder = tmp_path / "bf16"
    folder.mkdir()
    save_file({"w": torch.zeros(1024, dtype=torch.bfloat16)}, folder / "model.safetensors")
    (folder / "COMPLETE").write_text("done\n")  # made by an older docqa: no SIZES.json
    assert models._made(folder) and (folder / models.SIZES).is_file(), "whole: its sizes kept from now on"
    (folder / models.SIZES).unlink()
    with (folder / "model.safetensors").open("r+b") as weights:
        weights.truncate(500)
    assert not models._made(folder) and not (folder / models.SIZES).exists(), "cut short: made again"
