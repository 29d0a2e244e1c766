"""A document typeset by GNU groff: troff with the ``-ms`` macros (filling, justification, hyphenation, two
columns, page footers), ``tbl`` for tables, ``gropdf`` for the PDF.

In: a ``Doc``, the PDF's path and the split's ``Fonts`` (its groff font folder and environment). Out: the PDF
(``typeset``).
"""

from __future__ import annotations

from pathlib import Path

from .documents import Doc, List, Para, Rule, Table
from .fonts import Family, Fonts, run


def _troff(text: str) -> str:
    """``text`` as one troff input line: backslashes escaped, a leading control character defused."""
    text = text.replace("\\", "\\(rs")
    return "\\&" + text if text.startswith((".", "'")) else text


def typeset(doc: Doc, pdf: Path, fonts: Fonts) -> None:
    left, right, top, bottom = doc.margins
    out = [f".nr PS {doc.size}", f".nr VS {doc.size * doc.leading:.2f}p", f".nr PO {left:.2f}p",
           f".nr LL {doc.text_width:.2f}p", f".nr LT {doc.text_width:.2f}p", f".nr HM {top:.2f}p",
           f".nr FM {bottom:.2f}p", f".nr PD {doc.gap:.2f}p", f".nr PI {doc.size * 2}p", f".nr GW {doc.gutter:.2f}p",
           f".pl {doc.height:.2f}p", f".ds FAM {doc.family.key}", ".ds LH", ".ds CH", ".ds RH", ".ds LF", ".ds CF",
           ".ds RF", ".lg 0", ".defcolor ink rgb {:.3f} {:.3f} {:.3f}".format(*doc.ink),
           ".defcolor accent rgb {:.3f} {:.3f} {:.3f}".format(*doc.accent)]
    if doc.footer is not None:
        line, align = doc.footer
        out.append(f".ds {'LCR'[('left', 'centre', 'right').index(align)]}F {_troff(line)}")
    out += [".LP", ".gcolor ink"]

    def runs(items, family: Family) -> str:  # starts with a font escape, so never with a control character
        return "".join(f"\\f[{family.key}{s}]" + t.replace("\\", "\\(rs") for t, s in items) + f"\\f[{family.key}R]"

    def size(points: int) -> list:
        return [f".ps {points}", f".vs {points * doc.leading:.2f}p"]

    def emit(block) -> None:
        if isinstance(block, Para):
            if block.before:
                out.append(f".sp {block.before:.2f}p")
            out.append(".PP" if block.indent else ".LP")
            out.extend(size(block.size))
            line = runs(block.runs, block.family)
            if block.accent:
                line = f"\\m[accent]{line}\\m[]"
            if block.align in ("centre", "right"):
                out.extend([f".{'ce' if block.align == 'centre' else 'rj'} 1", line])
            else:
                out.extend([".ad b" if block.align == "justify" else ".ad l", line])
            if block.after:
                out.append(f".sp {block.after:.2f}p")
        elif isinstance(block, List):
            for n, item in enumerate(block.items):
                marker = {"bullet": "\\(bu", "dash": "-", "number": f"{n + 1}.",
                          "letter": f"{chr(97 + n)})"}[block.marker]
                out.extend([f'.IP "{marker}" {block.size * 2.2:.2f}p', ".ad l", runs(item, block.family)])
        elif isinstance(block, Table):
            out.extend([".LP", *size(block.size), f".fam {block.family.key}"])
            width = sum(block.widths)
            if block.align == "right" and not block.expand:
                out.append(f".in {max(0.0, doc.text_width - width - block.size):.2f}p")
            options = ["tab(|)"] + {"box": ["box"], "grid": ["allbox"]}.get(block.rules, [])
            if block.expand:
                options.append("expand")
            elif block.align == "centre":
                options.append("center")
            out.extend([".TS", " ".join(options) + ";"])
            last = len(block.rows) - 1
            for r, row in enumerate(block.rows):
                keys = []
                for c in range(len(row)):
                    bold = (block.header and r == 0) or (block.bold_first and c == 0) or (block.bold_last and r == last)
                    keys.append(("r" if c in block.right else "l") + ("B" if bold else "") + ("2" if c < len(row) - 1
                                                                                              else ""))
                out.append(" ".join(keys) + ("." if r == last else ""))
            for r, row in enumerate(block.rows):
                if r == last and block.bold_last and block.rules in ("none", "lines"):
                    out.append("_")
                cells = [_troff(cell.replace("|", "/")) or "\\&" for cell in row]
                out.append("|".join(cells))
                if r == 0 and block.header and block.rules == "lines":
                    out.append("_")
            out.append(".TE")
            if block.align == "right" and not block.expand:
                out.append(".in 0")
        elif isinstance(block, Rule):
            out.extend([".LP", ".sp 0.2v", "\\D'l \\n(.lu 0'"])
        else:
            out.append(f".sp {block.points:.2f}p")

    for block in doc.masthead:
        emit(block)
    if doc.columns == 2:
        out.append(".2C")
    for block in doc.body:
        emit(block)
    source = "\n".join(out) + "\n"
    command = ["groff", "-ms", "-t", "-Tpdf", "-F", fonts.groff_dir, f"-P-p{doc.height:.2f}p,{doc.width:.2f}p"]
    pdf.write_bytes(run(command, fonts.env, source.encode("ascii")))
