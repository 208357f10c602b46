"""Which marketing channel a touch came through, from UTM tags, click ids and the referrer.
The rules are data so that a company can extend them in settings."""

from __future__ import annotations

from urllib.parse import urlparse

SEARCH_ENGINES = ("google.", "yandex.", "bing.", "duckduckgo.", "go.mail.ru", "search.yahoo.", "ecosia.")
SOCIAL_NETWORKS = (
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
)
PAID_MEDIUMS = ("cpc", "ppc", "paid", "cpm", "paidsearch", "paid_search", "display", "retargeting")


def classify_channel(
    utm_source: str | None = None,
    utm_medium: str | None = None,
    referrer: str | None = None,
    gclid: str | None = None,
    yclid: str | None = None,
    own_domains: tuple[str, ...] = (),
) -> str:
    """A channel name such as "yandex / cpc", "organic / google", "referral / partner.ru", "direct"."""
    source = (utm_source or "").strip().lower()
    medium = (utm_medium or "").strip().lower()
    if source or medium:
        return f"{source or '(none)'} / {medium or '(none)'}"
    if yclid:
        return "yandex / cpc"
    if gclid:
        return "google / cpc"
    host = (urlparse(referrer).hostname or "").lower() if referrer else ""
    if not host or any(host == d or host.endswith("." + d) for d in own_domains):
        return "direct"
    for engine in SEARCH_ENGINES:
        if engine in host:
            return f"organic / {engine.strip('.').split('.')[0]}"
    for network in SOCIAL_NETWORKS:
        if host == network or host.endswith("." + network) or network in host:
            return f"social / {network}"
    return f"referral / {host.removeprefix('www.')}"


def is_paid(channel: str) -> bool:
    return channel.split(" / ")[-1] in PAID_MEDIUMS
