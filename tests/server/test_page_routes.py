"""Page routes: a join link opens the join page; the device check can time an upload."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_a_join_link_path_serves_the_join_page(client: TestClient) -> None:
    response = client.get("/join/AbCdEf0123456789xyzXYZ")
    assert response.status_code == 200
    assert "/js/pages/join.js" in response.text


def test_the_upload_probe_accepts_a_body_and_answers_no_content(client: TestClient) -> None:
    response = client.post("/api/netcheck/upload", content=b"\0" * 256 * 1024)
    assert response.status_code == 204


def test_an_oversized_upload_probe_is_refused_with_probe_too_large(client: TestClient) -> None:
    response = client.post("/api/netcheck/upload", content=b"\0" * (2 * 1024 * 1024 + 1))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "probe_too_large"
