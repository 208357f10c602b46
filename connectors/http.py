"""The HTTP client every HTTP source uses: retries with backoff honouring Retry-After (urllib3),
TLS verified, credentials errors that name the setting, bodies that must be JSON."""

from __future__ import annotations

import json
import logging
import time
import warnings
from collections.abc import Callable
from typing import Any
from urllib.parse import urljoin

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError, SSLError
from urllib3.util.retry import Retry

from connectors.errors import (
    CredentialError,
    IncompleteBodyError,
    PermanentSourceError,
    TransientSourceError,
)
from connectors.ratelimit import TokenBucket

log = logging.getLogger(__name__)

RETRY_STATUSES = (429, 500, 502, 503, 504)
# Maps a response to itself or raises the connector error its status means.
StatusCheck = Callable[[requests.Response], requests.Response]


class CountingRetry(Retry):
    """urllib3 Retry that reports every retry it makes to its owner (the retry budget)."""

    owner: HttpClient | None = None

    def new(self, **kw: Any) -> CountingRetry:
        new = super().new(**kw)
        new.owner = self.owner
        return new

    def increment(self, *args: Any, **kwargs: Any) -> Retry:
        error = kwargs.get("error")
        if isinstance(error, SSLError):
            # An untrusted certificate stays untrusted: fail at once instead of backing off.
            raise MaxRetryError(kwargs.get("_pool"), kwargs.get("url") or "", error)
        if self.owner is not None:
            self.owner.retries_used += 1
            response = kwargs.get("response")
            if response is not None and response.status in self.owner.throttle_statuses:
                self.owner.throttled += 1
                if self.owner.rate_limit is not None:
                    self.owner.rate_limit.drain()
        retry = super().increment(*args, **kwargs)
        if self.owner is not None and self.owner.rate_limit is not None:
            # Every attempt, retries included, passes the client's rate limit.
            self.owner.rate_limit.acquire()
        return retry


