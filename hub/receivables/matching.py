"""Allocation of payments to invoices, most certain evidence first and never invented: the
accounting system's explicit link, the invoice number named in the purpose (scoped to the payer's
ИНН), ИНН + exact open amount, FIFO by due date where the company enables it. What is left over
of an identified payment is the client's credit; an unidentified payment waits in the unmatched
queue with suggested candidates. Amounts are integer kopecks here, so sums are exact and fast."""

from __future__ import annotations

import gc
from collections import defaultdict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from rapidfuzz import fuzz

from hub.receivables.purpose import InvoiceReference, invoice_references, number_key

EXPLICIT = "explicit_link"
PURPOSE = "purpose_number"
TAX_ID_AMOUNT = "tax_id_amount"
FIFO = "fifo"
CREDIT = "credit"
REFUND = "refund"
MANUAL = "manual"
METHODS = (MANUAL, EXPLICIT, PURPOSE, TAX_ID_AMOUNT, FIFO, CREDIT, REFUND)

# How sure each method is; a purpose match whose date disagrees with the invoice is less sure.
CONFIDENCE = {
    MANUAL: 1.0,
    EXPLICIT: 1.0,
    PURPOSE: 0.95,
    TAX_ID_AMOUNT: 0.9,
    FIFO: 0.6,
    CREDIT: 1.0,
    REFUND: 0.9,
}
PURPOSE_NO_DATE = 0.85
PURPOSE_DATE_DIFFERS = 0.75
MAX_CANDIDATES = 5


@dataclass(slots=True)
class InvoiceItem:
    key: Hashable
    ref: str
    number: str
    issued_on: date
    due_on: date
    amount: int  # kopecks
    tax_id: str | None = None
    name: str | None = None
    number_key: str = ""
    open: int = 0

    def __post_init__(self) -> None:
        self.number_key = self.number_key or number_key(self.number)
        self.open = self.amount


@dataclass(slots=True)
class PaymentItem:
    key: Hashable
    paid_on: date
    amount: int  # kopecks; negative for a refund
    tax_id: str | None = None
    name: str | None = None
    purpose: str | None = None
    # (invoice source_ref, kopecks or None for "the rest of the payment")
    links: list[tuple[str, int | None]] = field(default_factory=list)
    remaining: int = 0
    references: list[InvoiceReference] | None = None

    def __post_init__(self) -> None:
        self.remaining = self.amount


@dataclass(slots=True)
class Allocation:
    payment_key: Hashable
    invoice_key: Hashable | None
    amount: int
    method: str
    confidence: float
    detail: str


@dataclass(slots=True)
class Unmatched:
    payment_key: Hashable
    amount: int
    reason: str
    candidates: list[dict[str, Any]]


@dataclass
class MatchResult:
    allocations: list[Allocation]
    unmatched: list[Unmatched]
    invoices: dict[Hashable, InvoiceItem]
    payments: dict[Hashable, PaymentItem]

    def allocated_by_method(self) -> dict[str, int]:
        totals: dict[str, int] = defaultdict(int)
        for allocation in self.allocations:
            totals[allocation.method] += allocation.amount
        return dict(totals)

    def payments_by_method(self) -> dict[str, int]:
        """How many payments each method was the first (most certain) to place."""
        first: dict[Hashable, str] = {}
        for allocation in self.allocations:
            first.setdefault(allocation.payment_key, allocation.method)
        counts: dict[str, int] = defaultdict(int)
        for method in first.values():
            counts[method] += 1
        counts["unmatched"] = len(self.unmatched)
        return dict(counts)


@dataclass(frozen=True)
class MatchOptions:
    fifo: bool = False


