"""The window detectors by name (the ``anomaly.detector`` config key).

* ``kpi`` (shipped): :class:`~operators.anomalies.kpi.KpiDetector`, context surprise
  (nearest lag windows in noise units) and range novelty, calibrated per series;
* ``sad``: River's ``StandardAbsoluteDeviation`` through the same calibration;
* ``hst``: River's ``HalfSpaceTrees`` on min-max scaled values, same calibration.

All are River anomaly detectors (``learn_one``/``score_one`` on dicts) with an
``expected`` value and scores in [0, 1); alarms come from
:class:`~operators.anomalies.gate.AlarmGate`. ``bench/nab.py --baselines`` and
``bench/detection_quality.py`` compare them.

>>> detector = make_detector("kpi", KpiParams(warmup=5))
>>> for v in [3.0, 4.0, 5.0, 4.0] * 20:
...     detector.learn_one({"value": v})
>>> detector.score_one({"value": 3.0}) < 0.5 < detector.score_one({"value": 40.0})
True
"""

from __future__ import annotations

from operators.anomalies.base import KpiScorer
from operators.anomalies.kpi import KpiDetector, KpiParams

__all__ = ["DETECTORS", "KpiParams", "make_detector"]

#: Detector names accepted by ``anomaly.detector`` and their usual alarm threshold (a calibrated score).
DETECTORS = {"kpi": 0.75, "sad": 0.75, "hst": 0.75}


def make_detector(name: str, params: KpiParams | None = None, seed: int = 42) -> KpiScorer:
    """A fresh detector ``name`` (one of :data:`DETECTORS`)."""
    params = params or KpiParams()
    if name == "kpi":
        return KpiDetector(params)
    if name in ("sad", "hst"):
        # Imported here: River's anomaly and preprocessing modules take about a second to import
        # (SciPy), which a flow on the shipped detector should not pay at every start.
        from operators.anomalies.baselines import CalibratedRiver

        return CalibratedRiver(name, warmup=params.warmup, seed=seed)
    raise ValueError(f"unknown detector {name!r} (known: {', '.join(DETECTORS)})")
