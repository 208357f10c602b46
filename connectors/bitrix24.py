"""Bitrix24 REST client: an inbound webhook or a local OAuth application (tokens rotated and handed
to the caller's store before use), the portal's leaky bucket, QUERY_LIMIT_EXCEEDED waited out,
OPERATION_TIME_LIMIT respected from the `time` block of answers, `batch`, and list paging.

The webhook URL and the tokens are secrets: no message, log line or exception of this module
carries them (they are replaced by `***`, urllib3's retry warnings included)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus, urlsplit

import requests

from connectors.errors import (
    ConnectorError,
    CredentialError,
    IncompleteBodyError,
    PermanentSourceError,
    TransientSourceError,
)
from connectors.http import HttpClient
from connectors.ratelimit import TokenBucket

log = logging.getLogger(__name__)

# ORIGINATOR_ID of everything the hub creates (ORIGIN_ID carries the hub's reference).
ORIGINATOR = "crm-integration-hub"
PAGE_SIZE = 50  # Bitrix24 list methods always answer 50 rows a page
BATCH_MAX = 50  # commands in one `batch`
OAUTH_URL = "https://oauth.bitrix24.tech/oauth/token/"

# Errors that mean the portal refused the call without running it.
QUERY_LIMIT = "QUERY_LIMIT_EXCEEDED"
OPERATION_LIMIT = "OPERATION_TIME_LIMIT"
_EXPIRED = ("expired_token",)
_BAD_AUTH = ("NO_AUTH_FOUND", "invalid_token", "INVALID_CREDENTIALS", "WRONG_AUTH_TYPE")
_FORBIDDEN = ("ACCESS_DENIED", "insufficient_scope", "user_access_error", "PAYMENT_REQUIRED")


class Bitrix24Error(PermanentSourceError):
    """The portal refused a call (validation, rights, unknown method): retrying will not help."""

    def __init__(self, message: str, code: str = "", description: str = "", method: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.description = description
        self.method = method


class OperationTimeLimit(TransientSourceError):
    """A method spent its server-time budget (OPERATION_TIME_LIMIT): it is blocked until the
    oldest minute of its 10-minute window drops out."""

    def __init__(self, message: str, method: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.method = method
        self.retry_after_s = retry_after_s


class _TokenExpired(Exception):
    """401 expired_token: refresh and send again (the call was not run)."""


@dataclass
class OAuthTokens:
    access_token: str
    refresh_token: str
    expires_at: float  # unix time
    client_endpoint: str = ""  # https://<portal>/rest/ as the OAuth server reports it

    def as_dict(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "expires_at": self.expires_at,
            "client_endpoint": self.client_endpoint,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OAuthTokens:
        return cls(
            access_token=str(data.get("access_token") or ""),
            refresh_token=str(data.get("refresh_token") or ""),
            expires_at=float(data.get("expires_at") or 0),
            client_endpoint=str(data.get("client_endpoint") or ""),
        )


@dataclass
class Bitrix24Auth:
    """How the hub signs in: an inbound webhook URL, or a local OAuth application.

    `save_tokens` receives every new token pair before it is used and must make it durable
    (commit it): the refresh token rotates, and the old one stops working."""

    webhook_url: str = ""
    portal_url: str = ""
    client_id: str = ""
    client_secret: str = ""
    oauth_url: str = OAUTH_URL
    tokens: OAuthTokens | None = None
    save_tokens: Callable[[OAuthTokens], None] | None = None
    # The settings a person fixes when the portal refuses us (named in messages).
    webhook_setting: str = "the Bitrix24 webhook URL"
    oauth_setting: str = "the Bitrix24 OAuth application (client id/secret, tokens)"

    @property
    def uses_webhook(self) -> bool:
        return bool(self.webhook_url)

    def setting(self) -> str:
        return self.webhook_setting if self.uses_webhook else self.oauth_setting


@dataclass
class Answer:
    """One method's answer: `result`, and for list methods `total` and `next`."""

    result: Any
    total: int | None = None
    next: int | None = None
    time: dict[str, Any] = field(default_factory=dict)


