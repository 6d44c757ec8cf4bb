"""The shipped KPI detector on the Numenta Anomaly Benchmark (development half).

Runs :class:`operators.anomalies.kpi.KpiDetector` (default :class:`KpiParams`) and its
:class:`operators.anomalies.gate.AlarmGate` (default ``suppress_k``) over every series of
``../shared/data/nab-dev``, one row at a time (score, then learn), writes one score CSV per
series (``timestamp,value,anomaly_score,raw_score``) under ``--out``, and scores them with
``../shared/tools/nab_score.py`` (one corpus-wide threshold per profile). ``anomaly_score``
is the gated score, the score of a row the gate keeps (it beats the previous
``suppress_k`` scores; 0 otherwise), i.e. the alerts the product would publish, ranked;
``raw_score`` is the detector's calibrated score before the gate, scored too for
comparison.

Prints all three profiles, a per-category table (standard profile, at the corpus-wide
threshold), the two halves of the corpus (the split the defaults were chosen on: every
other file of each category, ``A`` = the first), River baselines with the same
calibration and gate (``--baselines``), and rows/s per series.

Usage: ``python bench/nab.py [--out /tmp/nab-scores] [--baselines]``.
"""

from __future__ import annotations

import argparse
import copy
import csv
import math
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT.parent / "shared" / "tools"))

from nab_score import NABCorpus, evaluate, score_file  # noqa: E402
from river import anomaly, preprocessing  # noqa: E402

from operators.anomalies.calibration import ScoreCalibrator  # noqa: E402
from operators.anomalies.gate import AlarmGate  # noqa: E402
from operators.anomalies.kpi import KpiDetector, KpiParams  # noqa: E402
from operators.anomalies.settings import DEFAULT_SUPPRESS_K  # noqa: E402

DEFAULT_NAB = ROOT.parent / "shared" / "data" / "nab-dev"
PUBLISHED = {"randomCutForest": 52.0, "knncad": 64.4, "numenta (HTM)": 71.2, "contextOSE": 74.1}
PROFILE_NAMES = {"standard": "standard", "reward_low_FP_rate": "reward_low_FP", "reward_low_FN_rate": "reward_low_FN"}

Scorer = Callable[[float], float]


def kpi_scorer(params: KpiParams | None = None) -> Scorer:
    detector = KpiDetector(params)

    def score(value: float) -> float:
        x = {"value": value}
        s = detector.score_one(x)
        detector.learn_one(x)
        return s

    return score


def river_scorer(kind: str, warmup: int = 60) -> Scorer:
    """A River detector's raw score through the same calibration as the KPI detector."""
    calibrator = ScoreCalibrator()
    seen = [0]
    if kind == "sad":
        sad = anomaly.StandardAbsoluteDeviation()

        def raw(v: float) -> float:
            r = float(sad.score_one(None, v)) if seen[0] else 0.0
            sad.learn_one(None, v)
            return r
    else:
        hst = preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(n_trees=25, height=8, window_size=250, seed=42)

        def raw(v: float) -> float:
            x = {"value": v}
            r = float(hst.score_one(x))
            hst.learn_one(x)
            return r

    def score(value: float) -> float:
        r = raw(value)
        s = calibrator.score(r) if seen[0] >= warmup else 0.0
        calibrator.learn(r)
        seen[0] += 1
        return s

    return score


def run_series(values: Iterable[float], scorer: Scorer, suppress_k: int) -> tuple[np.ndarray, np.ndarray]:
    """(gated, raw) scores of one series."""
    gate = AlarmGate(threshold=math.inf, k=suppress_k)
    raw, gated = [], []
    for value in values:
        s = scorer(float(value))
        raw.append(s)
        gated.append(gate.update(s)[0])
    return np.array(gated), np.array(raw)


def halves(corpus: NABCorpus) -> tuple[NABCorpus, NABCorpus]:
    """Every other file of each category: ``A`` (first, third, ...) and ``B``."""
    by_category: dict[str, list[str]] = {}
    for name in corpus.names:
        by_category.setdefault(name.split("/")[0], []).append(name)
    parts = []
    for offset in (0, 1):
        part = copy.copy(corpus)
        part.names = sorted(n for names in by_category.values() for n in names[offset::2])
        parts.append(part)
    return parts[0], parts[1]


