"""Import the UCI "Online Retail" data set as contract events (``channelflow import-uci``).

Every CSV line becomes a line of a POS ``sale`` (normal invoice), a line of a
POS ``return`` (``C`` invoice), an inventory ``stock_adjusted`` event (negative
quantity on a normal invoice), or, for the three ``A`` bad-debt lines that the
contract cannot carry, an *excluded* row that is reported, never dropped.
``docs/uci-mapping.md`` explains each rule with the counts of the real file.

>>> import io
>>> sample = io.StringIO(
...     "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\\n"
...     "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom\\n")
>>> [sale] = events_from_rows(list(read_rows(sample)), excluded=[])
>>> sale["event_id"], sale["ts"], sale["loyalty_id"], sale["total"]
('uci-536365', '2010-12-01T08:26:00+00:00', 'uci-17850', 15.3)
"""

from __future__ import annotations

import argparse
import csv
import gzip
import sys
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from itertools import islice
from pathlib import Path
from typing import IO, Any, Literal
from zoneinfo import ZoneInfo

import orjson

from channelflow.kafka_io import create_topics, event_records, produce
from channelflow.progress import progress
from channelflow.replay import IDENTITY_TOPICS, add_kafka_arguments, parse_topic_names
from operators.contract.events import Rejection, topic_for_type, validate
from operators.contract.money import from_millis, to_millis

__all__ = [
    "DEFAULT_CSV",
    "STORE_ID",
    "CsvFacts",
    "CsvRow",
    "Tally",
    "UciFormatError",
    "UciTotals",
    "add_arguments",
    "category",
    "csv_facts",
    "events_from_csv",
    "events_from_rows",
    "group_invoices",
    "invoice_events",
    "main",
    "net_quantity_by_sku",
    "read_rows",
    "rfc3339",
    "summarize",
]

# The shared data folder sits beside the repository checkout.
DEFAULT_CSV = Path(__file__).resolve().parents[2] / "shared" / "data" / "uci-online-retail" / "online_retail.csv.gz"
STORE_ID = "UCI01"
HEADER = ("InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country")
MAX_LINES_PER_EVENT = 1000
"""The contract's limit on ``lines``; longer invoices are split into parts."""

LONDON = ZoneInfo("Europe/London")

Category = Literal["sale", "return", "adjustment", "excluded"]


class UciFormatError(ValueError):
    """A CSV line of a shape the mapping has no rule for (the message names the line)."""


@dataclass(frozen=True, slots=True)
class CsvRow:
    """One CSV line, typed: ``price_millis`` is UnitPrice in exact milli-units, ``customer_id`` is ``"17850"`` or None."""

    line_no: int
    invoice: str
    stock_code: str
    description: str
    quantity: int
    invoice_date: str
    price_millis: int
    customer_id: str | None
    country: str

    @property
    def fields(self) -> tuple[str | int | None, ...]:
        """Every column, without the line number: equal for exact duplicate rows."""
        return (
            self.invoice,
            self.stock_code,
            self.description,
            self.quantity,
            self.invoice_date,
            self.price_millis,
            self.customer_id,
            self.country,
        )


# -- reading -----------------------------------------------------------------


def _open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return path.open(encoding="utf-8", newline="")


def _customer(text: str, line_no: int) -> str | None:
    if not text:
        return None
    number = Decimal(text)
    if number != number.to_integral_value() or number <= 0:
        raise UciFormatError(f"line {line_no}: CustomerID {text!r} is not a positive whole number")
    return str(int(number))


def _row(fields: list[str], line_no: int) -> CsvRow:
    if len(fields) != len(HEADER):
        raise UciFormatError(f"line {line_no}: expected {len(HEADER)} columns, got {len(fields)}")
    invoice, stock_code, description, quantity, invoice_date, price, customer, country = fields
    try:
        return CsvRow(
            line_no,
            invoice,
            stock_code,
            description,
            int(quantity),
            invoice_date,
            to_millis(price),
            _customer(customer, line_no),
            country,
        )
    except (ArithmeticError, ValueError) as exc:
        raise UciFormatError(f"line {line_no}: {exc}") from None