class HttpClient:
    """A requests session bound to one source.

    `source` names the source in messages; `credential_setting` names the environment
    variable(s) to fix when the source answers 401/403.

    An API with its own vocabulary in the body (Bitrix24: `QUERY_LIMIT_EXCEEDED` with 503,
    `expired_token` with 401) overrides `is_throttled` (what "refused unprocessed, slow down"
    looks like) and `check_response`; `retry_statuses` and `throttle_statuses` say which statuses
    urllib3 repeats for the retry methods and which count as throttling."""

    def __init__(
        self,
        base_url: str,
        *,
        source: str,
        credential_setting: str,
        auth: Any = None,
        headers: dict[str, str] | None = None,
        timeout_s: float = 30.0,
        verify_tls: bool = True,
        max_retries: int = 6,
        backoff_factor: float = 0.5,
        backoff_max_s: float = 60.0,
        body_retries: int = 3,
        rate_limit: TokenBucket | None = None,
        retry_methods: frozenset[str] = frozenset({"GET", "HEAD", "OPTIONS"}),
        retry_statuses: tuple[int, ...] = RETRY_STATUSES,
        throttle_statuses: frozenset[int] = frozenset({429}),
    ) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self.source = source
        self.credential_setting = credential_setting
        self.timeout_s = timeout_s
        self.retries_used = 0
        self.requests_made = 0
        self.throttled = 0  # answers 429 (or the API's own "slow down"), each waited out
        self.rate_limit = rate_limit
        self.body_retries = body_retries
        self.backoff_factor = backoff_factor
        self.backoff_max_s = backoff_max_s
        self.max_retries = max_retries
        self.retry_methods = frozenset(m.upper() for m in retry_methods)
        self.throttle_statuses = throttle_statuses
        if not verify_tls:
            warnings.warn(f"TLS verification is off for {source}: enable it in production", stacklevel=2)
            log.warning("TLS verification is disabled for source %s", source)
        retry = CountingRetry(
            total=max_retries,
            connect=max_retries,
            read=max_retries,
            status=max_retries,
            status_forcelist=retry_statuses,
            # Only what is safe to repeat: a POST that timed out may have been applied. An API
            # whose writes carry their own idempotency may pass its write methods here.
            allowed_methods=retry_methods,
            backoff_factor=backoff_factor,
            backoff_max=backoff_max_s,
            respect_retry_after_header=True,
            raise_on_status=False,
        )
        retry.owner = self
        self.session = requests.Session()
        self.session.verify = verify_tls
        self.verify_tls = verify_tls
        self.session.auth = auth
        self.session.headers.update({"Accept": "application/json", "User-Agent": "crm-integration-hub/0.1"})
        if headers:
            self.session.headers.update(headers)
        adapter = HTTPAdapter(max_retries=retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def url(self, path_or_url: str) -> str:
        return urljoin(self.base_url, path_or_url.lstrip("/")) if "://" not in path_or_url else path_or_url

    def get(
        self, path_or_url: str, params: dict[str, Any] | None = None, *, check: StatusCheck | None = None
    ) -> requests.Response:
        return self.request("GET", path_or_url, params=params, check=check)

    def post_json(
        self, path_or_url: str, payload: Any, *, check: StatusCheck | None = None
    ) -> requests.Response:
        """POST a JSON body (webhooks, chat APIs). POST is not retried here, as it may not be
        idempotent: the caller (e.g. an outbox) decides whether to send again."""
        return self.request("POST", path_or_url, json=payload, check=check)

    def request(
        self, method: str, path_or_url: str, *, check: StatusCheck | None = None, **kwargs: Any
    ) -> requests.Response:
        """One request with the shared error mapping: 401/403 name the credential setting,
        404 and other 4xx are permanent, 429/5xx and network failures transient.

        `check` replaces that mapping for an API whose statuses mean more (amoCRM: 401 means
        "refresh the token", 402 "account unpaid", 400 carries per-entity validation errors);
        it may hand what it does not handle to `check_response`.

        A throttled write (429; which urllib3 does not repeat) is waited out and sent again here:
        the server refused it unprocessed, so repeating it cannot apply it twice."""
        for attempt in range(self.max_retries + 1):
            response = self._send(method, path_or_url, **kwargs)
            if method.upper() in self.retry_methods or not self.is_throttled(response):
                break
            if attempt == self.max_retries:
                break
            self.retries_used += 1
            self.throttled += 1
            if self.rate_limit is not None:
                self.rate_limit.drain()
            time.sleep(self._retry_after(response, attempt))
        return (check or self.check_response)(response)

    def is_throttled(self, response: requests.Response) -> bool:
        """The server refused the request without processing it because of its rate limit."""
        return response.status_code in self.throttle_statuses

    def _retry_after(self, response: requests.Response, attempt: int) -> float:
        backoff = min(self.backoff_max_s, self.backoff_factor * 2**attempt)
        header = response.headers.get("Retry-After", "")
        try:
            return min(self.backoff_max_s, max(backoff, float(header)))
        except ValueError:
            return backoff

    def _send(self, method: str, path_or_url: str, **kwargs: Any) -> requests.Response:
        url = self.url(path_or_url)
        self.requests_made += 1
        if self.rate_limit is not None:
            self.rate_limit.acquire()
        try:
            # verify= on each request: requests lets REQUESTS_CA_BUNDLE override a session's
            # verify=False (psf/requests#3829), which would silently ignore the setting.
            response = self.session.request(
                method, url, timeout=self.timeout_s, verify=self.verify_tls, **kwargs
            )
        except requests.exceptions.RetryError as exc:
            raise TransientSourceError(
                f"{self.source}: gave up on {url} after {self.retries_used} retries: {exc}"
            ) from None
        except requests.exceptions.SSLError as exc:
            raise PermanentSourceError(
                f"{self.source}: the TLS certificate of {url} is not trusted ({_ssl_reason(exc)}): install "
                "its CA in the system store, or switch verification off for this source only (its "
                "verify_tls setting)"
            ) from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            raise TransientSourceError(f"{self.source}: cannot reach {url}: {type(exc).__name__}") from None
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError) as exc:
            # The connection broke while the body was read (after urllib3's retries had ended).
            raise IncompleteBodyError(
                f"{self.source}: the body from {url} was cut off in transfer: {type(exc).__name__}"
            ) from None
        return response

    def check_response(self, response: requests.Response) -> requests.Response:
        """The shared status mapping (see `request`)."""
        url = response.url
        if response.status_code in (401, 403):
            raise CredentialError(
                f"{self.source} refused the credentials (HTTP {response.status_code} at {url}): "
                f"check {self.credential_setting}"
            )
        if response.status_code == 404:
            raise PermanentSourceError(
                f"{self.source}: {url} does not exist (HTTP 404): check the base URL setting"
            )
        if response.status_code in RETRY_STATUSES:
            raise TransientSourceError(
                f"{self.source}: HTTP {response.status_code} at {url} after {self.retries_used} retries"
            )
        if response.status_code >= 400:
            raise PermanentSourceError(
                f"{self.source}: HTTP {response.status_code} at {url}: {response.text[:200]}"
            )
        return response

    def get_json(
        self, path_or_url: str, params: dict[str, Any] | None = None, *, check: StatusCheck | None = None
    ) -> Any:
        """GET and decode JSON; a truncated or non-JSON body is fetched again a few times
        (proxies cut bodies), then reported with what came instead. 204 No Content is None."""
        last_error = ""
        url = self.url(path_or_url)
        for attempt in range(self.body_retries + 1):
            if attempt:
                self.retries_used += 1
                time.sleep(min(self.backoff_max_s, self.backoff_factor * 2**attempt))
            try:
                response = self.get(path_or_url, params, check=check)
            except IncompleteBodyError as exc:
                last_error = str(exc)
                continue
            if response.status_code == 204:
                return None
            try:
                return response.json()
            except (json.JSONDecodeError, requests.exceptions.JSONDecodeError, UnicodeDecodeError):
                ctype = response.headers.get("Content-Type", "")
                if "html" in ctype.lower() or response.text.lstrip().lower().startswith(
                    ("<!doctype", "<html")
                ):
                    # Some systems (1C among them) answer an auth problem with an HTML page and 200.
                    raise CredentialError(
                        f"{self.source} answered {response.url} with an HTML page instead of JSON: "
                        f"usually a login page; check {self.credential_setting} and the base URL"
                    ) from None
                last_error = (
                    f"body is not valid JSON ({len(response.content)} bytes, {ctype or 'no content type'})"
                )
        raise TransientSourceError(
            f"{self.source}: {url}: {last_error} (after {self.body_retries} retries of the body)"
        )


def _ssl_reason(exc: Exception) -> str:
    text = str(exc)
    for reason in (
        "self-signed certificate",
        "certificate has expired",
        "Hostname mismatch",
        "unable to get local issuer certificate",
    ):
        if reason.lower() in text.lower():
            return reason
    return "certificate verify failed"