def write_scores(out: Path, corpus: NABCorpus, name: str, gated: np.ndarray, raw: np.ndarray) -> None:
    path = out / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["timestamp", "value", "anomaly_score", "raw_score"])
        for row in zip(corpus.timestamps[name], corpus.values[name], gated, raw, strict=True):
            writer.writerow([row[0], repr(float(row[1])), repr(float(row[2])), repr(float(row[3]))])


def profiles(corpus: NABCorpus, scores: dict[str, np.ndarray]) -> dict[str, Any]:
    return evaluate(corpus, scores)


def category_table(corpus: NABCorpus, scores: dict[str, np.ndarray], threshold: float) -> list[str]:
    cost = corpus.profiles["standard"]
    rows = ["| category | files | windows | hit | false positives | standard (category alone, corpus threshold) |",
            "|---|--:|--:|--:|--:|--:|"]
    categories = sorted({n.split("/")[0] for n in corpus.names})
    for category in categories:
        names = [n for n in corpus.names if n.startswith(category + "/")]
        results = [score_file(corpus.labels[n], scores[n], threshold, cost) for n in names]
        windows = sum(len(corpus.labels[n].counted_windows) for n in names)
        raw = sum(r["score"] for r in results)
        hit = sum(r["windows_hit"] for r in results)
        fps = sum(r["FP"] for r in results)
        normalised = f"{100 * (raw + windows) / (2 * windows):.1f}" if windows else f"n/a (raw {raw:+.2f})"
        rows.append(f"| {category} | {len(names)} | {windows} | {hit} | {fps} | {normalised} |")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nab-root", type=Path, default=DEFAULT_NAB)
    parser.add_argument("--out", type=Path, default=Path("/tmp/channelflow-nab"), help="score CSVs go here")
    parser.add_argument("--suppress-k", type=int, default=DEFAULT_SUPPRESS_K)
    parser.add_argument("--baselines", action="store_true", help="also River's SAD and HalfSpaceTrees")
    parser.add_argument("--files", type=int, default=None, help="only the first N files with anomaly windows (smoke test)")
    args = parser.parse_args()

    corpus = NABCorpus(str(args.nab_root))
    if args.files:
        corpus.names = [n for n in corpus.names if corpus.labels[n].counted_windows][: args.files]
    detectors: dict[str, Callable[[], Scorer]] = {"kpi (shipped)": kpi_scorer}
    if args.baselines:
        detectors["River StandardAbsoluteDeviation"] = lambda: river_scorer("sad")
        detectors["River HalfSpaceTrees"] = lambda: river_scorer("hst")
    for label, make in detectors.items():
        gated: dict[str, np.ndarray] = {}
        raw: dict[str, np.ndarray] = {}
        started = time.perf_counter()
        rates = []
        for name in corpus.names:
            t0 = time.perf_counter()
            gated[name], raw[name] = run_series(corpus.values[name], make(), args.suppress_k)
            rates.append(len(corpus.values[name]) / (time.perf_counter() - t0))
            if label == "kpi (shipped)":
                write_scores(args.out, corpus, name, gated[name], raw[name])
        elapsed = time.perf_counter() - started
        rows = sum(len(corpus.values[n]) for n in corpus.names)
        print(f"\n## {label}: {len(corpus.names)} files, {rows} rows in {elapsed:.1f}s; rows/s per series: "
              f"median {np.median(rates):,.0f}, min {min(rates):,.0f}")
        print("\n| scores | standard | reward_low_FP | reward_low_FN | threshold (standard) |")
        print("|---|--:|--:|--:|--:|")
        for what, scores in (("gated (alerts, ranked)", gated), ("raw calibrated", raw)):
            result = profiles(corpus, scores)
            cells = " | ".join(f"{result[p]['score']:.1f}" for p in PROFILE_NAMES)
            print(f"| {what} | {cells} | {result['standard']['threshold']:.4f} |")
        if args.files is None:
            part_a, part_b = halves(corpus)
            a = profiles(part_a, gated)["standard"]["score"]
            b = profiles(part_b, gated)["standard"]["score"]
            print(f"\nhalves (gated, standard, threshold optimised per half): A (chosen on) {a:.1f}, B (held out) {b:.1f}")
        threshold = profiles(corpus, gated)["standard"]["threshold"]
        print()
        print("\n".join(category_table(corpus, gated, threshold)))
    if args.files is None:
        print("\npublished on this half (standard): " + ", ".join(f"{k} {v}" for k, v in PUBLISHED.items()))
    print(f"\nscore CSVs: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