def read_rows(source: str | Path | IO[str]) -> Iterator[CsvRow]:
    """The typed rows of the UCI CSV (a path, ``.gz`` accepted, or an open text stream)."""
    if isinstance(source, (str, Path)):
        with _open_text(Path(source)) as stream:
            yield from read_rows(stream)
        return
    reader = csv.reader(source)
    header = next(reader, None)
    if header is None or tuple(header) != HEADER:
        raise UciFormatError(f"line 1: expected the header {','.join(HEADER)}, got {header}")
    for fields in reader:
        yield _row(fields, reader.line_num)


def group_invoices(rows: Iterable[CsvRow], sizes: Mapping[str, int]) -> Iterator[list[CsvRow]]:
    """The rows of each invoice together, in order of first appearance.

    ``sizes`` (lines per invoice) says when an invoice is complete, so an invoice
    whose lines are not adjacent in the file is still one group.
    """
    pending: dict[str, list[CsvRow]] = {}
    order: deque[str] = deque()
    for row in rows:
        if row.invoice not in pending:
            pending[row.invoice] = []
            order.append(row.invoice)
        pending[row.invoice].append(row)
        while order and len(pending[order[0]]) == sizes[order[0]]:
            yield pending.pop(order.popleft())
    if order:
        raise UciFormatError(f"invoice {order[0]} has fewer lines than counted")


# -- mapping -----------------------------------------------------------------


def category(row: CsvRow) -> Category:
    """Where a CSV line goes; :class:`UciFormatError` for a shape without a rule.

    >>> category(CsvRow(2, "C536379", "D", "Discount", -1, "2010-12-01 09:41:00", 27500, "14527", "UK"))
    'return'
    """
    if row.invoice.startswith("A"):
        return "excluded"
    if row.price_millis < 0:
        raise UciFormatError(f"line {row.line_no}: negative price outside an 'A' invoice")
    if row.invoice.startswith("C"):
        if row.quantity < 0:
            return "return"
        raise UciFormatError(f"line {row.line_no}: cancellation {row.invoice} with quantity {row.quantity}")
    if row.quantity > 0:
        return "sale"
    if row.quantity < 0 and row.price_millis == 0:
        return "adjustment"
    raise UciFormatError(f"line {row.line_no}: quantity {row.quantity} at price {from_millis(row.price_millis)}")


@lru_cache(maxsize=65536)
def rfc3339(invoice_date: str) -> str:
    """A London wall-clock ``YYYY-MM-DD HH:MM:SS`` as RFC 3339 with its UTC offset.

    >>> rfc3339("2011-06-01 10:00:00"), rfc3339("2011-12-01 10:00:00")
    ('2011-06-01T10:00:00+01:00', '2011-12-01T10:00:00+00:00')
    """
    return datetime.fromisoformat(invoice_date).replace(tzinfo=LONDON).isoformat()


def _loyalty_id(row: CsvRow) -> str | None:
    return None if row.customer_id is None else f"uci-{row.customer_id}"


def _sale_line(row: CsvRow) -> dict[str, Any]:
    return {"sku": row.stock_code, "qty": row.quantity, "unit_price": from_millis(row.price_millis)}


def _return_line(row: CsvRow) -> dict[str, Any]:
    return {"sku": row.stock_code, "qty": -row.quantity, "unit_price": from_millis(row.price_millis), "restock": True}


