"""Does a passage state what an answer sentence says? Pure text logic, no model.

The sentence is aligned with the passage's sentence (or pair of adjacent sentences) that holds
most of its content words: its window. It is supported when the window holds enough of those
words, every key word it turns on (a number, a date, a name) is in the window (or, for a sentence
of several clauses, each clause's in the one of two adjacent sentences that holds it), and the
two agree on negation. Word overlap alone passes "Massoud did not meet Muttaqi in Tehran" and "...
in Kabul" (a place the article names elsewhere); the window and the key words do not."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, replace

from embeddings.chunker import sentences
from qa.words import (
    DENIALS,
    HEDGES,
    NEGATIONS,
    as_written,
    content,
    key_words,
    measures,
    names_a_scale,
    negations,
    norm,
    number,
    words,
)


@dataclass(frozen=True)
class Support:
    score: float  # share of the sentence's content words the window holds; 0 when it has none
    start: int  # the window: character offsets in the passage
    end: int
    missing: tuple[str, ...] = ()  # key words of the sentence the window lacks, as the sentence writes them
    contradicts: bool = False  # the sentence negates what the window states, or the reverse
    hedged: bool = False  # the sentence states as fact what the window says only may be so

    def holds(self, threshold: float) -> bool:
        return (
            self.score > 0 and self.score >= threshold and not self.missing and not self.contradicts
            and not self.hedged
        )  # fmt: skip

    @property
    def problem(self) -> str | None:
        """Why the passage does not hold the sentence, beyond its score, in words."""
        if self.contradicts:
            return "the passage says the opposite"
        if self.missing:
            return f"the passage does not say {', '.join(self.missing)}"
        if self.hedged:
            return HEDGED
        return None


NONE = Support(0.0, 0, 0)
HEDGED = "the passage says only that it may be so"


def support(sentence: str, passage: str, question: str = "", title: str = "", named: str = "") -> Support:
    """How well `passage` holds `sentence`. Words the question gives count only where they do
    not carry the claim: they need not be in the window, but a key word the question gives must
    still be somewhere in the passage or its title. The words of `named` (a summary names the
    document it draws on by its title) count where the window holds them and need not be there
    when it does not: "Overall, the council approved the budget" restates the title "Council
    approves budget" and is held by "The council approved the budget". A sentence whose key words
    no one passage sentence holds may be held clause by clause, by two adjacent sentences (see
    _by_clauses)."""
    claim = content(sentence)
    if not claim:
        return NONE  # "It was." is no evidence of anything
    asked = set(content(question))
    titled = set(content(named)) - asked  # excused where the window lacks them
    given = asked | titled
    counted = [w for w in claim if w not in asked] or claim
    keys = key_words(sentence)
    # "fell 5%" says what "-5%" does: a number right after a word for down has its sign in words
    fallen = _after_a_fall(words(sentence))
    anywhere = vocabulary(passage) | vocabulary(title)
    spans = sentences(passage)
    if not spans:
        return NONE
    # The anchor: the passage sentence that holds most of the claim with its key words. A pair of
    # sentences may hold more of the claim's words, but the key words must stand in the anchor:
    # "the Panthers defense gave up 308 points" does not become "the Kawann Short defense" because
    # the next sentence names Kawann Short.
    anchor = _anchor(counted, titled, keys, passage, spans, given, anywhere, fallen)
    start, end, score = anchor.start, anchor.end, anchor.score
    # A word of the question the claim repeats ("born") need not be in the window, unless the
    # passage says it of another: "Curie was born in Warsaw. She moved to Paris." does not hold
    # "Curie was born in Paris".
    if lacking := _said_of_another(claim, counted, asked, keys | key_words(question), passage, spans, anchor):
        score = _share([*counted, *lacking], passage[start:end], titled)
    for a, b in zip(spans, spans[1:], strict=False):  # the anchor and a neighbour, when that holds more
        if not lacking and (a[0] == anchor.start or b[0] == anchor.start):
            pair = _share(counted, passage[a[0] : b[1]], titled)
            if pair > score:
                start, end, score = a[0], b[1], pair
    if anchor.missing and (joined := _by_clauses(sentence, passage, spans, question, titled, anywhere)):
        start, end, score, anchor = *joined, replace(anchor, missing=())
    window = passage[start:end]
    missing = as_written(anchor.missing, sentence) if anchor.missing else ()  # most often none
    contradicts = _contradicts(sentence, window, question) or _opposes(sentence, window)
    return Support(round(score, 3), start, end, missing, contradicts, _hedged(sentence, window, question))


def _said_of_another(claim: list[str], counted: list[str], asked: set[str], named: set[str], passage: str,
                     spans: list[tuple[int, int]], anchor: Support) -> list[str]:  # fmt: skip
    """The words of the question the claim repeats (not names nor numbers) that the anchor lacks,
    where another sentence of the passage says what was asked of another: it holds every word of
    the question the claim repeats, names and numbers too ("Marie Curie was born"; a name may be a
    pronoun that stands for it, "She was born"), beside a key
    word of its own (not in `named`, the claim's and the question's: "in Warsaw"), and none of the
    claim's own words (`counted`). Not the sentence right after the anchor that goes on about its
    subject ("Ralph Freeman was an engineer. In 1924 he designed the arch for Dorman Long.")."""
    window = set(content(passage[anchor.start : anchor.end]))
    lacking = {w for w in claim if w in asked and w not in named} - window
    repeated, own = {w for w in claim if w in asked}, set(counted) - asked
    for i, (a, b) in enumerate(spans if lacking else ()):
        text = passage[a:b]
        if a == anchor.start or (i and spans[i - 1][0] == anchor.start and _goes_on(text)):
            continue
        held = set(content(text))
        # the subject named, or a pronoun standing for it ("She was born in Warsaw"; not "His
        # father died in Guildford")
        subject = held >= repeated or (held >= repeated - named and _SUBJECT.match(text) is not None)
        if subject and not held & own and key_words(text) - named:
            return sorted(lacking)
    return []


_SUBJECT = re.compile(r"^\W*(?:\w+\W+){0,2}?(?:he|she|they)\b", re.IGNORECASE)  # "She was", "In 1891 she"


def _goes_on(sentence: str) -> bool:
    """Whether `sentence` speaks of the one the sentence before it names: a pronoun among its
    first words ("He designed ...", "In 1924 she ...")."""
    return any(w.lower() in _GOES_ON for w in re.findall(r"\w+", sentence)[:4])


_GOES_ON = frozenset(["he", "she", "it", "they", "his", "her", "its", "their", "him", "them"])


def _missing(
    keys: set[str], seen: set[str], given: set[str], anywhere: set[str], fallen: set[str]
) -> tuple[str, ...]:
    """The key words a window (`seen`, its vocabulary) lacks: one the question gives may stand
    anywhere in the passage, and a fall's amount may be written with its sign."""
    return tuple(
        sorted(
            k for k in keys
            if not _named(k, seen) and not (k in given and _named(k, anywhere))
            and not (k in fallen and f"-{k}" in seen)
        )
    )  # fmt: skip


