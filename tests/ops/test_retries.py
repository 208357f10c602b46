"""Retries: a transient source failure is retried by the asset's policy; a permanent one fails
at once, without retry, with a message that says what to fix."""

from __future__ import annotations

import pytest
from dagster import Definitions, MaterializeResult, RetryPolicy, asset, instance_for_test

from assets.retries import fail_fast_on_permanent_errors
from connectors.errors import CredentialError, PermanentSourceError, TransientSourceError

ERRORS = {
    "transient": TransientSourceError("telephony: HTTP 503 at https://pbx.example/calls after 6 retries"),
    "credentials": CredentialError("1c refused the credentials (HTTP 401): check HUB_ACCOUNTING__PASSWORD"),
    "removed": PermanentSourceError("1c: Document_СчетНаОплатуПокупателю does not exist (HTTP 404)"),
}


def _run(error: Exception, generator: bool) -> tuple[int, str]:
    """Attempts made and the last failure's description."""
    attempts: list[int] = []

    if generator:

        @asset(retry_policy=RetryPolicy(max_retries=2, delay=0))
        @fail_fast_on_permanent_errors
        def flaky_source():  # type: ignore[no-untyped-def]
            attempts.append(1)
            yield MaterializeResult()
            raise error

    else:

        @asset(retry_policy=RetryPolicy(max_retries=2, delay=0))
        @fail_fast_on_permanent_errors
        def flaky_source() -> MaterializeResult:
            attempts.append(1)
            raise error

    defs = Definitions(assets=[flaky_source])
    with instance_for_test() as instance:
        result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
            instance=instance, raise_on_error=False
        )
    assert not result.success
    failure = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"][-1]
    data = failure.step_failure_data
    text = data.user_failure_data.description if data.user_failure_data else data.error.to_string()
    return len(attempts), text or ""


@pytest.mark.parametrize("generator", [False, True], ids=["function", "generator"])
def test_transient_errors_are_retried_by_policy(generator: bool) -> None:
    attempts, text = _run(ERRORS["transient"], generator)
    assert attempts == 3
    assert "HTTP 503" in text


@pytest.mark.parametrize("kind", ["credentials", "removed"])
@pytest.mark.parametrize("generator", [False, True], ids=["function", "generator"])
def test_permanent_errors_fail_at_once_saying_what_to_fix(kind: str, generator: bool) -> None:
    attempts, text = _run(ERRORS[kind], generator)
    assert attempts == 1
    assert str(ERRORS[kind]) in text
    assert "re-execute" in text
    if kind == "credentials":
        assert "HUB_ACCOUNTING__PASSWORD" in text and "credentials" in text