class _Matcher:
    def __init__(self, invoices: Iterable[InvoiceItem], payments: Iterable[PaymentItem]) -> None:
        self.invoices = {inv.key: inv for inv in invoices}
        self.payments = {p.key: p for p in payments}
        self.by_ref = {inv.ref: inv for inv in self.invoices.values()}
        self.by_tax: dict[str, list[InvoiceItem]] = defaultdict(list)
        self.by_number: dict[str, list[InvoiceItem]] = defaultdict(list)
        # Sorts are stable: ties keep the caller's order (the store's ids), so runs are repeatable.
        for inv in sorted(self.invoices.values(), key=lambda i: (i.due_on, i.issued_on, i.number)):
            if inv.tax_id:
                self.by_tax[inv.tax_id].append(inv)
            self.by_number[inv.number_key].append(inv)
        # Oldest money first: an earlier payment settles an invoice before a later one does.
        self.order = sorted(self.payments.values(), key=lambda p: p.paid_on)
        self.allocations: list[Allocation] = []
        self.identified: set[Hashable] = set()
        self.credit: dict[str, int] = defaultdict(int)
        self.by_open_amount: dict[int, list[InvoiceItem]] | None = None

    def allocate(
        self,
        payment: PaymentItem,
        invoice: InvoiceItem | None,
        amount: int,
        method: str,
        confidence: float,
        detail: str,
    ) -> None:
        self.allocations.append(
            Allocation(payment.key, invoice.key if invoice else None, amount, method, confidence, detail)
        )
        payment.remaining -= amount
        if invoice is not None:
            invoice.open -= amount
        self.identified.add(payment.key)

    def apply_fixed(self, fixed: Iterable[Allocation]) -> None:
        """Allocations a person made: kept as they are, before any rule runs."""
        for allocation in fixed:
            payment = self.payments.get(allocation.payment_key)
            invoice = (
                self.invoices.get(allocation.invoice_key) if allocation.invoice_key is not None else None
            )
            if payment is None:
                continue
            self.allocate(
                payment, invoice, allocation.amount, MANUAL, 1.0, allocation.detail or "allocated by hand"
            )

    def explicit_links(self) -> None:
        for payment in self.order:
            if payment.amount <= 0 or not payment.links:
                continue
            for ref, amount in payment.links:
                invoice = self.by_ref.get(ref)
                if invoice is None or payment.remaining <= 0:
                    continue
                take = min(
                    payment.remaining, invoice.open, amount if amount is not None else payment.remaining
                )
                if take > 0:
                    self.allocate(
                        payment,
                        invoice,
                        take,
                        EXPLICIT,
                        CONFIDENCE[EXPLICIT],
                        f"linked in accounting to invoice {invoice.number}",
                    )
                else:
                    self.identified.add(payment.key)

    def references(self, payment: PaymentItem) -> list[InvoiceReference]:
        if payment.references is None:
            payment.references = invoice_references(payment.purpose)
        return payment.references

    def purpose_numbers(self) -> None:
        for payment in self.order:
            if payment.remaining <= 0 or not payment.tax_id or not payment.purpose:
                continue
            for reference in self.references(payment):
                if payment.remaining <= 0:
                    break
                invoice, confidence, note = self._invoice_named(payment.tax_id, reference)
                if invoice is None:
                    continue
                take = min(payment.remaining, invoice.open)
                if take > 0:
                    self.allocate(
                        payment,
                        invoice,
                        take,
                        PURPOSE,
                        confidence,
                        f"purpose names invoice {reference.number}{note}",
                    )
                else:
                    # The named invoice is already settled: the payment is identified, its money is credit.
                    self.identified.add(payment.key)

    def _invoice_named(
        self, tax_id: str, reference: InvoiceReference
    ) -> tuple[InvoiceItem | None, float, str]:
        own = [inv for inv in self.by_number.get(reference.number_key, ()) if inv.tax_id == tax_id]
        if not own:
            return None, 0.0, ""
        if reference.issued_on is not None:
            dated = [inv for inv in own if inv.issued_on == reference.issued_on]
            if len(dated) == 1:
                return dated[0], CONFIDENCE[PURPOSE], f" of {reference.issued_on:%d.%m.%Y}"
            if len(dated) > 1:
                own = dated
        still_open = [inv for inv in own if inv.open > 0]
        if len(own) == 1:
            invoice = own[0]
        elif len(still_open) == 1:
            invoice = still_open[0]
        else:
            return None, 0.0, ""  # several invoices of this payer carry the number: a person decides
        if reference.issued_on is None:
            return invoice, PURPOSE_NO_DATE, " (no date given)"
        return (
            invoice,
            PURPOSE_DATE_DIFFERS,
            f" (purpose dates it {reference.issued_on:%d.%m.%Y}, issued {invoice.issued_on:%d.%m.%Y})",
        )

    def tax_id_amount(self) -> None:
        for payment in self.order:
            if payment.amount <= 0 or payment.remaining != payment.amount or not payment.tax_id:
                continue
            fits = [inv for inv in self.by_tax.get(payment.tax_id, ()) if inv.open == payment.remaining]
            if len(fits) == 1:
                self.allocate(
                    payment,
                    fits[0],
                    payment.remaining,
                    TAX_ID_AMOUNT,
                    CONFIDENCE[TAX_ID_AMOUNT],
                    f"only open invoice of payer ИНН {payment.tax_id} for exactly this amount",
                )

    def fifo(self) -> None:
        for payment in self.order:
            if payment.remaining <= 0 or not payment.tax_id:
                continue
            for invoice in self.by_tax.get(payment.tax_id, ()):
                if payment.remaining <= 0:
                    break
                if invoice.open > 0 and invoice.issued_on <= payment.paid_on:
                    take = min(payment.remaining, invoice.open)
                    self.allocate(
                        payment,
                        invoice,
                        take,
                        FIFO,
                        CONFIDENCE[FIFO],
                        f"oldest open invoice of payer ИНН {payment.tax_id} (due {invoice.due_on:%d.%m.%Y})",
                    )

    def credits_and_refunds(self) -> list[Unmatched]:
        unmatched: list[Unmatched] = []
        for payment in self.order:
            if payment.amount > 0:
                if payment.remaining > 0 and payment.key in self.identified:
                    self.allocate(
                        payment,
                        None,
                        payment.remaining,
                        CREDIT,
                        CONFIDENCE[CREDIT],
                        "paid beyond the open invoices: held as the client's credit",
                    )
                    if payment.tax_id:
                        self.credit[payment.tax_id] += self.allocations[-1].amount
                elif payment.remaining > 0:
                    unmatched.append(self.queue_entry(payment))
            else:
                self.refund(payment)
                if payment.remaining < 0:
                    unmatched.append(self.queue_entry(payment))
        return unmatched

    def refund(self, payment: PaymentItem) -> None:
        """Money paid back reduces the client's credit first, then reopens the invoice it names."""
        if not payment.tax_id:
            return
        balance = self.credit[payment.tax_id]
        take = min(balance, -payment.remaining)
        if take > 0:
            self.allocate(
                payment,
                None,
                -take,
                REFUND,
                CONFIDENCE[REFUND],
                f"refund of credit held for ИНН {payment.tax_id}",
            )
            self.credit[payment.tax_id] -= take
        for reference in self.references(payment):
            if payment.remaining >= 0:
                break
            invoice, _confidence, _note = self._invoice_named(payment.tax_id, reference)
            if invoice is None:
                continue
            paid = invoice.amount - invoice.open
            take = min(paid, -payment.remaining)
            if take > 0:
                self.allocate(
                    payment,
                    invoice,
                    -take,
                    REFUND,
                    CONFIDENCE[REFUND],
                    f"refund against invoice {invoice.number}",
                )

    def queue_entry(self, payment: PaymentItem) -> Unmatched:
        candidates: dict[Hashable, dict[str, Any]] = {}

        def suggest(invoice: InvoiceItem, confidence: float, why: str) -> None:
            best = candidates.get(invoice.key)
            if best is None or best["confidence"] < confidence:
                candidates[invoice.key] = {
                    "invoice_key": invoice.key,
                    "number": invoice.number,
                    "open": invoice.open,
                    "confidence": round(confidence, 2),
                    "why": why,
                }

        references = self.references(payment)
        for reference in references:
            for invoice in self.by_number.get(reference.number_key, ())[:MAX_CANDIDATES]:
                same_payer = bool(payment.tax_id) and invoice.tax_id == payment.tax_id
                suggest(
                    invoice,
                    0.5 if same_payer else 0.4,
                    f"purpose names {reference.number}"
                    + ("" if same_payer else ", payer ИНН differs or is unknown"),
                )
        if payment.tax_id:
            own = [inv for inv in self.by_tax.get(payment.tax_id, ()) if inv.open > 0]
            for invoice in own[:MAX_CANDIDATES]:
                exact = invoice.open == payment.remaining
                suggest(
                    invoice,
                    0.5 if exact else 0.3,
                    "open invoice of this payer" + (" for exactly this amount" if exact else ""),
                )
        if not payment.tax_id and payment.name and payment.amount > 0:
            # Without an ИНН, a similar client name on an open invoice of the same amount is a hint.
            for invoice in self._open_of_amount(payment.remaining):
                similarity = fuzz.token_set_ratio(payment.name or "", invoice.name or "") / 100
                if similarity >= 0.6:
                    suggest(
                        invoice, 0.2 + 0.3 * similarity, f"same amount, payer name {similarity:.0%} similar"
                    )
        ranked = sorted(candidates.values(), key=lambda c: (-c["confidence"], c["number"]))[:MAX_CANDIDATES]
        return Unmatched(payment.key, payment.remaining, self.reason(payment, references), ranked)

    def _open_of_amount(self, amount: int) -> list[InvoiceItem]:
        if self.by_open_amount is None:
            self.by_open_amount = defaultdict(list)
            for invoice in self.invoices.values():
                if invoice.open > 0:
                    self.by_open_amount[invoice.open].append(invoice)
        return self.by_open_amount.get(amount, [])[:50]

    def reason(self, payment: PaymentItem, references: list[InvoiceReference]) -> str:
        if payment.amount < 0:
            return "refund with no credit or paid invoice of this client to charge it to"
        if not payment.tax_id:
            return "payer's ИНН is missing or invalid: invoices cannot be attributed to the payer"
        open_count = sum(1 for inv in self.by_tax.get(payment.tax_id, ()) if inv.open > 0)
        if references:
            return f"purpose names invoice {references[0].number}, which is not an open invoice of ИНН {payment.tax_id}"
        if open_count == 0:
            return f"no open invoice of ИНН {payment.tax_id}"
        return (
            f"ИНН {payment.tax_id} has {open_count} open invoice(s), none named in the purpose or open for "
            "exactly this amount (FIFO is off)"
        )


def match(
    invoices: Iterable[InvoiceItem],
    payments: Iterable[PaymentItem],
    options: MatchOptions = MatchOptions(),
    fixed: Iterable[Allocation] = (),
) -> MatchResult:
    """Allocate every payment. Each pass runs over all payments before the next, less certain,
    one starts, so a later payment's explicit link is never pre-empted by an earlier guess."""
    # Millions of small objects would trigger repeated full garbage collections (none of them
    # is cyclic garbage): pause the collector for the run.
    collecting = gc.isenabled()
    gc.disable()
    try:
        matcher = _Matcher(invoices, payments)
        matcher.apply_fixed(fixed)
        matcher.explicit_links()
        matcher.purpose_numbers()
        matcher.tax_id_amount()
        if options.fifo:
            matcher.fifo()
        unmatched = matcher.credits_and_refunds()
    finally:
        if collecting:
            gc.enable()
    return MatchResult(matcher.allocations, unmatched, matcher.invoices, matcher.payments)
