"""A small in-memory search index over catalog variants (pure, no I/O).

Each SKU gets precomputed lowercased haystacks, so a query is a linear scan of plain substring
tests, one pass per token over the survivors of the previous one: about a millisecond for
7,000 variants. Ranking costs per match, so a one-letter query matching thousands of variants
is the slow case (tens of ms at 7,000).

Matching: the query is split on whitespace and every token must match (AND). A token of three
or more characters matches anywhere in any field; a shorter token must start a word, so "m"
finds size M and "Merino" but not "Denim" (and typing "te" already finds "Tee").

Ranking, best first:
  1. the whole query equals the SKU, barcode or PLU (scanner input typed by hand);
  2. the product name starts with the whole query;
  3. more tokens of 3+ characters found in the product name (a name beats a colour);
  4. more tokens that equal a whole word (so "oxford m" puts size M first);
  5. product name, then the order SKUs were added (keeps sizes in their natural order).
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable

__all__ = ["SearchIndex"]

_WORD_SPLIT = re.compile(r"[^0-9a-z]+")


class _Entry:
    __slots__ = ("codes", "name", "seq", "text", "words", "wordset")

    def __init__(self, seq: int, name: str, text: str, codes: tuple[str, ...]) -> None:
        self.seq = seq
        self.name = name
        self.text = text  # "\n"-joined fields, so a substring never spans two fields
        words = [w for w in _WORD_SPLIT.split(text) if w]
        self.words = " " + " ".join(words)  # " word word ..." for word-prefix tests
        self.wordset = frozenset(words)
        self.codes = codes


class SearchIndex:
    """SKU -> haystack; `search` returns SKUs best first."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._all: list[tuple[str, _Entry]] | None = None  # cached items, dropped on change
        self._seq = 0

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, sku: str, *, name: str, fields: Iterable[str], codes: Iterable[str]) -> None:
        """Index (or re-index) `sku`. `codes` are exact-match identifiers (SKU, barcode, PLU);
        they are searched as text too."""
        lowered_codes = tuple(c.lower() for c in codes)
        name_l = name.lower()
        text = "\n".join((name_l, *(f.lower() for f in fields), *lowered_codes))
        self._seq += 1
        self._entries[sku] = _Entry(self._seq, name_l, text, lowered_codes)
        self._all = None

    def remove(self, sku: str) -> None:
        if self._entries.pop(sku, None) is not None:
            self._all = None

    def search(self, query: str, limit: int = 20) -> list[str]:
        q = " ".join(query.lower().split())
        tokens = q.split()
        if not tokens or limit <= 0:
            return []
        short = [" " + t for t in tokens if len(t) < 3 and t.isalnum()]
        long_ = [t for t in tokens if len(t) >= 3 or not t.isalnum()]
        # Filter with one comprehension per token, longest (most selective) first.
        if self._all is None:
            self._all = list(self._entries.items())
        candidates = self._all
        for t in sorted(long_, key=len, reverse=True):
            candidates = [c for c in candidates if t in c[1].text]
        for t in short:
            candidates = [c for c in candidates if t in c[1].words]
        ranked: list[tuple[int, int, int, int, str, int, str]] = []
        for sku, e in candidates:
            exact = 0 if q in e.codes else 1
            prefix = 0 if e.name.startswith(q) else 1
            in_name = sum(1 for t in long_ if t in e.name)
            whole_words = sum(1 for t in tokens if t in e.wordset)
            ranked.append((exact, prefix, -in_name, -whole_words, e.name, e.seq, sku))
        return [r[-1] for r in heapq.nsmallest(limit, ranked)]
