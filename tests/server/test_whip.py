"""WHIP ingest (RFC 9725) through the real service: an aiortc WHIP client publishes the lead
classroom's camera and mic into its live lesson, a decoding receiver plays it, and the
RFC's errors come back for what cannot work. Credentials: minted per classroom by an
admin, shown once, revocable (a revoked one ends its live session).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import pytest_asyncio

from media.synthetic.peers import SyntheticPublisher
from media.synthetic.terminal import SyntheticTerminal
from tongke_bench.loss import LiveService, live_service

pytestmark = pytest.mark.asyncio(loop_scope="module")

LOOPBACK = ["127.0.0.1"]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def live(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveService]:
    async with live_service(tmp_path_factory.mktemp("whip"), faults=False) as service:
        yield service


async def wait_until(condition: Callable[[], bool], within: float = 20.0, what: str = "") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        assert loop.time() < deadline, f"not met within {within}s: {what}"
        await asyncio.sleep(0.05)


async def lead_classroom(live: LiveService) -> str:
    lesson = (await live.api("GET", f"/api/lessons/{live.lesson_id}")).json()
    return str(lesson["lead"]["id"])


async def mint(live: LiveService, classroom_id: str, name: str = "讲台 OBS") -> dict[str, Any]:
    response = await live.api(
        "POST", f"/api/classrooms/{classroom_id}/whip-credentials", {"name": name}
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def whip(
    live: LiveService, path: str, token: str, body: str, content_type: str = "application/sdp"
) -> httpx.Response:
    headers = {"Content-Type": content_type}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with httpx.AsyncClient(base_url=live.base_url, timeout=30) as http:
        return await http.post(path, content=body.encode(), headers=headers)


async def whip_delete(live: LiveService, location: str, token: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=live.base_url, timeout=30) as http:
        return await http.delete(location, headers={"Authorization": f"Bearer {token}"})


def producers_of(terminal: SyntheticTerminal) -> list[dict[str, Any]]:
    changes = terminal.of_type("producers_changed")
    return list(changes[-1]["producers"]) if changes else []


async def test_credentials_are_shown_once_listed_without_token_and_checked(
    live: LiveService,
) -> None:
    room = await lead_classroom(live)
    minted = await mint(live, room)
    assert len(minted["token"]) >= 40
    assert minted["whip_url"] == f"{live.base_url}/whip/{room}"
    listed = (await live.api("GET", f"/api/classrooms/{room}/whip-credentials")).json()
    assert [c["id"] for c in listed] == [minted["id"]] and "token" not in listed[0]
    assert listed[0]["name"] == "讲台 OBS" and listed[0]["revoked_at"] is None
    offer = await SyntheticPublisher(host_addresses=LOOPBACK, layers=("main",)).create_offer()
    wrong = await whip(live, f"/whip/{room}", "not-the-token", offer)
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"].startswith("Bearer")
    assert wrong.json()["error"]["code"] == "whip_unauthorized"
    none = await whip(live, f"/whip/{room}", "", offer)
    assert none.status_code == 401
    unknown = await whip(live, "/whip/no-such-classroom", minted["token"], offer)
    assert unknown.status_code == 404
    # The lesson is scheduled, not live: nothing to publish into yet.
    early = await whip(live, f"/whip/{room}", minted["token"], offer)
    assert early.status_code == 409 and early.json()["error"]["code"] == "no_live_lesson"
    missing = await live.api("GET", "/api/classrooms/no-such-classroom/whip-credentials")
    assert missing.status_code == 404


async def test_an_encoder_publishes_the_lead_camera_and_a_receiver_plays_it(
    live: LiveService,
) -> None:
    room = await lead_classroom(live)
    credential = await mint(live, room)
    token = credential["token"]
    lead = live.terminal("lead")  # the teacher's page: it publishes its own camera too
    await lead.start(start_lesson=True)
    receiver = live.terminal("receiver", 0, decode=True, publish=False)
    await receiver.start()
    encoder = SyntheticPublisher(host_addresses=LOOPBACK, layers=("main",), codec="h264")
    try:
        offer = await encoder.create_offer()
        assert (await whip(live, f"/whip/{room}", token, offer, "text/plain")).status_code == 415
        bad = await whip(live, f"/whip/{room}", token, "v=0\r\nm=application 9 x\r\n")
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_sdp"
        published = await whip(live, f"/whip/{room}", token, offer)
        assert published.status_code == 201, published.text
        assert published.headers["content-type"].startswith("application/sdp")
        location = published.headers["location"]
        assert location.startswith(f"/whip/{room}/whip-")
        await encoder.accept_answer(published.text)
        # Receivers get the encoder's camera and mic in place of the lead page's own.
        ingest_peer = location.rsplit("/", 1)[1]
        await wait_until(
            lambda: (
                {(p["peer_id"], p["source"]) for p in producers_of(receiver)}
                == {(ingest_peer, "camera"), (ingest_peer, "mic")}
            ),
            what="the receiver is offered the encoder's tracks",
        )
        got = receiver.receiver
        assert got is not None
        start = got.decoded["video"]
        await wait_until(lambda: got.decoded["video"] >= start + 30 and got.decoded["audio"] > 20)
        assert got.decode_errors == 0
        # The teacher's page still runs the lesson, and nobody lists the encoder.
        stage = {"type": "set_stage", "classroom_id": receiver.joined["you"]["classroom_id"]}
        assert (await lead.request(stage))["type"] == "ok"
        assert (await lead.request({"type": "set_stage", "classroom_id": None}))["type"] == "ok"
        assert all(not str(p["peer_id"]).startswith("whip-") for p in lead.joined["participants"])
        ended = await whip_delete(live, location, token)
        assert ended.status_code == 200
        await wait_until(
            lambda: {p["peer_id"] for p in producers_of(receiver)} == {lead.joined["peer_id"]},
            what="the lead page's own camera and mic come back",
        )
        assert (await whip_delete(live, location, token)).status_code == 404
    finally:
        await encoder.close()
        await receiver.close()
        await lead.close()


async def test_revoking_a_credential_ends_its_session_and_refuses_it(live: LiveService) -> None:
    room = await lead_classroom(live)
    credential = await mint(live, room, "编码器")
    lead = live.terminal("lead", publish=False)
    await lead.start(start_lesson=True)
    encoder = SyntheticPublisher(host_addresses=LOOPBACK, layers=("main",))
    try:
        offer = await encoder.create_offer()
        published = await whip(live, f"/whip/{room}", credential["token"], offer)
        assert published.status_code == 201, published.text
        await encoder.accept_answer(published.text)
        ingest_peer = published.headers["location"].rsplit("/", 1)[1]

        def encoder_producers() -> int:
            media = live.state.media.producers(live.lesson_id)
            return sum(1 for p in media if p.peer_id == ingest_peer)

        await wait_until(lambda: encoder_producers() == 2, what="the encoder publishes")
        revoked = await live.api("DELETE", f"/api/whip-credentials/{credential['id']}")
        assert revoked.status_code == 204
        await wait_until(lambda: encoder_producers() == 0, what="its session ends")
        again = await whip(live, f"/whip/{room}", credential["token"], offer)
        assert again.status_code == 401
        listed = (await live.api("GET", f"/api/classrooms/{room}/whip-credentials")).json()
        assert next(c for c in listed if c["id"] == credential["id"])["revoked_at"] is not None
    finally:
        await encoder.close()
        await lead.close()
