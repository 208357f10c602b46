"""Channel rules: UTM tags first, then click ids, then the referrer (own site, search, social,
other sites), and rules a company adds in settings."""

from __future__ import annotations

import pytest

from hub.channels import ChannelRules, classify_channel, is_paid
from hub.settings import load_settings


@pytest.mark.parametrize(
    ("fields", "channel"),
    [
        ({}, "direct"),
        ({"utm_source": "Yandex", "utm_medium": "CPC"}, "yandex / cpc"),
        ({"utm_source": "newsletter"}, "newsletter / (none)"),
        ({"utm_source": "vk", "utm_medium": "social", "referrer": "https://www.google.com/"}, "vk / social"),
        ({"yclid": "123"}, "yandex / cpc"),
        ({"gclid": "abc", "referrer": "https://www.google.com/"}, "google / cpc"),
        ({"referrer": "https://yandex.ru/search/?text=x"}, "organic / yandex"),
        ({"referrer": "https://www.google.com/"}, "organic / google"),
        ({"referrer": "https://m.vk.com/wall-1"}, "social / vk.com"),
        ({"referrer": "https://www.partner-portal.ru/catalog"}, "referral / partner-portal.ru"),
        ({"referrer": "not a url"}, "direct"),
    ],
)
def test_default_rules(fields: dict[str, str], channel: str) -> None:
    assert classify_channel(**fields) == channel


def test_paid_mediums() -> None:
    assert is_paid("yandex / cpc") and is_paid("vk / retargeting")
    assert not is_paid("organic / google") and not is_paid("direct")


def test_rules_from_settings_extend_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_ANALYTICS__CHANNELS__OWN_DOMAINS", '["sales.example.ru"]')
    monkeypatch.setenv("HUB_ANALYTICS__CHANNELS__SEARCH_ENGINES", '["google.", "yandex.", "rambler."]')
    monkeypatch.setenv("HUB_ANALYTICS__CHANNELS__CLICK_IDS", '{"gclid": "google-ads / cpc"}')
    rules = load_settings().analytics.channels
    assert classify_channel(referrer="https://sales.example.ru/price", rules=rules) == "direct"
    assert classify_channel(referrer="https://nova.rambler.ru/search?q=x", rules=rules) == "organic / rambler"
    assert classify_channel(gclid="abc", rules=rules) == "google-ads / cpc"
    # A click id the rules no longer name falls through to the referrer.
    assert classify_channel(yclid="1", referrer="https://t.me/channel", rules=rules) == "social / t.me"


def test_own_domains_argument_and_rules_combine() -> None:
    rules = ChannelRules(own_domains=["example.pl"])
    assert (
        classify_channel(referrer="https://shop.example.pl/", own_domains=("example.ru",), rules=rules)
        == "direct"
    )
    assert (
        classify_channel(referrer="https://example.ru/", own_domains=("example.ru",), rules=rules) == "direct"
    )


def test_report_model_setting_names_one_of_the_six_models(monkeypatch: pytest.MonkeyPatch) -> None:
    from typing import get_args

    from hub.attribution.models import MODELS
    from hub.settings import AnalyticsSettings, SettingsError

    assert get_args(AnalyticsSettings.model_fields["report_model"].annotation) == MODELS
    monkeypatch.setenv("HUB_ANALYTICS__REPORT_MODEL", "last_click")
    with pytest.raises(SettingsError, match="HUB_ANALYTICS__REPORT_MODEL"):
        load_settings()
