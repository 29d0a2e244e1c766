"""The faces of the two splits and their checks.

In: a face split's name (``"train"`` or ``"test"``, ``FAMILIES``) and a scratch folder. Out: ``prepare_fonts``'s
``Fonts``: each face's metrics (advances, glyph names, ink extents, its PostScript and groff names), a groff font
folder (devpdf descriptions written from those metrics, the Type 1 ``download`` list) and the environment whose
fontconfig file lets poppler find matplotlib's STIX faces. ``check_fonts`` stops the run when a PDF holds a font
that is none of the page's faces, or one neither embedded nor resolved by poppler to its own file. ``run`` runs the
command-line tools (groff, pdftotext, pdftoppm, pdffonts) in that environment.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

STYLES = ("R", "I", "B", "BI")
CHARS = tuple(chr(code) for code in range(32, 127)) + ("\u2022",)  # printable ASCII and the bullet
TRUETYPE = Path("/usr/share/fonts/truetype")
URW_AFM = Path("/usr/share/fonts/type1/urw-base35")
URW_PFB = Path("/usr/share/fonts/X11/Type1")


@dataclass(frozen=True)
class Family:
    """A font family in four styles (R, I, B, BI): ``files`` relative to the folder its ``source`` names:
    ``truetype`` Debian's /usr/share/fonts/truetype, ``matplotlib`` matplotlib's fonts/ttf, ``type1`` URW base35
    (``file``.afm in /usr/share/fonts/type1/urw-base35 and ``file``.pfb in /usr/share/fonts/X11/Type1)."""

    key: str  # 3 letters: the family's name in groff, and its fonts' names (key + style) in both engines
    name: str
    files: tuple[str, str, str, str]
    source: str
    mono: bool = False

    def path(self, style: str) -> Path:
        file = self.files[STYLES.index(style)]
        if self.source == "truetype":
            return TRUETYPE / file
        if self.source == "matplotlib":
            return _matplotlib_fonts() / file
        return URW_PFB / f"{file}.pfb"

    def font(self, style: str) -> str:
        """The name of the font that draws ``style``: key + style, or key + "R" where the style is the regular's
        file (Z003 has one style; reportlab would embed a face registered under two names only once)."""
        return self.key + (style if self.files[STYLES.index(style)] != self.files[0] or style == "R" else "R")

    def afm(self, style: str) -> Path:
        return URW_AFM / f"{self.files[STYLES.index(style)]}.afm"


def _family(key: str, name: str, pattern: str, variants: tuple[str, ...], source: str = "truetype",
            mono: bool = False) -> Family:
    variants = variants * 4 if len(variants) == 1 else variants
    return Family(key, name, tuple(pattern.format(v) for v in variants), source, mono)


_RIBB = ("Regular", "Italic", "Bold", "BoldItalic")
_ROBB = ("Regular", "Oblique", "Bold", "BoldOblique")
FAMILIES = {
    "train": (
        _family("LIS", "Liberation Sans", "liberation2/LiberationSans-{}.ttf", _RIBB),
        _family("LIR", "Liberation Serif", "liberation2/LiberationSerif-{}.ttf", _RIBB),
        _family("LIM", "Liberation Mono", "liberation2/LiberationMono-{}.ttf", _RIBB, mono=True),
        _family("CRL", "Carlito", "crosextra/Carlito-{}.ttf", _RIBB),
        _family("CLD", "Caladea", "crosextra/Caladea-{}.ttf", _RIBB),
        _family("FRS", "FreeSans", "freefont/FreeSans{}.ttf", ("", "Oblique", "Bold", "BoldOblique")),
        _family("FRR", "FreeSerif", "freefont/FreeSerif{}.ttf", ("", "Italic", "Bold", "BoldItalic")),
        _family("FRM", "FreeMono", "freefont/FreeMono{}.ttf", ("", "Oblique", "Bold", "BoldOblique"), mono=True),
        _family("NRO", "Nimbus Roman", "NimbusRoman-{}", _RIBB, "type1"),
        _family("NSA", "Nimbus Sans", "NimbusSans-{}", _RIBB, "type1"),
        _family("NSN", "Nimbus Sans Narrow", "NimbusSansNarrow-{}", _ROBB, "type1"),
        _family("NMO", "Nimbus Mono PS", "NimbusMonoPS-{}", _RIBB, "type1", mono=True),
        _family("P52", "P052", "P052-{}", ("Roman", "Italic", "Bold", "BoldItalic"), "type1"),
        _family("C59", "C059", "C059-{}", ("Roman", "Italic", "Bold", "BdIta"), "type1"),
        _family("UBK", "URW Bookman", "URWBookman-{}", ("Light", "LightItalic", "Demi", "DemiItalic"), "type1"),
        _family("UGO", "URW Gothic", "URWGothic-{}", ("Book", "BookOblique", "Demi", "DemiOblique"), "type1"),
        _family("Z03", "Z003", "Z003-{}", ("MediumItalic",), "type1"),  # one style: all four are it
    ),
    "test": (
        _family("DVS", "DejaVu Sans", "dejavu/DejaVuSans{}.ttf", ("", "-Oblique", "-Bold", "-BoldOblique")),
        _family("DVC", "DejaVu Sans Condensed", "dejavu/DejaVuSansCondensed{}.ttf",
                ("", "-Oblique", "-Bold", "-BoldOblique")),
        _family("DVR", "DejaVu Serif", "dejavu/DejaVuSerif{}.ttf", ("", "-Italic", "-Bold", "-BoldItalic")),
        _family("DVQ", "DejaVu Serif Condensed", "dejavu/DejaVuSerifCondensed{}.ttf",
                ("", "-Italic", "-Bold", "-BoldItalic")),
        _family("DVM", "DejaVu Sans Mono", "dejavu/DejaVuSansMono{}.ttf", ("", "-Oblique", "-Bold", "-BoldOblique"),
                mono=True),
        _family("STX", "STIX General", "STIXGeneral{}.ttf", ("", "Italic", "Bol", "BolIta"), "matplotlib"),
    ),
}


@functools.cache
def _matplotlib_fonts() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


@dataclass(frozen=True)
class Metrics:
    """One face's PostScript name, the name groff's PDFs give it, and, for each character of CHARS it has, its
    advance, glyph name (the Adobe Glyph List's) and ink height and depth, all in 1/1000 em."""

    name: str
    groff_name: str  # poppler finds a face that is not embedded by this name: "Family-Style", the name's table's
    advance: dict
    glyph: dict
    extent: dict


def _metrics(family: Family, style: str) -> Metrics:
    from fontTools.agl import UV2AGL

    logging.getLogger("fontTools").setLevel(logging.ERROR)  # FreeFont's 'created' dates of 0 are no concern here

    advance, glyph, extent = {}, {}, {}
    if family.source == "type1":
        by_name, name = {}, ""
        for line in family.afm(style).read_text(encoding="latin-1").splitlines():
            if line.startswith("FontName "):
                name = line.split(None, 1)[1].strip()
            elif line.startswith("C "):
                fields = {}
                for part in line.split(";"):
                    key, _, value = part.strip().partition(" ")
                    fields[key] = value.strip()
                box = [float(v) for v in fields.get("B", "0 0 0 0").split()]
                by_name[fields.get("N")] = (float(fields.get("WX", 0)), box[3], -box[1])
        for ch in CHARS:
            metric = by_name.get(UV2AGL.get(ord(ch)))
            if metric is not None:
                advance[ch], glyph[ch] = round(metric[0]), UV2AGL[ord(ch)]
                extent[ch] = (max(0, round(metric[1])), max(0, round(metric[2])))
        return Metrics(name, name, advance, glyph, extent)
    from fontTools.ttLib import TTFont

    font = TTFont(str(family.path(style)), lazy=True)
    cmap, scale = font.getBestCmap(), 1000.0 / font["head"].unitsPerEm
    hmtx, glyf = font["hmtx"], font["glyf"]
    for ch in CHARS:
        name = cmap.get(ord(ch))
        if name is None:
            continue
        outline = glyf[name]
        advance[ch], glyph[ch] = round(hmtx[name][0] * scale), UV2AGL.get(ord(ch), f"uni{ord(ch):04X}")
        extent[ch] = (max(0, round(getattr(outline, "yMax", 0) * scale)),
                      max(0, round(-getattr(outline, "yMin", 0) * scale)))
    names = font["name"]
    name = names.getDebugName(6)
    # poppler reads a missing font's name as family-style ("FreeSerifBold", FreeFont's own, would match nothing)
    family_name = (names.getDebugName(16) or names.getDebugName(1)).replace(" ", "")
    style_name = (names.getDebugName(17) or names.getDebugName(2)).replace(" ", "")
    groff_name = family_name if style_name in ("Regular", "Book", "Roman") else f"{family_name}-{style_name}"
    return Metrics(name, groff_name, advance, glyph, extent)


@dataclass
class Fonts:
    """The faces of one split, ready for both engines: metrics by font name (family key + style), groff's font
    folder, the environment (fontconfig) poppler runs in, and the scratch folder pages are made in."""

    families: tuple
    metrics: dict
    groff_dir: str
    env: dict
    scratch: str

    def width(self, text: str, family: Family, style: str, size: float) -> float:
        advance = self.metrics[family.key + style].advance
        return sum(advance.get(ch, 600) for ch in text) * size / 1000.0

    def has(self, family: Family, ch: str) -> bool:
        return all(ch in self.metrics[family.key + style].advance for style in STYLES)


_GROFF_ALIASES = {"'": "aq", "`": "ga", "^": "ha", "~": "ti", "\\": "rs", '"': "dq", "-": "hy"}


def _groff_description(font: str, metrics: Metrics) -> str:
    """A groff devpdf font description of ``metrics``: the printable ASCII characters as themselves (so ``'`` is
    a straight quote), the usual aliases, and ``bu`` (the bullet, code 128) where the face has one."""
    out = [f"name {font}", f"internalname {metrics.groff_name}", f"spacewidth {metrics.advance.get(' ', 250)}",
           "charset", f"space\t{metrics.advance.get(' ', 250)}\t0\t32\tspace"]
    for ch in CHARS[1:]:
        if ch not in metrics.advance:
            continue
        height, depth = metrics.extent[ch]
        kind = (1 if depth > 30 else 0) | (2 if height > 560 else 0)
        name, code = ("bu", 128) if ch == "\u2022" else (ch, ord(ch))
        out.append(f"{name}\t{metrics.advance[ch]},{height},{depth}\t{kind}\t{code}\t{metrics.glyph[ch]}")
        if ch in _GROFF_ALIASES:
            out.append(f"{_GROFF_ALIASES[ch]}\t\"")
    return "\n".join(out) + "\n"


def prepare_fonts(split: str, scratch: Path) -> Fonts:
    """The ``split`` faces' metrics, a groff font folder and a fontconfig file under ``scratch``, checked: a
    probe page set by groff in every face must name each TrueType face poppler resolves to that face's file."""
    if shutil.which("groff") is None or shutil.which("pdftoppm") is None:
        raise RuntimeError("page_datasets needs groff and poppler-utils: "
                           "apt-get install --no-install-recommends groff poppler-utils")
    families = FAMILIES[split]
    metrics = {family.key + style: _metrics(family, style) for family in families for style in STYLES}
    devpdf = scratch / "groff" / "devpdf"
    devpdf.mkdir(parents=True)
    shutil.copy(_groff_desc(), devpdf / "DESC")
    download = []
    for family in families:
        for style in STYLES:
            font = family.key + style
            (devpdf / font).write_text(_groff_description(font, metrics[font]), encoding="ascii")
            if family.source == "type1":
                download.append(f"\t{metrics[font].name}\t{family.path(style)}")
    (devpdf / "download").write_text("\n".join(sorted(set(download))) + "\n", encoding="ascii")
    conf = scratch / "fonts.conf"
    conf.write_text('<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "urn:fontconfig:fonts.dtd">\n<fontconfig>\n'
                    '  <include ignore_missing="yes">/etc/fonts/fonts.conf</include>\n'
                    f"  <dir>{escape(str(_matplotlib_fonts()))}</dir>\n</fontconfig>\n", encoding="utf-8")
    fonts = Fonts(families, metrics, str(scratch / "groff"), dict(os.environ, FONTCONFIG_FILE=str(conf)),
                  str(scratch))
    probe = "".join(f"\\f[{f.key}{s}]Probe {f.key}{s}\n.br\n" for f in families for s in STYLES)
    pdf = scratch / "probe.pdf"
    pdf.write_bytes(run(["groff", "-Tpdf", "-F", fonts.groff_dir], fonts.env, probe.encode("ascii")))
    wanted = {m.groff_name: str(f.path(s).resolve()) for f in families for s in STYLES
              if f.source != "type1" for m in [metrics[f.key + s]]}
    found = _substitutes(pdf, fonts.env)
    wrong = {name: found.get(name) for name, file in wanted.items() if found.get(name) != file}
    if wrong:
        raise RuntimeError(f"poppler does not resolve these groff faces to their files: {wrong}")
    return fonts


def _groff_desc() -> Path:
    """groff's own devpdf DESC (the device's resolution, sizes and postprocessor)."""
    for candidate in [Path("/usr/share/groff/current/font/devpdf/DESC"),
                      *sorted(Path("/usr/share/groff").glob("*/font/devpdf/DESC"))]:
        if candidate.is_file():
            return candidate
    raise RuntimeError("groff's devpdf device is missing: apt-get install --no-install-recommends groff")


def run(command: list, env: dict, stdin: bytes | None = None) -> bytes:
    done = subprocess.run(command, input=stdin, capture_output=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({done.returncode}): {done.stderr.decode(errors='replace')[-800:]}")
    return done.stdout


def _font_rows(text: str) -> list[list[str]]:
    """pdffonts' rows as whitespace-separated fields, below its two header lines (font names hold no spaces)."""
    return [line.split() for line in text.splitlines()[2:] if line.strip()]


def _substitutes(pdf: Path, env: dict) -> dict:
    """{font name: the file poppler renders it with} for the PDF's fonts that are not embedded."""
    rows = _font_rows(run(["pdffonts", "-subst", str(pdf)], env).decode())
    return {row[0]: str(Path(row[-1]).resolve()) for row in rows}


def check_fonts(pdf: Path, fonts: Fonts, page_faces: set) -> None:
    """Every font of ``pdf`` must be one of ``page_faces`` (PostScript names): embedded, or a TrueType face that
    poppler resolves to its own file (checked once, by ``prepare_fonts``)."""
    named = {m.groff_name for font, m in fonts.metrics.items() if family_of(fonts, font).source != "type1"}
    for row in _font_rows(run(["pdffonts", str(pdf)], fonts.env).decode()):
        name, embedded = row[0].split("+", 1)[-1], row[-5]
        if name not in page_faces:
            raise RuntimeError(f"{pdf.name}: font {row[0]!r} is none of the page's faces {sorted(page_faces)}")
        if embedded != "yes" and name not in named:
            raise RuntimeError(f"{pdf.name}: font {name!r} is not embedded")


def family_of(fonts: Fonts, font: str) -> Family:
    return next(f for f in fonts.families if f.key == font[:3])
