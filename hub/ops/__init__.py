"""Operations of the hub as a deployment, without Dagster: ops alerts (run and check failures)
through the alert outbox, and the verdicts of the checks that apply across every asset."""
