"""Page sets in the ICDAR 2015 layout that shadownet did not typeset, for measuring the text detector.

The command line of ``benchmarks/page_sets`` (its ``__init__.py`` says what is third-party and what is ours): a
train split in the training faces and a test split in the test faces, under ``--out``; a JSON summary on stdout.
Tools: ``pip install -r benchmarks/requirements-detection.txt`` with requirements-accuracy.txt, and
``apt-get install --no-install-recommends groff poppler-utils``.

    python benchmarks/page_datasets.py --out DIR --train 1000 --test 100 --seed 0 [--workers N]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from page_sets import make_pages  # noqa: E402  (beside this script)


def main(argv: list | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--train", type=int, default=1000, help="train pages (training faces)")
    parser.add_argument("--test", type=int, default=100, help="test pages (test faces)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    splits = {split: make_pages(args.out, count, args.seed, split, split, args.workers)
              for split, count in (("train", args.train), ("test", args.test)) if count > 0}
    print(json.dumps({"out": str(args.out), "seed": args.seed, "workers": args.workers,
                      "pages": {s: r["pages"] for s, r in splits.items()},
                      "lines": {s: r["lines"] for s, r in splits.items()},
                      "dont_care": {s: r["dont_care"] for s, r in splits.items()},
                      "engines": {s: r["engines"] for s, r in splits.items()},
                      "kinds": {s: r["kinds"] for s, r in splits.items()},
                      "seconds": round(time.perf_counter() - start, 2),
                      "faces": {s: r["families"] for s, r in splits.items()}}))


if __name__ == "__main__":
    main()
