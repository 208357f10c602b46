"""Retries for assets: transient source failures are retried by policy, permanent ones
(bad credentials, a removed entity) fail at once with a message that says what to fix."""

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from dagster import Backoff, Failure, Jitter, RetryPolicy

from connectors.errors import CredentialError, PermanentSourceError

# Transient faults (5xx after the HTTP client's own retries, a dropped IMAP connection, a locked
# database) usually clear within minutes: retry the step, backing off, before failing the run.
TRANSIENT_RETRY_POLICY = RetryPolicy(
    max_retries=3, delay=15, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS
)

F = TypeVar("F", bound=Callable[..., Any])


def permanent_failure(exc: PermanentSourceError) -> Failure:
    """A Failure that Dagster does not retry, naming what the operator must fix."""
    if isinstance(exc, CredentialError):
        fix = "The source refused the credentials: fix the setting named above, then re-execute the run."
    else:
        fix = (
            "Retrying will not help (a wrong URL, a removed entity or a changed contract at the source): "
            "fix the setting or the source named above, then re-execute the run."
        )
    return Failure(
        description=f"{exc}\n\n{fix}",
        metadata={"error_class": type(exc).__name__, "retried": False},
        allow_retries=False,
    )


def fail_fast_on_permanent_errors(fn: F) -> F:
    """Put under `@asset` (or `@multi_asset`, `@asset_check`): a PermanentSourceError raised by
    the body becomes a non-retryable Failure; every other error keeps the retry policy."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def generator_wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return (yield from fn(*args, **kwargs))
            except PermanentSourceError as exc:
                raise permanent_failure(exc) from exc

        return generator_wrapper  # type: ignore[return-value]

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except PermanentSourceError as exc:
            raise permanent_failure(exc) from exc

    return wrapper  # type: ignore[return-value]
