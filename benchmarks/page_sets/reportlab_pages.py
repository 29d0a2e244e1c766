"""A document typeset by reportlab (platypus: paragraphs wrapped and justified by it, lists, tables, frames for
two columns, a page footer), every face embedded.

In: a ``Doc``, the PDF's path and the split's ``Fonts``. Out: the PDF (``typeset``), without dates or random ids.
"""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import escape

from .documents import Doc, List, Para, Rule, Table
from .fonts import STYLES, Family, Fonts, family_of

_REGISTERED: set = set()


def _register(fonts: Fonts, family: Family) -> None:
    """Registers ``family``'s four fonts with reportlab (once per process): TrueType, or Type 1 from AFM + PFB."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    for style in STYLES:
        font = family.font(style)
        if font in _REGISTERED:
            continue
        if family.source == "type1":
            face = pdfmetrics.EmbeddedType1Face(str(family.afm(style)), str(family.path(style)))
            pdfmetrics.registerTypeFace(face)
            pdfmetrics.registerFont(pdfmetrics.Font(font, face.name, "WinAnsiEncoding"))
        else:
            pdfmetrics.registerFont(TTFont(font, str(family.path(style))))
        _REGISTERED.add(font)
    pdfmetrics.registerFontFamily(family.key, normal=family.font("R"), italic=family.font("I"),
                                  bold=family.font("B"), boldItalic=family.font("BI"))


def typeset(doc: Doc, pdf: Path, fonts: Fonts) -> None:
    from reportlab import platypus, rl_config
    from reportlab.lib import colors
    from reportlab.lib.enums import TA_CENTER, TA_JUSTIFY, TA_LEFT, TA_RIGHT
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.platypus.flowables import HRFlowable

    rl_config.invariant = 1  # no dates or random ids in the PDF

    for key in {font[:3] for font in doc.faces()}:
        _register(fonts, family_of(fonts, key + "R"))
    ink, accent = colors.Color(*doc.ink), colors.Color(*doc.accent)
    aligns = {"justify": TA_JUSTIFY, "left": TA_LEFT, "centre": TA_CENTER, "right": TA_RIGHT}

    def markup(runs, family: Family) -> str:
        return "".join(escape(t) if s == "R" else f'<font face="{family.font(s)}">{escape(t)}</font>' for t, s in runs)

    def paragraph(block: Para):
        style = ParagraphStyle("p", fontName=block.family.font("R"), fontSize=block.size,
                               leading=block.size * doc.leading, alignment=aligns[block.align],
                               textColor=accent if block.accent else ink, spaceBefore=block.before,
                               spaceAfter=block.after + doc.gap,
                               firstLineIndent=doc.size * 2 if block.indent else 0)
        return platypus.Paragraph(markup(block.runs, block.family), style)

    def flowable(block):
        if isinstance(block, Para):
            return paragraph(block)
        if isinstance(block, List):
            style = ParagraphStyle("li", fontName=block.family.font("R"), fontSize=block.size,
                                   leading=block.size * doc.leading, textColor=ink)
            kinds = {"bullet": ("bullet", "\u2022", "%s"), "dash": ("bullet", "-", "%s"), "number": ("1", None, "%s."),
                     "letter": ("a", None, "%s)")}
            kind, start, form = kinds[block.marker]
            options = {"start": start} if start else {}
            items = [platypus.ListItem(platypus.Paragraph(markup(item, block.family), style)) for item in block.items]
            return platypus.ListFlowable(items, bulletType=kind, bulletFormat=form,
                                         bulletFontName=block.family.font("R"), bulletFontSize=block.size,
                                         bulletColor=ink, leftIndent=block.size * 2.2, spaceAfter=doc.gap, **options)
        if isinstance(block, Table):
            bold, regular, last = block.family.font("B"), block.family.font("R"), len(block.rows) - 1
            commands = [("FONTNAME", (0, 0), (-1, -1), regular), ("FONTSIZE", (0, 0), (-1, -1), block.size),
                        ("LEADING", (0, 0), (-1, -1), block.size * doc.leading), ("TEXTCOLOR", (0, 0), (-1, -1), ink),
                        ("LEFTPADDING", (0, 0), (-1, -1), block.size * 0.5),
                        ("RIGHTPADDING", (0, 0), (-1, -1), block.size * 0.5),
                        ("TOPPADDING", (0, 0), (-1, -1), 1), ("BOTTOMPADDING", (0, 0), (-1, -1), 2)]
            commands += [("ALIGN", (c, 0), (c, -1), "RIGHT") for c in block.right]
            if block.header:
                commands.append(("FONTNAME", (0, 0), (-1, 0), bold))
            if block.bold_first:
                commands.append(("FONTNAME", (0, 0), (0, -1), bold))
            if block.bold_last:
                commands += [("FONTNAME", (0, last), (-1, last), bold), ("LINEABOVE", (0, last), (-1, last), 0.8, ink)]
            rule = {"lines": [("LINEBELOW", (0, 0), (-1, 0), 0.8, ink)], "box": [("BOX", (0, 0), (-1, -1), 0.8, ink)],
                    "grid": [("GRID", (0, 0), (-1, -1), 0.5, ink)], "none": []}[block.rules]
            return platypus.Table(block.rows, colWidths=block.widths, style=platypus.TableStyle(commands + rule),
                                  hAlign={"left": "LEFT", "centre": "CENTER", "right": "RIGHT"}[block.align],
                                  spaceAfter=doc.gap + 2)
        if isinstance(block, Rule):
            return HRFlowable(width="100%", thickness=0.8, color=ink, spaceBefore=2, spaceAfter=5,
                              dash=(2, 2) if block.dashed else None)
        return platypus.Spacer(1, block.points)

    left, right, top, bottom = doc.margins
    masthead = [flowable(b) for b in doc.masthead]
    story = list(masthead)
    if doc.columns == 1:
        frames = [platypus.Frame(left, bottom, doc.text_width, doc.text_height, 0, 0, 0, 0, id="body")]
    else:
        high = sum(f.wrap(doc.text_width, doc.text_height)[1] + f.getSpaceBefore() + f.getSpaceAfter()
                   for f in masthead) + 6 if masthead else 0.0
        frames = [platypus.Frame(left + i * (doc.column_width + doc.gutter), bottom, doc.column_width,
                                 doc.text_height - high, 0, 0, 0, 0, id=f"column{i}") for i in range(2)]
        if masthead:
            frames.insert(0, platypus.Frame(left, bottom + doc.text_height - high, doc.text_width, high, 0, 0, 0, 0,
                                            id="head"))
            story.append(platypus.FrameBreak())
    story += [flowable(b) for b in doc.body]

    def footer(canvas, _document):
        if doc.footer is None:
            return
        canvas.saveState()
        canvas.setFont(doc.family.font("R"), max(9, doc.size - 1))
        canvas.setFillColor(ink)
        line, align = doc.footer
        y = bottom * 0.45
        if align == "left":
            canvas.drawString(left, y, line)
        elif align == "right":
            canvas.drawRightString(doc.width - right, y, line)
        else:
            canvas.drawCentredString(left + doc.text_width / 2, y, line)
        canvas.restoreState()

    template = platypus.BaseDocTemplate(str(pdf), pagesize=(doc.width, doc.height), leftMargin=left, rightMargin=right,
                               topMargin=top, bottomMargin=bottom, title="", author="", creator="", invariant=1,
                               initialFontName=doc.family.font("R"), initialFontSize=doc.size)
    template.addPageTemplates([platypus.PageTemplate(id="page", frames=frames, onPage=footer)])
    template.build(story)
