"""The UCI Online Retail import: mapping rules on a small sample, and the real file's known facts."""

from __future__ import annotations

import argparse
import io
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from channelflow import uci
from channelflow.broker import EmbeddedBroker
from channelflow.kafka_io import consume_all
from channelflow.replay import read_events
from operators.contract.events import Event, validate

HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
SAMPLE = HEADER + (
    "536365,85123A,WHITE HANGING HEART,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom\n"
    "536365,85123A,WHITE HANGING HEART,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom\n"
    "536365,22752,SET 7 BABUSHKA,2,2010-12-01 08:27:00,7.65,17850.0,United Kingdom\n"
    "536370,POST,POSTAGE,3,2010-12-01 08:45:00,18.0,12583.0,France\n"
    "536365,21730,GLASS STAR,1,2010-12-01 08:27:00,4.25,17850.0,United Kingdom\n"
    "C536379,D,Discount,-1,2010-12-01 09:41:00,27.5,14527.0,United Kingdom\n"
    "C536383,35004C,SET OF 3 COLOURED FLYING DUCKS,-2,2010-12-01 09:49:00,4.65,,United Kingdom\n"
    "536414,22139,,-56,2010-12-01 11:52:00,0.0,,United Kingdom\n"
    "536589,21777,damaged,-10,2010-12-01 16:50:00,0.0,,United Kingdom\n"
    "556981,46000M,POLYESTER FILLER PAD,10,2011-06-02 10:00:00,0.0,,United Kingdom\n"
    "A563185,B,Adjust bad debt,1,2011-08-12 14:50:00,11062.06,,United Kingdom\n"
    "A563186,B,Adjust bad debt,1,2011-08-12 14:51:00,-11062.06,,United Kingdom\n"
)

EXPECTED_EVENTS: list[dict[str, Any]] = [
    {
        "event_id": "uci-536365",
        "type": "sale",
        "ts": "2010-12-01T08:26:00+00:00",
        "store_id": "UCI01",
        "receipt_id": "536365",
        "loyalty_id": "uci-17850",
        "lines": [
            {"sku": "85123A", "qty": 6, "unit_price": 2.55},
            {"sku": "85123A", "qty": 6, "unit_price": 2.55},
            {"sku": "22752", "qty": 2, "unit_price": 7.65},
            {"sku": "21730", "qty": 1, "unit_price": 4.25},
        ],
        "total": 50.15,
    },
    {
        "event_id": "uci-536370",
        "type": "sale",
        "ts": "2010-12-01T08:45:00+00:00",
        "store_id": "UCI01",
        "receipt_id": "536370",
        "loyalty_id": "uci-12583",
        "lines": [{"sku": "POST", "qty": 3, "unit_price": 18.0}],
        "total": 54.0,
    },
    {
        "event_id": "uci-C536379",
        "type": "return",
        "ts": "2010-12-01T09:41:00+00:00",
        "store_id": "UCI01",
        "receipt_id": "C536379",
        "loyalty_id": "uci-14527",
        "lines": [{"sku": "D", "qty": 1, "unit_price": 27.5, "restock": True}],
    },
    {
        "event_id": "uci-C536383",
        "type": "return",
        "ts": "2010-12-01T09:49:00+00:00",
        "store_id": "UCI01",
        "receipt_id": "C536383",
        "loyalty_id": None,
        "lines": [{"sku": "35004C", "qty": 2, "unit_price": 4.65, "restock": True}],
    },
    {
        "event_id": "uci-536414-adj1",
        "type": "stock_adjusted",
        "ts": "2010-12-01T11:52:00+00:00",
        "location_id": "UCI01",
        "sku": "22139",
        "delta": -56,
    },
    {
        "event_id": "uci-536589-adj1",
        "type": "stock_adjusted",
        "ts": "2010-12-01T16:50:00+00:00",
        "location_id": "UCI01",
        "sku": "21777",
        "delta": -10,
        "reason": "damaged",
    },
    {
        "event_id": "uci-556981",
        "type": "sale",
        "ts": "2011-06-02T10:00:00+01:00",
        "store_id": "UCI01",
        "receipt_id": "556981",
        "loyalty_id": None,
        "lines": [{"sku": "46000M", "qty": 10, "unit_price": 0.0}],
        "total": 0.0,
    },
]


def sample_rows(text: str = SAMPLE) -> list[uci.CsvRow]:
    return list(uci.read_rows(io.StringIO(text)))


def import_sample(text: str = SAMPLE) -> tuple[list[dict[str, Any]], list[uci.CsvRow]]:
    excluded: list[uci.CsvRow] = []
    events = list(uci.events_from_rows(sample_rows(text), excluded=excluded))
    return events, excluded


