"""Follow-up questions, the pure part: a conversation's turns, the prompt that asks the generator
to rewrite a follow-up as a question that stands alone, the sanity checks on its reply, and which
recent turns fit the answer prompt's budget. No model here: qa/assistant.py makes the calls.

A follow-up ("Where was he governor?") is rewritten from the recent turns ("Where was Ismail Khan
governor?") and retrieval searches with the rewrite; a rewrite that fails a check (empty, far
longer than the question, an answer or a refusal rather than a question, a question that has
lost the words asked or names something no turn named) gives way to the question as asked. Where
what is kept still holds a pronoun, the generator is asked what that one word stands for, and a
name that the conversation holds word for word (and the question itself does not) takes its
place; where that reply is not taken, the generator chooses among the names the turns said.
Earlier turns reach the model as their questions and checked answers only: a withdrawn draft
never does."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from qa.answer import Answer
from qa.citations import is_refusal
from qa.export import answer_from_dict
from qa.guard import defuse, neutralise
from qa.support import says_otherwise
from qa.words import STOP, content, negations, norm

Messages = list[dict[str, str]]
CountText = Callable[[str], int]  # tokens of a piece of prompt text

REWRITE_TOKENS = 64  # a rewritten question is one line
REWRITE_SYSTEM = """You rewrite the user's latest question so that it can be understood without the conversation before it.
- Replace each pronoun or vague reference in it (he, she, it, they, his, her, its, their, there, this, that) with the name or thing it stands for in the conversation.
- Keep every other word of the question as it is. If the question already stands alone, repeat it unchanged.
- Never answer the question. Reply with the rewritten question only, on one line."""
# One worked example, far from any document, so the small models see the form of the reply.
_EXAMPLE = (
    "Conversation:\nQuestion: Who founded the Acme Rowing Club?\nAnswer: Maria Lopez founded the Acme Rowing "
    "Club in 1921.\n\nLatest question: When did she retire?",
    "When did Maria Lopez retire?",
)
_MARKS = re.compile(r"\s*\[\d+(?:\s*[,;]\s*\d+)*\]")
_LABEL = re.compile(
    r"^(?:\**\s*(?:rewritten|standalone|stand-alone|new|latest|revised|the)?\s*(?:question|query)\s*\**\s*[:：]\s*)+",
    re.IGNORECASE,
)
_NAME = re.compile(r"\b[A-Z][\w-]*")  # a capitalised word: a name, or the word opening a sentence
_QUOTES = "\"'“”‘’`*"
_ASKS = ("?", "？")  # how a question ends, in Latin and in Chinese or Japanese script


@dataclass
class Turn:
    """One question of a conversation: as asked, as retrieval searched it, and the checked answer."""

    question: str
    standalone: str
    answer: Answer

    def to_dict(self) -> dict:
        return {"question": self.question, "standalone": self.standalone, "answer": self.answer.to_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> Turn:
        return cls(
            data["question"], data.get("standalone") or data["question"], answer_from_dict(data["answer"])
        )


def exchange(turn: Turn) -> tuple[str, str]:
    """The turn as later prompts read it: the question retrieval searched, and the checked answer
    without its [n] marks (they number another prompt's passages). Never the model's raw draft:
    a withdrawn answer's text is the abstention."""
    return turn.standalone, " ".join(_MARKS.sub("", turn.answer.text).split())


def recent(turns: list[Turn], most: int) -> list[Turn]:
    """The last `most` turns, oldest first."""
    return list(turns[-most:]) if most > 0 else []


def history_block(pairs: list[tuple[str, str]]) -> str:
    """Earlier (question, answer) pairs as prompt text. The questions are the user's; the answers
    were made from documents, so they are data and quoted like documents."""
    lines = []
    for question, answer in pairs:
        lines.append(f"Question: {' '.join(defuse(question).split())}")
        lines.append(f"> Answer: {' '.join(neutralise(answer).split())}")
    return "\n".join(lines)


def fitting(pairs: list[tuple[str, str]], budget: int, count: CountText) -> list[tuple[str, str]]:
    """The most recent pairs whose block fits in `budget` tokens: the oldest are dropped first.
    The latest pair is what a follow-up most likely refers to: where it alone is too long, it is
    cut to fit (with "…" where it was cut) rather than dropped: its question to its last words
    within half the budget (where what was asked stands), then its answer to its first words."""
    kept = list(pairs)
    while len(kept) > 1 and count(history_block(kept)) > budget:
        kept.pop(0)
    if not kept or count(history_block(kept)) <= budget:
        return kept
    question, answer = kept[0]
    if count(history_block([(question, "…")])) > budget // 2:
        asked = question.split()
        n = _most(
            len(asked), lambda k: count(history_block([("… " + " ".join(asked[-k:]), "…")])) <= budget // 2
        )
        if n == 0:
            return []
        question = "… " + " ".join(asked[-n:])
    said = answer.split()
    cut = lambda k: (question, " ".join(said[:k]) + (" …" if k < len(said) else ""))  # noqa: E731
    n = _most(len(said), lambda k: count(history_block([cut(k)])) <= budget)
    return [cut(n)] if count(history_block([cut(n)])) <= budget else []


def _most(most: int, fits: Callable[[int], bool]) -> int:
    """The largest k from 1 to `most` for which `fits(k)` (true up to some k, false after it),
    found by halving; 0 when none."""
    low, high = 0, most
    while low < high:
        mid = (low + high + 1) // 2
        if fits(mid):
            low = mid
        else:
            high = mid - 1
    return low


def rewrite_messages(question: str, pairs: list[tuple[str, str]]) -> Messages:
    """The prompt that asks the generator for `question` rewritten to stand alone, given the
    conversation's recent (question, answer) pairs, oldest first."""
    user = f"Conversation:\n{_conversation(pairs)}\n\nLatest question: {' '.join(defuse(question).split())}"
    return [
        {"role": "system", "content": REWRITE_SYSTEM},
        {"role": "user", "content": _EXAMPLE[0]},
        {"role": "assistant", "content": _EXAMPLE[1]},
        {"role": "user", "content": user},
    ]


_REFERENCES = frozenset(["he", "she", "it", "they", "him", "her", "his", "its", "their", "them", "there", "this", "that", "these", "those"])  # fmt: skip


def search_text(rewritten: str, pairs: list[tuple[str, str]]) -> str:
    """What retrieval searches for a follow-up: the rewrite, or, while it still holds a word that
    refers back (the model kept the pronoun, or its rewrite was refused and the question is used
    as asked), the previous question beside it, so that the search still finds what it refers
    to. (On XQuAD follow-ups the small model's rewrite named it in half of them.)"""
    if pairs and refers_back(rewritten):
        return f"{pairs[-1][0]} {rewritten}"
    return rewritten


def refers_back(question: str) -> bool:
    """Whether `question` holds a word that refers to something said before (he, it, there ...).
    One that does not stands alone: it is answered from the documents without the earlier turns,
    which would only take room from the passages and offer the model answers that are not
    from the documents. A "that" after a word with content of its own opens a relative clause
    ("the spinoff that debuted on ABC"), not a reference: after a function word or first it is
    one ("When did that happen?", "What came of that?")."""
    plain = _DUMMY_IT.sub(" ", _EXISTENTIAL.sub(" ", question))  # "Is there a ...", "Is it true that"
    words = [w.lower() for w in re.findall(r"[\w']+", plain) if not _acronym(w, question)]
    return any(
        w in _REFERENCES and not (w == "that" and i > 0 and words[i - 1] not in STOP)
        for i, w in enumerate(words)
    )


def _acronym(word: str, question: str) -> bool:
    """Whether `word` is written in capitals as an acronym ("the IT department", "US"), not
    shouted with the rest of the question: then it is no word that refers back."""
    return len(word) > 1 and word.isupper() and not question.isupper()


# "Is there a record of it?", "There were no deaths": a "there" that says something exists does
# not point to a place said before.
_EXISTENTIAL = re.compile(
    r"\b(?:(?:is|are|was|were|be|been)\s+there|there\s+(?:is|are|was|were|'s|be|been))"
    r"(?=\s+(?:a|an|any|some|no|much|many|more|another|one|enough|\d)\b)",
    re.IGNORECASE,
)

# Words that stand for a name said before, which a name can take the place of: the subject and
# object forms, and the possessive ones (which take the name with 's).
_PERSONAL = frozenset(["he", "she", "it", "they", "him", "her", "them", "his", "its", "their"])
_POSSESSIVE = frozenset(["his", "its", "their"])
RESOLVE_TOKENS = 24  # a name or a short noun phrase
RESOLVE_SYSTEM = """You say which name or thing a word of the user's latest question stands for, from the conversation before it.
Reply with that name or thing only, in the words the conversation uses for it. Never answer the question."""
_RESOLVE_EXAMPLE = (
    "Conversation:\nQuestion: Who founded the Acme Rowing Club?\nAnswer: Maria Lopez founded the Acme Rowing "
    'Club in 1921.\n\nLatest question: How many members did it have in 1930?\nWhat does "it" stand for?',
    "the Acme Rowing Club",
)


def pronoun(question: str) -> str | None:
    """The first word of `question` that stands for a name said before (he, it, their ...), as
    written; None when it has none. (This, that and there are left: they more often point into
    the question itself, and a place does not take the place of "there".)"""
    found = re.findall(r"[\w']+", _DUMMY_IT.sub(" ", question))
    return next((w for w in found if w.lower() in _PERSONAL and not _acronym(w, question)), None)


# "Is it true that he resigned?", "Is it known when he died?", "Is it possible to ...": an "it"
# that stands for a claim or the clause after it, not a name. ("What is it known for?", "What
# was it said to cost?" and "Is it likely to pass?" do stand for one.)
_DUMMY_IT = re.compile(
    r"\bit(?:\s+(?:is|was|'s|be|seems|seemed))?\s+(?:(?:true|correct|the\s+case)\b(?:\s+that\b)?"
    r"|(?:possible|clear)\s+(?:to|that|whether|if|when|where|why|how|who|what)\b"
    r"|(?:likely|unlikely|known|said|reported)\s+(?:that|whether|if|when|where|why|how|who|what)\b)",
    re.IGNORECASE,
)


def resolve_messages(question: str, word: str, pairs: list[tuple[str, str]]) -> Messages:
    """The prompt that asks the generator what `word` of `question` stands for, given the
    conversation's recent (question, answer) pairs: asked where a rewrite kept the pronoun, a
    narrower question that the small models answer far more often. (`python -m evaluation --only
    followups`, the default model: what the pronoun stood for was named in 10 of the report
    half's 20 follow-ups before this step, 14 with it; tried on the calibration half first.)"""
    return _about_a_word(RESOLVE_SYSTEM, _RESOLVE_EXAMPLE, question, pairs, f'What does "{word}" stand for?')


def read_referent(reply: str, pairs: list[tuple[str, str]], question: str) -> str | None:
    """The name in the generator's `reply` to resolve_messages, or None unless the conversation
    `pairs` holds it word for word (so it is never something the model made up), it is a name
    rather than another pronoun or a sentence, and the latest `question` does not name it itself
    (in "Whose wall stands around it?", "it" is not the wall)."""
    name = _reply_line(reply)
    said = " ".join(" ".join(q.split()) + " " + " ".join(a.split()) for q, a in _naming(pairs))
    if not name or len(name) > 80 or name.lower() in _REFERENCES or is_refusal(name):
        return None
    return name if _holds(said, name) and not _holds(question, _bare(name)) else None


# A run of capitalised words, "of", "the" and the like allowed between them: "Ismail Khan",
# "the Bank of England" (as "Bank of England"), "Pons Aelius".
_NAMES = re.compile(
    r"[A-Z][\w.’'-]*(?:\s+(?:(?:of|the|de|du|la|von|van|der|al|bin|on|for|and)\s+)*[A-Z][\w.’'-]*)*"
)
MOST_NAMES = 6  # offered to choose from


def names_said(question: str, pairs: list[tuple[str, str]]) -> list[str]:
    """The names the conversation `pairs` holds that the latest `question` does not, the latest
    turn's first (its question, then its answer), at most MOST_NAMES: what a pronoun in
    `question` may stand for. A capitalised word that only opens a sentence ("What", "The") is
    not a name; names joined by "and" are offered together, then each alone."""
    out: dict[str, str] = {}  # lower case -> as first said
    for q, a in reversed(_naming(pairs)):
        for text in (q, a):
            for found in _NAMES.findall(" ".join(text.split())):
                words = found.split()
                while words and words[0].lower() in STOP:  # "What Columbia President" -> "Columbia President"
                    words.pop(0)
                name = re.sub(r"['’]s$", "", " ".join(words)).rstrip(".")
                # "Massoud and Muttaqi" (for "they"), then each of them (for "he")
                parts = name.split(" and ") if " and " in name else []
                for each in [name, *parts]:
                    if each and each.lower() not in _REFERENCES and not _holds(question, each):
                        out.setdefault(each.lower(), each)
    return list(out.values())[:MOST_NAMES]


CHOOSE_SYSTEM = """You say which of the listed names a word of the user's latest question stands for, from the conversation before it.
Reply with one name from the list, exactly as the list writes it, or with "none" if it stands for none of them. Never answer the question."""
_CHOOSE_EXAMPLE = (
    "Conversation:\nQuestion: Who founded the Acme Rowing Club?\nAnswer: Maria Lopez founded the Acme Rowing "
    "Club in 1921.\n\nLatest question: How many members did it have in 1930?\nNames: Acme Rowing Club; Maria Lopez\n"
    'Which of the names does "it" stand for?',
    "Acme Rowing Club",
)


def choose_messages(question: str, word: str, pairs: list[tuple[str, str]], names: list[str]) -> Messages:
    """The prompt that asks the generator which of `names` (names_said) `word` of `question`
    stands for: asked where the model's own answer to resolve_messages was not taken. A choice
    among the conversation's names is a narrower question still, and its reply cannot be a name
    no turn said."""
    ask = f'Names: {"; ".join(defuse(n) for n in names)}\nWhich of the names does "{word}" stand for?'
    return _about_a_word(CHOOSE_SYSTEM, _CHOOSE_EXAMPLE, question, pairs, ask)


def _about_a_word(
    system: str, example: tuple[str, str], question: str, pairs: list[tuple[str, str]], ask: str
) -> Messages:
    """A prompt about one word of `question`: the instructions, one worked example, then the
    conversation, the question and what is asked about the word."""
    user = f"Conversation:\n{_conversation(pairs)}\n\nLatest question: {' '.join(defuse(question).split())}\n{ask}"
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": example[0]},
        {"role": "assistant", "content": example[1]},
        {"role": "user", "content": user},
    ]


