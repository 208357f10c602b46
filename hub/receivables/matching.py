"""Allocation of payments to invoices, most certain evidence first and never invented: the
accounting system's explicit link, the invoice number named in the purpose (scoped to the payer's
ИНН), ИНН + exact open amount, for payers without an ИНН (private persons) the invoice named in
the purpose for exactly its amount with the payer's name checked against the customer's, FIFO by
due date where the company enables it. What is left over of an identified payment is the client's
credit; an unidentified payment waits in the unmatched queue with suggested candidates and the
reason. Amounts are integer kopecks here, so sums are exact and fast."""

from __future__ import annotations

import gc
from collections import defaultdict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from rapidfuzz import fuzz

from hub.identity.normalize import company_key
from hub.receivables.purpose import (
    InvoiceReference,
    invoice_references,
    number_key,
    number_series,
    same_series,
)

EXPLICIT = "explicit_link"
PURPOSE = "purpose_number"
TAX_ID_AMOUNT = "tax_id_amount"
NAMED_AMOUNT = "invoice_amount_name"
FIFO = "fifo"
CREDIT = "credit"
REFUND = "refund"
MANUAL = "manual"
METHODS = (MANUAL, EXPLICIT, PURPOSE, TAX_ID_AMOUNT, NAMED_AMOUNT, FIFO, CREDIT, REFUND)

# How sure each method is; a purpose match whose date disagrees with the invoice is less sure.
CONFIDENCE = {
    MANUAL: 1.0,
    EXPLICIT: 1.0,
    PURPOSE: 0.95,
    TAX_ID_AMOUNT: 0.9,
    # Below every ИНН-scoped rule: without an ИНН, the purpose, the amount and the name are all there is.
    NAMED_AMOUNT: 0.8,
    FIFO: 0.6,
    CREDIT: 1.0,
    REFUND: 0.9,
}
PURPOSE_NO_DATE = 0.85
PURPOSE_DATE_DIFFERS = 0.75
# An ИНН-less payment naming its invoice for exactly its amount, with no name to compare on one side.
NAMED_AMOUNT_NO_NAME = 0.7
# Names this similar (0..100, rapidfuzz token set ratio of the folded names) are one client.
NAME_AGREES = 88
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
    series: str = ""

    def __post_init__(self) -> None:
        self.number_key = self.number_key or number_key(self.number)
        self.series = number_series(self.number)
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
        # Why a rule that could have placed a payment refused to: shown in the unmatched queue.
        self.refusals: dict[Hashable, str] = {}

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
        own = [
            inv
            for inv in self.by_number.get(reference.number_key, ())
            if inv.tax_id == tax_id and same_series(reference.series, inv.series)
        ]
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

    def named_amount(self) -> None:
        """Payers without a valid ИНН (private persons, most often): the invoices the purpose names,
        open for exactly the payment's amount together, each one alone with its number (and date,
        when given), issued to a person (no ИНН, or a 12-digit one); the payer's name, when both
        sides have one, must be the customer's."""
        for payment in self.order:
            if payment.tax_id or payment.amount <= 0 or payment.remaining != payment.amount:
                continue
            references = self.references(payment)
            if not references:
                continue
            named: list[InvoiceItem] = []
            for reference in references:
                invoice = self._only_open_named(reference)
                if invoice is None:
                    named = []
                    break
                named.append(invoice)
            if not named or sum(inv.open for inv in named) != payment.remaining:
                continue
            company = next((inv for inv in named if inv.tax_id and len(inv.tax_id) == 10), None)
            if company is not None:
                # Companies pay with their ИНН; money without one for a company's invoice is odd.
                self.refusals[payment.key] = (
                    f"purpose names invoice {company.number} of a company (ИНН {company.tax_id}) for exactly "
                    "this amount, but the payer has no valid ИНН: a person decides"
                )
                continue
            verdicts = [names_agree(payment.name, inv.name) for inv in named]
            if False in verdicts:
                invoice = named[verdicts.index(False)]
                self.refusals[payment.key] = (
                    f"purpose names invoice {invoice.number} for exactly this amount, but the payer "
                    f"{payment.name!r} is not its customer {invoice.name!r}: a person decides"
                )
                continue
            compared = all(verdicts)
            confidence = CONFIDENCE[NAMED_AMOUNT] if compared else NAMED_AMOUNT_NO_NAME
            why = "payer name matches the customer" if compared else "no name on one side to compare"
            for invoice in named:
                self.allocate(
                    payment,
                    invoice,
                    invoice.open,
                    NAMED_AMOUNT,
                    confidence,
                    f"payer without ИНН; purpose names invoice {invoice.number}, exact amount; {why}",
                )

    def _only_open_named(self, reference: InvoiceReference) -> InvoiceItem | None:
        """The one open invoice a reference can mean across all customers, or None."""
        found = [
            inv
            for inv in self.by_number.get(reference.number_key, ())
            if inv.open > 0 and same_series(reference.series, inv.series)
        ]
        if reference.issued_on is not None:
            dated = [inv for inv in found if inv.issued_on == reference.issued_on]
            found = dated or found
        return found[0] if len(found) == 1 else None

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
            same_number = self.by_number.get(reference.number_key, ())
            for invoice in [i for i in same_number if same_series(reference.series, i.series)][
                :MAX_CANDIDATES
            ]:
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
        if payment.key in self.refusals:
            return self.refusals[payment.key]
        if not payment.tax_id:
            if references:
                return (
                    f"payer has no valid ИНН and the purpose's invoice {references[0].number} is not one open "
                    "invoice for exactly this amount"
                )
            return "payer's ИНН is missing or invalid and the purpose names no invoice"
        open_count = sum(1 for inv in self.by_tax.get(payment.tax_id, ()) if inv.open > 0)
        if references:
            return f"purpose names invoice {references[0].number}, which is not an open invoice of ИНН {payment.tax_id}"
        if open_count == 0:
            return f"no open invoice of ИНН {payment.tax_id}"
        return (
            f"ИНН {payment.tax_id} has {open_count} open invoice(s), none named in the purpose or open for "
            "exactly this amount (FIFO is off)"
        )