def topic_of(event: dict[str, Any]) -> str:
    return {"sale": "pos", "return": "pos", "stock_adjusted": "inventory"}[event["type"]]


def test_sample_maps_to_the_expected_events() -> None:
    events, excluded = import_sample()
    assert events == EXPECTED_EVENTS
    assert [row.line_no for row in excluded] == [12, 13]


def test_sample_events_pass_the_contract() -> None:
    events, _ = import_sample()
    assert all(isinstance(validate(event, topic_of(event)), Event) for event in events)


def test_import_is_deterministic() -> None:
    assert import_sample() == import_sample()


def test_sample_totals_account_for_every_csv_line() -> None:
    rows = sample_rows()
    events, excluded = import_sample()
    totals = uci.summarize(events, excluded)
    facts = uci.csv_facts(rows)
    assert totals.lines == facts.lines == 12
    assert totals.amount_millis == facts.amount_millis == 67_350
    assert totals.quantity == facts.quantity == -39
    assert totals.return_lines == facts.cancellation_lines == 2
    assert totals.adjustment_lines == facts.negative_without_customer_lines == 2
    assert totals.price_at_most_zero_lines == facts.price_at_most_zero_lines == 4
    assert totals.excluded_lines == 2
    assert totals.repeated_lines == facts.duplicate_rows == 1


def test_net_quantity_by_sku_matches_the_csv_except_excluded_rows() -> None:
    events, excluded = import_sample()
    by_sku = Counter(uci.net_quantity_by_sku(events))
    for row in excluded:
        by_sku[row.stock_code] += row.quantity
    assert dict(by_sku) == uci.csv_facts(sample_rows()).quantity_by_sku


def test_long_invoice_is_split_into_parts_of_at_most_1000_lines() -> None:
    lines = [f"581000,SKU{i},THING,1,2011-12-01 10:00:00,0.5,,United Kingdom\n" for i in range(1001)]
    events, _ = import_sample(HEADER + "".join(lines))
    assert [(e["event_id"], e["receipt_id"], len(e["lines"]), e["total"]) for e in events] == [
        ("uci-581000-p1", "581000", 1000, 500.0),
        ("uci-581000-p2", "581000", 1, 0.5),
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("C536379,D,Discount,1,2010-12-01 09:41:00,27.5,14527.0,UK", "line 2: cancellation C536379 with quantity 1"),
        ("536379,D,Discount,0,2010-12-01 09:41:00,27.5,14527.0,UK", "line 2: quantity 0"),
        ("536379,D,Discount,-1,2010-12-01 09:41:00,2.5,,UK", "line 2: quantity -1 at price 2.5"),
        ("536379,D,Discount,1,2010-12-01 09:41:00,-2.5,,UK", "line 2: negative price"),
        ("536379,D,Discount,x,2010-12-01 09:41:00,2.5,,UK", "line 2: invalid literal"),
        ("536379,D,Discount,1,2010-12-01 09:41:00,2.5,1.5,UK", "line 2: CustomerID '1.5'"),
        ("536379,D,1,2010-12-01 09:41:00,2.5,,UK", "line 2: expected 8 columns"),
    ],
)
def test_rows_without_a_rule_fail_naming_the_line(line: str, message: str) -> None:
    with pytest.raises(uci.UciFormatError, match=message):
        import_sample(HEADER + line + "\n")


def test_wrong_header_is_refused() -> None:
    with pytest.raises(uci.UciFormatError, match="line 1: expected the header"):
        sample_rows("a,b\n1,2\n")


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        ("2011-03-27 00:59:00", "2011-03-27T00:59:00+00:00"),
        ("2011-03-27 02:00:00", "2011-03-27T02:00:00+01:00"),
        ("2011-10-30 00:59:00", "2011-10-30T00:59:00+01:00"),
        ("2011-10-30 02:00:00", "2011-10-30T02:00:00+00:00"),
    ],
)
def test_timestamps_are_london_local_time(local: str, expected: str) -> None:
    assert uci.rfc3339(local) == expected


def cli_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    uci.add_arguments(parser)
    return parser.parse_args(argv)


def test_cli_writes_json_lines_and_reports_excluded_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv_path = tmp_path / "sample.csv"
    csv_path.write_text(SAMPLE)
    out = tmp_path / "events.jsonl.gz"
    assert uci.main(cli_args(str(csv_path), "--out", str(out))) == 0
    assert list(read_events(out)) == EXPECTED_EVENTS
    report = capsys.readouterr().err
    assert "2 CSV lines excluded" in report
    assert "excluded line 12: A563185 B 'Adjust bad debt' qty 1 price 11062.06" in report
    assert "excluded line 13: A563186 B 'Adjust bad debt' qty 1 price -11062.06" in report


