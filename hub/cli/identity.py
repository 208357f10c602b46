"""Commands of identity resolution: `hub dedupe` for a contact list in a file, and
`hub contacts unmerge` to undo a wrong merge in the store."""

from __future__ import annotations

import json
from pathlib import Path

import click

from hub.settings import load_settings


def register(main: click.Group, inspect: click.Group) -> None:
    main.add_command(dedupe)
    main.add_command(contacts)


@click.command()
@click.argument("input_csv", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", "output_csv", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--columns",
    multiple=True,
    help="FIELD=COLUMN pairs, comma-separated or repeated: fields name, first_name, middle_name, "
    "last_name, phone, email, company, tax_id, city, ident, extra. Unnamed fields are recognized "
    "by their header (ФИО, Телефон, E-mail, ИНН, Город...).",
)
def dedupe(input_csv: Path, output_csv: Path, columns: tuple[str, ...]) -> None:
    """Cluster a contact list (an old spreadsheet before import) and write it to OUTPUT with a
    cluster_id column (row number of the cluster's first row) and the reason for each link."""
    from hub.identity.dedupe import DedupeInputError, dedupe_file
    from hub.identity.resolve import thresholds_from

    settings = load_settings()
    try:
        result = dedupe_file(
            str(input_csv),
            str(output_csv),
            columns,
            thresholds_from(settings.identity),
            settings.default_region,
            settings.identity.fold_provider_aliases,
        )
    except DedupeInputError as exc:
        raise click.UsageError(str(exc)) from None
    rows = len(result.cluster_of)
    click.echo(
        json.dumps(
            {
                "rows": rows,
                "clusters": result.clusters,
                "duplicates": rows - result.clusters,
                "links": result.reasons,
                "refused_by_cluster_check": result.links_refused_by_cluster_check,
                "shared_phones_and_mailboxes": result.shared_keys,
                "output": str(output_csv),
            },
            ensure_ascii=False,
        )
    )


@click.group()
def contacts() -> None:
    """Contacts in the store: undo a wrong merge."""


@contacts.command("unmerge")
@click.argument("contact_id", type=int)
def unmerge_contact(contact_id: int) -> None:
    """Restore CONTACT_ID, merged away by mistake: its leads, deals, activities and keys go back
    and the survivor's fields are as before the merge (from hub_merge_log)."""
    from hub.identity.merge import UnmergeError, unmerge
    from hub.store.db import session_scope

    try:
        with session_scope(load_settings().database_url) as session:
            log = unmerge(session, contact_id)
            moved = {table: len(ids) for table, ids in (log.snapshot or {}).get("moved", {}).items()}
            survivor = log.survivor_id
    except UnmergeError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"contact {contact_id} restored from contact {survivor}; rows moved back: {json.dumps(moved)}")
