"""BM25 over the same chunks as the vectors (bm25s, English stemmer and stop words)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from embeddings.errors import IndexCorrupt


def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


class Lexical:
    def __init__(self, retriever) -> None:
        self.retriever = retriever
        self.stemmer = _stemmer()

    @classmethod
    def build(cls, texts: Sequence[str]) -> Lexical:
        import bm25s

        retriever = bm25s.BM25()
        corpus = bm25s.tokenize(list(texts), stopwords="en", stemmer=_stemmer(), show_progress=False)
        retriever.index(corpus, show_progress=False)
        return cls(retriever)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.retriever.save(str(folder))  # numpy arrays and JSON, no pickle

    @classmethod
    def load(cls, folder: Path) -> Lexical:
        import bm25s

        try:
            return cls(bm25s.BM25.load(str(folder), allow_pickle=False))
        except (OSError, ValueError, KeyError, TypeError) as e:  # damaged, or not what bm25s wrote
            raise IndexCorrupt(f"the BM25 data in {folder} cannot be read ({e}); run `docqa index`") from None

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """(row, score) of the best chunks, best first; none when no query word is indexed."""
        import bm25s

        words = bm25s.tokenize(
            [query], stopwords="en", stemmer=self.stemmer, return_ids=False, show_progress=False
        )[0]
        known = [w for w in words if w in self.retriever.vocab_dict]
        n = int(self.retriever.scores["num_docs"])
        if not known or n == 0:
            return []
        rows, scores = self.retriever.retrieve([known], k=min(k, n), show_progress=False, n_threads=1)
        hits = zip(rows[0].tolist(), scores[0].tolist(), strict=True)
        return [(int(r), float(s)) for r, s in hits if s > 0 and np.isfinite(s)]
