"""Pairwise matching of contact records: deterministic on strong keys with guards against shared
phones and role mailboxes, then fuzzy on names with corroboration. Shared by the store's
incremental resolution (resolve.py) and the file deduplicator (dedupe.py)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from itertools import permutations

from rapidfuzz import fuzz

from hub.identity.normalize import (
    NameParts,
    TaxId,
    company_key,
    fold_token,
    is_role_email,
    name_parts,
    normalize_email,
    normalize_phone,
    normalize_tax_id,
)


@dataclass(frozen=True)
class MatchThresholds:
    """Where evidence becomes a link; hub.settings.IdentitySettings carries the configured values."""

    # Two names this similar (0..100, word order ignored) may belong to one person.
    name_compatible: float = 70.0
    # A name this similar plus one strong corroborating field (company...) or two weak ones links.
    fuzzy_link: float = 90.0
    # A name this similar links only with two corroborating fields.
    name_probable: float = 80.0
    # A phone or email seen with this many different names belongs to a company, not a person.
    shared_key_names: int = 2
    # Blocks larger than this are split further or skipped: keeps the cost near-linear.
    max_block: int = 100


@dataclass(slots=True)
class MatchRecord:
    """One contact or lead, normalized for matching."""

    ref: int
    name: NameParts
    phone: str | None = None
    phone_ext: str | None = None
    email: str | None = None
    email_role: bool = False
    tax: TaxId | None = None
    company: str | None = None
    city: str | None = None
    # A further identifier without a checksum (customer number, social security id).
    ident: str | None = None
    # Further fields that corroborate a name (date of birth, postcode, street): equal or nearly.
    extra: tuple[str | None, ...] = ()

    @property
    def name_key(self) -> str:
        return self.name.key


def prepare_record(
    ref: int,
    *,
    name: str | None = None,
    phone: str | None = None,
    email: str | None = None,
    tax_id: str | None = None,
    company: str | None = None,
    city: str | None = None,
    ident: str | None = None,
    extra: tuple[str | None, ...] = (),
    default_region: str = "RU",
    fold_provider_aliases: bool = False,
) -> MatchRecord:
    parsed_phone = normalize_phone(phone, default_region) if phone else None
    parsed_email = normalize_email(email, fold_provider_aliases) if email else None
    return MatchRecord(
        ref=ref,
        name=name_parts(name),
        phone=parsed_phone.e164 if parsed_phone else None,
        phone_ext=parsed_phone.extension if parsed_phone else None,
        email=parsed_email,
        email_role=is_role_email(parsed_email),
        tax=normalize_tax_id(tax_id) if tax_id else None,
        company=company_key(company) if company else None,
        city=fold_token(city) if city else None,
        ident=ident.strip().lower() or None if ident else None,
        extra=tuple(v.strip().lower() or None if v else None for v in extra),
    )


# Evidence marker of a link that holds whatever the names say (the cluster check lets it pass).
NAME_INDEPENDENT = "fields"


@dataclass(frozen=True)
class Link:
    score: float
    reason: str
    evidence: tuple[str, ...]


def name_score(a: NameParts, b: NameParts) -> float | None:
    """Similarity of two names 0..100 (None if either is missing), each word matched to its best
    counterpart whatever the order; a name with fewer words ("Иванов") is compared as a part of
    the longer one ("Иван Иванов"), slightly discounted."""
    if not a.tokens or not b.tokens:
        return None
    score = 100.0 if a.tokens == b.tokens else _words_score(a.tokens, b.tokens)
    # Different patronymics are different people (father and son share the rest).
    if a.patronymic and b.patronymic and fuzz.ratio(a.patronymic, b.patronymic) < 80:
        score = min(score, 50.0)
    return score


@lru_cache(maxsize=1 << 20)
def _words_score(a: tuple[str, ...], b: tuple[str, ...]) -> float:
    """Best word-to-word alignment score; cached, as namesakes make the same comparisons often."""
    short, long = (a, b) if len(a) <= len(b) else (b, a)
    if len(short) == 2 and len(long) == 2:
        (x0, x1), (y0, y1) = short, long
        straight = fuzz.ratio(x0, y0) * (len(x0) + len(y0)) + fuzz.ratio(x1, y1) * (len(x1) + len(y1))
        crossed = fuzz.ratio(x0, y1) * (len(x0) + len(y1)) + fuzz.ratio(x1, y0) * (len(x1) + len(y0))
        return max(
            straight / (len(x0) + len(y0) + len(x1) + len(y1)),
            crossed / (len(x0) + len(y1) + len(x1) + len(y0)),
        )
    if len(long) > 4:
        score = fuzz.token_sort_ratio(" ".join(a), " ".join(b))
    else:
        score = max(_aligned(short, order) for order in permutations(long, len(short)))
    return score * 0.97 if len(short) < len(long) else score


def _aligned(words: tuple[str, ...], others: tuple[str, ...]) -> float:
    weight = sum(len(x) + len(y) for x, y in zip(words, others, strict=False))
    return sum(fuzz.ratio(x, y) * (len(x) + len(y)) for x, y in zip(words, others, strict=False)) / weight


def compare(
    a: MatchRecord,
    b: MatchRecord,
    thresholds: MatchThresholds,
    shared: frozenset[str] | set[str] = frozenset(),
) -> Link | None:
    """Whether two records are one person, and on what evidence; `shared` holds the phones and
    emails known to be used by several people (a switchboard, info@)."""
    names = name_score(a.name, b.name)
    compatible = names is None or names >= thresholds.name_compatible
    # A name decides only when both are full (given name and surname): "Иван" proves nothing.
    full = len(a.name.tokens) >= 2 and len(b.name.tokens) >= 2
    strong_name = full and names is not None and names >= thresholds.fuzzy_link
    evidence: list[str] = []

    if a.tax and b.tax and a.tax.value == b.tax.value and a.tax.identifies_person and compatible:
        return Link(1.0, "same personal ИНН", ("tax_id",))
    same_phone = a.phone is not None and a.phone == b.phone
    if same_phone and a.phone_ext and b.phone_ext and a.phone_ext != b.phone_ext:
        same_phone = False  # one switchboard, two extensions: two people
    same_email = a.email is not None and a.email == b.email
    if same_email:
        if not a.email_role and a.email not in shared and compatible:
            return Link(0.99, "same email", ("email",))
        if strong_name:
            return Link(0.95, "same shared mailbox and same name", ("email", "name"))
        evidence.append("email")
    if same_phone:
        phone_shared = a.phone in shared
        if not phone_shared and compatible and (names is not None or not (a.phone_ext or b.phone_ext)):
            return Link(0.98, "same phone", ("phone",))
        if strong_name:
            return Link(0.95, "same shared phone and same name", ("phone", "name"))
        evidence.append("phone")
    if evidence:
        return None  # a shared key with a different name: the guard, not a link
    if a.ident is not None and a.ident == b.ident and compatible and names is not None:
        return Link(0.97, "same identifier", ("ident",))
    fields = _extra_agreements(a, b)
    if fields >= 2 and a.ident and b.ident and fuzz.ratio(a.ident, b.ident) >= 85:
        # An id, a birth date and an address agreeing outweigh a name typed differently.
        return Link(0.96, f"same identifier and {fields:g} more fields", (NAME_INDEPENDENT, "ident"))
    if fields >= 3:
        # A birth date, a postcode and an address agreeing (the further fields of a file) with
        # one name word in common: the rest of the name was mistyped or swapped.
        city = 1.0 if a.city and a.city == b.city else 0.0
        common_word = names is None or any(
            fuzz.ratio(x, y) >= 85 for x in a.name.tokens for y in b.name.tokens
        )
        if fields + city >= 4 and common_word:
            return Link(0.9, f"{fields:g} more fields and a name word", (NAME_INDEPENDENT, "fields"))
    if not full or names is None or names < thresholds.name_probable:
        return None
    strong, weak = _corroboration(a, b)
    if strong_name:
        enough = len(strong) >= 1 or len(weak) >= 2
    else:
        enough = len(strong) >= 2 or (len(strong) == 1 and len(weak) >= 1)
    if not enough:
        return None  # a namesake: a name alone (or with a city) never links
    found = strong + weak
    score = 0.8 + 0.02 * min(len(strong) * 2 + len(weak), 5)
    return Link(score, f"similar name ({names:.0f}) and {', '.join(found)}", ("name", *found))


def _corroboration(a: MatchRecord, b: MatchRecord) -> tuple[list[str], list[str]]:
    """Fields that agree besides the name: strong ones (company, a phone one digit apart, tax id,
    further identifiers) and weak ones (city, patronymic). The mailbox name at another provider
    is no evidence: "a.ivanov@" is made of the name, and namesakes make the same one."""
    strong, weak = [], []
    if a.company and b.company and (a.company == b.company or fuzz.ratio(a.company, b.company) >= 90):
        strong.append("same company")
    if a.phone and b.phone and len(a.phone) == len(b.phone) and fuzz.ratio(a.phone, b.phone) >= 90:
        strong.append("phone one digit apart")
    if a.tax and b.tax and a.tax.value == b.tax.value:
        strong.append("same company tax id")
    if a.ident and b.ident and fuzz.ratio(a.ident, b.ident) >= 85:
        strong.append("identifier one character apart")
    fields = _extra_agreements(a, b)
    if fields >= 1:
        strong.append(f"{fields:g} more fields" if fields > 1 else "one more field")
    elif fields:
        weak.append("a short field")
    if a.city and b.city and a.city == b.city:
        weak.append("same city")
    if a.name.patronymic and a.name.patronymic == b.name.patronymic:
        weak.append("same patronymic")
    return strong, weak


def _extra_agreements(a: MatchRecord, b: MatchRecord) -> float:
    """Further fields equal (or, when long, nearly equal); a short value such as a house number
    counts half: many people share one."""
    agreed = 0.0
    for value_a, value_b in zip(a.extra, b.extra, strict=False):
        if not value_a or not value_b:
            continue
        if value_a == value_b or (len(value_a) >= 5 and fuzz.ratio(value_a, value_b) >= 85):
            agreed += 1.0 if len(value_a) >= 4 else 0.5
    return agreed


def names_conflict(names_a: list[NameParts], names_b: list[NameParts], thresholds: MatchThresholds) -> bool:
    """Cluster-level check: joining two clusters must not put clearly different names together,
    which is how false links chain ("Иван Петров" - switchboard - "Мария Сидорова")."""
    for a in names_a:
        for b in names_b:
            score = name_score(a, b)
            if score is not None and score < thresholds.name_compatible:
                return True
    return False
