"""Masking (hub/masking.py): personal data and URL passwords hidden, dates, times and addresses
left readable; every log record of a process masked once install_log_masking ran."""

from __future__ import annotations

import logging

import pytest

from hub.masking import install_log_masking, mask_text, mask_url_password


def test_url_passwords_are_masked_wherever_the_url_is() -> None:
    assert mask_url_password("postgresql+psycopg2://hub:S3cr@t@db.example.ru:5432/hub") == (
        "postgresql+psycopg2://hub:***@db.example.ru:5432/hub"
    )
    assert mask_url_password("sqlite:////var/lib/hub/hub.db") == "sqlite:////var/lib/hub/hub.db"
    assert (
        mask_text("cannot reach postgresql://u:pw@10.0.0.5/hub now")
        == "cannot reach postgresql://u:***@10.0.0.5/hub now"
    )


def test_phones_and_emails_are_masked_but_not_dates_times_addresses_or_decimals() -> None:
    text = "Анна +7 916 555-12-34, 600 123 456, anna.k@client.example.ru"
    assert mask_text(text) == "Анна +7********34, 6******56, a***@client.example.ru"
    readable = (
        "Оплата по счету № 128 от 05.03.2024; at 2026-11-20 10:00:00 from 192.168.100.200 in 0.1234567891 s"
    )
    assert mask_text(readable) == readable


def test_log_records_are_masked_with_their_arguments_and_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    install_log_masking()
    log = logging.getLogger("hub.test_masking")
    with caplog.at_level(logging.INFO):
        log.info("lead from %s at %s", "ivan.petrov@client.example.ru", "+79165551234")
        try:
            raise ValueError("postgresql://hub:Pw-123@db/hub refused +7 916 555 12 34")
        except ValueError:
            log.exception("store error")
    assert "ivan.petrov" not in caplog.text and "5551234" not in caplog.text and "Pw-123" not in caplog.text
    assert "i***@client.example.ru" in caplog.text and "hub:***@db" in caplog.text
