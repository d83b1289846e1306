"""How well and how fast mailbot reads application PDFs, per kind: text, fillable, scanned.

    .venv/bin/python bench/inspect.py [--scans N]

For each kind it reads a corpus whose expected fields and seal verdicts are
known (the generators in tests/forms/), and prints fields read right (%),
seal verdicts right (%), and median / p95 time per document. On scans it
also counts fields flagged uncertain and fields read WRONG without a flag
(the one outcome that must never happen). Reading is in-process (no
sandbox), one document at a time, on one core for OCR (OMP_THREAD_LIMIT=1).
The last line is fixed, for comparing runs:

    inspect fields_text=P% fields_acroform=P% fields_scan=P% seal=P% text_median_ms=X scan_median_s=Y
"""

import os
import sys

# This file is called inspect.py: keep bench/ off the import path, or it would
# shadow the standard library's inspect module for everything imported below.
sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("OMP_THREAD_LIMIT", "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

from mailbot.forms.fillable import render_fillable  # noqa: E402
from mailbot.forms.read import read_form  # noqa: E402
from tests.forms import corpus_scan, corpus_text, seal_variants  # noqa: E402

RED, NONE, MISPLACED = (True, True, "red"), (False, False, None), (True, False, "red")
FILLABLE_SEALS = {"image": RED, "stamp_annotation": RED, "misplaced": MISPLACED,
                  "black_stamp": (True, True, "black"), "none": NONE}


@dataclass(frozen=True)
class Case:
    """One PDF, what must be read from it, and how its seal must be judged."""

    name: str
    make: Callable[[], bytes]
    expected: dict | None  # None: a seal-only case (fields not counted)
    seal: tuple


@dataclass
class Tally:
    """What one kind scored."""

    fields: int = 0
    right: int = 0
    flagged: int = 0
    wrong: int = 0
    seals: int = 0
    seals_right: int = 0
    seconds: list[float] = field(default_factory=list)
    misses: list[str] = field(default_factory=list)


def text_cases() -> list[Case]:
    return [Case(v.id, v.make, v.expected, v.seal) for v in corpus_text.all_variants()]


def fillable_cases() -> list[Case]:
    seals = list(FILLABLE_SEALS)
    return [Case(f"fillable-{i}-{seals[i % len(seals)]}",
                 lambda v=values, s=seals[i % len(seals)]: render_fillable(v, seal=s),
                 values, FILLABLE_SEALS[seals[i % len(seals)]])
            for i, values in enumerate(corpus_scan.APPLICANTS)]


def scan_cases(limit: int | None) -> list[Case]:
    scans = corpus_scan.SCANS[:limit] if limit else corpus_scan.SCANS
    return [Case(s.name, s.pdf, s.values, corpus_scan.SEAL_VERDICTS[s.seal]) for s in scans]


def seal_cases() -> list[Case]:
    return [Case(name, lambda n=name: seal_variants.build(n), None, verdict)
            for name, (_make, verdict) in seal_variants.VARIANTS.items()]


def run(cases: Iterable[Case]) -> Tally:
    """Read every case once and score it."""
    tally = Tally()
    for case in cases:
        data = case.make()
        start = time.perf_counter()
        reading = read_form(data)
        tally.seconds.append(time.perf_counter() - start)
        score(tally, case, reading)
    return tally


def score(tally: Tally, case: Case, reading) -> None:
    for key, value in (case.expected or {}).items():
        tally.fields += 1
        got = reading.fields.get(key)
        if got == value:
            tally.right += 1
        elif key in reading.uncertain:
            tally.flagged += 1
        else:
            tally.wrong += 1
            tally.misses.append(f"{case.name}: {key} = {got!r}, expected {value!r}")
    seal = reading.seal
    tally.seals += 1
    if (seal.present, seal.near_field, seal.color) == case.seal or "seal" in reading.uncertain:
        tally.seals_right += 1
    else:
        tally.misses.append(f"{case.name}: seal {(seal.present, seal.near_field, seal.color)}, "
                            f"expected {case.seal}")


def percent(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 100.0


def report(kind: str, tally: Tally) -> None:
    times = sorted(tally.seconds)
    p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
    print(f"{kind:<9} docs={len(times):<3} fields={percent(tally.right, tally.fields):5.1f}% "
          f"({tally.right}/{tally.fields}, flagged {tally.flagged}, wrong unflagged {tally.wrong})  "
          f"seal={percent(tally.seals_right, tally.seals):5.1f}% ({tally.seals_right}/{tally.seals})  "
          f"median={statistics.median(times) * 1000:.0f} ms  p95={p95 * 1000:.0f} ms")
    for miss in tally.misses:
        print(f"    miss: {miss}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=None, help="read only the first N scans")
    args = parser.parse_args()
    read_form(corpus_text.all_variants()[0].make())  # warm up imports and caches
    tallies = {"text": run(text_cases()), "acroform": run(fillable_cases()),
               "scan": run(scan_cases(args.scans)), "seal": run(seal_cases())}
    for kind, tally in tallies.items():
        report(kind, tally)
    seal_right = sum(t.seals_right for t in tallies.values())
    seal_total = sum(t.seals for t in tallies.values())
    print(f"inspect fields_text={percent(tallies['text'].right, tallies['text'].fields):.1f}% "
          f"fields_acroform={percent(tallies['acroform'].right, tallies['acroform'].fields):.1f}% "
          f"fields_scan={percent(tallies['scan'].right, tallies['scan'].fields):.1f}% "
          f"seal={percent(seal_right, seal_total):.1f}% "
          f"text_median_ms={statistics.median(tallies['text'].seconds) * 1000:.0f} "
          f"scan_median_s={statistics.median(tallies['scan'].seconds):.2f}")


if __name__ == "__main__":
    main()