def _anchor(
    counted: list[str], titled: set[str], keys: set[str], passage: str, spans: list[tuple[int, int]],
    given: set[str], anywhere: set[str], fallen: set[str],
) -> Support:  # fmt: skip
    """The passage sentence that holds most of the claim's words (`counted`; those `titled` count
    only where held) with its key words."""
    best: tuple[tuple, Support] | None = None
    for start, end in spans:
        text = passage[start:end]
        score = _share(counted, text, titled)
        missing = _missing(keys, vocabulary(text), given, anywhere, fallen)
        rank = (score - 0.25 * len(missing), -(end - start))
        if best is None or rank > best[0]:
            best = (rank, Support(round(score, 3), start, end, missing))
    assert best is not None
    return best[1]


def _by_clauses(
    sentence: str,
    passage: str,
    spans: list[tuple[int, int]],
    question: str,
    titled: set[str],
    anywhere: set[str],
) -> tuple[int, int, float] | None:
    """The window (start, end, share of the claim) of two adjacent passage sentences that hold
    `sentence` clause by clause: each clause held by one of them alone, its key words with it.
    "Massoud met Muttaqi in Tehran, in a talk mediated by Ismail Khan" joins two facts the article
    states one after the other. None where a clause is not held so, or the sentence has one
    clause: "the Kawann Short defense gave up 308 points" borrows no name from the next sentence."""
    parts = _CLAUSE.split(sentence)
    if len(parts) < 2 or any(_LINKED.match(p) for p in parts[1:]):
        return None  # "..., because X": the link between the facts is a claim no sentence holds
    asked = set(content(question))
    given = asked | titled
    anchors = []
    for part in parts:
        counted = [w for w in content(part) if w not in asked]
        if sum(w not in titled for w in counted) < _CLAUSE_WORDS:  # "In December,": no claim of its own
            return None
        fallen = _after_a_fall(words(part))
        held = _anchor(counted, titled, key_words(part), passage, spans, given, anywhere, fallen)
        text = passage[held.start : held.end]
        if (
            held.score < _CLAUSE_HELD
            or held.missing
            or _contradicts(part, text, question)
            or _opposes(part, text)
        ):
            return None
        anchors.append(held)
    start, end = min(h.start for h in anchors), max(h.end for h in anchors)
    if not any(a[0] == start and end == b[1] for a, b in zip(spans, spans[1:], strict=False)):
        return None  # one sentence (its key words were missing there), or farther apart than two
    claim = content(sentence)
    return start, end, _share([w for w in claim if w not in asked] or claim, passage[start:end], titled)


