"""``channelflow anomaly-score INPUT.csv [--output OUT.csv]``: backtest the shipped detector on a KPI history.

Reads a CSV with (at least) ``timestamp`` and ``value`` columns, scores it row by row in file order
with the shipped detector and its default config (:class:`operators.anomalies.kpi.KpiDetector`,
:class:`operators.anomalies.gate.AlarmGate`: score, gate, then learn, as the flow does per window)
and writes every input column plus ``anomaly_score`` (the calibrated score, 0 to 1, higher is more
anomalous) and ``alert`` (1 where the flow would publish an alert). Bad input (a missing column,
an empty or non-numeric value) is an error naming the row; exit code 2.

>>> import io
>>> out = io.StringIO()
>>> score_csv(io.StringIO("timestamp,value\\n" + "".join(f"t{i},{i % 3}\\n" for i in range(5))), out)
5
>>> out.getvalue().splitlines()[:2]
['timestamp,value,anomaly_score,alert', 't0,0,0.0,0']
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from typing import IO

from operators.anomalies.detectors import DETECTORS
from operators.anomalies.gate import AlarmGate
from operators.anomalies.kpi import KpiDetector, KpiParams
from operators.anomalies.settings import DEFAULT_SUPPRESS_K

__all__ = ["InputError", "add_arguments", "main", "score_csv"]


class InputError(ValueError):
    """Bad input, with the row (1 = the header) it was found on."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="CSV with timestamp and value columns")
    parser.add_argument("--output", "-o", default=None, help="output CSV (default: stdout)")


def score_csv(source: IO[str], out: IO[str]) -> int:
    """Score every row of ``source`` into ``out``; returns the number of rows."""
    reader = csv.reader(source)
    header = next(reader, None)
    if header is None:
        raise InputError("row 1: empty file, expected a header with timestamp and value columns")
    missing = [c for c in ("timestamp", "value") if c not in header]
    if missing:
        raise InputError(f"row 1: missing column(s) {', '.join(missing)} (header: {','.join(header)})")
    column = header.index("value")
    detector = KpiDetector(KpiParams())
    gate = AlarmGate(DETECTORS["kpi"], DEFAULT_SUPPRESS_K)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*header, "anomaly_score", "alert"])
    rows = 0
    for line, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise InputError(f"row {line}: {len(row)} fields, the header has {len(header)}")
        try:
            value = float(row[column])
        except ValueError:
            raise InputError(f"row {line}: value {row[column]!r} is not a number") from None
        if not math.isfinite(value):
            raise InputError(f"row {line}: value {row[column]!r} is not a finite number")
        x = {"value": value}
        score = detector.score_one(x)
        _, alert = gate.update(score)
        detector.learn_one(x)
        writer.writerow([*row, repr(score), int(alert)])
        rows += 1
    return rows


def main(args: argparse.Namespace) -> int:
    try:
        with open(args.input, newline="") as source:
            if args.output is None:
                score_csv(source, sys.stdout)
            else:
                with open(args.output, "w", newline="") as out:
                    score_csv(source, out)
    except InputError as exc:
        print(f"channelflow anomaly-score: {args.input}: {exc}", file=sys.stderr)
        return 2
    except (OSError, UnicodeDecodeError) as exc:
        print(f"channelflow anomaly-score: {exc}", file=sys.stderr)
        return 2
    return 0
