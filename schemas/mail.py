"""Records of the mail source: a parsed read receipt, a sent email the hub can correlate
receipts to, and a message fetched from a mailbox (IMAP, maildir or mbox)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

ReceiptVariant = Literal["rfc8098", "thunderbird", "outlook", "plain_text"]
Disposition = Literal["displayed", "deleted", "dispatched", "processed", "denied", "failed", "unknown"]
# What the disposition was read from: the report part, or (no report, or a malformed one) the subject.
DispositionSource = Literal["report", "subject"]


class ParsedReceipt(BaseModel):
    """What a read receipt says, whichever client sent it."""

    variant: ReceiptVariant
    disposition: Disposition
    disposition_source: DispositionSource = "report"
    # Only "displayed" means the client read the email; "deleted" is "not read".
    opened: bool
    receipt_message_id: str | None = None
    original_message_id: str | None = None
    references: list[str] = Field(default_factory=list)
    in_reply_to: str | None = None
    # Message-ID found inside an attached text/rfc822-headers part (the original's headers).
    headers_message_id: str | None = None
    reader: str | None = None
    subject: str = ""
    # The subject with the localized "Read:" / "Return Receipt (displayed) -" prefix removed.
    original_subject: str = ""
    received_at: datetime | None = None
    # Why the hub would quarantine this receipt (nothing to correlate it by), else None.
    problem: str | None = None


class SentEmail(BaseModel):
    """An email a rep sent: read from the Sent folder or recorded when the hub sends it."""

    message_id: str
    from_addr: str | None = None
    to_addrs: list[str] = Field(default_factory=list)
    subject: str = ""
    sent_at: datetime
    # Set by the hub when it sends on behalf of a deal (X-CRM-Deal header).
    deal_ref: str | None = None


class MailMessage(BaseModel):
    """One message as a mailbox holds it: raw bytes and where it is."""

    location: str  # "imap:INBOX:<uidvalidity>:<uid>", "maildir:<key>", "mbox:<n>"
    uid: int | None = None
    raw: bytes
    # When the message landed in the mailbox (IMAP INTERNALDATE, file time for maildir).
    arrived_at: datetime | None = None
