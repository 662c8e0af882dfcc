"""Words as the checks read them: stemmed content words, the key words a claim turns on
(numbers, dates, names), and negations. Pure text logic, no model."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from functools import cache

from breame.spelling import get_american_spelling

from embeddings.chunker import NOT_AFTER_ABBREVIATION

# A word keeps its inner dots, commas and apostrophes: 50,000 / 3.2 / don't / U.S.; a number its
# minus sign (-5, not the 5 of "5-10") and a leading point (.5).
WORD = re.compile(r"(?:(?<![\w-])-(?=\d)|(?<![\w.])\.(?=\d))?\w+(?:[.,'’]\w+)*", re.UNICODE)

# Function words: they carry no claim of their own. Wider than BM25's list, which keeps verbs
# such as "was" and "did" that would otherwise count as evidence.
STOP = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "nor",
        "so",
        "yet",
        "if",
        "then",
        "than",
        "that",
        "this",
        "these",
        "those",
        "there",
        "here",
        "it",
        "its",
        "it's",
        "they",
        "them",
        "their",
        "theirs",
        "he",
        "him",
        "his",
        "she",
        "her",
        "hers",
        "we",
        "us",
        "our",
        "you",
        "your",
        "i",
        "me",
        "my",
        "mine",
        "who",
        "whom",
        "whose",
        "which",
        "what",
        "when",
        "where",
        "why",
        "how",
        "whether",
        "of",
        "to",
        "in",
        "on",
        "at",
        "by",
        "for",
        "from",
        "with",
        "without",
        "into",
        "onto",
        "over",
        "under",
        "about",
        "above",
        "below",
        "between",
        "among",
        "through",
        "during",
        "before",
        "after",
        "since",
        "until",
        "upon",
        "within",
        "as",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "am",
        "do",
        "does",
        "did",
        "done",
        "doing",
        "has",
        "have",
        "had",
        "having",
        "will",
        "would",
        "shall",
        "should",
        "can",
        "could",
        "may",
        "might",
        "must",
        "also",
        "too",
        "very",
        "just",
        "only",
        "even",
        "still",
        "such",
        "some",
        "any",
        "each",
        "every",
        "all",
        "both",
        "either",
        "neither",
        "much",
        "many",
        "more",
        "most",
        "other",
        "another",
        "same",
        "own",
        "so",
        "not",
        "no",
        "never",
        "n't",
        "one",
        "ones",
        "s",
        "t",
        "d",
        "ll",
        "re",
        "ve",
        "m",
        "yes",
        "according",
        "answer",
        "passage",
        "passages",
        "document",
        "documents",
        "text",
    ]
)
NEGATIONS = frozenset(
    [
        "not",
        "no",
        "never",
        "n't",
        "nor",
        "neither",
        "none",
        "nobody",
        "nothing",
        "nowhere",
        "cannot",
        "without",
    ]
) | frozenset(  # in German, French, Spanish, Portuguese, Italian and Dutch documents and answers
    [
        "nicht",
        "kein",
        "keine",
        "keinen",
        "keinem",
        "keiner",
        "keines",
        "nie",
        "niemals",
        "ne",
        "pas",
        "jamais",
        "aucun",
        "aucune",
        "nunca",
        "jamás",
        "ningún",
        "ninguna",
        "ninguno",
        "não",
        "nenhum",
        "nenhuma",
        "nessun",
        "nessuno",
        "nessuna",
        "niet",
        "geen",
        "nooit",
    ]
)
# In a passage these also deny what follows them ("failed to reach").
DENIALS = NEGATIONS | frozenset(
    [
        "fail",
        "fails",
        "failed",
        "refuse",
        "refused",
        "refuses",
        "deny",
        "denied",
        "denies",
        "unable",
        "lack",
        "lacked",
    ]
)
_NOT_NEGATING = re.compile(r"\bnot\s+(?:only|just|merely)\b|\bno\s+doubt\b", re.IGNORECASE)
# Words that make what follows them a possibility: "may have been caused", "reportedly fled".
# Not "could" (as often the past of "can"), nor "alleged" and "suspected", whose scope is a noun
# ("the suspected gunman"); "May" with a capital is the month.
HEDGES = frozenset(
    ["may", "might", "perhaps", "possibly", "probably", "likely", "unlikely", "allegedly", "reportedly",
     "presumably"]
)  # fmt: skip

MONTHS = frozenset(
    [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ]
)
_NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate(
        [
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
            "twenty",
        ]
    )
}
_NUMBER_WORDS |= {
    w: str(10 * i)
    for i, w in enumerate(["thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"], 3)
}
_ORDINALS = {
    w: str(i)
    for i, w in enumerate(
        [
            "first",
            "second",
            "third",
            "fourth",
            "fifth",
            "sixth",
            "seventh",
            "eighth",
            "ninth",
            "tenth",
            "eleventh",
            "twelfth",
            "thirteenth",
            "fourteenth",
            "fifteenth",
            "sixteenth",
            "seventeenth",
            "eighteenth",
            "nineteenth",
            "twentieth",
        ],
        1,
    )
}
_ORDINALS |= {
    w: str(10 * i)
    for i, w in enumerate(
        ["thirtieth", "fortieth", "fiftieth", "sixtieth", "seventieth", "eightieth", "ninetieth"], 3
    )
}
SCALES = frozenset(["hundred", "thousand", "million", "billion", "trillion", "percent"])
_ORDINAL_DIGITS = re.compile(r"^(\d+)(?:st|nd|rd|th)$")
_DECADE = re.compile(r"^\d*0s$")  # "the 1990s", "the 80s": a span of years, not the year 1990


# "5%" and "5 per cent" say "5 percent": the checks read all three as the word "percent".
_PERCENT = re.compile(r"(?<=\d)\s*%|\bper\s+cent\b", re.IGNORECASE)
# An acronym written with dots ("U.S.", "U.K.") is the same name without them.
_DOTTED = re.compile(r"(?:[a-z]\.)+[a-z]")


# A unit written onto its number is a word of its own: "20km" says "20 km", "$1.5bn" "$1.5
# billion", so "30km" is not "20km" and "20 km" is. Ordinals ("2nd") and decades ("1990s") stay.
_JOINED = re.compile(r"\b(\d+(?:[.,]\d+)*)(?!(?:st|nd|rd|th|s)\b)([a-z]+)\b", re.IGNORECASE)
# A scale shortened after an amount: "$1.5bn", "3tn"; "m" and "k" only after a currency sign
# ("$4m", "£50k"), as "400m" and "5k" are as often a distance.
_SHORT_SCALES = {"bn": "billion", "tn": "trillion", "trn": "trillion"}
_MONEY_SCALES = {"m": "million", "mn": "million", "k": "thousand"}
_MONEY = re.compile(r"[$£€¥]\s?\d+(?:[.,]\d+)* ([a-z]+)\b", re.IGNORECASE)
# A currency's sign or code before an amount is its name after it: "$5 million" and "US$5m" say
# "5 million dollars", "C$5m" "5 million Canadian dollars", "EUR 20" "20 euros". A currency's
# name is a key word: a reply in dollars is not borne out by a passage in euros. (A sign after a
# letter that names no country, "X$5", is left as written.)
_PRICED = re.compile(
    r"(?:\b(US|A|C|HK|NZ|S|R)|(?<![A-Za-z]))([$£€¥]|\b(?:USD|EUR|GBP|JPY|CNY)\b)\s?"
    r"(\d+(?:[.,]\d+)*(?:\s(?:hundred|thousand|million|billion|trillion)\b)?)"
)
_CURRENCY = re.compile(r"[$£€¥]|USD|EUR|GBP|JPY|CNY")
_CURRENCY_OF = {"$": "dollars", "£": "pounds", "€": "euros", "¥": "yen", "USD": "dollars", "EUR": "euros",
                "GBP": "pounds", "JPY": "yen", "CNY": "yuan", "US$": "dollars", "A$": "Australian dollars",
                "C$": "Canadian dollars", "HK$": "Hong Kong dollars", "NZ$": "New Zealand dollars",
                "S$": "Singapore dollars", "R$": "Brazilian reais"}  # fmt: skip
CURRENCIES = frozenset(
    ["dollar", "dollars", "euro", "euros", "pound", "pounds", "yen", "yuan", "renminbi", "rupee", "rupees",
     "franc", "francs", "peso", "pesos", "ruble", "rubles", "rouble", "roubles", "lira", "rand", "krona",
     "krone", "reais"]
)  # fmt: skip
# "¥" is the sign of the yen and of the yuan: the checks read the two names as one word.
_ONE_SIGN = {"yuan": "yen", "renminbi": "yen"}


def _spelled_out(text: str, scaled: bool = True) -> str:
    """`text` with a percent sign, a unit written onto its number and a shortened scale spelled
    as words, a number of two words ("twenty-five", "twenty-first") in digits and a country's
    or union's name as its acronym and a currency's sign as its name, so that the checks read
    one claim written two ways as one; `scaled`, an amount with its scale as its digits."""
    text = _ISO_DATE.sub(_written_date, text)
    text = _SPELLED_UNIT.sub(_spelled_unit, text)
    text = _ON_THE_HOUR.sub(r"\1 ", text)
    text = _JOINED.sub(_unit, _PERCENT.sub(" percent", _MINUS.sub("-", text)))
    text = _METERS.sub(r"\1 meters", text)
    text = _TENS_AND_ONES.sub(_tens_and_ones, text)
    text = _ACRONYMS.sub(lambda m: _ACRONYM_OF[" ".join(m.group().lower().split())], text)
    if _CURRENCY.search(text):  # most texts name no currency: one quick scan, not two
        text = _MONEY.sub(_money, text)
        text = _PRICED.sub(lambda m: f"{m.group(3)} {_CURRENCY_OF[(m.group(1) or '') + m.group(2)]}", text)
    if scaled and _SCALE_WORD.search(text):  # most texts name no scale: one quick scan
        text = _SCALED.sub(_scaled, _SCALED.sub(_scaled, text))  # "one hundred thousand": 100, then 100000
    return _US.sub("USA", text)


# Units written as signs or letters that a reply may spell out, or the reverse: "42.6°C" is
# "42.6 degrees Celsius", "40 mph" "40 miles per hour".
_SPELLED_UNITS = {"°c": " degrees Celsius", "°f": " degrees Fahrenheit", "°": " degrees", "mph": " miles per hour",
                  "km/h": " kilometers per hour", "kph": " kilometers per hour"}  # fmt: skip


def _spelled_unit(m: re.Match) -> str:
    """The unit in words, a space after it where a word or number follows ("51°30′": "51 degrees
    30′"; not "30°C-35°C", whose "-" is no sign)."""
    after = m.string[m.end() : m.end() + 1]
    return _SPELLED_UNITS["".join(m.group(1).lower().split())] + (" " if after.isalnum() else "")


_SPELLED_UNIT = re.compile(r"\s?(°\s?[CF]\b|°|(?<=\d)\s?(?:mph|km/h|kph)\b)", re.IGNORECASE)
# "330 m tall" is 330 meters ("1.5m people" and "$4m" are millions: see _MONEY).
_METERS = re.compile(
    r"(?<![$£€¥\d.,])(?<![$£€¥]\s)(\d+(?:[.,]\d+)*)\s?m\b(?=\s+(?:tall|high|long|wide|deep|thick|above|below"
    r"|away|underground|in\s+(?:height|length|diameter|depth|width))\b)"
)
# A time on the hour: "2:00 p.m." says "2 p.m.".
_ON_THE_HOUR = re.compile(r"\b(\d{1,2}):00\s?(?=[ap]\.?m\b)", re.IGNORECASE)

# A date as ISO 8601 writes it ("2024-03-05", also before a time): the day, month and year a
# reply may write as "March 5, 2024".
_ISO_DATE = re.compile(r"(?<![\d-])(\d{4})-(0?[1-9]|1[0-2])-(0?[1-9]|[12]\d|3[01])(?!\d)(T(?=\d))?")
_MONTH_ORDER = ("January", "February", "March", "April", "May", "June", "July", "August",
                "September", "October", "November", "December")  # fmt: skip


def _written_date(m: re.Match) -> str:
    at = " at " if m.group(4) else ""  # "2024-05-01T18:00"
    return f"{int(m.group(3))} {_MONTH_ORDER[int(m.group(2)) - 1]} {m.group(1)}{at}"


_TENS = {w: int(n) for w, n in _NUMBER_WORDS.items() if int(n) >= 20}
_ONES = {w: int(n) for w, n in _NUMBER_WORDS.items() if 1 <= int(n) <= 9}
_ONES_ORDINAL = {w: int(n) for w, n in _ORDINALS.items() if 1 <= int(n) <= 9}
_TENS_AND_ONES = re.compile(
    rf"\b({'|'.join(_TENS)})[- ]({'|'.join([*_ONES, *_ONES_ORDINAL])})\b", re.IGNORECASE
)
# Names written out that a reply may give as their acronym, or the reverse.
_ACRONYM_OF = {"united states": "USA", "united kingdom": "UK", "european union": "EU", "united nations": "UN"}
_US = re.compile(r"\bU\.S\.(?:A\.)?|\bUSA?\b")  # all "USA": "us" is a function word
_ACRONYMS = re.compile(r"\b(?:United\s+States|United\s+Kingdom|European\s+Union|United\s+Nations)\b")


# The typographic minus sign before a number, and the word (not in "plus or minus 5", nor
# "10 minus 5"): "−5" and "minus 5" say "-5".
_MINUS = re.compile(r"\u2212(?=\d)|(?<!plus or )(?<!\d )\bminus\s+(?=\d)", re.IGNORECASE)
# An amount with its scale in words is the number it makes: "1.5 million" and "two million" say
# 1500000 and 2000000, as "1,500,000" and "2,000,000" do.
_SCALE_ZEROS = {"hundred": 2, "thousand": 3, "million": 6, "billion": 9, "trillion": 12}
# A scale in words, or shortened after an amount ("$1.5bn", "£4m"), which _spelled_out writes out.
_SCALE_WORD = re.compile(r"hundred|thousand|illion|\d\s?(?:bn|tn|trn|mn|m|k)\b", re.IGNORECASE)
_SCALED = re.compile(
    rf"\b(\d+(?:[.,]\d+)*|{'|'.join(_NUMBER_WORDS)}) ({'|'.join(_SCALE_ZEROS)})\b", re.IGNORECASE
)


def _scaled(m: re.Match[str]) -> str:
    amount = number(m.group(1))
    zeros = _SCALE_ZEROS[m.group(2).lower()]
    whole, _, part = (amount or "").partition(".")
    if amount is None or len(part) > zeros:
        return m.group()
    return str(int(whole + part.ljust(zeros, "0")))


def _tens_and_ones(m: re.Match[str]) -> str:
    tens, ones = m.group(1).lower(), m.group(2).lower()
    if ones in _ONES:
        return str(_TENS[tens] + _ONES[ones])
    return f"{_TENS[tens] + _ONES_ORDINAL[ones]}th"


def _unit(m: re.Match[str]) -> str:
    unit = m.group(2)
    return f"{m.group(1)} {_SHORT_SCALES.get(unit.lower(), unit)}"


def _money(m: re.Match[str]) -> str:
    scale = _MONEY_SCALES.get(m.group(1).lower())
    return m.group() if scale is None else m.group()[: m.start(1) - m.start()] + scale


def words(text: str, scaled: bool = True) -> list[str]:
    """The words of `text`, lower-cased, in order (`scaled`: see _spelled_out)."""
    return [w.lower().replace("’", "'") for w in WORD.findall(_spelled_out(text, scaled))]


def names_a_scale(text: str) -> bool:
    """Whether `text` may hold an amount with its scale, whose words `scaled` changes."""
    return bool(_SCALE_WORD.search(text))


def _content_words(text: str, scaled: bool = True) -> Iterator[str]:
    """The content words of `text` as written (function words left out), in order."""
    for w in words(text, scaled):
        yield from (part for part in _split_clitic(w) if part not in STOP)


def content(text: str, scaled: bool = True) -> list[str]:
    """Stemmed content words (function words left out), numbers normalised, in order; with
    `scaled` False, an amount and its scale as two words ("1.5", "million")."""
    return [norm(w) for w in _content_words(text, scaled)]


def surfaces(text: str) -> dict[str, str]:
    """Each content word's stem (as `content` gives it) -> the word as `text` first writes it."""
    out: dict[str, str] = {}
    for w in _content_words(text):
        out.setdefault(norm(w), w)
    return out


# Units of time, length, mass and area: with the number before it, a key word (see measures). Short
# forms are read as the unit's name; a one-letter unit ("m": metres or million?) is not one.
_UNIT_NAMES = {"sec": "second", "secs": "second", "min": "minute", "mins": "minute", "hr": "hour",
               "hrs": "hour", "yr": "year", "yrs": "year", "mm": "millimeter", "cm": "centimeter",
               "km": "kilometer", "kms": "kilometer", "ft": "foot", "feet": "foot", "yd": "yard",
               "mi": "mile", "kg": "kilogram", "kgs": "kilogram", "lb": "pound", "lbs": "pound",
               "oz": "ounce", "g": "gram", "mg": "milligram", "mcg": "microgram", "µg": "microgram",
               "μg": "microgram", "ml": "milliliter"}  # fmt: skip
_UNIT_WORDS = ["second", "minute", "hour", "day", "week", "month", "year", "decade", "century",
               "millimeter", "centimeter", "meter", "kilometer", "inch", "foot", "yard", "mile",
               "gram", "kilogram", "ton", "tonne", "pound", "ounce", "acre", "hectare", "liter",
               "gallon", "mph", "milligram", "microgram", "milliliter"]  # fmt: skip


def norm(word: str) -> str:
    """One word as the checks compare it: a number's digits, else the stem of its American
    spelling, an acronym without its dots. A reply may spell a word other than its passage does:
    "metres" and "meters", "U.S." and "US" are one word each."""
    w = word.lower().replace("’", "'")
    if not w.isascii():
        w = _unaccented(w)
    if w.endswith("'s"):
        w = w[:-2]
    if _DOTTED.fullmatch(w):
        w = w.replace(".", "")
    w = _UNIT_NAMES.get(w, _MONTH_NAMES.get(w, _ONE_SIGN.get(w, w)))
    return number(w) or _stem(get_american_spelling(w))


def _unit_stem(word: str) -> str:
    """A unit word as `measures` compares it: "seconds" and "second" are one unit (which `norm`
    reads as the ordinal, 2)."""
    w = word.lower()
    return _stem(get_american_spelling(_UNIT_NAMES.get(w, w)))


def _unaccented(word: str) -> str:
    """A Latin letter without its accent ("zürich" -> "zurich", "café" -> "cafe", "wałęsa" ->
    "walesa"): a reply may write a name as its passage does not. Marks on other scripts' letters
    stay."""
    kept: list[str] = []
    for ch in unicodedata.normalize("NFKD", word.translate(_UNDECOMPOSED)):
        if not (unicodedata.combining(ch) and kept and kept[-1].isascii()):
            kept.append(ch)
    return unicodedata.normalize("NFC", "".join(kept))


# Latin letters that Unicode does not split into a letter and an accent.
_UNDECOMPOSED = str.maketrans(
    {"ł": "l", "ø": "o", "đ": "d", "ð": "d", "æ": "ae", "œ": "oe", "ß": "ss", "þ": "th"}
)
# A month as the news shortens it ("Jan. 5", "Sept. 11"): the month.
_MONTH_NAMES = {"jan": "january", "feb": "february", "mar": "march", "apr": "april", "jun": "june",
                "jul": "july", "aug": "august", "sep": "september", "sept": "september", "oct": "october",
                "nov": "november", "dec": "december"}  # fmt: skip


def _split_clitic(word: str) -> list[str]:
    if word.endswith("n't"):
        return [word[:-3], "n't"]
    if "'" in word:
        return [word.split("'")[0]]
    return [word]


def number(word: str) -> str | None:
    """The digits a number word stands for ("50,000" -> "50000", "tenth" -> "10"), else None."""
    w = word.lower()
    if w in _NUMBER_WORDS:
        return _NUMBER_WORDS[w]
    if w in _ORDINALS:
        return _ORDINALS[w]
    m = _ORDINAL_DIGITS.match(w)
    if m:
        return m.group(1)
    if _DECADE.match(w):
        return w
    sign, w = ("-", w[1:]) if w.startswith("-") else ("", w)
    # A comma groups thousands ("1,500,000") but before one, two or four and more digits, where it
    # is a decimal point ("1,5 Millionen").
    plain = w.replace(",", ".") if _DECIMAL_COMMA.fullmatch(w) else w.replace(",", "")
    if plain.replace(".", "", 1).isdigit():
        whole, point, part = plain.partition(".")
        whole = whole.lstrip("0") or "0"  # "05" is 5 ("March 05", "08:00"), ".5" is 0.5
        return sign + (f"{whole}.{part}".rstrip("0").rstrip(".") if point else whole)
    return None


_DECIMAL_COMMA = re.compile(r"\d+,(?:\d{1,2}|\d{4,})")


def key_words(text: str) -> set[str]:
    """What a claim turns on, normalised as `content` makes them: numbers (ordinals but "first",
    which is as often "at first"), scale words, months, acronyms (also one spelled as a function
    word: US, WHO) and names (capitalised words that do not open the sentence)."""
    keys: set[str] = set()
    text = _spelled_out(text)
    previous = ""
    for m in WORD.finditer(text):
        w = m.group()
        lower = w.lower()
        # "no one", "each one", "one another": a pronoun, not the number 1
        pronoun = lower == "one" and (
            previous in _NOT_A_COUNT or text[m.end() :].lower().startswith(" another")
        )
        previous = lower
        if pronoun:
            continue
        if any(ch.isdigit() for ch in w) and number(w) is not None:
            keys.add(norm(w))
        elif _is_key(w, lower) or (
            lower not in STOP
            and lower not in NEGATIONS
            and w[0].isupper()
            and not _opens_sentence(text, m.start())
        ):
            keys.add(norm(lower))
    return keys | measures(words(text))


_NOT_A_COUNT = frozenset(["no", "any", "every", "some", "each", "this", "that", "the", "which", "another"])


def _is_key(w: str, lower: str) -> bool:
    """Whether a word is a key word whatever its place: a number word, a scale, a currency, a
    month, an acronym."""
    return (
        lower in _NUMBER_WORDS
        or lower in SCALES
        or lower in CURRENCIES
        or (lower in MONTHS and w[0].isupper())
        or (lower in _ORDINALS and lower != "first")
        or (len(w) > 1 and w.isupper() and w.isalpha())
    )


def as_written(keys: Iterable[str], text: str) -> tuple[str, ...]:
    """Key words, as `key_words` gives them, in the form `text` writes them: "Kennedy" for
    "kennedi", "20 months" for "20 month". What a user reads in a reason is the word they read."""
    found = [w.removesuffix("'s").removesuffix("’s") for w in WORD.findall(_spelled_out(text))]
    # an amount with its scale as written: "1.5 billion", not the 1500000000 the checks compare
    written = {_scaled(m): m.group() for m in _SCALED.finditer(_spelled_out(text, scaled=False))}
    for before, w in zip(["", *found], found, strict=False):
        written.setdefault(norm(w), w)
        for pair in measures([before.lower(), w.lower()]):
            written.setdefault(pair, f"{written.get(norm(before), before)} {w}")
    out = [written.get(k, k) for k in keys]
    return tuple(w for w in out if not any(o.startswith(f"{w} ") for o in out))  # "20 months", not "20" too


def measures(words: list[str]) -> set[str]:
    """Each amount with its unit in `words` (as `words` gives them), as one key word: "20 year";
    and each day with its month: "5 januari", from "5 January" and "January 5". A claim turns on
    the pair: "20 months" is not "20 years", though the passage may say "20 kilometres (12
    miles)" and so hold both "20" and "mile"; nor is "12 January" the "5 January" of a passage
    that also names 12 March."""
    out = set()
    for a, b in zip(words, words[1:], strict=False):
        if (unit := _unit_stem(b)) in _UNITS and (amount := number(a)) is not None:
            out.add(f"{amount} {unit}")
        elif (half := b.replace(".", "")) in ("am", "pm") and (amount := number(a)) is not None:
            out.add(f"{amount} {half}")  # "9:30 pm" is not "9:30 am"
    # a day with its month, next to it or across "of" or "the": "3rd of March", "March the 3rd"
    across = [(a, b) for a, x, b in zip(words, words[1:], words[2:], strict=False) if x in _DAY_OF]
    pairs = [*zip(words, words[1:], strict=False), *across]
    for a, b in pairs:
        for day, month in ((a, b), (b, a)):
            if (
                (m := _MONTH_NAMES.get(month, month)) in MONTHS
                and (d := number(day))
                and d.isdigit()
                and 1 <= int(d) <= 31
            ):
                out.add(f"{d} {norm(m)}")
    return out


_DAY_OF = frozenset(["of", "the"])


def _opens_sentence(text: str, at: int) -> bool:
    """Whether the word at `at` opens a sentence: not one after a title or an initial ("Dr. Jones",
    "John F. Kennedy"), which is a name."""
    before = text[:at].rstrip(" \"'“‘([")
    if before.endswith(".") and not _SENTENCE_CAN_END.match(before, len(before)):
        return False
    return not before or before[-1] in ".!?:\n"


_SENTENCE_CAN_END = re.compile(NOT_AFTER_ABBREVIATION)


_TOKEN = re.compile(r"\w+(?:[.,'’]\w+)*|[,;:.!?]")
_BREAKS = frozenset(["but", "while", "although", "though", "whereas", "however", "instead"])


def negations(
    text: str, cues: frozenset[str] = NEGATIONS, width: int = 5, every: bool = False
) -> list[set[str]]:
    """For each word of `text` that negates (or, given HEDGES, hedges), the content words
    (stemmed) it negates: those among the `width` words after it, up to a punctuation mark or a
    'but'; an aside between commas right after it is passed over ("did not, however, approve").
    `every`: all the words negated, function words too ("before", "more")."""
    text = _NOT_NEGATING.sub(" ", _spelled_out(text))
    written = _TOKEN.findall(text)
    tokens = [t.lower().replace("’", "'") for t in written]
    out = []
    for i, t in enumerate(tokens):
        if (t in cues and written[i] != "May") or (t.endswith("n't") and "n't" in cues):
            negated: set[str] = set()
            # "did not, however, approve", "may, investigators said, have": past an aside (not
            # after a "No," that answers: "No, the bridge opened in 1932, two years late")
            start = i + 1 if t in ("no", "none", "neither", "nor") else _after_aside(tokens, i + 1)
            for w in tokens[start : start + width]:
                if w in _BREAKS or not w[0].isalnum():
                    break
                if every or (w not in STOP and w not in DENIALS):
                    negated.add(norm(w))
            out.append(negated)
    return out


def _after_aside(tokens: list[str], start: int, longest: int = 6) -> int:
    """Where the words after a negation begin: past an aside between commas that opens at
    `start` ("not, so far, ruled"), of at most `longest` words."""
    if start < len(tokens) and tokens[start] == ",":
        for k in range(start + 1, min(start + 2 + longest, len(tokens))):
            if (
                tokens[k] == ","
            ):  # not where a clause of its own follows ("failed, they said, and Labour won")
                return start if k + 1 < len(tokens) and tokens[k + 1] in _CLAUSE_OPENS else k + 1
            if not tokens[k][0].isalnum():
                break
    return start


_CLAUSE_OPENS = frozenset(["and", "or", "so", "then", "yet", "but", "while", "although", "though", "whereas"])


def _stem(word: str) -> str:
    return _stemmer().stemWord(word)


@cache
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


_UNITS = frozenset(_unit_stem(w) for w in _UNIT_WORDS)  # here, once norm's helpers are defined
