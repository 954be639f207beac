"""Full-text helpers shared by the stores: tokenising, and fuzzy expansion of keywords.

A keyword matches a word of the text when it is a prefix of it or within one edit of it
(insert, delete, replace or swap one character; keywords of 3 to 40 characters), case
insensitively. Each store keeps the vocabulary of every (collection) index beside its engine's
index; a search first expands each keyword against that vocabulary in SQL (``neighbours`` gives
the exact terms and one-character patterns to look up, each an index range but the two that
change the first character), then lets the engine (FTS5 or tsvector) find and rank the documents
that hold every keyword. ``candidates`` is the same rule in Python, the reference in tests.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[^\W_]+")
FUZZY_MIN = 3
FUZZY_MAX = 40  # longer keywords match as prefixes only (their patterns would be many)
MAX_CANDIDATES = 64


def words(text: str) -> list[str]:
    """Lower-cased words, as both engines' tokenisers see them (letters and digits)."""
    return _WORD.findall(text.lower())


def within_one(a: str, b: str) -> bool:
    """True when a and b differ by at most one edit (Damerau: a swap counts as one)."""
    if a == b:
        return True
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    if la == lb:
        diff = [i for i in range(la) if a[i] != b[i]]
        if len(diff) == 1:
            return True
        return len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]
    if la > lb:
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    return a[i:] == b[i + 1 :]


def keyword_words(keywords: list[str]) -> list[str]:
    """Every word of every keyword (``e-mail`` -> ``e``, ``mail``), de-duplicated, in order."""
    out: list[str] = []
    for kw in keywords:
        for w in words(kw):
            if w not in out:
                out.append(w)
    return out[:32]


def neighbours(word: str) -> tuple[list[str], list[tuple[str, str]]]:
    """The terms within one edit of ``word``, as SQL can look them up: exact terms (one
    character deleted, or two neighbours swapped) and patterns ``(before, after)`` standing for
    ``before + any one character + after`` (one replaced, or one inserted). The word itself
    matches the replacement patterns: the caller leaves it out. Nothing for short or long words."""
    if not FUZZY_MIN <= len(word) <= FUZZY_MAX:
        return [], []
    exact = {word[:i] + word[i + 1 :] for i in range(len(word))}
    exact |= {word[:i] + word[i + 1] + word[i] + word[i + 2 :] for i in range(len(word) - 1) if word[i] != word[i + 1]}
    patterns = {(word[:i], word[i + 1 :]) for i in range(len(word))}
    patterns |= {(word[:i], word[i:]) for i in range(len(word) + 1)}
    exact.discard(word)
    return sorted(exact), sorted(patterns)


TOP = "\U0010ffff"  # above every character: ``prefix <= t < prefix + TOP`` is "t starts with prefix"


def candidates(word: str, vocabulary: list[str]) -> list[str]:
    """Vocabulary terms within one edit of ``word`` (the engine adds prefix matches itself)."""
    if not FUZZY_MIN <= len(word) <= FUZZY_MAX:
        return []
    found = [t for t in vocabulary if t != word and within_one(word, t)]
    return found[:MAX_CANDIDATES]
