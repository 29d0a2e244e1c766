"""The texts of a page: Faker (en_US, seeded from the page's generator), wordfreq's 30,000 most frequent English
words, and prices, dates, times, quantities and codes drawn here.

In: the page's ``numpy`` generator. Out: ``Text``, whose methods return printable ASCII strings (sentences,
paragraphs, titles, names, addresses, amounts, ...); ``ascii_text`` folds any string to printable ASCII.
"""

from __future__ import annotations

import functools
import unicodedata
from datetime import date, timedelta

import numpy as np


@functools.cache
def _faker():
    from faker import Faker

    return Faker("en_US")


@functools.cache
def _word_list() -> tuple:
    from wordfreq import top_n_list

    return tuple(w for w in top_n_list("en", 30_000) if w.isascii() and w.isalpha() and (len(w) > 1 or w in "ai"))


def ascii_text(text: str) -> str:
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return " ".join("".join(c for c in text if 32 <= ord(c) < 127).split())


_DATE_FORMATS = ("%d/%m/%Y", "%Y-%m-%d", "%b %d, %Y", "%d.%m.%y", "%m/%d/%y", "%d %B %Y", "%B %d, %Y", "%d-%b-%Y")
_TITLE_SMALL = frozenset("a an and as at by for in of on or the to with".split())


class Text:
    """The texts of one page: Faker seeded from the page's generator, wordfreq's words, and numbers drawn here."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.fake = _faker()
        self.fake.seed_instance(int(rng.integers(2 ** 62)))
        self.words = _word_list()
        self.date_format = _DATE_FORMATS[int(rng.integers(len(_DATE_FORMATS)))]

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def pick(self, options):
        return options[int(self.rng.integers(len(options)))]

    def word(self) -> str:
        return self.words[int(len(self.words) * self.rng.random() ** 2.2)]  # frequent words more often

    def number_token(self) -> str:
        kind = int(self.rng.integers(6))
        if kind == 0:
            return self.money()
        if kind == 1:
            return self.day()
        if kind == 2:
            return f"{int(self.rng.integers(0, 101))}%"
        if kind == 3:
            return self.code()
        return str(int(self.rng.integers(1, 10 ** int(self.rng.integers(1, 5)))))

    def sentence(self, low: int = 5, high: int = 16) -> str:
        if self.chance(0.35):
            return ascii_text(self.fake.sentence(nb_words=int(self.rng.integers(low, high + 1))))
        words = [self.number_token() if self.chance(0.05) else self.word()
                 for _ in range(int(self.rng.integers(low, high + 1)))]
        for i in range(1, len(words) - 1):
            if self.chance(0.07):
                words[i] += ","
        words[0] = words[0][:1].upper() + words[0][1:]
        return " ".join(words) + self.pick((".", ".", ".", ".", ".", "?", "!", ":"))

    def paragraph(self, low: int, high: int) -> str:
        return " ".join(self.sentence() for _ in range(int(self.rng.integers(low, high + 1))))

    def title(self, low: int = 2, high: int = 7) -> str:
        if high >= 4 and self.chance(0.3):
            text = ascii_text(self.pick((self.fake.catch_phrase, self.fake.bs))())
        else:
            text = " ".join(self.word() for _ in range(int(self.rng.integers(low, high + 1))))
        words = text.split()
        style = self.rng.random()
        if style < 0.5:
            words = [w if i and w in _TITLE_SMALL else w[:1].upper() + w[1:] for i, w in enumerate(words)]
        elif style < 0.8:
            words[0] = words[0][:1].upper() + words[0][1:]
        else:
            words = [w.upper() for w in words]
        return " ".join(words)

    def money(self, low: float = 0.5, high: float = 5000.0) -> str:
        amount = float(np.exp(self.rng.uniform(np.log(low), np.log(high))))
        return self.pick((f"${amount:,.2f}", f"{amount:.2f}", f"{amount:,.2f}", f"EUR {amount:.2f}",
                          f"{amount:.2f} USD"))

    def amount(self, low: float = 0.5, high: float = 400.0) -> float:
        return round(float(np.exp(self.rng.uniform(np.log(low), np.log(high)))), 2)

    def day(self) -> str:
        return (date(1995, 1, 1) + timedelta(days=int(self.rng.integers(0, 40 * 365)))).strftime(self.date_format)

    def clock(self) -> str:
        hour, minute = int(self.rng.integers(0, 24)), int(self.rng.integers(0, 60))
        return f"{hour:02d}:{minute:02d}" if self.chance(0.6) else \
            f"{(hour + 11) % 12 + 1}:{minute:02d} {'AM' if hour < 12 else 'PM'}"

    def code(self) -> str:
        return self.fake.bothify(self.pick(("??-####", "???-###", "INV-######", "No. #####", "#####-??", "REF/####/??",
                                            "??######", "####-####"))).upper()

    def name(self) -> str:
        return ascii_text(self.fake.name())

    def company(self) -> str:
        return ascii_text(self.fake.company())

    def street(self) -> str:
        return ascii_text(self.fake.street_address())

    def city(self) -> str:
        return ascii_text(f"{self.fake.city()}, {self.fake.state_abbr()} {self.fake.postcode()}")

    def phone(self) -> str:
        return ascii_text(self.fake.phone_number())

    def email(self) -> str:
        return ascii_text(self.fake.email())

    def item(self) -> str:
        words = [self.word() for _ in range(int(self.rng.integers(1, 4)))]
        text = " ".join(words)
        return text.upper() if self.chance(0.4) else text[:1].upper() + text[1:]
