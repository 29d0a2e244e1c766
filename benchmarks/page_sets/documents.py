"""A document before typesetting: its blocks (paragraphs, lists, tables, rules, spaces) and page, and the fitting
and height estimates that shape them.

In: a ``Fonts`` (for advance widths). Out: the block types and ``Doc``, which both typesetting engines read;
``fit`` and ``fit_table`` shorten texts to a width (``fit_table`` sets a table's column widths); ``estimate`` is a
block's rough height, to decide how much text fills a page.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .fonts import STYLES, Family, Fonts


@dataclass
class Para:
    runs: list  # [(text, style)]
    size: int
    family: Family
    align: str = "justify"  # justify, left, centre, right
    indent: bool = False  # the first line indented
    accent: bool = False
    before: float = 0.0  # points
    after: float = 0.0


@dataclass
class List:
    items: list  # each a list of runs
    marker: str  # bullet, dash, number, letter
    size: int
    family: Family


@dataclass
class Table:
    rows: list  # lists of cell texts
    size: int
    family: Family
    header: bool = False
    right: tuple = ()  # the right-aligned columns
    bold_first: bool = False
    bold_last: bool = False
    rules: str = "none"  # none, lines, box, grid
    expand: bool = False  # as wide as the text
    align: str = "left"  # left, centre, right (when not expanded)
    widths: list = field(default_factory=list)  # points, filled by fit_table


@dataclass
class Rule:
    dashed: bool = False


@dataclass
class Space:
    points: float


@dataclass
class Doc:
    kind: str
    width: float
    height: float
    margins: tuple  # left, right, top, bottom (points)
    columns: int
    gutter: float
    family: Family  # the body's
    size: int
    leading: float  # line pitch / size
    gap: float  # between paragraphs, points
    ink: tuple
    accent: tuple
    masthead: list = field(default_factory=list)  # full width, above the columns
    body: list = field(default_factory=list)
    footer: tuple | None = None  # (text, align)

    @property
    def text_width(self) -> float:
        return self.width - self.margins[0] - self.margins[1]

    @property
    def column_width(self) -> float:
        return (self.text_width - self.gutter * (self.columns - 1)) / self.columns

    @property
    def text_height(self) -> float:
        return self.height - self.margins[2] - self.margins[3]

    def faces(self) -> set:
        """The font names (family key + style) the document may use."""
        families = {self.family.key}
        for block in self.masthead + self.body:
            if hasattr(block, "family"):
                families.add(block.family.key)
        return {key + style for key in families for style in STYLES}



def fit(fonts: Fonts, text: str, family: Family, style: str, size: float, width: float) -> str:
    """``text`` less as many words at its end as make it fit in ``width`` points."""
    words = text.split()
    while len(words) > 1 and fonts.width(" ".join(words), family, style, size) > width:
        words.pop()
    return " ".join(words)


def fit_table(fonts: Fonts, table: Table, width: float) -> None:
    """Cuts words off the widest text cells until the table's natural width (cells plus one em between columns
    and at the sides) fits ``width``; sets its column widths (stretched to ``width`` when it expands)."""
    def cell_width(r: int, c: int) -> float:
        bold = (table.header and r == 0) or (table.bold_first and c == 0) or (table.bold_last and r == len(rows) - 1)
        return fonts.width(rows[r][c], table.family, "B" if bold else "R", table.size)

    rows = [list(row) for row in table.rows]
    pad = table.size * 1.0
    columns = len(rows[0])
    while True:
        natural = [max(cell_width(r, c) for r in range(len(rows))) + pad for c in range(columns)]
        if sum(natural) + pad <= width:
            break
        column = max(range(columns), key=lambda c: natural[c])
        row = max(range(len(rows)), key=lambda r: cell_width(r, column))
        words = rows[row][column].split()
        if not words:
            break
        rows[row][column] = " ".join(words[:-1]) if len(words) > 1 else words[0][:-1]
    table.rows = rows
    natural = [max(cell_width(r, c) for r in range(len(rows))) + pad for c in range(columns)]
    if table.expand:
        natural = [w * (width - pad) / sum(natural) for w in natural]
    table.widths = natural


def estimate(block, doc: Doc, fonts: Fonts, width: float) -> float:
    """A rough height (points) of ``block`` in a column ``width`` wide, to decide how much text fills a page."""
    if isinstance(block, Para):
        text_width = sum(fonts.width(t, block.family, s, block.size) for t, s in block.runs)
        return math.ceil(text_width / width * 1.05 + 0.3) * block.size * doc.leading + block.before + block.after \
            + doc.gap
    if isinstance(block, List):
        return sum(math.ceil(sum(fonts.width(t, block.family, s, block.size) for t, s in item) / (width * 0.9) + 0.3)
                   for item in block.items) * block.size * doc.leading + doc.gap
    if isinstance(block, Table):
        return len(block.rows) * block.size * (doc.leading + 0.25) + doc.gap + 6
    if isinstance(block, Rule):
        return 10.0
    return block.points