def test_cli_writes_stdout_by_default(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv_path = tmp_path / "sample.csv"
    csv_path.write_text(SAMPLE)
    assert uci.main(cli_args(str(csv_path), "--limit", "2")) == 0
    written = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert written == EXPECTED_EVENTS[:2]


def test_cli_fails_cleanly_on_a_bad_row(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv_path = tmp_path / "bad.csv"
    csv_path.write_text(HEADER + "536379,D,Discount,0,2010-12-01 09:41:00,27.5,14527.0,UK\n")
    assert uci.main(cli_args(str(csv_path), "--out", str(tmp_path / "out.jsonl"))) == 1
    assert "line 2: quantity 0" in capsys.readouterr().err


@pytest.mark.integration
def test_cli_produces_the_sample_to_kafka(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv_path = tmp_path / "sample.csv"
    csv_path.write_text(SAMPLE)
    with EmbeddedBroker() as broker:
        args = cli_args(str(csv_path), "--brokers", broker.bootstrap, "--topic", "pos=uci.pos", "--create-topics")
        assert uci.main(args) == 0
        pos = consume_all(broker.bootstrap, "uci.pos", expect=5, timeout=20)
        inventory = consume_all(broker.bootstrap, "inventory", expect=2, timeout=20)
    assert capsys.readouterr().out == ""
    assert [(key, orjson.loads(value)) for key, value in pos] == [
        (b"UCI01", e) for e in EXPECTED_EVENTS if e["type"] in ("sale", "return")
    ]
    assert [(key, orjson.loads(value)) for key, value in inventory] == [
        (e["sku"].encode(), e) for e in EXPECTED_EVENTS if e["type"] == "stock_adjusted"
    ]


# -- the real file -------------------------------------------------------------

needs_file = pytest.mark.skipif(not uci.DEFAULT_CSV.exists(), reason="the UCI file is not on this machine")


@pytest.fixture(scope="module")
def full_import() -> tuple[list[dict[str, Any]], list[uci.CsvRow]]:
    excluded: list[uci.CsvRow] = []
    return list(uci.events_from_csv(uci.DEFAULT_CSV, excluded=excluded)), excluded


@pytest.fixture(scope="module")
def full_facts() -> uci.CsvFacts:
    return uci.csv_facts(uci.read_rows(uci.DEFAULT_CSV))


@pytest.mark.slow
@needs_file
def test_csv_has_the_documented_facts(full_facts: uci.CsvFacts) -> None:
    assert (full_facts.lines, full_facts.invoices) == (541_909, 25_900)
    assert full_facts.amount_millis == 9_747_747_934
    assert full_facts.quantity == 5_176_450
    assert full_facts.cancellation_lines == 9_288
    assert full_facts.negative_without_customer_lines == 1_336
    assert full_facts.price_at_most_zero_lines == 2_517
    assert full_facts.duplicate_rows == 5_268


@pytest.mark.slow
@needs_file
def test_full_import_reproduces_the_documented_facts(
    full_import: tuple[list[dict[str, Any]], list[uci.CsvRow]],
) -> None:
    events, excluded = full_import
    totals = uci.summarize(events, excluded)
    assert totals == uci.UciTotals(
        events=25_898,
        amount_millis=9_747_747_934,
        quantity=5_176_450,
        sale_lines=531_282,
        return_lines=9_288,
        adjustment_lines=1_336,
        excluded_lines=3,
        zero_price_lines=2_515,
        negative_price_lines=2,
        repeated_lines=5_271,
    )
    assert totals.lines == 541_909
    assert totals.price_at_most_zero_lines == 2_517
    assert [(row.line_no, row.invoice) for row in excluded] == [
        (299_984, "A563185"),
        (299_985, "A563186"),
        (299_986, "A563187"),
    ]


@pytest.mark.slow
@needs_file
def test_full_import_events_pass_the_contract_and_have_unique_ids(
    full_import: tuple[list[dict[str, Any]], list[uci.CsvRow]],
) -> None:
    events, _ = full_import
    rejected = [e["event_id"] for e in events if not isinstance(validate(e, topic_of(e)), Event)]
    assert rejected == []
    assert len({e["event_id"] for e in events}) == len(events)
    assert Counter(e["type"] for e in events) == {"sale": 20_726, "return": 3_836, "stock_adjusted": 1_336}


@pytest.mark.slow
@needs_file
def test_full_import_net_quantity_by_sku_matches_the_csv(
    full_import: tuple[list[dict[str, Any]], list[uci.CsvRow]],
    full_facts: uci.CsvFacts,
) -> None:
    events, _ = full_import
    expected = dict(full_facts.quantity_by_sku)
    assert expected.pop("B") == 3
    assert uci.net_quantity_by_sku(events) == expected
