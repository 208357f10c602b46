"""Clustering of a whole contact list in memory (`hub dedupe`, the benchmark): blocking keeps
the candidate pairs near-linear, links are accepted best first, and a cluster-level check stops
false links from chaining different people together."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from hub.identity.match import (
    NAME_INDEPENDENT,
    Link,
    MatchRecord,
    MatchThresholds,
    compare,
    name_score,
    names_conflict,
)
from hub.identity.normalize import NameParts

# A cluster remembers this many distinct names for its conflict check; more adds cost, not safety.
_CLUSTER_NAMES = 6


@dataclass
class DedupeResult:
    cluster_of: list[int]  # per record: the index of its cluster's first record
    reason_of: list[str]  # per record: which record it was linked to and why ("" for the first)
    links_accepted: int = 0
    links_refused_by_cluster_check: int = 0
    shared_keys: int = 0
    pairs_compared: int = 0
    blocks_skipped: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def clusters(self) -> int:
        return len(set(self.cluster_of))


def shared_keys(records: list[MatchRecord], thresholds: MatchThresholds) -> set[str]:
    """Phones and emails used under names that cannot be one person (a company switchboard,
    a family's home phone, info@): such a key links nobody on its own."""
    people: dict[str, list[NameParts]] = defaultdict(list)
    shared: set[str] = set()
    for record in records:
        if not record.name.tokens:
            continue
        for key in (record.phone, record.email):
            if key is None or key in shared:
                continue
            known = people[key]
            if all(
                (score := name_score(record.name, other)) is not None and score < thresholds.name_compatible
                for other in known
            ):
                known.append(record.name)
                if len(known) >= thresholds.shared_key_names:
                    shared.add(key)
    return shared


def blocking_keys(record: MatchRecord) -> Iterable[tuple[str, str]]:
    """Keys under which candidate duplicates meet; two records are compared only if they share one."""
    if record.phone:
        yield "phone", record.phone
    if record.email:
        yield "email", record.email
    if record.tax and record.tax.identifies_person:
        yield "tax", record.tax.value
    if record.ident:
        yield "ident", record.ident
    extra = record.extra
    if len(extra) >= 2 and extra[0] and extra[1]:
        yield "fields", f"{extra[0]}|{extra[1]}"
    if len(extra) >= 3 and extra[0] and extra[2]:
        yield "fields2", f"{extra[0]}|{extra[2]}"
    tokens = record.name.tokens
    if len(tokens) >= 2:
        yield "name", record.name.key
        # One word exact and the rest by its first letters: a typo in the other word still meets.
        for index, token in enumerate(tokens):
            if len(token) >= 3:
                rest = "".join(t[:3] for i, t in enumerate(tokens) if i != index)
                yield "word", f"{token}|{rest}"
    elif tokens and record.company:
        yield "surname-company", f"{tokens[0]}|{record.company}"


_FUZZY_KINDS = frozenset({"name", "word", "fields", "fields2", "surname-company"})


def _sub_blocks(members: list[int], records: list[MatchRecord]) -> Iterable[list[int]]:
    """An oversized name block (a common name) split by company and by city."""
    by_field: dict[tuple[str, str], list[int]] = defaultdict(list)
    for index in members:
        record = records[index]
        if record.company:
            by_field["company", record.company].append(index)
        if record.city:
            by_field["city", record.city].append(index)
        if record.name.patronymic:
            by_field["patronymic", record.name.patronymic].append(index)
    yield from by_field.values()


def candidate_pairs(
    records: list[MatchRecord], thresholds: MatchThresholds, result: DedupeResult
) -> set[int]:
    """Pairs (encoded i * n + j, i < j) that share a blocking key in a block of bounded size."""
    blocks: dict[tuple[str, str], list[int]] = defaultdict(list)
    for index, record in enumerate(records):
        for key in blocking_keys(record):
            blocks[key].append(index)
    n = len(records)
    pairs: set[int] = set()
    for (kind, _), members in blocks.items():
        if len(members) < 2:
            continue
        # Name blocks only feed fuzzy links, which need one more agreeing field: a block of
        # namesakes is split by those fields early, which keeps the pairs near-linear.
        fuzzy = kind in _FUZZY_KINDS
        limit = max(2, thresholds.max_block // 5) if fuzzy else thresholds.max_block
        groups: Iterable[list[int]] = [members]
        if len(members) > limit:
            if not fuzzy:
                result.blocks_skipped += 1  # a key shared by that many records proves nothing
                continue
            groups = _sub_blocks(members, records)
        for group in groups:
            if len(group) < 2:
                continue
            if len(group) > limit:
                result.blocks_skipped += 1
                continue
            for pos, i in enumerate(group):
                base = i * n
                for j in group[pos + 1 :]:
                    pairs.add(base + j if i < j else j * n + i)
    return pairs


class _Clusters:
    """Union-find that keeps each cluster's names and personal tax ids for the conflict check."""

    def __init__(self, records: list[MatchRecord]) -> None:
        self.parent = list(range(len(records)))
        self.names: dict[int, list[NameParts]] = {}
        self.taxes: dict[int, set[str]] = {}
        self.records = records

    def find(self, i: int) -> int:
        parent = self.parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def _names(self, root: int) -> list[NameParts]:
        if root not in self.names:
            name = self.records[root].name
            self.names[root] = [name] if name.tokens else []
        return self.names[root]

    def _taxes(self, root: int) -> set[str]:
        if root not in self.taxes:
            tax = self.records[root].tax
            self.taxes[root] = {tax.value} if tax and tax.identifies_person else set()
        return self.taxes[root]

    def union(self, i: int, j: int, thresholds: MatchThresholds, check_names: bool = True) -> bool | None:
        """Join the clusters of i and j; None if already one, False if refused."""
        a, b = self.find(i), self.find(j)
        if a == b:
            return None
        names_a, names_b = self._names(a), self._names(b)
        taxes_a, taxes_b = self._taxes(a), self._taxes(b)
        if taxes_a and taxes_b and not (taxes_a & taxes_b):
            return False
        if check_names and names_conflict(names_a, names_b, thresholds):
            return False
        if a > b:
            a, b = b, a
            names_a, names_b = names_b, names_a
            taxes_a, taxes_b = taxes_b, taxes_a
        self.parent[b] = a
        keys = {n.key for n in names_a}
        for name in names_b:
            if name.key not in keys and len(names_a) < _CLUSTER_NAMES:
                names_a.append(name)
                keys.add(name.key)
        taxes_a |= taxes_b
        self.names.pop(b, None)
        self.taxes.pop(b, None)
        return True


def cluster_records(records: list[MatchRecord], thresholds: MatchThresholds | None = None) -> DedupeResult:
    """Cluster records that are one person; each record gets its cluster and the reason it joined."""
    thresholds = thresholds or MatchThresholds()
    n = len(records)
    result = DedupeResult(cluster_of=list(range(n)), reason_of=[""] * n)
    shared = shared_keys(records, thresholds)
    result.shared_keys = len(shared)
    pairs = candidate_pairs(records, thresholds, result)
    result.pairs_compared = len(pairs)
    links: list[tuple[float, int, int, Link]] = []
    for code in pairs:
        i, j = divmod(code, n)
        link = compare(records[i], records[j], thresholds, shared)
        if link is not None:
            links.append((-link.score, i, j, link))
    del pairs
    links.sort(key=lambda item: (item[0], item[1], item[2]))
    clusters = _Clusters(records)
    accepted: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for _, i, j, link in links:
        joined = clusters.union(i, j, thresholds, check_names=NAME_INDEPENDENT not in link.evidence)
        if joined is None:
            continue
        if joined is False:
            result.links_refused_by_cluster_check += 1
            continue
        result.links_accepted += 1
        kind = link.reason.split(" (")[0]
        result.reasons[kind] = result.reasons.get(kind, 0) + 1
        accepted[i].append((j, link.reason))
        accepted[j].append((i, link.reason))
    result.cluster_of = [clusters.find(i) for i in range(n)]
    # Each record's reason is the link by which it joins, walking out from the cluster's first row.
    for root in sorted({result.cluster_of[i] for i in accepted}):
        queue = [root]
        seen = {root}
        while queue:
            current = queue.pop()
            for other, reason in accepted.get(current, ()):
                if other not in seen:
                    seen.add(other)
                    result.reason_of[other] = f"row {records[current].ref}: {reason}"
                    queue.append(other)
    return result


# ---------------------------------------------------------------- contact lists in files

# Header names (folded to lower case) recognized for each field when --columns does not say.
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "name": ("name", "full name", "full_name", "fullname", "fio", "фио", "контакт", "contact", "клиент",
             "client", "imię i nazwisko", "imie i nazwisko", "контактное лицо"),
    "first_name": ("first name", "first_name", "firstname", "given name", "имя", "imię", "imie"),
    "middle_name": ("middle name", "middle_name", "patronymic", "отчество"),
    "last_name": ("last name", "last_name", "lastname", "surname", "фамилия", "nazwisko"),
    "phone": ("phone", "telephone", "tel", "телефон", "тел", "мобильный", "mobile", "telefon", "phone number"),
    "email": ("email", "e-mail", "mail", "почта", "эл. почта", "электронная почта", "adres e-mail"),
    "company": ("company", "organization", "organisation", "организация", "компания", "firma",
                "nazwa firmy", "account"),
    "tax_id": ("inn", "инн", "nip", "tax_id", "tax id", "vat"),
    "city": ("city", "город", "miasto", "town"),
}  # fmt: skip
FIELDS = (*COLUMN_ALIASES, "ident", "extra")


class DedupeInputError(ValueError):
    """The file or the --columns mapping cannot be used; the message says what to change."""


def parse_column_mapping(specs: Iterable[str]) -> dict[str, list[str]]:
    """--columns "name=ФИО,phone=Телефон,extra=Дата рождения" (repeatable) into field -> columns."""
    mapping: dict[str, list[str]] = {}
    for spec in specs:
        for item in spec.split(","):
            if not item.strip():
                continue
            field_name, sep, column = item.partition("=")
            field_name = field_name.strip().lower()
            if not sep or field_name not in FIELDS or not column.strip():
                raise DedupeInputError(
                    f"--columns {item.strip()!r}: expected FIELD=COLUMN with FIELD one of {', '.join(FIELDS)}"
                )
            mapping.setdefault(field_name, []).append(column.strip())
    return mapping


def detect_columns(header: list[str], given: dict[str, list[str]]) -> dict[str, list[str]]:
    """The given mapping, completed from recognized header names; every named column must exist."""
    mapping = {k: list(v) for k, v in given.items()}
    for columns in mapping.values():
        for column in columns:
            if column not in header:
                raise DedupeInputError(
                    f"column {column!r} is not in the file; its columns: {', '.join(header)}"
                )
    used = {c for cols in mapping.values() for c in cols}
    lowered = {h.strip().lower(): h for h in header}
    for field_name, aliases in COLUMN_ALIASES.items():
        if field_name in mapping:
            continue
        for alias in aliases:
            if alias in lowered and lowered[alias] not in used:
                mapping[field_name] = [lowered[alias]]
                used.add(lowered[alias])
                break
    if not any(f in mapping for f in ("name", "first_name", "last_name", "phone", "email")):
        raise DedupeInputError(
            "no name, phone or email column recognized: name them with --columns, e.g. "
            "--columns name=ФИО,phone=Телефон,email=Почта"
        )
    return mapping


def records_from_rows(
    rows: list[dict[str, str]],
    mapping: dict[str, list[str]],
    default_region: str = "RU",
    fold_provider_aliases: bool = False,
) -> list[MatchRecord]:
    """Rows of a contact list as match records; `ref` is the 1-based row number."""
    from hub.identity.match import prepare_record

    def value(row: dict[str, str], field_name: str) -> str | None:
        parts = [(row.get(c) or "").strip() for c in mapping.get(field_name, [])]
        text = " ".join(p for p in parts if p)
        return text or None

    records = []
    for number, row in enumerate(rows, start=1):
        name = value(row, "name")
        if name is None:
            parts = [value(row, f) for f in ("last_name", "first_name", "middle_name")]
            name = " ".join(p for p in parts if p) or None
        records.append(
            prepare_record(
                number,
                name=name,
                phone=value(row, "phone"),
                email=value(row, "email"),
                tax_id=value(row, "tax_id"),
                company=value(row, "company"),
                city=value(row, "city"),
                ident=value(row, "ident"),
                extra=tuple((row.get(c) or None) for c in mapping.get("extra", [])),
                default_region=default_region,
                fold_provider_aliases=fold_provider_aliases,
            )
        )
    return records


def read_table(path: str) -> tuple[list[str], list[dict[str, str]], str]:
    """A CSV as spreadsheets export it: UTF-8 (with or without BOM) or Windows-1251, comma,
    semicolon or tab. Returns header, rows and the delimiter."""
    import csv

    raw = Path(path).read_bytes()
    for encoding in ("utf-8-sig", "cp1251"):
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    try:
        delimiter = csv.Sniffer().sniff(text[:8192], delimiters=",;\t").delimiter
    except csv.Error:
        delimiter = ","
    reader = csv.DictReader(text.splitlines(), delimiter=delimiter)
    header = list(reader.fieldnames or [])
    if not header:
        raise DedupeInputError(f"{path}: no header row")
    return header, [dict(row) for row in reader], delimiter


def dedupe_file(
    input_path: str,
    output_path: str,
    column_specs: Iterable[str] = (),
    thresholds: MatchThresholds | None = None,
    default_region: str = "RU",
    fold_provider_aliases: bool = False,
) -> DedupeResult:
    """Cluster a contact list and write it back with `cluster_id` (the row number of the
    cluster's first row) and `match_reason` (the row it links to and the evidence)."""
    import csv

    header, rows, delimiter = read_table(input_path)
    mapping = detect_columns(header, parse_column_mapping(column_specs))
    records = records_from_rows(rows, mapping, default_region, fold_provider_aliases)
    result = cluster_records(records, thresholds)
    with open(output_path, "w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out, delimiter=delimiter)
        writer.writerow([*header, "cluster_id", "match_reason"])
        for index, row in enumerate(rows):
            cluster = records[result.cluster_of[index]].ref
            writer.writerow([*(row.get(h, "") for h in header), cluster, result.reason_of[index]])
    return result
