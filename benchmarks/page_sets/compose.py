"""One document of one of four kinds: an article (headings, paragraphs, lists and small tables in one or two
columns), a letter, an invoice or form (label and value rows, an item table, totals) or a till receipt.

In: the page's ``numpy`` generator and the split's ``Fonts``. Out: ``compose``'s ``Doc``: kind, page size,
margins, columns, faces, sizes, leading, ink and accent colours, and its blocks of text, not yet typeset.
"""

from __future__ import annotations

import math

import numpy as np

from .content import Text, ascii_text
from .documents import Doc, List, Para, Rule, Space, Table, estimate, fit, fit_table
from .fonts import Family, Fonts

_PAGES = (  # name, width, height (points), weight
    ("A4", 595, 842, 0.2), ("Letter", 612, 792, 0.15), ("A5", 420, 595, 0.15), ("B5", 499, 709, 0.1),
    ("A6", 298, 420, 0.1), ("half-letter", 396, 612, 0.1), ("5x7", 360, 504, 0.1), ("4x6", 288, 432, 0.1))


def _runs(text: Text, sentence_text: str) -> list:
    """A paragraph's runs: now and then a few words in bold or italic."""
    if not text.chance(0.3):
        return [(sentence_text, "R")]
    words = sentence_text.split()
    start = int(text.rng.integers(0, len(words)))
    end = min(len(words), start + int(text.rng.integers(1, 5)))
    runs = [(" ".join(words[:start]), "R"), (" ".join(words[start:end]), text.pick(("B", "I", "I", "BI"))),
            (" ".join(words[end:]), "R")]
    return [(t if i == 0 else " " + t, s) for i, (t, s) in enumerate(runs) if t]


def compose(rng: np.random.Generator, fonts: Fonts) -> Doc:
    """One document: kind, page, faces, sizes, colours and its blocks of text (not yet typeset)."""
    text = Text(rng)
    kind = text.pick(("article",) * 8 + ("letter",) * 3 + ("invoice",) * 5 + ("receipt",) * 4)
    families = fonts.families
    family = families[int(rng.integers(len(families)))]
    if kind == "receipt":
        width, height = float(rng.uniform(164, 230)), float(rng.uniform(340, 640))
        if text.chance(0.5):
            monos = [f for f in families if f.mono]
            family = monos[int(rng.integers(len(monos)))]
    else:
        weights = np.array([p[3] for p in _PAGES])
        _, width, height, _ = _PAGES[int(rng.choice(len(_PAGES), p=weights / weights.sum()))]
        if kind != "letter" and text.chance(0.1):
            width, height = height, width
    small = max(width, height) < 650
    size = int(rng.integers(9, 12)) if small or kind == "receipt" else int(rng.integers(10, 14))
    side = (0.04, 0.08) if kind == "receipt" else (0.06, 0.13)
    margins = (max(10.0, width * rng.uniform(*side)), max(10.0, width * rng.uniform(*side)),
               max(12.0, height * rng.uniform(0.04, 0.09)), max(14.0, height * rng.uniform(0.05, 0.1)))
    columns = 2 if kind == "article" and width - margins[0] - margins[1] >= 380 and text.chance(0.45) else 1
    dark = float(rng.uniform(0.0, 0.25))
    ink = (dark, dark, dark) if text.chance(0.7) else tuple(float(v) for v in rng.uniform(0.0, 0.3, 3))
    accent = ink if text.chance(0.5) else tuple(float(v) for v in rng.uniform(0.0, 0.55, 3))
    doc = Doc(kind, float(width), float(height), margins, columns, size * float(rng.uniform(2.0, 3.5)), family,
               size, float(rng.uniform(1.15, 1.45)), size * float(rng.uniform(0.0, 0.7)), ink, accent)
    head = family if text.chance(0.5) else families[int(rng.integers(len(families)))]
    {"article": _article, "letter": _letter, "invoice": _invoice, "receipt": _receipt}[kind](doc, text, fonts, head)
    return doc


def _heading(doc: Doc, text: Text, fonts: Fonts, head: Family, size: int, words: tuple, width: float,
             align: str = "left") -> Para:
    size = min(24, size)
    label = text.title(*words)
    return Para([(fit(fonts, label, head, "B", size, width * 0.98), "B")], size, head, align,
                 accent=text.chance(0.5), before=doc.size * float(text.rng.uniform(0.3, 1.2)),
                 after=doc.size * float(text.rng.uniform(0.1, 0.5)))


