"""Alerts to reps: outbox rows written in the transaction that caused them (with quiet hours),
and the deliverer that sends each exactly once by SMTP, Telegram or Slack."""
