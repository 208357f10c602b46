"""The latency benchmark keeps working: a tiny run over two mailboxes, one receipt at a time and
in a burst, loses no receipt and sends no alert twice."""

from __future__ import annotations

import pytest

from tests.mail.servers import dovecot_available


@pytest.mark.skipif(not dovecot_available(), reason="needs root and dovecot-imapd")
def test_bench_runs_at_tiny_scale(capsys: pytest.CaptureFixture[str]) -> None:
    from bench.mail_latency import main

    result = main(["--rows", "3", "--bursts", "1", "--mailboxes", "2"])
    assert (result["alerts"], result["lost"], result["duplicates"]) == (13, 0, 0)
    assert result["alert_p50_ms"] > 0
    assert "APPEND -> alert at SMTP sink" in capsys.readouterr().out
