"""`docqa index --ray` on a real local Ray cluster: the index it writes is the one a build on one
machine writes, it embeds only what changed, and it survives an embedding actor killed mid-build."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import ray
import ray.data
from ray.exceptions import RayError

from embeddings import store
from embeddings.builder import build
from embeddings.config import Config
from embeddings.errors import ClusterError, ConfigError
from embeddings.index import Index
from embeddings.ray_build import _failed, _reachable, actor_threads, default_actors
from embeddings.segment import SegmentWriter
from embeddings.verify import verify
from tests import documents_corpus
from tests.conftest import ray_workers

ROOT = Path(__file__).resolve().parent.parent
DOCQA = [sys.executable, "-m", "qa.cli"]
NOTES = {
    f"notes/harvest-{n}.txt": f"Harvest report {n}. " + "The river flooded the valley in spring. " * (n % 4 + 1)
    + f"Farmers in village {n} lost {n * 10} tonnes of wheat, and the cooperative bought seed in bulk."
    for n in range(12)
}  # fmt: skip


def corpus(folder: Path, notes: int = 12) -> Path:
    """The mixed test collection (text, PDF pages, Word, Markdown with a date), short notes, a
    JSON Lines file of three documents and a file with no text."""
    documents_corpus.make(folder)
    for name, text in list(NOTES.items())[:notes]:
        (folder / name).write_text(text)
    records = [{"id": f"faq-{i}", "title": f"Question {i}", "text": f"The canal opened in year {1990 + i}."}
               for i in range(3)]  # fmt: skip
    (folder / "faq.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (folder / "blank.txt").write_text("   \n")
    return folder


def contents(index_dir: Path) -> tuple[list, list, np.ndarray]:
    """What a reader of the index sees: its documents, its chunks in row order, their vectors."""
    index = Index.open(index_dir)
    try:
        docs = sorted((d.id, d.title, d.source, d.hash, d.chunks, json.dumps(d.metadata, sort_keys=True))
                      for d in index.documents())  # fmt: skip
        chunks = index.table.chunks(list(range(sum(len(v.segment) for v in index.views))))
        stored = np.concatenate([v.segment.vectors.get(np.arange(len(v.segment))) for v in index.views])
        return docs, [(c.doc_id, c.start, c.end, c.text) for c in chunks], stored[[c.row for c in chunks]]
    finally:
        index.close()


def tolerance(index_dir: Path) -> float:
    """How far one chunk's vector may differ between two builds: float32 rounding, or, where the
    embedder runs in bf16 (CPUs with AVX512-BF16 or AMX), what bf16 rounds differently when the
    same text is embedded in another batch (measured up to about 0.002)."""
    index = Index.open(index_dir)
    dtype = index.manifest["embedding"]["dtype"]
    index.close()
    return 1e-5 if dtype == "float32" else 1e-2


def assert_same_index(ours: Path, theirs: Path) -> None:
    """Same documents, chunks in the same rows, vectors within float tolerance, same manifest."""
    (docs, chunks, vectors), (docs2, chunks2, vectors2) = contents(ours), contents(theirs)
    assert docs == docs2
    assert chunks == chunks2
    assert np.abs(vectors - vectors2).max() < tolerance(ours)
    a, b = Index.open(ours), Index.open(theirs)
    for key in ("format", "counts", "embedding", "chunker"):
        assert a.manifest[key] == b.manifest[key], key
    shape = lambda m: [(s["documents"], s["chunks"], sorted(s["deleted"])) for s in m["segments"]]  # noqa: E731
    assert shape(a.manifest) == shape(b.manifest)
    a.close(), b.close()


def assert_same_content(ours: Path, theirs: Path) -> None:
    """The same chunks with the same vectors, wherever their rows are."""
    (docs, chunks, vectors), (docs2, chunks2, vectors2) = contents(ours), contents(theirs)
    assert [d[:5] for d in docs] == [d[:5] for d in docs2]
    mine, other = dict(zip(chunks, vectors, strict=True)), dict(zip(chunks2, vectors2, strict=True))
    assert mine.keys() == other.keys()
    assert max(np.abs(mine[k] - other[k]).max() for k in mine) < tolerance(ours)


def test_a_build_on_ray_is_the_build_of_one_machine(ray_cluster, minilm, tmp_path):
    docs = corpus(tmp_path / "docs")
    local = build(Config(docs=docs, index_dir=tmp_path / "local"), minilm, progress=False)
    on_ray = build(Config(docs=docs, index_dir=tmp_path / "ray"), progress=False, cluster=ray_cluster)
    assert (on_ray.added, on_ray.embedded, on_ray.chunks) == (local.added, local.embedded, local.chunks)
    assert [s.source for s in on_ray.skipped] == [s.source for s in local.skipped] == ["blank.txt"]
    assert_same_index(tmp_path / "ray", tmp_path / "local")
    verdict = verify(tmp_path / "ray", minilm, sample=16)
    assert verdict.ok, verdict.problems


def change(docs: Path) -> None:
    (docs / "notes/harvest-0.txt").write_text(
        "Harvest report 0. The barley was sold in Herat at a good price."
    )
    (docs / "notes/harvest-1.txt").unlink()
    (docs / "school.md").write_text("# School\n\nA new school opened in Kettleby. It teaches forty children.")


def test_an_update_on_ray_embeds_only_what_changed(ray_cluster, minilm, tmp_path):
    docs = corpus(tmp_path / "docs")
    for index in ("ray", "local"):  # the same first build on one machine, then the update two ways
        build(Config(docs=docs, index_dir=tmp_path / index), minilm, progress=False)
    change(docs)
    report = build(Config(docs=docs, index_dir=tmp_path / "ray"), progress=False, cluster=ray_cluster)
    assert (report.added, report.changed, report.removed) == (1, 1, 1)
    assert report.embedded == 2  # one short chunk each
    local = build(Config(docs=docs, index_dir=tmp_path / "local"), minilm, progress=False)
    assert (local.added, local.changed, local.removed, local.embedded) == (1, 1, 1, 2)
    assert_same_index(tmp_path / "ray", tmp_path / "local")
    build(Config(docs=docs, index_dir=tmp_path / "fresh"), minilm, progress=False)
    assert_same_content(tmp_path / "ray", tmp_path / "fresh")
    again = build(Config(docs=docs, index_dir=tmp_path / "ray"), progress=False, cluster=ray_cluster)
    assert again.up_to_date and again.embedded == 0
    assert verify(tmp_path / "ray", minilm, sample=8).ok


def embedding_actors() -> set[int]:
    return ray_workers("_Embed")


def test_an_embedding_actor_killed_mid_build_is_replaced_and_the_index_is_whole(
    ray_cluster, minilm, tmp_path, monkeypatch
):
    docs = corpus(tmp_path / "docs", notes=0)
    for index in ("ray", "local"):
        build(Config(docs=docs, index_dir=tmp_path / index), minilm, progress=False)
    for n in range(120):  # blocks of 16 documents: most are still to embed at the kill
        (docs / f"more/note-{n}.txt").parent.mkdir(exist_ok=True)
        (docs / f"more/note-{n}.txt").write_text(NOTES[f"notes/harvest-{n % 12}.txt"] + f" Note {n}.")
    killed: set[int] = set()
    seen: set[int] = set()
    done = threading.Event()

    def watch() -> None:  # every embedding actor alive during the build, the replacements included
        while not done.is_set():
            seen.update(embedding_actors())
            time.sleep(0.05)

    add = SegmentWriter.add

    def add_then_kill(self, *args) -> None:
        add(self, *args)
        if not killed:  # the first document is written: kill the actors while most remain to embed
            actors = embedding_actors()
            for pid in actors:
                os.kill(pid, signal.SIGKILL)
            killed.update(actors)

    monkeypatch.setattr(SegmentWriter, "add", add_then_kill)
    config = Config(docs=docs, index_dir=tmp_path / "ray", batch_size=2)  # many small batches
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        report = build(config, progress=False, cluster=ray_cluster)
    finally:
        done.set()
        watcher.join()
    monkeypatch.undo()
    assert killed and seen - killed, "the embedding actors were killed and others took their place"
    assert report.added == 120
    build(Config(docs=docs, index_dir=tmp_path / "local", batch_size=2), minilm, progress=False)
    assert_same_index(tmp_path / "ray", tmp_path / "local")
    assert verify(tmp_path / "ray", minilm, sample=8).ok


def test_only_the_embedding_actors_load_the_model_and_a_build_that_only_removes_still_describes_it(
    ray_cluster, minilm, tmp_path
):
    """The first actor describes the model with its first results: no worker loads it just to
    describe it (Ray names a task's process after its function while it runs)."""
    docs = corpus(tmp_path / "docs", notes=2)
    seen: dict[str, set[int]] = {"describe": set(), "_Embed": set()}
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            for name in seen:
                seen[name] |= ray_workers(name)
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        first = build(Config(docs=docs, index_dir=tmp_path / "ray"), progress=False, cluster=ray_cluster)
    finally:
        done.set()
        watcher.join()
    assert first.added == 9 and seen["_Embed"] and not seen["describe"]
    (docs / "notes/harvest-1.txt").unlink()  # nothing to embed: a task describes the model
    removed = build(Config(docs=docs, index_dir=tmp_path / "ray"), progress=False, cluster=ray_cluster)
    assert (removed.removed, removed.embedded, removed.documents) == (1, 0, 8)
    assert verify(tmp_path / "ray", minilm, sample=8).ok


def test_a_build_refused_once_its_actors_have_started_stops_them_and_writes_nothing(
    ray_cluster, tmp_path, monkeypatch
):
    import embeddings.builder

    monkeypatch.setattr(embeddings.builder, "fingerprint", lambda folder: "0123456789abcdef")
    docs = corpus(tmp_path / "docs", notes=2)
    with pytest.raises(ConfigError, match="the Ray workers' copy of .* differs from this machine's"):
        build(Config(docs=docs, index_dir=tmp_path / "ray"), progress=False, cluster=ray_cluster)
    assert not (tmp_path / "ray" / "CURRENT").exists()
    deadline = time.monotonic() + 30
    while embedding_actors() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not embedding_actors(), "the pipeline's actors ended with the refused build"


class _Holder:
    """Other work on the cluster that holds CPUs for as long as it lives (a Serve replica, say)."""

    def ping(self) -> bool:
        return True


def test_a_build_beside_other_work_that_holds_cpus_still_finishes(ray_cluster, tmp_path):
    """Reading and chunking get tasks of their own only on CPUs that are free, not on CPUs the
    cluster has but other work holds: there they would wait for ever."""
    holder = ray.remote(num_cpus=ray.cluster_resources()["CPU"] - ray_cluster.actors)(_Holder).remote()
    ray.get(holder.ping.remote())
    try:
        docs, result = corpus(tmp_path / "docs", notes=2), {}
        config = Config(docs=docs, index_dir=tmp_path / "ray")
        thread = threading.Thread(
            target=lambda: result.update(report=build(config, progress=False, cluster=ray_cluster)),
            daemon=True,
        )
        thread.start()
        thread.join(240)
        assert not thread.is_alive(), "the build waited for CPUs that other work holds"
        assert result["report"].added == 9
    finally:
        ray.kill(holder)


def docqa(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([*DOCQA, *args], capture_output=True, text=True, cwd=ROOT, timeout=300, **kwargs)


def test_the_cli_builds_on_a_new_cluster_and_a_killed_driver_leaves_the_index_as_it_was(
    ray_cluster, minilm, tmp_path
):
    docs, index = corpus(tmp_path / "docs", notes=2), tmp_path / "index"
    first = docqa("index", str(docs), "--index", str(index), "--ray")  # starts a local cluster of its own
    assert first.returncode == 0, first.stderr
    assert "Indexed 9 documents" in first.stdout and "1 skipped" in first.stdout
    assert "Traceback" not in first.stderr
    assert verify(index, minilm, sample=8).ok  # what `docqa check` runs
    before = store.current(index)

    change(docs)  # then a build on the test's cluster, its driver killed while the actors embed
    address, token = ray.get_runtime_context().gcs_address, {**os.environ, "RAY_AUTH_MODE": "token"}
    driver = subprocess.Popen([*DOCQA, "index", str(docs), "--index", str(index), "--ray", address],
                              cwd=ROOT, env=token, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 180
    while not embedding_actors() and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    driver.kill()
    assert driver.wait() == -signal.SIGKILL, "the driver was killed before it finished"
    assert store.current(index) == before and verify(index, minilm, sample=8).ok

    again = docqa("index", str(docs), "--index", str(index), "--ray", address, "--quiet", env=token)
    assert again.returncode == 0, again.stderr
    assert "1 added, 1 changed, 1 removed" in again.stdout
    assert verify(index, minilm, sample=8).ok


def test_an_unreachable_cluster_is_a_clear_error(tmp_path):
    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    docs = corpus(tmp_path / "docs", notes=0)
    started = time.monotonic()
    result = docqa("index", str(docs), "--index", str(tmp_path / "index"), "--ray", f"127.0.0.1:{port}")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert (
        f"no Ray cluster answers at 127.0.0.1:{port}" in result.stderr and "ray start --head" in result.stderr
    )
    assert time.monotonic() - started < 60 and not (tmp_path / "index").exists()


def test_ray_missing_says_how_to_install_it(tmp_path):
    code = "import sys; sys.modules['ray'] = None; from qa.cli import main; sys.exit(main(sys.argv[1:]))"
    docs = corpus(tmp_path / "docs", notes=0)
    result = subprocess.run([sys.executable, "-c", code, "index", str(docs), "--index", str(tmp_path / "i"), "--ray"],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "pip install 'docqa[ray]'" in result.stderr


def test_one_actor_per_gpu_or_else_per_cpu():
    assert default_actors({"CPU": 32.0, "GPU": 4.0}) == 4
    assert default_actors({"CPU": 2.0}) == 2
    assert default_actors({}) == 1


def test_the_embedding_actors_share_the_clusters_cpus_rather_than_one_thread_each():
    assert actor_threads({"CPU": 2.0}, actors=1) == 2  # one actor on two cores uses both
    assert actor_threads({"CPU": 2.0}, actors=2) == 1
    assert actor_threads({"CPU": 32.0, "GPU": 4.0}, actors=4) == 8
    assert actor_threads({"CPU": 2.0}, actors=3) == 1


def test_an_address_that_is_not_host_and_port_says_what_one_looks_like():
    with pytest.raises(ConfigError, match="is not HOST:PORT"):
        _reachable("seeds")  # `docqa index --ray seeds`: the folder taken for an address


MISSING = "the model is missing on this worker: run make setup there"


class _Unloadable:
    """An actor whose model cannot load, as an embedding actor's would fail."""

    def __init__(self) -> None:
        raise ConfigError(MISSING)

    def __call__(self, batch: dict) -> dict:
        return batch


def _fail(batch: dict) -> dict:
    raise ConfigError(MISSING)


@pytest.mark.parametrize("where", ["task", "actor starting"])
def test_an_error_on_a_worker_reaches_the_user_as_its_message(ray_cluster, where):
    items = ray.data.from_items([{"a": 1}])
    if where == "task":
        ds = items.map_batches(_fail)
    else:
        ds = items.map_batches(_Unloadable, compute=ray.data.ActorPoolStrategy(size=1))
    with pytest.raises(RayError) as raised:
        list(ds.iter_rows())
    error = _failed(raised.value)
    assert isinstance(error, ClusterError)
    assert MISSING in str(error)
    assert "the index was left as it was" in str(error)


def test_a_large_segment_is_encoded_in_shards_by_ray_tasks_as_on_one_machine(ray_cluster, monkeypatch):
    """The IVF-PQ codes of a segment past Config.compress_above: one Ray task per shard, merged
    in order, the same index as the shards encoded here."""
    from bench.query import clustered_vectors
    from embeddings import compressed
    from embeddings.ray_build import shard_map
    from embeddings.vectors import Vectors

    vectors = clustered_vectors(12_000, 64, np.random.default_rng(5), clusters=200)
    queries = clustered_vectors(20, 64, np.random.default_rng(6), clusters=200)
    flat = Vectors.empty(64)
    flat.add(vectors)
    monkeypatch.setattr(compressed, "SHARD", 5_000)
    tasks: list[str] = []
    encode = compressed.encode

    def on_a_worker(trained: bytes, shard: np.ndarray) -> bytes:
        tasks.append(ray.get_runtime_context().get_task_id() or "driver")
        return encode(trained, shard)

    here = flat.settle(compress_above=10_000)
    monkeypatch.setattr(compressed, "encode", on_a_worker)
    sharded = Vectors(compressed.build(flat.index, partial(shard_map, in_flight=3)))
    assert tasks == [], "every shard was encoded by a Ray task in a worker, none in this process"
    assert np.array_equal(sharded.search(queries, 10)[1], here.search(queries, 10)[1])


def test_a_build_whose_actors_the_free_cpus_cannot_hold_is_refused_rather_than_waited_for(
    ray_cluster, tmp_path
):
    @ray.remote(num_cpus=3.5)
    class Holder:  # other work on the cluster: a Serve replica, another build
        def ready(self) -> bool:
            return True

    holder = Holder.remote()
    ray.get(holder.ready.remote())
    config = Config(docs=corpus(tmp_path / "docs", notes=2), index_dir=tmp_path / "index")
    try:
        with pytest.raises(ClusterError) as refused:
            build(config, progress=False, cluster=ray_cluster)
    finally:
        ray.kill(holder)
    assert "2 embedding actors need a CPU each and the Ray cluster has 0.5 free" in str(refused.value)
    assert not (tmp_path / "index").exists() or not list((tmp_path / "index").glob("gen-*")), (
        "no index written"
    )


def test_serve_without_ray_says_to_install_ray_serve():
    code = "import sys; sys.modules['ray'] = None; from qa.cli import main; sys.exit(main(sys.argv[1:]))"
    result = subprocess.run([sys.executable, "-c", code, "serve", "--ray"], capture_output=True, text=True,
                            cwd=ROOT, timeout=120)  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "`docqa serve --ray` needs Ray Serve" in result.stderr


def test_an_address_where_something_else_answers_is_a_clear_error(tmp_path, ray_cluster):
    import http.server

    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    try:
        docs = corpus(tmp_path / "docs", notes=0)
        result = docqa("index", str(docs), "--index", str(tmp_path / "index"), "--ray",
                       f"127.0.0.1:{web.server_address[1]}")  # fmt: skip
    finally:
        web.shutdown()
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "something other than a Ray cluster answers at 127.0.0.1:" in result.stderr
    assert not (tmp_path / "index").exists()
    _reachable(ray.get_runtime_context().gcs_address)  # a cluster's own address passes


def _row(
    model, skipped: str = "", absent: bool = False, passing: bool = False, readers: dict | None = None
) -> dict:
    from dataclasses import asdict

    from embeddings.readers import READERS

    return {"skipped": skipped, "absent": absent, "passing": passing, "model": json.dumps(asdict(model)),
            "document": "", "spans": "[]", "vectors": b"", "readers": json.dumps(readers or READERS)}  # fmt: skip


def test_a_document_a_worker_cannot_find_but_this_machine_can_is_a_cluster_error(tmp_path):
    from embeddings.embedder import Description
    from embeddings.ingest import Progress
    from embeddings.ray_build import _result
    from embeddings.readers import Pending

    model = Description("all-MiniLM-L6-v2", "abc", "cpu", "float32", 384, 256)
    here = tmp_path / "wheat.txt"
    here.write_text("India sent wheat.")
    item = Pending("wheat.txt", "h", "wheat.txt", str(here))
    row = _row(model, "cannot be read: No such file or directory", absent=True, passing=True)
    with pytest.raises(ClusterError, match="put the documents at the same path on every node"):
        _result(item, row, model, Progress(1, False))
    gone = Pending("gone.txt", "h", "gone.txt", str(tmp_path / "gone.txt"))  # gone here too: skipped
    skipped = _result(gone, row, model, Progress(1, False))
    assert skipped.passing and "No such file" in skipped.reason
    other = Description("all-MiniLM-L6-v2", "xyz", "cpu", "float32", 384, 256)  # another node's copy
    with pytest.raises(ClusterError, match="install the same docqa on every node"):
        _result(item, _row(other, "empty"), model, Progress(1, False))
    older = {".md": 1, ".txt": 1}  # a node whose docqa reads Markdown as an older one did
    with pytest.raises(ClusterError, match="reads documents with another docqa"):
        _result(item, _row(model, readers=older), model, Progress(1, False))
    before_readers = {k: v for k, v in _row(model).items() if k != "readers"}  # a docqa from before them
    with pytest.raises(ClusterError, match="reads documents with another docqa"):
        _result(item, before_readers, model, Progress(1, False))


def test_a_build_that_stops_making_progress_says_what_to_look_at():
    from ray.data.exceptions import ExecutionTimeoutError

    error = _failed(ExecutionTimeoutError("no progress for 600 s"))
    assert isinstance(error, ClusterError) and "see `ray status`" in str(error)
    assert "the index was left as it was" in str(error)