# A clause's end inside a sentence: a comma, semicolon or dash before the next (not the comma of "50,000").
_CLAUSE = re.compile(r"\s*[,;]\s+|\s+[–—-]\s+")
# A clause that links its fact to the one before (cause, time, place, consequence): not joined.
_LINKED = re.compile(
    r"(?:because|since|as|so|thus|hence|therefore|consequently|after|before|until|while|when|whenever|"
    r"where|wherever|which|who|whom|whose|then|if|unless|although|though|whereas|causing|leading)\b",
    re.IGNORECASE,
)
_CLAUSE_WORDS, _CLAUSE_HELD = 3, 0.75  # a clause is a claim of its own, and its sentence holds most of it

# Words between a word for down and the change it gives: "fell by about 5", "lost nearly 5".
_BEFORE_A_CHANGE = frozenset(
    [
        "by",
        "of",
        "a",
        "an",
        "about",
        "nearly",
        "almost",
        "roughly",
        "around",
        "approximately",
        "some",
        "just",
        "only",
        "over",
        "more",
        "less",
        "than",
        "under",
    ]
)


def _after_a_fall(said: list[str]) -> set[str]:
    """The numbers of `said` (as `words` gives them) right after a word for down: "fell 5",
    "fell by 5", "a loss of 5"; not "fell to 5", where the number is a level, not a change."""
    out = set()
    for i, w in enumerate(said):
        if norm(w) in _FALLING:
            j = i + 1
            while j < len(said) and said[j] in _BEFORE_A_CHANGE:
                j += 1
            if j < len(said) and (n := number(said[j])) is not None:
                out.add(n)
    return out


def _named(key: str, seen: set[str]) -> bool:
    """Whether the words `seen` hold the key word `key`, a name in any of its forms: "Afghan" is
    in "Afghanistan", "Pakistani" in "Pakistan" (one word is the other with the ending of a
    people, a language or a creed, the shorter of at least 6 letters, so "Iran" and "Ira" stay
    apart, as do "Richard" and "Richardson", "Jackson" and "Jacksonville")."""
    if key in seen or not _SAME_PLACE.get(key, set()).isdisjoint(seen):
        return True
    if not key.isalpha():
        return False  # numbers and dates must be there as they are
    return any(
        min(len(key), len(w)) >= 6 and _one_form(key, w) for w in seen if w.isalpha() and w[0] == key[0]
    )


