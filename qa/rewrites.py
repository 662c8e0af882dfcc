"""The follow-ups the OpenAI API rewrote, kept so that the next request of the same conversation
reads them as docqa searched them. An OpenAI client sends the whole conversation with each
request, as it was asked ("Where was he governor?"); docqa's own conversations keep the rewrite
("Where was Ismail Khan governor?") in their turns. Kept in memory only, by a key of the
conversation word for word up to and with the reply sent (openai_api.keys)."""

from __future__ import annotations

import threading
from collections import OrderedDict

from qa import openai_api
from qa.answer import Answer


class Rewrites:
    """Rewrites by conversation key; past `most`, the oldest are forgotten. Shared by the API's
    worker threads."""

    def __init__(self, most: int = 2048) -> None:
        self.most = most
        self._kept: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def keep(self, asked: openai_api.ChatRequest, reply: str, answer: Answer) -> None:
        """The rewrite of `asked`'s question, under the conversation with the `reply` as sent."""
        if not answer.standalone or answer.standalone == asked.question:
            return
        key = openai_api.keys([*asked.earlier, ("user", asked.question), ("assistant", reply)])[-1]
        with self._lock:
            self._kept[key] = answer.standalone
            self._kept.move_to_end(key)
            while len(self._kept) > self.most:
                self._kept.popitem(last=False)

    def get(self, key: str) -> str | None:
        with self._lock:
            return self._kept.get(key)
