"""The Bitrix24 client against the local portal (hub/demo/replay/bitrix24.py), with the flaky proxy
in front where it matters: batch and `$result`, both paging forms, the leaky bucket's 503,
OPERATION_TIME_LIMIT, OAuth expiry and rotation, and the webhook secret kept out of every
message and log line."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from connectors.bitrix24 import (
    Bitrix24Auth,
    Bitrix24Client,
    Bitrix24Error,
    Command,
    OAuthTokens,
    OperationTimeLimit,
    encode_query,
)
from connectors.errors import CredentialError, TransientSourceError
from hub.demo.replay.bitrix24 import Bitrix24Replay, Limits, parse_query
from tests.faults.http_proxy import FaultPlan, fault_proxy


@pytest.fixture
def crm() -> Iterator[Bitrix24Replay]:
    with Bitrix24Replay() as replay:
        yield replay


def _client(url: str, **kwargs: Any) -> Bitrix24Client:
    kwargs.setdefault("requests_per_second", 500.0)
    kwargs.setdefault("backoff_factor", 0.01)
    return Bitrix24Client(Bitrix24Auth(webhook_url=url), **kwargs)


def _seed_contacts(crm: Bitrix24Replay, n: int) -> None:
    with crm.portal.lock:
        for i in range(n):
            crm.portal.call("crm.contact.add", {"fields": {"NAME": f"Контакт {i}", "LAST_NAME": "Тест"}})


def test_a_batch_command_is_a_php_query_string_that_round_trips() -> None:
    params = {
        "fields": {
            "TITLE": "John&Martin [VIP] 100%",
            "PHONE": [{"VALUE": "+7 916", "VALUE_TYPE": "WORK"}],
            "OPENED": True,
        },
        "filter": {">ID": 5, "@STATUS_ID": ["NEW", "IN_PROCESS"]},
    }
    parsed = parse_query(encode_query(params))
    assert parsed == {
        "fields": {
            "TITLE": "John&Martin [VIP] 100%",
            "PHONE": [{"VALUE": "+7 916", "VALUE_TYPE": "WORK"}],
            "OPENED": "1",
        },
        "filter": {">ID": "5", "@STATUS_ID": ["NEW", "IN_PROCESS"]},
    }


def test_batch_chains_results_and_reports_errors_per_command(crm: Bitrix24Replay) -> None:
    client = _client(crm.webhook_url)
    answer = client.batch(
        {
            "contact": Command(
                "crm.contact.add", {"fields": {"NAME": "Иван", "PHONE": [{"VALUE": "+79161234567"}]}}
            ),
            "lead": Command(
                "crm.lead.add", {"fields": {"TITLE": "Заявка", "CONTACT_ID": "$result[contact]"}}
            ),
            "bad": Command("crm.deal.update", {"id": 999, "fields": {"TITLE": "x"}}),
        },
        write=True,
    )
    assert answer.ok("contact") and answer.ok("lead")
    assert answer.errors["bad"]["error_description"] == "Not found"
    lead = client.call("crm.lead.get", {"id": answer.results["lead"]}).result
    assert lead["CONTACT_ID"] == str(answer.results["contact"])
    assert client.requests_made == 2


def test_halt_stops_the_batch_at_the_first_error(crm: Bitrix24Replay) -> None:
    answer = _client(crm.webhook_url).batch(
        {
            "bad": Command("crm.deal.update", {"id": 999, "fields": {"TITLE": "x"}}),
            "never": Command("crm.contact.add", {"fields": {"NAME": "Пётр"}}),
        },
        halt=True,
        write=True,
    )
    assert "bad" in answer.errors and "never" not in answer.results
    assert crm.portal.entities["contact"] == {}


def test_both_paging_forms_read_every_row_once(crm: Bitrix24Replay) -> None:
    _seed_contacts(crm, 123)
    client = _client(crm.webhook_url)
    pages = list(client.pages("crm.contact.list", {"select": ["ID"]}))
    assert [len(p.result) for p in pages] == [50, 50, 23]
    assert pages[0].total == 123 and pages[0].next == 50 and pages[-1].next is None
    fast = list(client.fast_pages("crm.contact.list", {"select": ["ID"]}))
    ids = [row["ID"] for rows, _ in fast for row in rows]
    assert len(ids) == len(set(ids)) == 123
    assert fast[-1][1] == 123
    # The fast form asked the portal not to count.
    assert all(call == "crm.contact.list" for call in crm.portal.log[-3:])


def test_reads_survive_a_flaky_proxy(crm: Bitrix24Replay) -> None:
    _seed_contacts(crm, 260)
    plan = FaultPlan(
        rate=0.5,
        kinds=("500", "502", "503", "reset", "timeout", "truncated", "invalid_json"),
        seed=3,
        stall_s=0.5,
    )
    with fault_proxy(crm.webhook_url, plan) as proxy:
        client = _client(proxy.url + "/", timeout_s=0.3, max_retries=8)
        ids: list[str] = []
        for _ in range(3):  # a body fault surfaces after urllib3's retries: the caller reads again
            try:
                ids = [
                    row["ID"]
                    for rows, _ in client.fast_pages("crm.contact.list", {"select": ["ID"]})
                    for row in rows
                ]
                break
            except TransientSourceError:
                continue
    assert len(ids) == len(set(ids)) == 260
    assert sum(proxy.log.faults.values()) >= 3


def test_query_limit_exceeded_is_waited_out_for_writes_too(crm: Bitrix24Replay) -> None:
    crm.portal.limits.burst = 3
    crm.portal.limits.drain_per_s = 10.0
    # A client that believes in a bigger bucket than the portal has (another app shares it).
    client = _client(crm.webhook_url, requests_per_second=1000.0, burst=1000)
    for i in range(12):
        client.call("crm.contact.add", {"fields": {"NAME": f"N{i}"}}, write=True)
    assert len(crm.portal.entities["contact"]) == 12  # each created once
    assert client.throttled > 0


def test_operation_time_limit_is_respected_from_the_time_block(crm: Bitrix24Replay) -> None:
    crm.portal.limits.operating_cost_s = {"crm.contact.list": 200.0}
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        crm.advance(seconds)

    client = Bitrix24Client(
        Bitrix24Auth(webhook_url=crm.webhook_url),
        requests_per_second=500,
        operating_limit_s=480,
        max_wait_s=3600,
        clock=crm.portal.now,
        sleep=sleep,
    )
    for _ in range(4):
        client.call("crm.contact.list")
    # After 600 s of server time the client paused until the oldest minute left the window
    # instead of provoking OPERATION_TIME_LIMIT.
    assert slept and 500 < sum(slept) <= 601
    assert "OPERATION_TIME_LIMIT" not in str(crm.portal.log)

    crm.advance(700)  # the window is empty again
    impatient = Bitrix24Client(
        Bitrix24Auth(webhook_url=crm.webhook_url), requests_per_second=500, max_wait_s=1, clock=crm.portal.now
    )
    impatient.call("crm.contact.list")
    impatient.call("crm.contact.list")
    impatient.call("crm.contact.list")
    with pytest.raises(OperationTimeLimit) as raised:
        impatient.call("crm.contact.list")
    assert raised.value.retry_after_s > 1
    # Other methods are not blocked.
    impatient.call("crm.lead.list")


def test_the_portal_answering_operation_time_limit_blocks_that_method_only(crm: Bitrix24Replay) -> None:
    crm.portal.limits.operating_cost_s = {"crm.deal.list": 500.0}
    client = _client(crm.webhook_url)
    client.operating_limit_s = 10_000  # a client that does not know the portal's budget
    client.call("crm.deal.list")
    with pytest.raises(OperationTimeLimit):
        client.call("crm.deal.list")
    with pytest.raises(OperationTimeLimit):
        client.call("crm.deal.list")  # refused locally now, the portal is not asked again
    assert crm.portal.log.count("crm.deal.list") == 1
    client.call("crm.contact.list")


def test_oauth_refreshes_on_expiry_and_commits_the_new_pair_before_using_it(crm: Bitrix24Replay) -> None:
    first = crm.portal.issue_tokens()
    committed: list[OAuthTokens] = []
    used_before_commit: list[bool] = []

    def store(tokens: OAuthTokens) -> None:
        used_before_commit.append(tokens.access_token in crm.portal.log)
        committed.append(tokens)

    client = Bitrix24Client(
        Bitrix24Auth(
            portal_url=crm.url,
            client_id=crm.portal.client_id,
            client_secret=crm.portal.client_secret,
            oauth_url=f"{crm.url}/oauth/token/",
            tokens=OAuthTokens(first["access_token"], first["refresh_token"], float(first["expires"])),
            save_tokens=store,
        ),
        requests_per_second=500,
        clock=crm.portal.now,
    )
    assert client.call("crm.settings.mode.get").result == 1
    crm.advance(3700)  # the access token (1 h) is dead
    assert client.call("crm.settings.mode.get").result == 1
    assert len(committed) == 1 and committed[0].refresh_token != first["refresh_token"]
    assert used_before_commit == [False]
    # The old refresh token was rotated away.
    with pytest.raises(Exception, match="invalid_grant"):
        crm.portal.oauth(
            {
                "client_id": crm.portal.client_id,
                "client_secret": crm.portal.client_secret,
                "grant_type": "refresh_token",
                "refresh_token": first["refresh_token"],
            }
        )
    # A token the portal revoked early (401 expired_token) is refreshed once, then the call repeats.
    crm.portal.tokens[client.auth.tokens.access_token] = crm.portal.now() - 1  # type: ignore[union-attr]
    client.auth.tokens.expires_at = crm.portal.now() + 3000  # type: ignore[union-attr]
    assert client.call("crm.contact.add", {"fields": {"NAME": "X"}}, write=True).result == 1
    assert len(committed) == 2 and len(crm.portal.entities["contact"]) == 1


def test_an_expired_refresh_token_names_what_to_do(crm: Bitrix24Replay) -> None:
    client = Bitrix24Client(
        Bitrix24Auth(
            portal_url=crm.url,
            client_id=crm.portal.client_id,
            client_secret=crm.portal.client_secret,
            oauth_url=f"{crm.url}/oauth/token/",
            tokens=OAuthTokens("dead", "long-gone-refresh", 1.0),
            oauth_setting="HUB_CRM__BITRIX24__CLIENT_ID",
        ),
        clock=crm.portal.now,
    )
    with pytest.raises(CredentialError, match="hub crm connect bitrix24") as raised:
        client.call("user.get")
    assert "long-gone-refresh" not in str(raised.value) and crm.portal.client_secret not in str(raised.value)


def test_the_webhook_secret_is_never_in_a_message_or_a_log_line(
    crm: Bitrix24Replay, caplog: pytest.LogCaptureFixture
) -> None:
    secret = crm.portal.webhook_secret
    caplog.set_level(logging.DEBUG)
    crm.outage(100)
    client = _client(crm.webhook_url, max_retries=2)
    with pytest.raises(TransientSourceError) as down:
        client.call("user.get")
    crm.outage(0)
    wrong = _client(crm.webhook_url.replace(secret, secret[::-1]))
    with pytest.raises(CredentialError) as refused:
        wrong.call("user.get")
    with pytest.raises(Bitrix24Error) as bad:
        client.call("crm.deal.update", {"id": 5, "fields": {}}, write=True)
    texts = [str(down.value), str(refused.value), str(bad.value), caplog.text]
    assert all(secret not in text and secret[::-1] not in text for text in texts)
    assert "NO_AUTH_FOUND" in str(refused.value) and "check" in str(refused.value)
    assert "Retry" in caplog.text  # urllib3 did log its retries, without the path's secret


def test_an_outage_on_a_write_is_not_repeated_blindly(crm: Bitrix24Replay) -> None:
    crm.outage(1)
    client = _client(crm.webhook_url)
    with pytest.raises(TransientSourceError):
        client.call("crm.contact.add", {"fields": {"NAME": "Once"}}, write=True)
    assert crm.requests_seen() == 1  # the outbox decides, after looking for it
    assert client.call("crm.contact.add", {"fields": {"NAME": "Once"}}, write=True).result == 1


def test_simple_mode_has_no_leads(crm: Bitrix24Replay) -> None:
    crm.set_mode("simple")
    client = _client(crm.webhook_url)
    assert client.call("crm.settings.mode.get").result == 2
    with pytest.raises(Bitrix24Error):
        client.call("crm.lead.add", {"fields": {"TITLE": "x"}}, write=True)


def test_limits_default_to_the_ordinary_plan() -> None:
    assert (Limits().burst, Limits().drain_per_s) == (50.0, 2.0)