# What a name's other forms add to it, stemmed: Afghan-istan, Pakistan-i, Palestin-ian,
# Argentin-a, Napoleon-ic, Christian-ity, Catholic-ism.
_FORMS = frozenset(["i", "n", "an", "ian", "ni", "ese", "a", "ic", "ity", "ism", "istan", "stan", "ist"])


# A country and its people's adjective where neither is the other with an ending of _FORMS.
_PEOPLES = [
    "china chinese", "japan japanese", "france french", "spain spanish", "britain british uk", "england english",
    "israel israeli", "iraq iraqi", "iran iranian", "italy italian", "canada canadian", "mexico mexican",
    "sweden swedish", "turkey turkish", "poland polish", "egypt egyptian", "greece greek",
    "switzerland swiss", "netherlands holland dutch", "usa america american", "korea korean",
    "india indian", "syria syrian", "denmark danish", "norway norwegian", "finland finnish",
    "ireland irish", "scotland scottish", "wales welsh", "portugal portuguese", "belgium belgian",
    "austria austrian", "hungary hungarian", "cuba cuban", "vietnam vietnamese", "thailand thai",
    "philippines filipino", "australia australian", "argentina argentine argentinian", "chile chilean",
    "peru peruvian", "colombia colombian", "venezuela venezuelan", "lebanon lebanese", "jordan jordanian",
    "yemen yemeni", "qatar qatari", "ethiopia ethiopian", "somalia somali", "sudan sudanese", "libya libyan",
    "morocco moroccan", "algeria algerian", "tunisia tunisian", "indonesia indonesian", "malaysia malaysian",
    "czechia czech", "slovakia slovak", "serbia serbian serb", "croatia croatian croat", "romania romanian",
    "bulgaria bulgarian", "iceland icelandic", "nepal nepali nepalese", "bangladesh bangladeshi",
    "taiwan taiwanese", "mongolia mongolian", "kenya kenyan", "ghana ghanaian", "europe european",
    "africa african", "asia asian", "arabia arab arabic", "germany german", "russia russian",
    "ukraine ukrainian", "brazil brazilian", "nigeria nigerian", "afghanistan afghan",
]  # fmt: skip
_SAME_PLACE = {
    norm(word): {norm(w) for w in names.split()} - {norm(word)}
    for names in _PEOPLES
    for word in names.split()
}


def _one_form(a: str, b: str) -> bool:
    short, long = sorted((a, b), key=len)
    return long.startswith(short) and long[len(short) :] in _FORMS


def _share(counted: list[str], text: str, excused: set[str]) -> float:
    """The share of the claim's words `counted` that `text` holds; a word in `excused` (a title's)
    counts only where it is held."""
    found = set(content(text)) | (set(content(text, scaled=False)) if names_a_scale(text) else set())
    considered = [w for w in counted if w in found or w not in excused]
    return sum(w in found for w in considered) / len(considered) if considered else 0.0


def windows(passage: str) -> list[tuple[int, int]]:
    """Each sentence of the passage and each pair of adjacent ones, as character spans."""
    spans = sentences(passage)
    pairs = [(a[0], b[1]) for a, b in zip(spans, spans[1:], strict=False)]
    return spans + pairs


def vocabulary(text: str) -> set[str]:
    """Every word of `text` normalised as `content` normalises it, function words included; an
    amount with its scale both as its digits and as two words ("1.5 million": 1500000, and 1.5
    and million), so that an answer's "1.5m" is held by it, but not by "1,500,000"."""
    found = words(text)
    unscaled = {norm(w) for w in words(text, scaled=False)} if names_a_scale(text) else set()
    return {norm(w) for w in found} | unscaled | measures(found)