def _line(doc: Doc, fonts: Fonts, line: str, align: str, style: str = "R", size: int | None = None,
          family: Family | None = None, width: float | None = None, **kwargs) -> Para:
    family, size = family or doc.family, size or doc.size
    return Para([(fit(fonts, line, family, style, size, (width or doc.text_width) * 0.98), style)], size, family,
                 align, **kwargs)


def _justifiable(doc: Doc, fonts: Fonts, width: float) -> bool:
    """Whether justified lines of the body face keep word gaps that pdftotext still reads as one line: a column
    of 50 characters or more, in a face that is not monospaced (reportlab does not hyphenate; a narrow justified
    column opens gaps of 2 em and more, which poppler takes for column gaps and cuts the line into words)."""
    letters = "etaoinshrdlucmfwypvbgkqjxz "
    per_char = fonts.width(letters, doc.family, "R", doc.size) / len(letters)
    return not doc.family.mono and width / per_char >= 50


def _fill(doc: Doc, fonts: Fonts, make_block, share: float) -> None:
    """Appends ``make_block()``'s blocks to the body until their estimated height passes ``share`` of the room."""
    room = doc.text_height - sum(estimate(b, doc, fonts, doc.text_width) for b in doc.masthead)
    room = max(room, doc.text_height * 0.3) * doc.columns * share
    used = sum(estimate(b, doc, fonts, doc.column_width) for b in doc.body)
    while used < room:
        for block in make_block():
            if isinstance(block, Table):
                fit_table(fonts, block, doc.column_width)
            doc.body.append(block)
            used += estimate(block, doc, fonts, doc.column_width)


def _article(doc: Doc, text: Text, fonts: Fonts, head: Family) -> None:
    align = text.pick(("centre", "left"))
    doc.masthead.append(_heading(doc, text, fonts, head, int(text.rng.integers(16, 25)), (2, 7), doc.text_width,
                                 align))
    if text.chance(0.6):
        byline = text.pick((f"By {text.name()}", f"{text.name()} - {text.day()}", f"{text.company()} | {text.day()}",
                            f"Report {text.code()} - {text.day()}"))
        doc.masthead.append(_line(doc, fonts, byline, align, "I", after=doc.size * 0.5))
    if text.chance(0.3):
        doc.masthead.append(Rule())
    justify = "justify" if _justifiable(doc, fonts, doc.column_width) and text.chance(0.6) else "left"
    indent = text.chance(0.4)
    numbered = text.chance(0.3)
    section = [0]

    def blocks():
        out = []
        if text.chance(0.35):
            section[0] += 1
            heading = _heading(doc, text, fonts, head, doc.size + int(text.rng.integers(1, 7)), (1, 5),
                               doc.column_width)
            if numbered:
                heading.runs = [(f"{section[0]}. {heading.runs[0][0]}", "B")]
            out.append(heading)
        for _ in range(int(text.rng.integers(1, 4))):
            out.append(Para(_runs(text, text.paragraph(1, 6)), doc.size, doc.family, justify, indent))
        if text.chance(0.2):
            marker = text.pick(("bullet", "bullet", "dash", "number", "letter"))
            items = [_runs(text, text.sentence(2, 12)) for _ in range(int(text.rng.integers(2, 7)))]
            out.append(List(items, marker if marker != "bullet" or fonts.has(doc.family, "\u2022") else "dash",
                             doc.size, doc.family))
        if text.chance(0.12):
            out.append(_small_table(doc, text))
        return out

    _fill(doc, fonts, blocks, float(text.rng.uniform(0.6, 1.2)))


def _small_table(doc: Doc, text: Text) -> Table:
    columns = int(text.rng.integers(2, 5))
    header = [text.title(1, 2) for _ in range(columns)]
    rows = [[text.item()] + [text.number_token() for _ in range(columns - 1)]
            for _ in range(int(text.rng.integers(2, 7)))]
    return Table([header] + rows, max(9, doc.size - int(text.rng.integers(0, 2))), doc.family, header=True,
                  right=tuple(range(1, columns)), rules=text.pick(("lines", "box", "grid", "none")),
                  expand=text.chance(0.4), align=text.pick(("left", "centre")))


