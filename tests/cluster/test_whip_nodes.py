"""WHIP with many nodes: two real `tongke serve` processes on one Redis and one database.

The lesson lives on node A. An encoder that posts its offer to node B is answered 307 with
A's WHIP URL (RFC 9725 section 4.5: tongke tells clients where the lesson lives, as it does
for joins); posted there with its bearer again it publishes, the answer's Location is A's
absolute URL, and a receiver (sent from B to A by its join link) decodes the encoder's
picture. A DELETE sent to B is redirected to A as well.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from cluster_support import Node, admin_headers, codes, seed_district, start_node, until

from media.synthetic.peers import SyntheticPublisher
from media.synthetic.terminal import SyntheticTerminal

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]

LOOPBACK = ["127.0.0.1"]


def producers_of(terminal: SyntheticTerminal) -> set[tuple[str, str]]:
    changes = terminal.of_type("producers_changed")
    return {(p["peer_id"], p["source"]) for p in changes[-1]["producers"]} if changes else set()


async def post_offer(url: str, token: str, offer: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as http:  # redirects are not followed
        return await http.post(
            url,
            content=offer.encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/sdp"},
        )


async def test_whip_to_a_node_that_is_not_the_lessons_home_is_redirected_there(
    tmp_path: Path, prefix: str
) -> None:
    database_url, demo = await seed_district(tmp_path)
    links = codes(demo)
    a = await start_node("node-a", tmp_path, database_url, prefix)
    b = await start_node("node-b", tmp_path, database_url, prefix)
    nodes: list[Node] = [a, b]
    terminals: list[SyntheticTerminal] = []
    encoder = SyntheticPublisher(host_addresses=LOOPBACK, layers=("main",), codec="h264")
    try:
        auth = await admin_headers(b, demo)
        async with httpx.AsyncClient(base_url=b.url, headers=auth) as admin_b:
            # B drains while the lead page joins, so the lesson's home is A.
            assert (await admin_b.post("/api/cluster/drain")).status_code == 200
            lead = SyntheticTerminal(
                a.url, links["lead"][0], host_addresses=LOOPBACK, publish=False
            )
            terminals.append(lead)
            await lead.start(start_lesson=True)
            assert (await admin_b.post("/api/cluster/undrain")).status_code == 200
            assert (await admin_b.get("/api/cluster")).json()["lessons"] == {
                demo.lesson_id: "node-a"
            }
            lesson = (await admin_b.get(f"/api/lessons/{demo.lesson_id}")).json()
            room = lesson["lead"]["id"]
            minted = await admin_b.post(
                f"/api/classrooms/{room}/whip-credentials", json={"name": "OBS"}
            )
            assert minted.status_code == 201, minted.text
        token = minted.json()["token"]
        assert minted.json()["whip_url"] == f"{b.url}/whip/{room}"

        offer = await encoder.create_offer()
        wrong = await post_offer(f"{b.url}/whip/{room}", "not-the-token", offer)
        assert wrong.status_code == 401  # the credential is checked before anything else
        moved = await post_offer(f"{b.url}/whip/{room}", token, offer)
        assert moved.status_code == 307, moved.text
        assert moved.headers["location"] == f"{a.url}/whip/{room}"
        published = await post_offer(moved.headers["location"], token, offer)
        assert published.status_code == 201, published.text
        location = published.headers["location"]
        assert location.startswith(f"{a.url}/whip/{room}/whip-")
        await encoder.accept_answer(published.text)

        # A receiver opens its link on B, is sent to A, and plays the encoder's picture.
        receiver = SyntheticTerminal(
            b.url, links["receiver"][0], host_addresses=LOOPBACK, decode=True, publish=False
        )
        terminals.append(receiver)
        await receiver.start()
        ingest_peer = location.rsplit("/", 1)[1]
        await until(
            "the receiver is offered the encoder's camera and mic",
            lambda: producers_of(receiver) == {(ingest_peer, "camera"), (ingest_peer, "mic")},
            20,
        )
        got = receiver.receiver
        assert got is not None
        await until("it decodes the encoder", lambda: got.decoded["video"] >= 30, 20)
        assert got.decode_errors == 0

        # A DELETE sent to B goes to A too; at A the session ends.
        resource = location.removeprefix(a.url)
        async with httpx.AsyncClient(timeout=30) as http:
            bearer = {"Authorization": f"Bearer {token}"}
            sent_on = await http.delete(f"{b.url}{resource}", headers=bearer)
            assert sent_on.status_code == 307 and sent_on.headers["location"] == location
            assert (await http.delete(location, headers=bearer)).status_code == 200
            assert (await http.delete(location, headers=bearer)).status_code == 404
        await until(
            "the encoder's tracks are gone", lambda: not producers_of(receiver) & {
                (ingest_peer, "camera"), (ingest_peer, "mic")}, 15
        )  # fmt: skip
    finally:
        await encoder.close()
        for terminal in terminals:
            await terminal.close()
        for node in nodes:
            if node.proc.returncode is None:
                node.proc.kill()
                await node.proc.wait()
