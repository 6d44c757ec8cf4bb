"""The anomaly stage's determinism and gaps, the ``anomaly-score`` command, and a NAB smoke test."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from channelflow.anomaly_score import InputError, score_csv
from operators.anomalies.domain import Anomalies, AnomalySettings
from operators.anomalies.kpi import KpiParams
from operators.contract.events import Event
from operators.time.shard import DomainShard
from operators.time.stream_items import Progress

MINUTE = 60_000
ROOT = Path(__file__).resolve().parents[2]


def sale(i: int, ts: int, store: str = "S1") -> Event:
    return Event(f"s{i:06d}", "sale", "pos", ts, {"store_id": store, "total": 10.0 + i % 7,
                                                   "lines": [{"sku": "A", "qty": 1, "unit_price": 10.0}]})


def traffic(seed: int = 3) -> list[Event]:
    rng = random.Random(seed)
    events = []
    for minute in range(600):
        rate = 0 if 400 <= minute < 430 else 3
        for _ in range(sum(rng.random() < 0.5 for _ in range(2 * rate))):
            events.append(sale(len(events), minute * MINUTE + rng.randrange(MINUTE), rng.choice(["S1", "S2"])))
    return sorted(events, key=lambda e: e.ts)


def alerts_of(events: list[Event], shuffle_seed: int | None, block_ms: int) -> list[dict[str, object]]:
    settings = AnomalySettings(window_ms=5 * MINUTE, params=KpiParams(warmup=10), suppress_k=10, threshold=0.6)
    shard = DomainShard(Anomalies(settings), upstreams=1, ordered=True)
    out: list[dict[str, object]] = []
    rng = random.Random(shuffle_seed)
    start = 0
    while start <= events[-1].ts:
        block = [e for e in events if start <= e.ts < start + block_ms]
        if shuffle_seed is not None:
            rng.shuffle(block)  # any arrival order within the lateness (one progress step)
        for event in block:
            out += [o.value for o in shard.on_event(event)]
        start += block_ms
        out += [o.value for o in shard.on_progress(Progress(0, start))]
    out += [o.value for o in shard.on_progress(Progress(0, events[-1].ts + 10 * MINUTE))]
    return out


def test_the_stage_gives_the_same_alerts_whatever_the_arrival_order_and_batching() -> None:
    events = traffic()
    expected = alerts_of(events, None, MINUTE)
    assert expected  # the silent half hour and the price check give alerts
    for seed, block in [(1, MINUTE), (2, 7 * MINUTE), (3, 3 * MINUTE)]:
        assert alerts_of(events, seed, block) == expected


def test_a_gap_in_event_time_costs_a_bounded_number_of_window_closes() -> None:
    settings = AnomalySettings(window_ms=MINUTE, params=KpiParams(warmup=5), idle_windows=20)
    domain = Anomalies(settings)
    closes = 0
    close = domain.windows.close

    def counting(group: str, start: int):  # type: ignore[no-untyped-def]
        nonlocal closes
        closes += 1
        return close(group, start)

    domain.windows.close = counting  # type: ignore[method-assign]
    shard = DomainShard(domain, upstreams=1, ordered=True)
    for i in range(30):
        shard.on_event(sale(i, i * MINUTE))
    shard.on_progress(Progress(0, 30 * MINUTE))
    before = closes
    decades = 30 * 365 * 24 * 60 * MINUTE
    shard.on_event(sale(99, decades, "S7"))  # a new store, decades later
    shard.on_event(sale(100, decades + 1))
    shard.on_progress(Progress(0, decades + 5 * MINUTE))
    assert closes - before <= 2 * (20 + 5) + 10  # idle after 20 empty windows per group, not 15 million closes
    assert domain.late_for_window == 0


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_anomaly_score_adds_score_and_alert_columns(tmp_path: Path) -> None:
    rows = "".join(f"2024-01-01 {i // 60:02d}:{i % 60:02d}:00,{10 + i % 5}\n" for i in range(400))
    source = write(tmp_path / "in.csv", "timestamp,value\n" + rows + "2024-01-02 00:00:00,500\n")
    out = tmp_path / "out.csv"
    done = subprocess.run([sys.executable, "-m", "channelflow.cli", "anomaly-score", str(source), "--output", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = out.read_text().splitlines()
    assert lines[0] == "timestamp,value,anomaly_score,alert" and len(lines) == 402
    scores = [float(line.split(",")[2]) for line in lines[1:]]
    assert all(0.0 <= s < 1.0 for s in scores)
    assert lines[-1].endswith(",1") and scores[-1] == max(scores)  # the spike alerts and ranks first


@pytest.mark.parametrize(
    ("text", "message"),
    [("time,value\n1,2\n", "row 1: missing column(s) timestamp"), ("timestamp,value\n1,2\n2,abc\n", "row 3: value 'abc'"),
     ("timestamp,value\n1,\n", "row 2: value ''"), ("", "row 1: empty file")],
)
def test_anomaly_score_names_the_bad_row(tmp_path: Path, text: str, message: str) -> None:
    import io

    with pytest.raises(InputError, match=r"^" + message.replace("(", r"\(").replace(")", r"\)")):
        score_csv(io.StringIO(text), io.StringIO())
    source = write(tmp_path / "bad.csv", text)
    done = subprocess.run([sys.executable, "-m", "channelflow.cli", "anomaly-score", str(source)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and message in done.stderr


@pytest.mark.skipif(not (ROOT.parent / "shared" / "data" / "nab-dev").is_dir(), reason="no NAB data")
def test_nab_bench_smoke(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "bench/nab.py", "--files", "1", "--out", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "| gated (alerts, ranked) |" in done.stdout
    assert list(tmp_path.rglob("*.csv"))
