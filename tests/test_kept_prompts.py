"""The kept prompts a process writes for the next one (qa/runtimes/kept_prompts.py): read back as
written, for the model that wrote them only, and a file that cannot be trusted is not used."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qa.runtimes import kept_prompts

LAYERS, HEADS, SIZE = 3, 2, 4


def caches(tokens: list[int], seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((1, HEADS, len(tokens), SIZE)).astype(np.float32) for _ in range(LAYERS)]


def load(path: Path, key: str = "model a") -> kept_prompts.Kept:
    return kept_prompts.load(path, key, LAYERS, HEADS, SIZE)


@pytest.fixture
def kept() -> kept_prompts.Kept:
    return [([1, 2, 3], caches([1, 2, 3], 0)), ([4, 5, 6, 7, 8], caches([4, 5, 6, 7, 8], 1))]


def test_prompts_are_read_back_as_they_were_written_oldest_first(tmp_path: Path, kept):
    path = tmp_path / "prompts" / "model.npz"
    kept_prompts.save(path, kept, "model a")
    back = load(path)
    assert [t for t, _ in back] == [t for t, _ in kept]
    assert all(
        np.array_equal(a, b)
        for (_, x), (_, y) in zip(back, kept, strict=True)
        for a, b in zip(x, y, strict=True)
    )
    assert [p.name for p in path.parent.iterdir()] == ["model.npz"], "no part-written file is left beside it"


def test_a_new_file_replaces_the_old_one_whole(tmp_path: Path, kept):
    path = tmp_path / "model.npz"
    kept_prompts.save(path, kept, "model a")
    kept_prompts.save(path, kept[1:], "model a")
    assert [t for t, _ in load(path)] == [[4, 5, 6, 7, 8]]


def test_no_file_or_another_model_s_file_gives_no_prompts_and_no_warning(tmp_path: Path, kept, capsys):
    path = tmp_path / "model.npz"
    assert load(path) == []
    kept_prompts.save(path, kept, "model a")
    assert load(path, key="model b") == []
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("damage", ["cut short", "not a file of arrays", "caches of another shape"])
def test_a_file_that_cannot_be_trusted_is_not_used_and_stderr_says_so(tmp_path: Path, kept, capsys, damage):
    path = tmp_path / "model.npz"
    if damage == "caches of another shape":
        kept_prompts.save(path, [([1, 2, 3], caches([1, 2], 0))], "model a")
    else:
        kept_prompts.save(path, kept, "model a")
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2] if damage == "cut short" else b"hello")
    assert load(path) == []
    assert f"not using the kept prompts in {path}" in capsys.readouterr().err


def test_a_file_damaged_anywhere_is_read_whole_or_not_used(tmp_path: Path, kept, capsys):
    path = tmp_path / "model.npz"
    kept_prompts.save(path, kept, "model a")
    whole, rng = path.read_bytes(), np.random.default_rng(0)
    for trial in range(300):
        data = bytearray(whole)
        if trial % 3 == 0:
            data = data[: int(rng.integers(1, len(data)))]
        elif trial % 3 == 1:
            for at in rng.integers(0, len(data), 3):
                data[at] ^= 1 << int(rng.integers(8))
        else:
            at = int(rng.integers(len(data)))
            data[at : at + 16] = bytes(16)
        path.write_bytes(bytes(data))
        back = load(path)  # never a traceback
        assert back == [] or all(
            np.array_equal(a, b)
            for (_, x), (_, y) in zip(back, kept, strict=True)
            for a, b in zip(x, y, strict=True)
        ), trial