def names_agree(payer: str | None, customer: str | None) -> bool | None:
    """Whether a payer's name is the invoice customer's: None when either is missing; legal forms,
    quotes, case, Cyrillic/Latin spelling and word order do not count, initials stand for words
    ("ИВАНОВ ИВАН ИВАНОВИЧ" is "ИП Иванов И.И."), small typos pass."""
    a, b = company_key(payer), company_key(customer)
    if not a or not b:
        return None
    if a == b:
        return True
    words_a, words_b = a.split(), b.split()
    full_a = {w for w in words_a if len(w) > 1}
    full_b = {w for w in words_b if len(w) > 1}
    shorter, longer = (full_a, full_b) if len(full_a) <= len(full_b) else (full_b, full_a)
    if shorter and all(any(fuzz.ratio(w, x) >= NAME_AGREES for x in longer) for w in shorter):
        initials_a = [w for w in words_a if len(w) == 1]
        initials_b = [w for w in words_b if len(w) == 1]
        # Every initial must stand for a word of the other name that the full words leave over.
        left_b = [w for w in words_b if len(w) > 1 and w not in full_a]
        left_a = [w for w in words_a if len(w) > 1 and w not in full_b]
        if all(any(w.startswith(i) for w in left_b) for i in initials_a) and all(
            any(w.startswith(i) for w in left_a) for i in initials_b
        ):
            return True
    return fuzz.token_set_ratio(a, b) >= NAME_AGREES and len(full_a & full_b) > 0


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
        matcher.named_amount()
        if options.fifo:
            matcher.fifo()
        unmatched = matcher.credits_and_refunds()
    finally:
        if collecting:
            gc.enable()
    return MatchResult(matcher.allocations, unmatched, matcher.invoices, matcher.payments)