def _receipts(kind: Literal["sale", "return"], rows: Sequence[CsvRow], store_id: str) -> Iterator[dict[str, Any]]:
    first = rows[0]
    parts = [rows[i : i + MAX_LINES_PER_EVENT] for i in range(0, len(rows), MAX_LINES_PER_EVENT)]
    for number, part in enumerate(parts, start=1):
        suffix = f"-p{number}" if len(parts) > 1 else ""
        event: dict[str, Any] = {
            "event_id": f"uci-{first.invoice}{suffix}",
            "type": kind,
            "ts": rfc3339(first.invoice_date),
            "store_id": store_id,
            "receipt_id": first.invoice,
            "loyalty_id": _loyalty_id(first),
        }
        if kind == "sale":
            event["lines"] = [_sale_line(row) for row in part]
            event["total"] = from_millis(sum(row.quantity * row.price_millis for row in part))
        else:
            event["lines"] = [_return_line(row) for row in part]
        yield event


def _adjustment(row: CsvRow, number: int, store_id: str) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": f"uci-{row.invoice}-adj{number}",
        "type": "stock_adjusted",
        "ts": rfc3339(row.invoice_date),
        "location_id": store_id,
        "sku": row.stock_code,
        "delta": row.quantity,
    }
    if row.description.strip():
        event["reason"] = row.description.strip()
    return event


def invoice_events(rows: Sequence[CsvRow], *, excluded: list[CsvRow], store_id: str = STORE_ID) -> Iterator[dict[str, Any]]:
    """The events of one invoice's rows; rows the contract cannot carry are appended to ``excluded``."""
    by_category: dict[Category, list[CsvRow]] = {"sale": [], "return": [], "adjustment": [], "excluded": []}
    for row in rows:
        by_category[category(row)].append(row)
    excluded.extend(by_category["excluded"])
    if by_category["sale"]:
        yield from _receipts("sale", by_category["sale"], store_id)
    if by_category["return"]:
        yield from _receipts("return", by_category["return"], store_id)
    for number, row in enumerate(by_category["adjustment"], start=1):
        yield _adjustment(row, number, store_id)


def _checked(event: dict[str, Any], line_no: int) -> dict[str, Any]:
    verdict = validate(event, topic_for_type(event["type"]))
    if isinstance(verdict, Rejection):
        raise UciFormatError(f"line {line_no}: event {event['event_id']} breaks the contract: {verdict.detail}")
    return event


def _events(groups: Iterable[list[CsvRow]], excluded: list[CsvRow], store_id: str) -> Iterator[dict[str, Any]]:
    for rows in groups:
        for event in invoice_events(rows, excluded=excluded, store_id=store_id):
            yield _checked(event, rows[0].line_no)


def events_from_rows(rows: Sequence[CsvRow], *, excluded: list[CsvRow], store_id: str = STORE_ID) -> Iterator[dict[str, Any]]:
    """Contract events of in-memory rows, each validated; excluded rows are appended to ``excluded``."""
    sizes = Counter(row.invoice for row in rows)
    return _events(group_invoices(rows, sizes), excluded, store_id)


def events_from_csv(
    path: str | Path = DEFAULT_CSV, *, excluded: list[CsvRow], store_id: str = STORE_ID, show_progress: bool = False
) -> Iterator[dict[str, Any]]:
    """Contract events of the CSV file, streamed (the file is read twice: lines per invoice, then rows);
    ``show_progress`` draws a bar over the rows on a terminal."""
    sizes = _invoice_sizes(Path(path))
    rows = read_rows(path)
    if show_progress:
        rows = progress(rows, total=sum(sizes.values()), unit="rows", desc="import-uci")
    return _events(group_invoices(rows, sizes), excluded, store_id)


def _invoice_sizes(path: Path) -> Counter[str]:
    with _open_text(path) as stream:
        reader = csv.reader(stream)
        next(reader, None)
        return Counter(fields[0] for fields in reader)


# -- accounting ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UciTotals:
    """What a stream of imported events (plus the excluded rows) adds up to.

    Amounts are signed milli-units of qty * unit_price: sales positive, returns
    negative; adjustments come only from zero-price lines, so they add nothing.
    ``repeated_lines`` counts lines equal in (sku, qty, unit_price) to an earlier
    line of the same receipt.
    """

    events: int
    amount_millis: int
    quantity: int
    sale_lines: int
    return_lines: int
    adjustment_lines: int
    excluded_lines: int
    zero_price_lines: int
    negative_price_lines: int
    repeated_lines: int

    @property
    def lines(self) -> int:
        """Every CSV line accounted for: emitted as a line or adjustment, or excluded."""
        return self.sale_lines + self.return_lines + self.adjustment_lines + self.excluded_lines

    @property
    def price_at_most_zero_lines(self) -> int:
        """Lines with a price of 0 or less."""
        return self.zero_price_lines + self.negative_price_lines


