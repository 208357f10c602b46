"""Where an alert's link to the client points: the contact's card in the company's CRM backend
when there is one, else the contact's page in the hub's own web interface."""

from __future__ import annotations

from sqlalchemy.orm import Session

from hub.settings import MailSettings, load_settings
from hub.store.models import Contact

# The hub's page of one contact, below HUB_MAIL__PUBLIC_BASE_URL (served by `hub serve`).
CONTACT_PAGE = "/contacts/{id}"


def contact_url(session: Session, contact_id: int | None, mail: MailSettings | None = None) -> str | None:
    """The link for a contact's card, or None when there is nothing to link to (no contact, or no
    public URL configured). `mail` defaults to the settings read from the environment.

    The CRM backends (hub/crm/) are to return their own card here first (amoCRM, Bitrix24)."""
    if contact_id is None:
        return None
    base = (mail if mail is not None else load_settings().mail).public_base_url.rstrip("/")
    if not base:
        return None
    contact = session.get(Contact, contact_id)
    while contact is not None and contact.merged_into_id is not None:
        contact = session.get(Contact, contact.merged_into_id)
    if contact is None:
        return None
    return base + CONTACT_PAGE.format(id=contact.id)
