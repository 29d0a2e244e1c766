"""Lexicons for constrained decoding: find the words closest to a raw prediction.

:meth:`Lexicon.candidates` returns the lexicon words within a few edits of a
recognised string, closest first; the decoder then rescores them by CTC
likelihood. A query on a 50k-word lexicon takes about a millisecond:

1. a filter that needs no edit distance: every edit changes the length by at
   most 1 and destroys at most 2 of a word's bigrams, so a word whose length or
   shared bigrams (counted for all words at once from an inverted index) already
   prove it too far away is never compared;
2. the exact distance of the survivors with Myers' bit-parallel algorithm,
   vectorised over words with numpy (one pass per character, not per cell).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from ..errors import DataError
from .metrics import edit_distance

# Word boundaries, so that first and last letters count as bigrams too. Any
# characters would do: a word containing them only weakens the filter, never
# makes it wrong.
_START, _END = "\x02", "\x03"
_GRAM = 2
_MYERS_MAX_LENGTH = 64  # bits in a uint64 column of the bit-parallel algorithm


def _bigrams(word: str) -> set[str]:
    padded = _START + word + _END
    return {padded[i : i + _GRAM] for i in range(len(padded) - _GRAM + 1)}


class Lexicon:
    """An ordered set of words (duplicates removed, first occurrence kept)."""

    def __init__(self, words: Iterable[str]):
        self._words: tuple[str, ...] = tuple(dict.fromkeys(word for word in words if word))
        if not self._words:
            raise DataError("the lexicon has no words")
        self._position = {word: i for i, word in enumerate(self._words)}
        self._lengths = np.array([len(word) for word in self._words], np.int64)

        postings: dict[str, list[int]] = {}
        gram_counts = []
        for i, word in enumerate(self._words):
            grams = _bigrams(word)
            gram_counts.append(len(grams))
            for gram in grams:
                postings.setdefault(gram, []).append(i)
        self._postings = {gram: np.array(ids, np.int32) for gram, ids in postings.items()}
        self._gram_counts = np.array(gram_counts, np.int64)

        # Every word's characters as alphabet ids, end to end; word i starts at _offsets[i].
        self._alphabet: dict[str, int] = {}
        self._chars = np.array(
            [self._alphabet.setdefault(char, len(self._alphabet)) for word in self._words for char in word],
            np.int32,
        )
        self._offsets = np.concatenate([[0], np.cumsum(self._lengths)[:-1]]).astype(np.int64)

    @classmethod
    def load(cls, path: Path) -> "Lexicon":
        """Read one word per line (UTF-8; surrounding whitespace and blank lines ignored)."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise DataError(f"{path}: file not found") from None
        except OSError as exc:
            raise DataError(f"{path}: cannot read ({exc.strerror})") from None
        words = []
        for number, raw in enumerate(data.split(b"\n"), 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(f"{path}:{number}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
            word = (line.removeprefix("\ufeff") if number == 1 else line).strip()
            if word:
                words.append(word)
        if not words:
            raise DataError(f"{path}: no words in the lexicon (expected one word per line)")
        return cls(words)

    @property
    def words(self) -> tuple[str, ...]:
        """The words in file order."""
        return self._words

    def __len__(self) -> int:
        return len(self._words)

    def __contains__(self, word: object) -> bool:
        return word in self._position

    def candidates(self, text: str, max_distance: int | None = None, limit: int = 20) -> list[str]:
        """Lexicon words within ``max_distance`` edits of ``text``, closest first.

        ``max_distance`` defaults to ``max(1, len(text) // 3)``. Ties keep
        lexicon order, so ``text`` itself comes first when it is a word. At most
        ``limit`` words are returned.
        """
        if max_distance is None:
            max_distance = max(1, len(text) // 3)
        if max_distance < 0:
            raise ValueError(f"max_distance must be >= 0, got {max_distance}")
        if limit <= 0:
            return []
        if max_distance == 0:
            return [text] if text in self._position else []
        ids = self._survivors(text, max_distance)
        distances = self._distances(text, ids)
        close = distances <= max_distance
        ids, distances = ids[close], distances[close]
        order = np.lexsort((ids, distances))[:limit]
        return [self._words[i] for i in ids[order].tolist()]

    def _survivors(self, text: str, max_distance: int) -> np.ndarray:
        """Ids (ascending) of the words that a lower bound does not rule out."""
        grams = _bigrams(text)
        hits = [self._postings[gram] for gram in grams if gram in self._postings]
        shared = np.bincount(np.concatenate(hits), minlength=len(self._words)) if hits else 0
        # Each edit destroys at most _GRAM distinct bigrams of either string.
        missing = np.maximum(self._gram_counts, len(grams)) - shared
        bound = np.maximum(np.abs(self._lengths - len(text)), -(-missing // _GRAM))
        return np.flatnonzero(bound <= max_distance)

    def _distances(self, text: str, ids: np.ndarray) -> np.ndarray:
        """Exact edit distance from ``text`` to each word in ``ids``."""
        if not text or not len(ids):
            return self._lengths[ids]
        if len(text) > _MYERS_MAX_LENGTH:
            return np.array([edit_distance(text, self._words[i]) for i in ids.tolist()], np.int64)
        return self._myers(text, ids)

    def _myers(self, text: str, ids: np.ndarray) -> np.ndarray:
        """Myers / Hyyrö bit-parallel edit distance, one uint64 state per word.

        Bit k of the vertical deltas describes row k+1 of the DP column (text
        position); the loop walks the words' characters. Words shorter than the
        longest keep running on their last character, but their score was
        already recorded when their own length was reached.
        """
        m = len(text)
        peq = np.zeros(len(self._alphabet), np.uint64)  # which text positions hold each character
        for k, char in enumerate(text):
            if char in self._alphabet:
                peq[self._alphabet[char]] |= np.uint64(1 << k)
        full, high, one = np.uint64((1 << m) - 1), np.uint64(1 << (m - 1)), np.uint64(1)

        lengths = self._lengths[ids]
        starts, last = self._offsets[ids], lengths - 1
        positive = np.full(len(ids), full, np.uint64)
        negative = np.zeros(len(ids), np.uint64)
        score = np.full(len(ids), m, np.int64)
        result = np.empty(len(ids), np.int64)
        for j in range(int(lengths.max())):
            eq = peq[self._chars[starts + np.minimum(j, last)]]
            xv = eq | negative
            xh = (((eq & positive) + positive) ^ positive) | eq
            ph = negative | (~(xh | positive) & full)
            mh = positive & xh
            score += ((ph & high) != 0).astype(np.int64) - ((mh & high) != 0)
            # Shifting a 1 into the horizontal delta is what makes this global
            # distance (row 0 is 0, 1, 2, ...) rather than substring search.
            ph = ((ph << one) | one) & full
            mh = (mh << one) & full
            positive = mh | (~(xv | ph) & full)
            negative = ph & xv
            done = lengths == j + 1
            result[done] = score[done]
        return result