class Tally:
    """A running :class:`UciTotals`: feed it events in import order, then excluded rows."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._receipt: tuple[str, str] | None = None
        self._seen_lines: set[tuple[str, int, int]] = set()

    def add_event(self, event: Mapping[str, Any]) -> None:
        """Count one event."""
        self._counts["events"] += 1
        if event["type"] == "stock_adjusted":
            self._counts["adjustment_lines"] += 1
            self._add_line(1, event["delta"], 0)
            return
        sign, kind = (1, "sale_lines") if event["type"] == "sale" else (-1, "return_lines")
        if (event["type"], event["receipt_id"]) != self._receipt:
            self._receipt, self._seen_lines = (event["type"], event["receipt_id"]), set()
        for line in event["lines"]:
            price_millis = to_millis(line["unit_price"])
            self._add_line(sign, line["qty"], price_millis)
            self._counts[kind] += 1
            key = (line["sku"], line["qty"], price_millis)
            self._counts["repeated_lines"] += key in self._seen_lines
            self._seen_lines.add(key)

    def add_excluded(self, row: CsvRow) -> None:
        """Count one excluded CSV row with its own sign and price."""
        self._counts["excluded_lines"] += 1
        self._add_line(1, row.quantity, row.price_millis)

    def _add_line(self, sign: int, qty: int, price_millis: int) -> None:
        self._counts["amount_millis"] += sign * qty * price_millis
        self._counts["quantity"] += sign * qty
        self._counts["zero_price_lines"] += price_millis == 0
        self._counts["negative_price_lines"] += price_millis < 0

    def totals(self) -> UciTotals:
        """The totals so far."""
        return UciTotals(**{name: self._counts[name] for name in UciTotals.__slots__})


def summarize(events: Iterable[Mapping[str, Any]], excluded: Iterable[CsvRow] = ()) -> UciTotals:
    """Recompute the totals from imported events (in import order) and the excluded rows."""
    tally = Tally()
    for event in events:
        tally.add_event(event)
    for row in excluded:
        tally.add_excluded(row)
    return tally.totals()


def net_quantity_by_sku(events: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Signed quantity per SKU as the CSV counts it: sold +, returned -, adjusted by ``delta``."""
    net: Counter[str] = Counter()
    for event in events:
        if event["type"] == "stock_adjusted":
            net[event["sku"]] += event["delta"]
            continue
        sign = 1 if event["type"] == "sale" else -1
        for line in event["lines"]:
            net[line["sku"]] += sign * line["qty"]
    return dict(net)


@dataclass(frozen=True, slots=True)
class CsvFacts:
    """Facts measured straight on the CSV rows, to check an import against."""

    lines: int
    invoices: int
    amount_millis: int
    quantity: int
    cancellation_lines: int
    negative_without_customer_lines: int
    price_at_most_zero_lines: int
    duplicate_rows: int
    quantity_by_sku: dict[str, int]


def csv_facts(rows: Iterable[CsvRow]) -> CsvFacts:
    """Count the CSV's own facts (see ``../shared/data/README.md``) without the mapping."""
    counts = Counter[tuple[str | int | None, ...]]()
    by_sku: Counter[str] = Counter()
    invoices: set[str] = set()
    amount = quantity = cancellations = negatives = at_most_zero = 0
    for row in rows:
        counts[row.fields] += 1
        by_sku[row.stock_code] += row.quantity
        invoices.add(row.invoice)
        amount += row.quantity * row.price_millis
        quantity += row.quantity
        cancellations += row.invoice.startswith("C")
        negatives += row.quantity < 0 and row.customer_id is None and not row.invoice.startswith("C")
        at_most_zero += row.price_millis <= 0
    return CsvFacts(
        lines=sum(counts.values()),
        invoices=len(invoices),
        amount_millis=amount,
        quantity=quantity,
        cancellation_lines=cancellations,
        negative_without_customer_lines=negatives,
        price_at_most_zero_lines=at_most_zero,
        duplicate_rows=sum(n - 1 for n in counts.values()),
        quantity_by_sku=dict(by_sku),
    )


