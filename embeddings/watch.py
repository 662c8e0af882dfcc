"""A folder of documents watched for files added, changed and removed (watchfiles: the operating
system's notifications, not a polling loop of ours). Each settled batch of changes runs the normal
incremental build, so a watched index is exactly what `docqa index` would make of the folder."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from embeddings.errors import DocqaError, IndexBusy
from embeddings.readers import SUPPORTED

QUIET_MS = 500  # a batch is handed on once the folder has been quiet this long ...
LONGEST_MS = 5000  # ... or once changes have gone on this long
IDLE_MS = 1000  # with no change for this long, the watch says it is running (an empty batch)
BUSY_RETRY_S = 5  # a build that found the index held by another is tried again this often
_SUPPORTED = frozenset(SUPPORTED)
_ADDED, _REMOVED = 1, 3  # watchfiles.Change values
_SAID = {_ADDED: "added", 2: "changed", _REMOVED: "removed"}


class Relevant:
    """Which changes may change the index: supported files (and folders, whatever their name:
    a folder moved away takes its files with it), neither hidden nor inside the index. A folder
    is known by having no suffix or, when it is still there, by being one ("v1.2"); anything
    removed may have been a folder."""

    def __init__(self, docs: Path, index_dir: Path) -> None:
        self.docs, self.index_dir = str(Path(docs).absolute()), str(Path(index_dir).absolute())

    def __call__(self, change: object, path: str) -> bool:
        if path == self.index_dir or path.startswith(self.index_dir + os.sep):
            return False
        relative = os.path.relpath(path, self.docs)
        if any(part.startswith(".") for part in Path(relative).parts):
            return False
        name = os.path.basename(path)
        suffix = name[name.rfind(".") :].lower() if "." in name else ""
        removed = change == _REMOVED and not os.path.exists(path)
        return suffix in _SUPPORTED or suffix == "" or removed or os.path.isdir(path)


def changes(docs: Path, index_dir: Path, stop: threading.Event | None = None) -> Iterator[list[str]]:
    """Each settled batch of changes under `docs` that may change the index, as lines such as
    "added notes/a.pdf", until `stop` is set (Ctrl-C raises KeyboardInterrupt as usual). An empty
    batch now and then says the watch is running and nothing changed.

    A watch follows the folders it found when it started. So it starts afresh when a folder is
    linked, and when the documents folder itself is replaced (once there is one again); its
    first batch then says so, for the index to be checked against what changed meanwhile. A
    single file is watched through its folder: an editor saves it by writing a new file in its
    place."""
    from watchfiles import watch

    root = Path(docs).absolute()
    restarted: list[str] = []
    while True:
        folder = root.is_dir()
        watched = root if folder else root.parent
        relevant = Relevant(root, index_dir) if folder else (lambda change, path: path == str(root))
        started = _identity(root)
        again: list[str] = []
        for batch in watch(watched, watch_filter=relevant, debounce=LONGEST_MS, step=QUIET_MS,
                           stop_event=stop, rust_timeout=IDLE_MS, yield_on_timeout=True):  # fmt: skip
            yield restarted + sorted(
                f"{_SAID.get(int(change), 'changed')} {os.path.relpath(path, watched)}"
                for change, path in batch
            )
            restarted = []
            linked = sorted(path for change, path in batch if int(change) == _ADDED and _linked_folder(path))
            again = [f"the linked folder {os.path.relpath(path, root)}, now watched" for path in linked]
            if folder and _identity(root) != started:
                again.append(f"{root}, replaced")
            if again:
                break
        if not again or not _back(root, stop):  # stopped
            return
        restarted = again


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def _back(root: Path, stop: threading.Event | None) -> bool:
    """Whether `root` is there (again), waiting for it until `stop` is set."""
    while not root.exists():
        if stop is not None and stop.is_set():
            return False
        time.sleep(IDLE_MS / 1000)
    return True


def _linked_folder(path: str) -> bool:
    return os.path.islink(path) and os.path.isdir(path)


def follow(
    docs: Path,
    index_dir: Path,
    rebuild: Callable[[], object],
    log: Callable[[str], None],
    stop: threading.Event | None = None,
    ready: Callable[[], None] = lambda: None,
) -> None:
    """Call `rebuild` (an incremental build) once the watch runs, to catch what changed before it
    did, then after each batch of changes under `docs`, saying what was noticed. `ready` is called
    after that first build. A build that fails is reported and the watch goes on; one that found
    the index held by another build is tried again, every BUSY_RETRY_S, until it is done."""
    started, busy_since = False, None
    for batch in changes(docs, index_dir, stop):
        retry = busy_since is not None and time.monotonic() - busy_since >= BUSY_RETRY_S
        if started and not batch and not retry:
            continue
        if batch:
            shown = ", ".join(batch[:5]) + (f" and {len(batch) - 5} more" if len(batch) > 5 else "")
            log(f"noticed {shown}; updating the index")
        try:
            rebuild()
            busy_since = None
        except IndexBusy as e:
            if busy_since is None or batch:
                log(f"the index was not updated: {e}; trying again every {BUSY_RETRY_S} s")
            busy_since = time.monotonic()
        except DocqaError as e:
            log(f"the index was not updated: {e}")
            busy_since = None
        except Exception as e:  # the watch outlives any failed build, as the README says
            log(f"the index was not updated: {type(e).__name__}: {e}")
            busy_since = None
        if not started:
            started = True
            ready()
