"""Page sets in the ICDAR 2015 layout that shadownet did not typeset, for measuring the text detector.

``make_pages`` writes ``OUT/<split>_images/img_<n>.jpg`` and ``OUT/<split>_gts/gt_img_<n>.txt`` (n from 1): one
``x1,y1,x2,y2,x3,y3,x4,y4,transcription`` row per text LINE, the corners clockwise from the line's top-left,
integer pixels inside the image, UTF-8. Page n is a pure function of (seed, split name, face split, n): a rerun,
with any number of workers, writes the same files (on the same machine: the bytes depend on the versions of
poppler, groff, reportlab, OpenCV and the fonts). ``benchmarks/page_datasets.py`` (the command line) writes a
train split in the training faces and a test split in the test faces.

What is third-party, and what is ours:

* Typesetting (third-party): about half the pages are typeset by reportlab (platypus: paragraphs wrapped and
  justified by it, lists, tables, frames for two columns; the faces embedded), the others by GNU groff (troff
  with the ``-ms`` macros: filling, justification and hyphenation, two columns, page footers; ``tbl`` for tables;
  ``gropdf`` writes the PDF). Ours is only what is asked of them: a document of one of four kinds (an article
  with headings, paragraphs, lists and small tables in one or two columns; a letter; an invoice or form of label
  and value rows, an item table and totals; a narrow till receipt), its page size (A4, Letter, A5, B5, A6,
  half-letter, 5x7 in, 4x6 in, receipts 58-80 mm wide; sometimes landscape), margins, faces, sizes (9-24 pt),
  leading, ink and accent colours. Nothing of shadownet's own page synthesis is used.
* Texts (third-party): Faker (en_US, seeded per page: names, companies, addresses, phone numbers, e-mails, lorem
  sentences of English words, catch phrases) and wordfreq's 30,000 most frequent English words; prices, dates,
  times, quantities and codes are drawn by this package. Printable ASCII only.
* Rasterising (third-party): poppler's ``pdftoppm`` renders page 1 to PNG at a DPI drawn so that the final image
  (border included) is 600-1000 px on its long side.
* Line boxes (third-party): poppler's ``pdftotext -bbox-layout``: its ``<line>`` elements (xMin, yMin, xMax, yMax
  in PDF points, times DPI / 72 to pixels), the transcription the line's ``<word>``\\ s joined by single spaces;
  none of them comes from this package's layout arithmetic. What we change: a line is cut where two of its words
  stand more than 1.5 line heights and more than twice the line's median word gap apart (poppler sometimes joins
  a label and its value, or the cells of a table row; a justified line's even gaps stay), unless a side of the
  cut would hold no letter or digit; boxes are clipped to the page. The box is poppler's: the font's ascent to
  its descent over the line's advance widths, not the ink, so it is taller than the ink of a line without
  capitals or descenders. Poppler itself cuts a line at a gap it takes for a column gap, so a list's bullet is
  a line of its own, and so would be the words of a narrow justified line: text is justified only in columns of
  50 characters or more, never in a monospaced face.
* Fonts (third-party): Debian's font packages and matplotlib's STIX faces, split into disjoint families:

  - TRAINING faces (``faces="train"``): Liberation Sans, Serif and Mono; Carlito; Caladea; FreeSans, FreeSerif
    and FreeMono (TrueType); URW base35's Nimbus Roman, Nimbus Sans, Nimbus Sans Narrow, Nimbus Mono PS, P052,
    C059, URW Bookman, URW Gothic and Z003 (Type 1, AFM metrics). 17 families.
  - TEST faces (``faces="test"``): DejaVu Sans, Sans Condensed, Serif, Serif Condensed and Sans Mono (Debian's
    fonts-dejavu) and STIX General (matplotlib's ``fonts/ttf``). 6 families. These are the families
    ``external_datasets.py`` keeps for its test lines, so a model trained without DejaVu and STIX (see that
    module's note) meets its test faces only here. Each family has its regular, italic, bold and bold italic
    (Z003 has one style, used for all four).

  reportlab embeds every face. gropdf embeds the Type 1 faces; it cannot embed TrueType, so its TrueType faces are
  named in the PDF (widths and glyph names from the font, written by this package into groff font descriptions)
  and poppler finds them through fontconfig (a private configuration adds matplotlib's font folder). Every PDF is
  checked with ``pdffonts``: each of its fonts must be one of the page's faces, embedded, or a named TrueType face
  that ``pdffonts -subst`` resolves to that face's file; anything else (a standard-14 font, a substitute) stops
  the run. Symbol faces (URW's D050000L and Standard Symbols PS) are in neither split.
* Photographed-page degradations (ours, OpenCV and numpy), applied to the image and, through the same homography,
  to the four corners of every line box: a paper tint and faint texture; in half the pages a background border
  (desk colour, gradient, noise) around the page; a slight rotation (up to 3 degrees) and perspective (corners
  moved up to 3 % of the page); uneven light (a gradient, a bright or dark spot, sometimes a soft shadow edge); a
  colour cast; Gaussian blur (sigma 0.3-1.1, 3 pages in 4); sensor noise; sometimes grey; JPEG quality 50-90.

Regions and don't-care lines: after the warp a region is the 4 warped corners of the line's axis-aligned box.
A line whose box is at least 90 % inside the image is kept, its corners clipped to the image; a line that leaves
the image partly (10-90 % inside, only possible without a border) is written as a clipped ``###`` (don't care,
as ICDAR 2015 marks unreadable text); a line less than 10 % inside is dropped. A line whose box is under 8 px
tall in the page raster is ``###`` too (too small to read at that DPI), and so is a line without a letter or a
digit (a bullet, a dash, a lone ``#`` header cell): not text a reader would transcribe.

Tools: ``pip install -r benchmarks/requirements-detection.txt`` (reportlab) with requirements-accuracy.txt (Faker,
wordfreq, matplotlib), and ``apt-get install --no-install-recommends groff poppler-utils``.

    python benchmarks/page_datasets.py --out DIR --train 1000 --test 100 --seed 0 [--workers N]

The modules, in the order a page goes through them: ``fonts`` (the face split, metrics, groff's font folder,
the fontconfig poppler runs in, the checks of every PDF's fonts), ``content`` (Faker and wordfreq texts),
``documents`` (the blocks of a document, fitting and height estimates), ``compose`` (a document of one of the
four kinds), ``reportlab_pages`` and ``groff_pages`` (a document typeset to a PDF), ``boxes`` (pdftotext's
line boxes and the don't-care rules), ``photo`` (the degradations and the homography) and ``writer`` (a page,
its ICDAR files, the workers).
"""

from __future__ import annotations

from .fonts import FAMILIES, prepare_fonts
from .writer import FACE_SPLITS, SPLITS, icdar_gt, make_pages, page_rng, render_page

__all__ = ["FACE_SPLITS", "FAMILIES", "SPLITS", "icdar_gt", "make_pages", "page_rng", "prepare_fonts", "render_page"]