def read_choice(reply: str, names: list[str]) -> str | None:
    """The one of `names` that the generator's `reply` to choose_messages gives: the name as its
    line writes it, or else the longest name the line holds and does not deny ("Ismail Khan, not
    Massoud"); None for "none", a line that denies the names ("Not Ismail Khan") or anything else."""
    line = _reply_line(reply)
    exact = next((n for n in names if n.lower() == _bare(line).lower() or n.lower() == line.lower()), None)
    if exact is not None:
        return exact
    denied = {w for scope in negations(line) for w in scope}  # "Not Massoud", "neither X nor Y"
    held = sorted(
        (n for n in names if _holds(line, n) and not any(norm(w) in denied for w in n.split())),
        key=len,
        reverse=True,
    )
    return held[0] if held else None


def _naming(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """`pairs` with the answers that declined emptied: "the documents" of "The documents do not
    contain the answer" is nothing a later question refers to."""
    return [(q, "" if is_refusal(a) else a) for q, a in pairs]


def _reply_line(reply: str) -> str:
    """The first line of a one-name reply, without a label ("Answer:"), quotes or a full stop."""
    line = next((x for x in reply.strip().splitlines() if x.strip()), "")
    line = re.sub(r"^\W*(?:\w+\s*){1,3}:\s*", "", line)  # "Answer:", "It stands for:" ...
    return " ".join(line.strip().strip(_QUOTES).rstrip(".").strip().split())


def _bare(name: str) -> str:
    """`name` without a leading "the": "the wall" is named by "Whose wall ...?" too."""
    return re.sub(r"^the\s+", "", name, flags=re.IGNORECASE)


def _holds(text: str, name: str) -> bool:
    """Whether `text` holds `name` as whole words, whatever the case."""
    return (
        bool(name)
        and re.search(rf"(?<!\w){re.escape(name.lower())}(?!\w)", " ".join(text.split()).lower()) is not None
    )


def substitute(question: str, word: str, name: str) -> str:
    """`question` with its first `word` (a pronoun, as `pronoun` finds it: not the "it" of "is it
    true that") replaced by `name`: "its" becomes "ABC's" (and "her" before a word of content,
    "her husband"), a "the" before it is not doubled, and a name that opens the question opens it
    capitalised."""
    dummies = [m.span() for m in _DUMMY_IT.finditer(question)]
    found = re.finditer(rf"\b{re.escape(word)}\b", question)
    at = next((m for m in found if not any(s <= m.start() < e for s, e in dummies)), None)
    if at is None:
        return question
    after = re.match(r"\s+([\w'’-]+)", question[at.end() :])
    possessive = word.lower() in _POSSESSIVE or (  # "her husband", not "gave her the prize"
        word.lower() == "her" and after is not None and after.group(1).lower() not in STOP
    )
    form = name + ("'" if name.endswith("s") else "'s") if possessive else name
    before = question[: at.start()]
    if name.lower().startswith("the ") and re.search(r"\bthe\s+$", before, re.IGNORECASE):
        form = form[4:]
    if not before.strip():
        form = form[:1].upper() + form[1:]
    return before + form + question[at.end() :]


def _unquoted(line: str) -> str:
    """`line` without the quotes or bold marks a model may wrap it in; a quote that belongs to
    the question ('Who wrote "Hamlet"') stays."""
    line = line.strip("*` ")  # bold or code marks are never the question's own
    while len(line) > 1 and line[0] in _QUOTES and line[-1] in _QUOTES:
        line = line[1:-1].strip()
    return line


def _name_words(pairs: list[tuple[str, str]]) -> set[str]:
    """The words of the names the conversation said, as `content` reads them."""
    return {norm(w) for name in names_said("", pairs) for w in content(name)}


def _conversation(pairs: list[tuple[str, str]]) -> str:
    return "\n".join(
        f"Question: {' '.join(defuse(q).split())}\nAnswer: {' '.join(neutralise(a).split())}"
        for q, a in pairs
    )


# What the word that opens a question asks for ("what" and "which" may ask for any of them: "In
# what year ...?"); after a word that leads in ("And when ...?", "In which year ...?").
_ASKS_FOR = {"when": "time", "where": "place", "who": "person", "whom": "person", "whose": "person",
             "why": "reason", "how many": "number", "how much": "number", "how old": "number",
             "how long": "length", "how": "manner"}  # fmt: skip
_OPENS = re.compile(
    r"^\W*(?:(?:and|but|so|then|also|well|ok|okay|in|at|on|from|to|for|by|with|of|during|since|until)\s+)*"
    r"(how\s+(?:many|much|old|long)|when|where|whom|whose|who|why|how|what|which)\b",
    re.IGNORECASE,
)


def _asked_by(question: str) -> str | None:
    """What the word that opens `question` asks for ("time" for "When ...?"), if it says: "yes or
    no" for a question that opens with a verb ("Did he ...?"); None for "what", "which", "What
    about ...?" (asked in the form of the last question) or one that opens otherwise."""
    if _YES_OR_NO.match(question):  # unless it asks one: "Can you tell me when he left?"
        asked = _ASKED_WITHIN.search(question)
        return _ASKS_FOR.get(" ".join(asked.group(1).lower().split())) if asked else "yes or no"
    m = _OPENS.match(question)
    return _ASKS_FOR.get(" ".join(m.group(1).lower().split())) if m else None


def _asks_another(question: str, rewrite: str) -> str | None:
    """What `rewrite` asks for where `question` asks for another thing ("where" for "when", "did"
    for "when"), or None; a length ("how long") may be asked as a number ("how many years") or a
    time ("since when")."""
    asked, other = _asked_by(question), _asked_by(rewrite)
    if asked is None or other is None or {asked, other} in ({"number", "length"}, {"time", "length"}):
        return None
    return None if asked == other else f"a {other}, not a {asked}"


_ASKED_WITHIN = re.compile(r"\b(how\s+(?:many|much|old|long)|when|where|whom|whose|who|why)\b", re.IGNORECASE)
_YES_OR_NO = re.compile(
    r"^\W*(?:did|does|do|is|are|was|were|has|have|had|can|could|will|would|should|may|might)\b", re.IGNORECASE
)


def read_rewrite(reply: str, question: str, pairs: list[tuple[str, str]]) -> tuple[str | None, str]:
    """(the rewritten question in the generator's `reply`, "") or (None, why it is refused):
    empty, more than three times as long as the question (and 120 characters over it), a refusal
    or a statement where a question was asked, a question that keeps too few of the words asked
    (an answer or another question; in a script without spaces, too few of its characters), a
    reply that is no question and adds words other than the names the conversation said (for a
    question typed without "?": "and his province" is not "Ismail Khan was governor of Kabul"),
    one that changes what was asked (a negation, a number or an opposite: see says_otherwise),
    one that asks with another question word ("where" for "when") or drops a name asked, or one
    that names something neither the question nor the conversation `pairs` names."""
    line = next((x for x in reply.strip().splitlines() if x.strip()), "")
    line = " ".join(_unquoted(_LABEL.sub("", line.strip()).strip()).split())
    if not line or is_refusal(line):
        return None, "empty or a refusal"
    if len(line) > max(3 * len(question), len(question) + 120):
        return None, "far longer than the question"
    if question.rstrip().endswith(_ASKS) and not line.endswith(_ASKS):
        return None, "not a question (a reply to it)"
    if _MARKS.search(line):
        return None, "cites passages (an answer)"
    asked = {norm(w) for w in content(question)}
    added = {norm(w) for w in content(line)} - asked
    if " " not in question.strip() and not question.isascii():  # Chinese, Japanese: no spaces
        characters = set(question) - set(_QUOTES + "?？。 ")  # the characters asked
        if len(characters & set(line)) < len(characters) // 2:
            return None, "keeps too few of the words asked"
    elif asked and len(asked & {norm(w) for w in content(line)}) < max(1, len(asked) // 2):
        return None, "keeps too few of the words asked"
    if another := _asks_another(question, line):  # "When did he leave?" -> "Where did Khan leave?"
        return None, f"asks for another thing ({another})"
    kept = {norm(w) for w in content(line)}
    if dropped := [w for w in _NAME.findall(question[1:]) if len(w) > 1 and norm(w) in asked - kept]:
        return None, f"drops a name asked ({', '.join(dropped)})"  # "... about Herat?" -> "What did he say?"
    if not line.endswith(_ASKS) and added - _name_words(pairs):  # "and his province" -> a statement
        return None, "adds words that are not names the conversation said (a reply to it)"
    if changed := says_otherwise(line, question):  # "Who did not attend?" -> "Who attended?"
        return None, f"changes what was asked ({changed})"
    known = set(re.findall(r"[\w-]+", " ".join([question, *(q + " " + a for q, a in pairs)]).lower()))
    unknown = [w for w in _NAME.findall(line[1:]) if w.lower() not in known]  # the opening word aside
    if unknown:
        return None, f"names what no turn named ({', '.join(unknown)})"  # the prompt's example, say
    return line, ""