@dataclass
class Command:
    method: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class BatchAnswer:
    results: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, dict[str, str]] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)
    nexts: dict[str, int] = field(default_factory=dict)

    def ok(self, key: str) -> bool:
        return key in self.results and key not in self.errors


# ---------------------------------------------------------------- secrets never leave this module


class _Redactor(logging.Filter):
    """Replaces registered secrets in log records (urllib3 logs the request path of a retry,
    and a webhook's path is its secret)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()
        self._lock = threading.Lock()

    def add(self, *values: str) -> None:
        with self._lock:
            self.secrets.update(v for v in values if v and len(v) >= 6)

    def redact(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            clean = self.redact(message)
            if clean != message:
                record.msg, record.args = clean, ()
        return True


_REDACTOR = _Redactor()
for _name in ("urllib3.connectionpool", "urllib3.util.retry", __name__, "connectors.http"):
    logging.getLogger(_name).addFilter(_REDACTOR)


def _webhook_secret(url: str) -> str:
    """The secret part of https://<portal>/rest/<user>/<secret>/."""
    parts = [p for p in urlsplit(url).path.split("/") if p]
    if len(parts) >= 3 and parts[-3] == "rest":
        return parts[-1]
    return parts[-1] if parts else ""


def _redacted(exc: ConnectorError) -> ConnectorError:
    clean = _REDACTOR.redact(str(exc))
    if clean == str(exc):
        return exc
    new = type(exc).__new__(type(exc))
    ConnectorError.__init__(new, clean)
    new.__dict__.update(exc.__dict__)
    return new


# ---------------------------------------------------------------- encoding a batch command


def encode_query(params: Mapping[str, Any]) -> str:
    """PHP-style query string (what `batch` parses each command with): nested objects and lists
    as key[sub][0]=..., true/false as 1/0, None left out."""
    pairs: list[str] = []

    def walk(prefix: str, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, Mapping):
            for key, item in value.items():
                walk(f"{prefix}[{quote_plus(str(key))}]" if prefix else quote_plus(str(key)), item)
        elif isinstance(value, list | tuple):
            for index, item in enumerate(value):
                walk(f"{prefix}[{index}]", item)
        elif isinstance(value, bool):
            pairs.append(f"{prefix}={1 if value else 0}")
        else:
            pairs.append(f"{prefix}={quote_plus(str(value))}")

    walk("", params)
    return "&".join(pairs)


# ---------------------------------------------------------------- HTTP with Bitrix24's vocabulary


def _error_of(response: requests.Response) -> tuple[str, str] | None:
    """(error, error_description) of a Bitrix24 error body (the code may be empty: "Access
    denied." comes with error ""), or None for a body that is not one."""
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict) or "error" not in body:
        return None
    return str(body.get("error") or ""), str(body.get("error_description") or "")