def _contradicts(sentence: str, window: str, question: str) -> bool:
    """The sentence negates what the window states, or states what the window negates: a negation
    on one side whose words stand on the other side with no negation of their own."""
    # "declined to" denies as "refused to" does ("declined" alone is a fall, see _DOWN). (A denial
    # in the sentence is no negation of the window: "failed to pass" is what "rejected" says.)
    sentence, window = _DECLINED_TO.sub("refused to", sentence), _DECLINED_TO.sub("refused to", window)
    said, stated = negations(sentence, NEGATIONS), negations(window, DENIALS)
    claim, held = set(content(sentence)), set(content(window))
    asked = negations(question, NEGATIONS)  # "which country did not sign?" gets "France did not sign"
    for scope in said:
        if scope & held and not any(scope & other for other in stated + asked):
            return True
    denied = negations(sentence, DENIALS)
    # A word the window also states outside its negations is not denied by them: "they entered a
    # blind plea, pleading guilty without any plea agreement" does state a plea.
    plain = _plain(window, stated)
    return any((scope - plain) & claim and not any(scope & other for other in denied) for scope in stated)


_DECLINED_TO = re.compile(r"\bdeclin(?:e|ed|es|ing)\s+to\b", re.IGNORECASE)

# Words for a direction: up, and down (compared by their stems). Not "fall", "falls" or "falling",
# which share the stem of the season ("every fall").
_UP = ("increase increased increases increasing rise rose risen rises rising grew grown grows growing "
       "climbed climbing jumped surged soared")  # fmt: skip
_DOWN = ("decrease decreased decreases decreasing fell fallen dropped dropping declined declining shrank "
         "shrunk shrinks shrinking plunged plunging slumped sank sunk tumbled")  # fmt: skip
# Words whose claim is the other's reversed: "rose" where the window says "fell" only.
_OPPOSITES = [
    ("before", "after"),
    (_UP, _DOWN),  # any word for up against any for down: "rose" where the passage says "dropped"
    ("more", "less fewer"),
    ("higher highest", "lower lowest"), ("larger largest bigger biggest", "smaller smallest"),
    ("longer longest", "shorter shortest"), ("win won wins winning", "lose lost loses losing"),
    ("victory", "defeat"), ("gain gained gains", "loss lost losses"), ("legal", "illegal"),
    ("above", "below"), ("north northern", "south southern"), ("east eastern", "west western"),
    ("maximum", "minimum"), ("earlier earliest", "later latest"), ("approved", "rejected"),
    ("open opened opens opening", "closed closes closing shut"), ("profit profits profitable", "loss losses"),
    ("alive", "dead"), ("guilty", "innocent"), ("allowed permitted legalised legalized", "banned forbidden prohibited"),
    ("success successful succeeded", "failure unsuccessful failed"),
    ("admit admits admitted admitting", "deny denies denied denying"),
]  # fmt: skip
_OPPOSED = [({norm(w) for w in a.split()}, {norm(w) for w in b.split()}) for a, b in _OPPOSITES]
_FALLING = frozenset(norm(w) for w in f"{_DOWN} lost loss losses negative below deficit".split())
_OPPOSED += [(b, a) for a, b in _OPPOSED]


def _hedged(sentence: str, window: str, question: str) -> bool:
    """The window says only that the sentence's claim may be so ("the fire may have been caused
    by faulty wiring") and the sentence states it ("faulty wiring caused the fire"). A sentence or
    question with a hedge of its own ("what may have caused it?") keeps the claim a possibility."""
    window, sentence, question = (_HEDGED_TO.sub("may", t) for t in (window, sentence, question))
    hedges = negations(window, HEDGES)
    if not hedges or negations(sentence, HEDGES) or negations(question, HEDGES):
        return False
    plain, claim = _plain(window, hedges), set(content(sentence))
    return any((scope - plain) & claim for scope in hedges)


# "is believed to have caused", "appears to be": a possibility, as "may" says it (not "expected
# to", which a rule or a timetable says: "staff are expected to arrive by 9")
_HEDGED_TO = re.compile(r"\b(?:believed|thought|appears?|seems?)\s+to\b", re.IGNORECASE)


def _opposes(sentence: str, window: str) -> bool:
    """The sentence says one of a pair of opposites ("rose", "before") where the window says only
    the other ("fell", "after"), the words a negation denies left out ("was not successful" is
    "failed", which the negation check reads; "rose, although imports did not fall" still rose)."""
    return _swapped(sentence, window, _denied(sentence) | _denied(window))