def _letter(doc: Doc, text: Text, fonts: Fonts, head: Family) -> None:
    align = text.pick(("left", "centre", "right"))
    sender = text.pick((text.company(), text.name()))
    doc.masthead.append(_line(doc, fonts, sender, align, "B", int(text.rng.integers(13, 21)), head,
                              accent=text.chance(0.5)))
    contact = text.pick((text.phone(), text.email(), f"{text.phone()} | {text.email()}"))
    for line in (text.street(), text.city(), contact):
        doc.masthead.append(_line(doc, fonts, line, align, size=max(9, doc.size - 1)))
    doc.masthead.append(Space(doc.size * float(text.rng.uniform(1.0, 3.0))))
    body = doc.body
    body.append(_line(doc, fonts, text.day(), text.pick(("left", "right")), after=doc.size))
    for line in (text.name(), text.company(), text.street(), text.city()):
        body.append(_line(doc, fonts, line, "left"))
    body.append(Space(doc.size))
    body.append(_line(doc, fonts, f"{text.pick(('Re:', 'Subject:', 'RE:', 'Ref:'))} {text.title(2, 6)}", "left", "B",
                      after=doc.size * 0.5))
    body.append(_line(doc, fonts, f"Dear {text.pick(('Mr.', 'Ms.', 'Dr.', 'Mrs.'))} {text.fake.last_name()},", "left"))
    justify = "justify" if _justifiable(doc, fonts, doc.text_width) and text.chance(0.5) else "left"
    indent = text.chance(0.3)
    for _ in range(int(text.rng.integers(2, 6))):
        body.append(Para(_runs(text, text.paragraph(2, 5)), doc.size, doc.family, justify, indent))
    body.append(_line(doc, fonts, text.pick(("Sincerely,", "Yours sincerely,", "Best regards,", "Kind regards,")),
                      "left", before=doc.size))
    body.append(Space(doc.size * 2.0))
    body.append(_line(doc, fonts, text.name(), "left", "B"))
    body.append(_line(doc, fonts, ascii_text(text.fake.job()), "left", "I"))


def _invoice(doc: Doc, text: Text, fonts: Fonts, head: Family) -> None:
    align = text.pick(("left", "centre"))
    doc.masthead.append(_line(doc, fonts, text.company(), align, "B", int(text.rng.integers(14, 25)), head,
                              accent=text.chance(0.6)))
    doc.masthead.append(_line(doc, fonts, f"{text.street()}, {text.city()}", align, size=max(9, doc.size - 1)))
    doc.masthead.append(_line(doc, fonts, f"{text.phone()}  {text.email()}", align, size=max(9, doc.size - 1)))
    if text.chance(0.5):
        doc.masthead.append(Rule())
    title = text.pick(("INVOICE", "Invoice", "PURCHASE ORDER", "Statement", "DELIVERY NOTE", "Quotation",
                       "Application Form", "Registration Form", "Order Confirmation", "Credit Note"))
    body = doc.body
    body.append(Para([(title, "B")], min(24, doc.size + int(text.rng.integers(3, 10))), head,
                      text.pick(("left", "centre", "right")), accent=text.chance(0.5), before=doc.size * 0.5,
                      after=doc.size * 0.5))
    labels = ("Invoice No.", "Date", "Due date", "Customer", "Account", "Order No.", "Reference", "Name", "Address",
              "Phone", "E-mail", "Terms", "Ship to", "Date of birth", "Department", "Contact")
    values = {"Date": text.day, "Due date": text.day, "Date of birth": text.day, "Customer": text.name,
              "Name": text.name, "Contact": text.name, "Address": text.street, "Ship to": text.city,
              "Phone": text.phone, "E-mail": text.email, "Department": lambda: text.title(1, 2),
              "Terms": lambda: text.pick(("Net 30", "Due on receipt", "Net 15", "COD", "2/10 Net 30"))}
    chosen = [labels[i] for i in text.rng.choice(len(labels), size=int(text.rng.integers(3, 9)), replace=False)]
    colon = text.pick((":", ":", ""))
    pairs = [[f"{label}{colon}", values.get(label, text.code)()] for label in chosen]
    if doc.text_width > 380 and len(pairs) >= 4 and text.chance(0.5):
        half = (len(pairs) + 1) // 2
        pairs = [pairs[i] + (pairs[i + half] if i + half < len(pairs) else ["", ""]) for i in range(half)]
    body.append(Table(pairs, doc.size, doc.family, bold_first=text.chance(0.6)))
    body.append(Space(doc.size * float(text.rng.uniform(0.5, 2.0))))
    header = text.pick((["Description", "Qty", "Unit price", "Amount"], ["Item", "Code", "Qty", "Price"],
                        ["Date", "Description", "Amount"], ["#", "Product", "Quantity", "Total"]))
    rows, total = [], 0.0
    for n in range(int(text.rng.integers(3, 13))):
        quantity, price = int(text.rng.integers(1, 13)), text.amount()
        total += quantity * price
        cells = {"Description": text.item(), "Item": text.item(), "Product": text.item(), "Qty": str(quantity),
                 "Quantity": str(quantity), "Unit price": f"{price:,.2f}", "Price": f"{price:,.2f}",
                 "Amount": f"{quantity * price:,.2f}", "Total": f"{quantity * price:,.2f}", "Code": text.code(),
                 "Date": text.day(), "#": str(n + 1)}
        rows.append([cells[h] for h in header])
    right = tuple(i for i, h in enumerate(header) if h in ("Qty", "Quantity", "Unit price", "Price", "Amount", "Total",
                                                            "#"))
    body.append(Table([header] + rows, doc.size, doc.family, header=True, right=right,
                       rules=text.pick(("lines", "box", "grid", "grid", "none")), expand=text.chance(0.6)))
    tax = float(text.rng.choice([5.0, 7.5, 8.0, 10.0, 20.0]))
    totals = [["Subtotal", f"{total:,.2f}"], [f"Tax ({tax:g}%)", f"{total * tax / 100:,.2f}"],
              ["Total", text.pick(("$", "", "EUR ")) + f"{total * (1 + tax / 100):,.2f}"]]
    body.append(Table(totals, doc.size, doc.family, right=(1,), bold_last=True, align="right"))
    if text.chance(0.7):
        body.append(Para(_runs(text, text.paragraph(1, 3)), max(9, doc.size - 1), doc.family, "left",
                          before=doc.size))
    if text.chance(0.5):
        doc.footer = (text.pick(("Thank you for your business!", f"Page 1 of {int(text.rng.integers(1, 4))}",
                                 text.email(), f"Registered office: {text.city()}")),
                      text.pick(("left", "centre", "right")))
    for table in body:
        if isinstance(table, Table):
            fit_table(fonts, table, doc.text_width)