class _Http(HttpClient):
    """HttpClient that reads Bitrix24's errors from the body."""

    auth_setting = ""

    def is_throttled(self, response: requests.Response) -> bool:
        return response.status_code == 503 and (_error_of(response) or ("", ""))[0] == QUERY_LIMIT

    def check_response(self, response: requests.Response) -> requests.Response:
        if response.status_code < 400:
            return response
        error = _error_of(response)
        code, description = error or ("", "")
        method = urlsplit(response.url).path.rstrip("/").rsplit("/", 1)[-1]
        what = f"{code or response.status_code}" + (f": {description}" if description else "")
        if response.status_code == 401 and code in _EXPIRED:
            raise _TokenExpired(description)
        if response.status_code in (401, 403) and (code in _BAD_AUTH or code in _FORBIDDEN or not code):
            raise CredentialError(
                f"{self.source} refused the call {method} ({what}, HTTP {response.status_code}): "
                f"check {self.auth_setting or self.credential_setting} and its rights (scopes crm, task, "
                "telephony, user)"
            )
        if response.status_code == 429 and code == OPERATION_LIMIT:
            raise OperationTimeLimit(
                f"{self.source}: {method} is blocked by OPERATION_TIME_LIMIT", method, retry_after_s=60.0
            )
        if code == QUERY_LIMIT or code in ("INTERNAL_SERVER_ERROR", "ERROR_UNEXPECTED_ANSWER"):
            raise TransientSourceError(f"{self.source}: {method}: {what} (HTTP {response.status_code})")
        if code == "OVERLOAD_LIMIT":
            raise PermanentSourceError(
                f"{self.source}: the portal blocked its REST API (OVERLOAD_LIMIT): only Bitrix24 support can "
                "lift it"
            )
        if error is not None and 400 <= response.status_code < 500:
            raise Bitrix24Error(
                f"{self.source}: {method} refused: {what}", code=code, description=description, method=method
            )
        return super().check_response(response)


# ---------------------------------------------------------------- the client


@dataclass
class _Budget:
    operating: float = 0.0
    reset_at: float = 0.0
    blocked_until: float = 0.0