def _denied(text: str) -> set[str]:
    """Every word a negation or denial of `text` negates, function words too."""
    return set().union(*negations(text, DENIALS, every=True))


def _swapped(text: str, than: str, apart: set[str] = frozenset()) -> bool:
    """`text` has one of a pair of opposites where `than` has only the other, the words in
    `apart` (those a negation denies) left out of both."""
    said, held = {norm(w) for w in words(text)} - apart, {norm(w) for w in words(than)} - apart
    return any(said & a and not said & b and held & b and not held & a for a, b in _OPPOSED)


def says_otherwise(text: str, than: str) -> str | None:
    """How `text` changes what `than` says, in words, or None: a negation one has and the other
    lacks, a number of `than` that `text` leaves out, or one of a pair of opposites where `than`
    has the other ("after" for "before"). A follow-up's rewrite (qa/conversation.py) must ask
    what was asked, not its opposite."""
    if bool(negations(text)) != bool(negations(than)):
        return "adds a negation" if negations(text) else "drops the negation"
    numbers = {k for k in key_words(than) if any(ch.isdigit() for ch in k)} - key_words(text)
    if numbers:
        return f"leaves out {', '.join(as_written(sorted(numbers), than))}"
    if _swapped(text, than):  # both deny alike: "didn't ... before" is not "didn't ... after" either
        return "says the opposite of a word asked"
    return None


def _plain(text: str, scopes: list[set[str]]) -> set[str]:
    """The content words `text` states more often than its negation `scopes` hold them."""
    negated = Counter(w for scope in scopes for w in scope)
    return {w for w, n in Counter(content(text)).items() if n > negated[w]}


def best(sentence: str, passages: list[str], question: str = "", titles: list[str] | None = None,
         threshold: float = 0.0, named: bool = False) -> tuple[int, Support]:  # fmt: skip
    """(1-based number, support) of the passage that best holds `sentence`: one that holds it at
    `threshold` before any that does not, then the higher score. `named`: the sentence may name
    each passage by its title (see `support`), never one passage by another's."""
    titles = titles or [""] * len(passages)
    checks = [
        support(sentence, p, question, t, t if named else "") for p, t in zip(passages, titles, strict=True)
    ]
    n = max(range(len(checks)), key=lambda i: (checks[i].holds(threshold), checks[i].score))
    return n + 1, checks[n]


def rest(sentence: str, passages: list[str], window: str, question: str = "") -> tuple[int, int, int] | None:
    """(1-based number, start, end) of the passage sentence that holds most of the words of
    `sentence` its `window` lacks: a reply may join two sentences of the passages into one ("the
    meeting in Iran was futile" from the sentence naming the meeting and the one giving its
    outcome), and the rest of its claim stands there. None when the window holds every word or no
    sentence holds two of the rest: one word in common ("match" in a football report's "Match
    ends") is no sign that the claim was joined from that sentence. A word the question asks
    with counts only beside one it does not: a sentence that merely repeats the question's words
    is no sign either."""
    given, held = set(content(question)), set(content(window))
    lacking = {w for w in content(sentence) if w not in held}
    own = lacking - given
    found: tuple[int, int, int, int] | None = None
    for n, passage in enumerate(passages, 1):
        for start, end in sentences(passage):
            words = set(content(passage[start:end]))
            share = len(lacking & words)
            if share >= 2 and own & words and (found is None or share > found[0]):
                found = (share, n, start, end)
    return found[1:] if found is not None else None


def around(passage: str, start: int, end: int) -> str:
    """The window [start, end) of `passage` with one sentence of context either side."""
    spans = sentences(passage)
    inside = [i for i, (s, e) in enumerate(spans) if s < end and e > start]
    if not inside:
        return passage[start:end]
    first, last = max(inside[0] - 1, 0), min(inside[-1] + 1, len(spans) - 1)
    return passage[spans[first][0] : spans[last][1]]
