"""Payments matched to invoices at scale: the hub's matching (explicit link, purpose number scoped to
the payer's ИНН, ИНН + exact amount, FIFO if on, credit, queue) beside a plain pandas merge on the
invoice number read from the purpose, over the same frames in the same process. Prints both times,
their ratio, the share of payments each method placed, and how often each put money on the wrong
invoice (the frames know the true one).

    python -m bench.receivables --rows 1000000 [--fifo]
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from hub.receivables.matching import InvoiceItem, MatchOptions, PaymentItem, match
from schemas.accounting import with_inn_check_digits

SPELLINGS = [
    "Оплата по счету № {n} от {d}. Сумма {a}, в т.ч. НДС",
    "по сч. {n}",
    "счет N{n}",
    "сч.№ 0000-{n:06d}",
    "oplata faktury FV/2024/03/{n}",
]
START = date(2024, 1, 1)
# What each synthetic payment is, and how often (shares of all payments).
KINDS = {
    "explicit": 0.25,
    "purpose": 0.30,
    "purpose_partial": 0.05,
    "tax_id_amount": 0.15,
    "overpaid": 0.10,
    "no_inn": 0.10,
    "stranger": 0.05,
}


def synthetic(rows: int, seed: int = 11) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`rows` invoices of rows/5 payers (each invoice number used by two payers, as numbering of
    different companies collides) and one payment per invoice of the kinds above."""
    rng = np.random.default_rng(seed)
    payers = max(1, rows // 5)
    inns = np.array([with_inn_check_digits(f"{100_000_000 + i:09d}") for i in range(payers + 1)])
    issued = rng.integers(0, 300, rows)
    invoices = pd.DataFrame(
        {
            "ref": np.char.add("g", np.arange(rows).astype(str)),
            "number": (np.arange(rows) % max(1, rows // 2) + 1),
            "tax_id": inns[rng.integers(0, payers, rows)],
            "issued": issued,
            "due": issued + rng.choice([5, 10, 14, 30], rows),
            "amount": rng.integers(1_000, 5_000_000, rows) * 100 // 100 * 100,
        }
    )
    kinds = rng.choice(list(KINDS), rows, p=list(KINDS.values()))
    amount = invoices["amount"].to_numpy().copy()
    amount[kinds == "purpose_partial"] //= 2
    amount[kinds == "overpaid"] += 100_000
    tax_id = invoices["tax_id"].to_numpy().copy()
    tax_id[kinds == "no_inn"] = ""
    tax_id[kinds == "stranger"] = inns[payers]  # a payer with no invoices at all
    spelling = rng.integers(0, len(SPELLINGS), rows)
    purposes = []
    for number, issued_day, total, kind, how in zip(
        invoices["number"], invoices["issued"], amount, kinds, spelling, strict=True
    ):
        if kind in ("explicit", "tax_id_amount", "stranger"):
            purposes.append("Оплата за товар")
        else:
            day = (START + timedelta(days=int(issued_day))).strftime("%d.%m.%Y")
            purposes.append(SPELLINGS[how].format(n=number, d=day, a=f"{total // 100}-00"))
    payments = pd.DataFrame(
        {
            "ref": np.char.add("p", np.arange(rows).astype(str)),
            "true_invoice": invoices["ref"],
            "kind": kinds,
            "paid": invoices["issued"] + rng.integers(0, 40, rows),
            "amount": amount,
            "tax_id": tax_id,
            "purpose": purposes,
        }
    )
    return invoices, payments.sample(frac=1.0, random_state=seed, ignore_index=True)


def hub_matching(invoices: pd.DataFrame, payments: pd.DataFrame, fifo: bool) -> Any:
    gc.disable()  # as match() does: building millions of items is not cyclic garbage
    days = [START + timedelta(days=d) for d in range(400)]
    invoice_items = [
        InvoiceItem(ref, ref, str(number), days[issued], days[due], int(amount), tax_id or None)
        for ref, number, issued, due, amount, tax_id in zip(
            invoices["ref"],
            invoices["number"],
            invoices["issued"],
            invoices["due"],
            invoices["amount"],
            invoices["tax_id"],
            strict=True,
        )
    ]
    payment_items = [
        PaymentItem(
            ref,
            days[paid],
            int(amount),
            tax_id or None,
            None,
            purpose,
            [(true, None)] if kind == "explicit" else [],
        )
        for ref, paid, amount, tax_id, purpose, kind, true in zip(
            payments["ref"],
            payments["paid"],
            payments["amount"],
            payments["tax_id"],
            payments["purpose"],
            payments["kind"],
            payments["true_invoice"],
            strict=True,
        )
    ]
    gc.enable()
    return match(invoice_items, payment_items, MatchOptions(fifo=fifo))


def pandas_merge(invoices: pd.DataFrame, payments: pd.DataFrame) -> pd.DataFrame:
    """The baseline: the last number in the purpose, merged on the invoice number."""
    numbers = payments["purpose"].str.extract(r"(\d+)\D*$", expand=False)
    keyed = payments.assign(number=pd.to_numeric(numbers, errors="coerce").astype("Int64"))
    return keyed.merge(
        invoices.astype({"number": "Int64"}), on="number", how="left", suffixes=("", "_invoice")
    )


def timed(label: str, fn: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn(*args)
    elapsed = time.perf_counter() - started
    print(f"{label:<44} {elapsed:8.2f} s")
    return elapsed, result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rows", type=int, default=1_000_000, help="invoices, and payments (one per invoice)"
    )
    parser.add_argument("--fifo", action="store_true", help="enable FIFO by due date")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    invoices, payments = synthetic(args.rows)
    print(
        f"{args.rows:,} invoices and {len(payments):,} payments generated in {time.perf_counter() - started:.1f} s"
    )
    base_s, merged = timed("baseline: pandas merge on invoice number", pandas_merge, invoices, payments)
    hub_s, result = timed("hub matching (build items + match)", hub_matching, invoices, payments, args.fifo)
    print(f"ratio hub / baseline: {hub_s / base_s:.1f}x")

    truth = dict(zip(payments["ref"], payments["true_invoice"], strict=True))
    total = len(payments)
    first_method: dict[str, str] = {}
    wrong = 0
    for allocation in result.allocations:
        first_method.setdefault(allocation.payment_key, allocation.method)
        if allocation.invoice_key is not None and allocation.invoice_key != truth[allocation.payment_key]:
            wrong += 1
    counts = pd.Series(list(first_method.values())).value_counts()
    print("share of payments placed by each method (first, most certain, method per payment):")
    for method, count in counts.items():
        print(f"  {method:<16} {count / total:7.2%}")
    print(f"  {'unmatched queue':<16} {len(result.unmatched) / total:7.2%}")
    print(f"hub: allocations on a wrong invoice: {wrong} of {len(result.allocations):,}")
    baseline_rows = merged.dropna(subset=["ref_invoice"])
    baseline_wrong = int((baseline_rows["ref_invoice"] != baseline_rows["true_invoice"]).sum())
    print(
        f"baseline: {len(baseline_rows):,} payment-invoice rows from {total:,} payments "
        f"({merged['ref'].duplicated().sum():,} payments fanned out to several invoices), "
        f"{baseline_wrong:,} on a wrong invoice"
    )


if __name__ == "__main__":
    main()