def _receipt(doc: Doc, text: Text, fonts: Fonts, head: Family) -> None:
    big = doc.size + int(text.rng.integers(2, 7))
    doc.masthead.append(_line(doc, fonts, text.company().upper() if text.chance(0.5) else text.company(), "centre",
                              "B", big, head if text.chance(0.5) else doc.family))
    for line in (text.street(), text.city(), f"Tel {text.phone()}"):
        doc.masthead.append(_line(doc, fonts, line, "centre"))
    body = doc.body
    body.append(Space(doc.size * 0.5))
    till = f"Till {int(text.rng.integers(1, 20))}"
    body.append(Table([[text.day(), text.clock()], [f"Receipt {text.code()}", till]], doc.size, doc.family, right=(1,),
                       expand=True))
    body.append(Rule(dashed=text.chance(0.6)))
    rows, total = [], 0.0
    for _ in range(int(text.rng.integers(3, 15))):
        quantity, price = (int(text.rng.integers(2, 6)) if text.chance(0.25) else 1), text.amount(0.3, 60.0)
        total += quantity * price
        name = text.item()
        rows.append([f"{quantity} x {name}" if quantity > 1 else name, f"{quantity * price:.2f}"])
    body.append(Table(rows, doc.size, doc.family, right=(1,), expand=True))
    body.append(Rule(dashed=text.chance(0.6)))
    tax = total * float(text.rng.choice([0.05, 0.07, 0.08, 0.1]))
    paid = text.pick(("CASH", "VISA", "MASTERCARD", "DEBIT", "CARD"))
    totals = [["SUBTOTAL", f"{total:.2f}"], ["TAX", f"{tax:.2f}"], ["TOTAL", f"{total + tax:.2f}"],
              [paid, f"{math.ceil(total + tax):.2f}" if paid == "CASH" else f"{total + tax:.2f}"]]
    if paid == "CASH":
        totals.append(["CHANGE", f"{math.ceil(total + tax) - total - tax:.2f}"])
    body.append(Table(totals, doc.size, doc.family, right=(1,), bold_first=text.chance(0.5), expand=True))
    if paid != "CASH" and text.chance(0.7):
        body.append(_line(doc, fonts, f"{paid} **** {int(text.rng.integers(0, 10000)):04d}", "left"))
    body.append(Space(doc.size * 0.7))
    for line in text.rng.choice(["THANK YOU FOR SHOPPING WITH US", "Thank you, come again!", "Please keep your receipt",
                                 "Returns within 30 days with receipt", text.email(), "Have a nice day"],
                                size=int(text.rng.integers(1, 3)), replace=False):
        body.append(_line(doc, fonts, str(line), "centre"))
    for table in body:
        if isinstance(table, Table):
            fit_table(fonts, table, doc.text_width)
