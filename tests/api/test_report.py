"""GET /v1/studies/{name}/report: the study's HTML report over REST."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from tests.api.api_helpers import (
    ADMIN,
    READ,
    TOKENS,
    add_results,
    add_study,
    make_client,
    result,
)


def test_report_is_an_html_page(client: TestClient) -> None:
    add_study(client, "r1")
    add_results(
        client,
        [
            result("r1", 0, value=0.8, initializer="xavier_uniform"),
            result("r1", 1, value=0.6, initializer="kaiming_normal", weight_decay=1e-4),
            result("r1", 2, state="fail", stop_reason="error", value=None, error="boom"),
        ],
    )
    response = client.get("/v1/studies/r1/report")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<h1>r1</h1>" in page and 'id="leaderboard"' in page
    assert "3 finished of 10: 2 complete · 0 pruned · 1 fail" in page
    # Rows but no Optuna study behind them: the figures it can draw, sentences for the rest.
    assert page.count('class="plot-data"') == 2  # values per initializer, lr x weight decay
    assert "No diagnostics at initialization were recorded" in page
    assert page.count('"name":"no value"') == 1  # the failed trial, a grey cross


def test_unknown_study_is_404(client: TestClient) -> None:
    response = client.get("/v1/studies/nope/report")
    assert response.status_code == 404
    assert response.json() == {"detail": "study 'nope' does not exist"}


def test_report_needs_a_token_and_a_read_token_is_enough(tmp_path: Path) -> None:
    with make_client(f"sqlite:///{tmp_path / 'tuner.db'}", TOKENS) as client:
        add_study(client, "r2")
        assert client.get("/v1/studies/r2/report").status_code == 401
        bad = client.get("/v1/studies/r2/report", headers={"Authorization": "Bearer wrong"})
        assert bad.status_code == 401
        for token in (READ, ADMIN):
            ok = client.get("/v1/studies/r2/report", headers={"Authorization": f"Bearer {token}"})
            assert ok.status_code == 200 and "<h1>r2</h1>" in ok.text
        missing = client.get("/v1/studies/nope/report", headers={"Authorization": f"Bearer {READ}"})
        assert missing.status_code == 404
