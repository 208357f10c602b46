"""Which marketing channel a touch came through, from UTM tags, click ids and the referrer.
The rules are data (`ChannelRules`, the `analytics.channels` settings) so a company can extend them."""

from __future__ import annotations

from urllib.parse import urlparse

from pydantic import BaseModel, Field

DIRECT = "direct"


class ChannelRules(BaseModel):
    """How a touch without a recognised tag is named; each list is matched against the referrer host."""

    search_engines: list[str] = Field(
        default_factory=lambda: [
            "google.",
            "yandex.",
            "bing.",
            "duckduckgo.",
            "go.mail.ru",
            "search.yahoo.",
            "ecosia.",
        ],
        description="Referrer host fragments of search engines: such a visit is 'organic / <engine>'",
    )
    social_networks: list[str] = Field(
        default_factory=lambda: [
            "vk.com",
            "facebook.com",
            "instagram.com",
            "t.me",
            "telegram.",
            "ok.ru",
            "linkedin.com",
            "youtube.com",
            "tiktok.com",
            "dzen.ru",
            "x.com",
            "twitter.com",
        ],
        description="Referrer hosts of social networks: 'social / <network>'",
    )
    paid_mediums: list[str] = Field(
        default_factory=lambda: [
            "cpc",
            "ppc",
            "paid",
            "cpm",
            "paidsearch",
            "paid_search",
            "display",
            "retargeting",
        ]
    )
    # A click id without UTM tags still says which ad network paid for the visit.
    click_ids: dict[str, str] = Field(
        default_factory=lambda: {"yclid": "yandex / cpc", "gclid": "google / cpc"},
        description="Click-id parameter -> channel, used when the visit carries no UTM tags",
    )
    own_domains: list[str] = Field(
        default_factory=list, description="The company's own sites: a referrer from them counts as direct"
    )


DEFAULT_RULES = ChannelRules()


def classify_channel(
    utm_source: str | None = None,
    utm_medium: str | None = None,
    referrer: str | None = None,
    gclid: str | None = None,
    yclid: str | None = None,
    own_domains: tuple[str, ...] = (),
    rules: ChannelRules | None = None,
) -> str:
    """A channel name such as "yandex / cpc", "organic / google", "referral / partner.ru", "direct"."""
    rules = rules or DEFAULT_RULES
    source = (utm_source or "").strip().lower()
    medium = (utm_medium or "").strip().lower()
    if source or medium:
        return f"{source or '(none)'} / {medium or '(none)'}"
    click_ids = {"yclid": yclid, "gclid": gclid}
    for name, channel in rules.click_ids.items():
        if click_ids.get(name):
            return channel
    host = (urlparse(referrer).hostname or "").lower() if referrer else ""
    own = (*own_domains, *rules.own_domains)
    if not host or any(host == d or host.endswith("." + d) for d in own):
        return DIRECT
    for engine in rules.search_engines:
        if engine in host:
            return f"organic / {engine.strip('.').split('.')[0]}"
    for network in rules.social_networks:
        if host == network or host.endswith("." + network) or network in host:
            return f"social / {network}"
    return f"referral / {host.removeprefix('www.')}"


def is_paid(channel: str, rules: ChannelRules | None = None) -> bool:
    return channel.split(" / ")[-1] in (rules or DEFAULT_RULES).paid_mediums


def is_direct(channel: str | None) -> bool:
    return not channel or channel == DIRECT