# -- command line --------------------------------------------------------------


def _write_jsonl(events: Iterable[dict[str, Any]], stream: IO[bytes]) -> Iterator[dict[str, Any]]:
    for event in events:
        stream.write(orjson.dumps(event) + b"\n")
        yield event


def _report(totals: UciTotals, excluded: Sequence[CsvRow], produced: int | None) -> str:
    lines = [
        f"events {totals.events}: {totals.sale_lines} sale lines, {totals.return_lines} return lines, "
        f"{totals.adjustment_lines} stock adjustments; {totals.excluded_lines} CSV lines excluded",
        f"net amount {Decimal(totals.amount_millis) / 1000} (excluded lines included), net quantity {totals.quantity}",
    ]
    lines += [f"excluded line {row.line_no}: {row.invoice} {row.stock_code} {row.description!r} "
              f"qty {row.quantity} price {Decimal(row.price_millis) / 1000}" for row in excluded]
    if produced is not None:
        lines.append(f"produced {produced} events")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``channelflow import-uci``."""
    parser.add_argument("csv", nargs="?", type=Path, default=DEFAULT_CSV, help=f"the UCI CSV (default {DEFAULT_CSV})")
    parser.add_argument("--output", "--out", dest="out", metavar="FILE", help="write JSON lines here ('-' for stdout, .gz compresses); "
                        "default stdout unless --brokers is given")
    parser.add_argument("--store-id", default=STORE_ID, help=f"store and location id (default {STORE_ID})")
    add_kafka_arguments(parser)


def _tallied(events: Iterable[dict[str, Any]], tally: Tally) -> Iterator[dict[str, Any]]:
    for event in events:
        tally.add_event(event)
        yield event


def _send(events: Iterable[dict[str, Any]], args: argparse.Namespace) -> int | None:
    if not args.brokers:
        for _ in events:
            pass
        return None
    names = {**IDENTITY_TOPICS, **parse_topic_names(args.topic)}
    client = getattr(args, "kafka_client", None)
    if args.create_topics:
        create_topics(args.brokers, names.values(), client=client)
    return produce(args.brokers, event_records(events, names), rate=args.rate, client=client)


def run(args: argparse.Namespace) -> tuple[UciTotals, list[CsvRow], int | None]:
    """Import as ``args`` say: write and/or produce; the totals, excluded rows and produced count."""
    excluded: list[CsvRow] = []
    tally = Tally()
    events = _tallied(islice(events_from_csv(args.csv, excluded=excluded, store_id=args.store_id, show_progress=True), args.limit), tally)
    out = args.out or (None if args.brokers else "-")
    if out is None:
        produced = _send(events, args)
    elif out == "-":
        produced = _send(_write_jsonl(events, sys.stdout.buffer), args)
        sys.stdout.buffer.flush()
    else:
        with gzip.open(out, "wb") if out.endswith(".gz") else open(out, "wb") as stream:
            produced = _send(_write_jsonl(events, stream), args)
    for row in excluded:
        tally.add_excluded(row)
    return tally.totals(), excluded, produced


def main(args: argparse.Namespace) -> int:
    """Run ``channelflow import-uci``; the exit code."""
    try:
        totals, excluded, produced = run(args)
    except (UciFormatError, ValueError, OSError, RuntimeError) as exc:
        print(f"channelflow import-uci: {exc}", file=sys.stderr)
        return 1
    print(_report(totals, excluded, produced), file=sys.stderr)
    return 0
