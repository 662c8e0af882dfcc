"""A folder of documents watched for files added, changed and removed (watchfiles: the operating
system's notifications, not a polling loop of ours). Each settled batch of changes runs the normal
incremental build, so a watched index is exactly what `docqa index` would make of the folder."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from embeddings.errors import DocqaError
from embeddings.readers import SUPPORTED

QUIET_MS = 500  # a batch is handed on once the folder has been quiet this long ...
LONGEST_MS = 5000  # ... or once changes have gone on this long
IDLE_MS = 1000  # with no change for this long, the watch says it is running (an empty batch)
_SUPPORTED = frozenset(SUPPORTED)
_SAID = {1: "added", 2: "changed", 3: "removed"}  # watchfiles.Change values


class Relevant:
    """Which changes may change the index: supported files (and folders, whatever their name:
    a folder moved away takes its files with it), neither hidden nor inside the index. A folder
    is known by having no suffix or, when it is still there, by being one ("v1.2")."""

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
        return suffix in _SUPPORTED or suffix == "" or os.path.isdir(path)


def changes(docs: Path, index_dir: Path, stop: threading.Event | None = None) -> Iterator[list[str]]:
    """Each settled batch of changes under `docs` that may change the index, as lines such as
    "added notes/a.pdf", until `stop` is set (Ctrl-C raises KeyboardInterrupt as usual). An empty
    batch now and then says the watch is running and nothing changed. Linked folders are watched
    too: one linked while watching starts the watch afresh, which then hands on a batch of its
    own, so that what changed while it started is indexed too."""
    from watchfiles import watch

    root = Path(docs).absolute()
    restarted: list[str] = []
    while True:
        linked: list[str] = []
        for batch in watch(root, watch_filter=Relevant(root, index_dir), debounce=LONGEST_MS, step=QUIET_MS,
                           stop_event=stop, rust_timeout=IDLE_MS, yield_on_timeout=True):  # fmt: skip
            yield restarted + sorted(
                f"{_SAID.get(int(change), 'changed')} {os.path.relpath(path, root)}" for change, path in batch
            )
            restarted = []
            linked = [path for change, path in batch if int(change) == 1 and _linked_folder(path)]
            if linked:  # a running watch does not follow a link made after it started
                break
        if not linked:  # stopped
            return
        restarted = [
            f"the linked folder {os.path.relpath(path, root)}, now watched" for path in sorted(linked)
        ]


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
    after that first build. A build that fails is reported and the watch goes on."""
    started = False
    for batch in changes(docs, index_dir, stop):
        if started and not batch:
            continue
        if batch:
            shown = ", ".join(batch[:5]) + (f" and {len(batch) - 5} more" if len(batch) > 5 else "")
            log(f"noticed {shown}; updating the index")
        try:
            rebuild()
        except DocqaError as e:
            log(f"the index was not updated: {e}")
        except Exception as e:  # the watch outlives any failed build, as the README says
            log(f"the index was not updated: {type(e).__name__}: {e}")
        if not started:
            started = True
            ready()