class Bitrix24Client:
    """Calls a Bitrix24 portal's REST methods. Reads are repeated on any transient failure;
    writes only when the portal says it did not run them (QUERY_LIMIT_EXCEEDED, an expired
    token): a write whose outcome is unknown raises, and the caller's outbox recovers it."""

    def __init__(
        self,
        auth: Bitrix24Auth,
        *,
        requests_per_second: float = 2.0,
        burst: int = 50,
        operating_limit_s: float = 480.0,
        max_wait_s: float = 60.0,
        timeout_s: float = 30.0,
        verify_tls: bool = True,
        max_retries: int = 6,
        backoff_factor: float = 0.5,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not auth.webhook_url and not (auth.portal_url and auth.client_id):
            raise PermanentSourceError(
                f"Bitrix24 is not configured: set {auth.webhook_setting}, or {auth.oauth_setting}"
            )
        self.auth = auth
        self.operating_limit_s = operating_limit_s
        self.max_wait_s = max_wait_s
        self._clock = clock
        self._sleep = sleep
        self._budgets: dict[str, _Budget] = {}
        self._lock = threading.Lock()
        self.bucket = TokenBucket(requests_per_second, burst)
        self.operation_waits = 0
        if auth.uses_webhook:
            base = auth.webhook_url.rstrip("/") + "/"
            _REDACTOR.add(_webhook_secret(base))
        else:
            base = auth.portal_url.rstrip("/") + "/rest/"
            _REDACTOR.add(auth.client_secret)
            if auth.tokens:
                _REDACTOR.add(auth.tokens.access_token, auth.tokens.refresh_token)
        common: dict[str, Any] = {
            "source": "Bitrix24",
            "credential_setting": auth.setting(),
            "timeout_s": timeout_s,
            "verify_tls": verify_tls,
            "max_retries": max_retries,
            "backoff_factor": backoff_factor,
            "rate_limit": self.bucket,
            # 429 is OPERATION_TIME_LIMIT here: waiting seconds does not lift it, the budget does.
            "retry_statuses": (500, 502, 503, 504),
            "throttle_statuses": frozenset({503}),
        }
        # One client repeats everything (reads), the other only what was refused unprocessed.
        self._read = _Http(base, retry_methods=frozenset({"GET", "POST"}), **common)
        self._write = _Http(base, **common)
        self._oauth = HttpClient(
            auth.oauth_url,
            source="Bitrix24 OAuth",
            credential_setting=auth.oauth_setting,
            timeout_s=timeout_s,
            verify_tls=verify_tls,
            max_retries=max_retries,
            backoff_factor=backoff_factor,
        )
        for http in (self._read, self._write):
            http.auth_setting = auth.setting()

    # ------------------------------------------------------------ usage

    @property
    def requests_made(self) -> int:
        return self._read.requests_made + self._write.requests_made + self._oauth.requests_made

    @property
    def retries(self) -> int:
        return self._read.retries_used + self._write.retries_used + self._oauth.retries_used

    @property
    def throttled(self) -> int:
        return self._read.throttled + self._write.throttled

    @property
    def waited_s(self) -> float:
        return self.bucket.waited_s

    # ------------------------------------------------------------ OAuth

    def _access_token(self) -> str:
        tokens = self.auth.tokens
        if tokens is None or not tokens.refresh_token:
            raise CredentialError(
                "Bitrix24: no OAuth tokens yet: connect the local application with `hub crm connect bitrix24` "
                f"({self.auth.oauth_setting})"
            )
        if tokens.expires_at and tokens.expires_at - 60 <= self._clock():
            tokens = self.refresh()
        return tokens.access_token

    def refresh(self) -> OAuthTokens:
        """A new token pair from the refresh token; handed to `save_tokens` before it is used."""
        with self._lock:
            current = self.auth.tokens
            if current is not None and current.expires_at - 60 > self._clock():
                # Another thread refreshed while this one waited for the lock.
                return current
            if current is None:
                raise CredentialError(f"Bitrix24: no refresh token: check {self.auth.oauth_setting}")
            return self._token_request(
                {"grant_type": "refresh_token", "refresh_token": current.refresh_token}
            )

    def exchange_code(self, code: str) -> OAuthTokens:
        """The first token pair from an authorization code (valid 30 s)."""
        with self._lock:
            return self._token_request({"grant_type": "authorization_code", "code": code})

    def _token_request(self, grant: dict[str, str]) -> OAuthTokens:
        params = {"client_id": self.auth.client_id, "client_secret": self.auth.client_secret, **grant}
        try:
            response = self._oauth.session.get(
                self._oauth.base_url,
                params=params,
                timeout=self._oauth.timeout_s,
                verify=self._oauth.verify_tls,
            )
            self._oauth.requests_made += 1
        except requests.RequestException as exc:
            raise TransientSourceError(
                f"Bitrix24 OAuth: cannot reach the authorization server: {type(exc).__name__}"
            ) from None
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code >= 500:
            raise TransientSourceError(
                f"Bitrix24 OAuth: HTTP {response.status_code} from the authorization server"
            )
        if response.status_code >= 400 or "error" in body or not body.get("access_token"):
            code = body.get("error") or f"HTTP {response.status_code}"
            hint = (
                "the refresh token expired or was already used: connect again with `hub crm connect bitrix24`"
                if code == "invalid_grant"
                else "the application's trial or paid period is over"
                if code == "PAYMENT_REQUIRED"
                else f"check {self.auth.oauth_setting}"
            )
            raise CredentialError(f"Bitrix24 OAuth refused to issue tokens ({code}): {hint}")
        tokens = OAuthTokens(
            access_token=str(body["access_token"]),
            refresh_token=str(body.get("refresh_token") or ""),
            expires_at=float(body.get("expires") or self._clock() + float(body.get("expires_in") or 3600)),
            client_endpoint=str(body.get("client_endpoint") or ""),
        )
        _REDACTOR.add(tokens.access_token, tokens.refresh_token)
        if self.auth.save_tokens is not None:
            # Durable before use: the old refresh token is dead from now on.
            self.auth.save_tokens(tokens)
        self.auth.tokens = tokens
        return tokens

    # ------------------------------------------------------------ operating time

    def _budget(self, method: str) -> _Budget:
        return self._budgets.setdefault(method.lower(), _Budget())

    def _note_time(self, method: str, block: Any) -> None:
        if not isinstance(block, dict) or "operating" not in block:
            return
        budget = self._budget(method)
        try:
            budget.operating = float(block.get("operating") or 0)
            budget.reset_at = float(block.get("operating_reset_at") or 0)
        except (TypeError, ValueError):
            return

    def _respect_budget(self, methods: Sequence[str]) -> None:
        """Wait for a method that has spent its server time (or is blocked) to be released;
        raise OperationTimeLimit when that is longer than `max_wait_s`."""
        now = self._clock()
        wait = 0.0
        blocked = ""
        for method in methods:
            budget = self._budget(method)
            until = budget.blocked_until
            if budget.operating >= self.operating_limit_s and budget.reset_at > now:
                until = max(until, budget.reset_at)
            if until > now and until - now > wait:
                wait, blocked = until - now, method
        if wait <= 0:
            return
        if wait > self.max_wait_s:
            raise OperationTimeLimit(
                f"Bitrix24: {blocked} has used its server-time budget (OPERATION_TIME_LIMIT); it is released in "
                f"{wait:.0f} s",
                blocked,
                retry_after_s=wait,
            )
        self.operation_waits += 1
        self._sleep(wait)

    def _blocked(self, method: str) -> OperationTimeLimit:
        budget = self._budget(method)
        now = self._clock()
        until = budget.reset_at if budget.reset_at > now else now + 60.0
        budget.blocked_until = until
        return OperationTimeLimit(
            f"Bitrix24: {method} is blocked by OPERATION_TIME_LIMIT for {until - now:.0f} s",
            method,
            until - now,
        )

    # ------------------------------------------------------------ calling

    def _post(self, method: str, params: dict[str, Any], write: bool) -> dict[str, Any]:
        """POST the method; a read whose body came cut or garbled is fetched again (a proxy's
        fault), a write's is not (it ran: the caller's outbox finds what it made)."""
        attempts = 1 if write else self._read.body_retries + 1
        last = ""
        for attempt in range(attempts):
            if attempt:
                self._read.retries_used += 1
                self._sleep(min(self._read.backoff_max_s, self._read.backoff_factor * 2**attempt))
            try:
                response = self._send(method, params, write)
            except IncompleteBodyError as exc:
                last = str(_redacted(exc))
                continue
            try:
                data = response.json()
            except ValueError:
                last = f"Bitrix24: {method} answered {len(response.content)} bytes that are not JSON"
                continue
            if isinstance(data, dict):
                return data
            last = f"Bitrix24: {method} answered JSON that is not an object"
        raise TransientSourceError(last)

    def _send(self, method: str, params: dict[str, Any], write: bool) -> requests.Response:
        http = self._write if write else self._read
        for attempt in range(2):
            body = dict(params)
            if not self.auth.uses_webhook:
                body["auth"] = self._access_token()
            try:
                return http.request("POST", method, json=body)
            except _TokenExpired:
                if attempt or self.auth.uses_webhook:
                    break
                # The portal says the token is dead before its time: renew it, send again
                # (a call refused with expired_token did not run).
                if self.auth.tokens is not None:
                    self.auth.tokens.expires_at = 0.0
                self.refresh()
            except OperationTimeLimit:
                raise self._blocked(method) from None
            except ConnectorError as exc:
                raise _redacted(exc) from None
        raise CredentialError(
            f"Bitrix24 refused a fresh access token (expired_token): check {self.auth.oauth_setting}"
        )

    def call(self, method: str, params: dict[str, Any] | None = None, *, write: bool = False) -> Answer:
        """One method. `write=True`: not repeated when its outcome is unknown."""
        self._respect_budget([method])
        data = self._post(method, params or {}, write)
        self._note_time(method, data.get("time"))
        if "error" in data and "result" not in data:
            raise Bitrix24Error(
                f"Bitrix24: {method} refused: {data.get('error')}: {data.get('error_description', '')}",
                code=str(data.get("error")),
                description=str(data.get("error_description") or ""),
                method=method,
            )
        return Answer(
            result=data.get("result"),
            total=_int_or_none(data.get("total")),
            next=_int_or_none(data.get("next")),
            time=data.get("time") or {},
        )

    def batch(
        self, commands: Mapping[str, Command], *, halt: bool = False, write: bool = False
    ) -> BatchAnswer:
        """Up to 50 commands in one request; later ones may use `$result[key][FIELD]` of earlier
        ones. Per-command errors come back in `errors` (the request itself succeeds)."""
        if not commands:
            return BatchAnswer()
        if len(commands) > BATCH_MAX:
            raise ValueError(f"a Bitrix24 batch takes at most {BATCH_MAX} commands, got {len(commands)}")
        self._respect_budget([c.method for c in commands.values()])
        cmd = {key: f"{c.method}?{encode_query(c.params)}" for key, c in commands.items()}
        data = self._post("batch", {"halt": 1 if halt else 0, "cmd": cmd}, write)
        self._note_time("batch", data.get("time"))
        outer = data.get("result")
        if not isinstance(outer, dict):
            raise TransientSourceError("Bitrix24: batch answered without its result object")
        answer = BatchAnswer(
            results=_as_dict(outer.get("result")),
            errors={
                k: dict(v) for k, v in _as_dict(outer.get("result_error")).items() if isinstance(v, dict)
            },
            totals={
                k: int(v)
                for k, v in _as_dict(outer.get("result_total")).items()
                if _int_or_none(v) is not None
            },
            nexts={
                k: int(v)
                for k, v in _as_dict(outer.get("result_next")).items()
                if _int_or_none(v) is not None
            },
        )
        for key, block in _as_dict(outer.get("result_time")).items():
            if key in commands:
                self._note_time(commands[key].method, block)
        for key, error in answer.errors.items():
            if error.get("error") == OPERATION_LIMIT and key in commands:
                self._blocked(commands[key].method)
        return answer

    # ------------------------------------------------------------ lists

    def pages(self, method: str, params: dict[str, Any] | None = None, *, start: int = 0) -> Iterator[Answer]:
        """A list method page by page with `start`/`next` (50 a page)."""
        params = dict(params or {})
        position: int | None = start
        while position is not None:
            answer = self.call(method, {**params, "start": position})
            yield answer
            position = answer.next

    @staticmethod
    def fast_params(
        params: dict[str, Any] | None = None, *, after_id: int = 0, id_field: str = "ID", count: bool = False
    ) -> dict[str, Any]:
        """The parameters of one page of the fast form (see `fast_pages`)."""
        params = dict(params or {})
        base_filter = dict(params.pop("filter", {}) or {})
        return {
            **params,
            "order": {id_field: "ASC"},
            "filter": {**base_filter, f">{id_field}": after_id},
            "start": 0 if count else -1,
        }

    def fast_pages(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        after_id: int = 0,
        id_field: str = "ID",
        rows: Callable[[Any], list[dict[str, Any]]] | None = None,
        count: bool = False,
        first: Any = None,
    ) -> Iterator[tuple[list[dict[str, Any]], int]]:
        """A large list without counting: `order {ID: ASC}`, `filter {">ID": last}`, `start: -1`,
        until a page has fewer than 50 rows. Yields each page's rows and its last id.

        `count=True` sends `start: 0` instead, for methods whose documentation does not promise
        the uncounted form (tasks.task.list): the same pages, the portal also counts `total`.
        `first`: the result of the first page, already fetched (in a batch)."""
        last = after_id
        while True:
            if first is not None:
                result, first = first, None
            else:
                query = self.fast_params(params, after_id=last, id_field=id_field, count=count)
                result = self.call(method, query).result
            items = rows(result) if rows else list(result or [])
            if items:
                last = max(
                    last, max(int(item.get(id_field) or item.get(id_field.lower()) or 0) for item in items)
                )
            yield items, last
            if len(items) < PAGE_SIZE:
                return


def _as_dict(value: Any) -> dict[str, Any]:
    # PHP encodes an empty associative array as [].
    return dict(value) if isinstance(value, dict) else {}


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None
