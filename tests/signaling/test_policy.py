"""The 1+N subscription policy: small scenarios, then invariants over random lessons."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from signaling.grants import Role, Source
from signaling.policy import (
    LEAD_GRID_DEFAULT,
    LEAD_GRID_MAX,
    Kind,
    Layer,
    LessonView,
    PeerView,
    ProducerRef,
    PublishedTrack,
    Want,
    desired_subscriptions,
)

BOTH = frozenset({Layer.MAIN, Layer.LOW})
MAIN = frozenset({Layer.MAIN})


def lead_tracks(layers: frozenset[Layer] = BOTH) -> tuple[PublishedTrack, ...]:
    return (
        PublishedTrack("L", Role.LEAD, "lead", Source.CAMERA, layers),
        PublishedTrack("L", Role.LEAD, "lead", Source.BOARD, MAIN),
        PublishedTrack("L", Role.LEAD, "lead", Source.SCREEN, MAIN),
        PublishedTrack("L", Role.LEAD, "lead", Source.MIC, MAIN),
    )


def receiver_tracks(n: int, layers: frozenset[Layer] = BOTH) -> tuple[PublishedTrack, ...]:
    out: list[PublishedTrack] = []
    for i in range(1, n + 1):
        out.append(PublishedTrack(f"R{i}", Role.RECEIVER, f"r{i}", Source.CAMERA, layers))
        out.append(PublishedTrack(f"R{i}", Role.RECEIVER, f"r{i}", Source.MIC, MAIN))
    return tuple(out)


LEAD = PeerView("L", Role.LEAD, "lead")
R1 = PeerView("R1", Role.RECEIVER, "r1")
R2 = PeerView("R2", Role.RECEIVER, "r2")
PATROL = PeerView("P", Role.PATROL)
RECORDER = PeerView("REC", Role.RECORDER)


def refs(subs: frozenset[ProducerRef]) -> set[tuple[str, str, str]]:
    return {(r.peer_id, r.source.value, r.layer.value) for r in subs}


def test_the_lead_sees_every_receiver_on_main_when_few_and_hears_nobody_by_default() -> None:
    state = LessonView(lead_tracks() + receiver_tracks(3))
    assert refs(desired_subscriptions(state, LEAD)) == {
        ("R1", "camera", "main"),
        ("R2", "camera", "main"),
        ("R3", "camera", "main"),
    }


def test_the_lead_sees_receivers_on_the_low_layer_past_the_threshold() -> None:
    state = LessonView(receiver_tracks(5), low_layer_above=4)
    subs = desired_subscriptions(state, LEAD)
    assert {r.layer for r in subs} == {Layer.LOW}
    assert len(subs) == 5


def test_the_threshold_is_a_parameter() -> None:
    state = LessonView(receiver_tracks(3), low_layer_above=2)
    assert {r.layer for r in desired_subscriptions(state, LEAD)} == {Layer.LOW}


def test_the_on_stage_receiver_reaches_the_lead_on_main_with_audio() -> None:
    state = LessonView(receiver_tracks(6), stage="r2", audible=frozenset({"r2"}))
    subs = refs(desired_subscriptions(state, LEAD))
    assert ("R2", "camera", "main") in subs
    assert ("R2", "mic", "main") in subs
    assert ("R1", "camera", "low") in subs
    assert not {s for s in subs if s[1] == "mic" and s[0] != "R2"}


def test_an_explicitly_unmuted_receiver_is_heard_by_the_lead_off_stage() -> None:
    state = LessonView(receiver_tracks(3), audible=frozenset({"r3"}))
    assert ("R3", "mic", "main") in refs(desired_subscriptions(state, LEAD))


def test_a_muted_on_stage_receiver_is_seen_but_not_heard_by_the_lead() -> None:
    state = LessonView(receiver_tracks(3), stage="r1", audible=frozenset())
    subs = refs(desired_subscriptions(state, LEAD))
    assert ("R1", "camera", "main") in subs and ("R1", "mic", "main") not in subs


def test_a_receiver_gets_every_lead_source_on_main_and_no_other_receiver() -> None:
    state = LessonView(lead_tracks() + receiver_tracks(3))
    assert refs(desired_subscriptions(state, R1)) == {
        ("L", "camera", "main"),
        ("L", "board", "main"),
        ("L", "screen", "main"),
        ("L", "mic", "main"),
    }


def test_receivers_get_the_on_stage_classroom_but_not_themselves() -> None:
    state = LessonView(lead_tracks() + receiver_tracks(3), stage="r2")
    assert {("R2", "camera", "main"), ("R2", "mic", "main")} <= refs(
        desired_subscriptions(state, R1)
    )
    assert not {s for s in refs(desired_subscriptions(state, R2)) if s[0] == "R2"}


def test_a_patrol_gets_the_lead_camera_low_and_mic_by_default() -> None:
    state = LessonView(lead_tracks() + receiver_tracks(2), stage="r1")
    assert refs(desired_subscriptions(state, PATROL)) == {
        ("L", "camera", "low"),
        ("L", "mic", "main"),
    }


def test_a_patrol_gets_exactly_what_it_asked_for() -> None:
    wants = (Want(Source.CAMERA, "r2", Layer.MAIN), Want(Source.BOARD, None, Layer.LOW))
    patrol = PeerView("P", Role.PATROL, None, wants)
    state = LessonView(lead_tracks() + receiver_tracks(2))
    # The board has no low layer: main instead.
    assert refs(desired_subscriptions(state, patrol)) == {
        ("R2", "camera", "main"),
        ("L", "board", "main"),
    }


def test_a_patrol_asking_for_nothing_gets_nothing() -> None:
    patrol = PeerView("P", Role.PATROL, None, ())
    assert desired_subscriptions(LessonView(lead_tracks()), patrol) == frozenset()


def test_a_patrol_wanting_audio_gets_the_main_layer() -> None:
    patrol = PeerView("P", Role.PATROL, None, (Want(Source.MIC, "r1", Layer.LOW),))
    assert refs(desired_subscriptions(LessonView(receiver_tracks(1)), patrol)) == {
        ("R1", "mic", "main")
    }


def test_the_recorder_gets_lead_tracks_and_the_on_stage_tracks_on_main() -> None:
    state = LessonView(lead_tracks() + receiver_tracks(3), stage="r3")
    assert refs(desired_subscriptions(state, RECORDER)) == {
        ("L", "camera", "main"),
        ("L", "board", "main"),
        ("L", "screen", "main"),
        ("L", "mic", "main"),
        ("R3", "camera", "main"),
        ("R3", "mic", "main"),
    }


def _grid(subs: frozenset[ProducerRef]) -> set[str]:
    return {r.peer_id for r in subs if r.kind is Kind.VIDEO}


def test_the_lead_never_gets_hundreds_of_videos_by_default() -> None:
    state = LessonView(receiver_tracks(300), low_layer_above=4)
    subs = desired_subscriptions(state, LEAD)
    assert len(_grid(subs)) == LEAD_GRID_DEFAULT
    # The first page by classroom id, on the low layer.
    first = sorted(f"r{i}" for i in range(1, 301))[:LEAD_GRID_DEFAULT]
    assert {r.classroom_id for r in subs} == set(first)
    assert {r.layer for r in subs} == {Layer.LOW}


def test_the_lead_gets_the_page_it_asked_for_plus_the_stage() -> None:
    wants = tuple(Want(Source.CAMERA, f"r{i}", Layer.LOW) for i in (250, 251, 252))
    state = LessonView(receiver_tracks(300), stage="r7", audible=frozenset({"r7"}))
    subs = refs(desired_subscriptions(state, PeerView("L", Role.LEAD, "lead", wants)))
    assert subs == {
        ("R250", "camera", "low"),
        ("R251", "camera", "low"),
        ("R252", "camera", "low"),
        ("R7", "camera", "main"),
        ("R7", "mic", "main"),
    }


def test_the_leads_page_is_cut_at_the_grid_maximum() -> None:
    wants = tuple(Want(Source.CAMERA, f"r{i}", Layer.LOW) for i in range(1, 101))
    state = LessonView(receiver_tracks(100))
    subs = desired_subscriptions(state, PeerView("L", Role.LEAD, "lead", wants))
    assert len(_grid(subs)) == LEAD_GRID_MAX


def test_a_missing_low_layer_falls_back_to_main() -> None:
    state = LessonView(receiver_tracks(6, layers=MAIN))
    assert {r.layer for r in desired_subscriptions(state, LEAD)} == {Layer.MAIN}


def test_a_producer_with_only_a_low_layer_is_received_as_it_is() -> None:
    state = LessonView(lead_tracks(layers=frozenset({Layer.LOW})))
    camera = [r for r in desired_subscriptions(state, R1) if r.source is Source.CAMERA]
    assert [r.layer for r in camera] == [Layer.LOW]


def test_nothing_is_received_before_anything_is_published() -> None:
    for peer in (LEAD, R1, PATROL, RECORDER):
        assert desired_subscriptions(LessonView(stage="r1"), peer) == frozenset()


def test_refs_carry_kind_and_classroom() -> None:
    (mic,) = [
        r for r in desired_subscriptions(LessonView(lead_tracks()), R1) if r.kind is Kind.AUDIO
    ]
    assert mic.source is Source.MIC and mic.classroom_id == "lead"


# Invariants over random lessons ---------------------------------------------------------

classrooms = st.sampled_from(["r1", "r2", "r3", "r4", "r5", "r6"])
layers = st.sampled_from([BOTH, MAIN, frozenset({Layer.LOW})])


@st.composite
def lessons(draw: st.DrawFn) -> tuple[LessonView, list[PeerView]]:
    rooms = draw(st.lists(classrooms, unique=True, max_size=6))
    tracks: list[PublishedTrack] = []
    peers = [LEAD, PATROL, RECORDER]
    if draw(st.booleans()):
        tracks += [t for t in lead_tracks(draw(layers)) if draw(st.booleans())]
    for room in rooms:
        pid = room.upper()
        peers.append(PeerView(pid, Role.RECEIVER, room))
        for source in (Source.CAMERA, Source.MIC):
            if draw(st.booleans()):
                tracks.append(PublishedTrack(pid, Role.RECEIVER, room, source, draw(layers)))
    wants = draw(
        st.none()
        | st.lists(
            st.builds(
                Want,
                st.sampled_from(list(Source)),
                st.none() | classrooms,
                st.sampled_from(list(Layer)),
            ),
            max_size=4,
        ).map(tuple)
    )
    peers.append(PeerView("P2", Role.PATROL, None, wants))
    state = LessonView(
        tuple(tracks),
        stage=draw(st.none() | classrooms),
        audible=frozenset(draw(st.lists(classrooms, max_size=3))),
        low_layer_above=draw(st.integers(0, 6)),
    )
    return state, peers


@settings(max_examples=100, deadline=None)
@given(lessons())
def test_nobody_ever_receives_its_own_producers(lesson: tuple[LessonView, list[PeerView]]) -> None:
    state, peers = lesson
    for peer in peers:
        assert all(r.peer_id != peer.peer_id for r in desired_subscriptions(state, peer))


@settings(max_examples=100, deadline=None)
@given(lessons())
def test_every_subscription_names_a_published_source_and_layer(
    lesson: tuple[LessonView, list[PeerView]],
) -> None:
    state, peers = lesson
    published = {(t.peer_id, t.source): t.layers for t in state.tracks}
    for peer in peers:
        for ref in desired_subscriptions(state, peer):
            assert ref.layer in published[(ref.peer_id, ref.source)]


@settings(max_examples=100, deadline=None)
@given(lessons())
def test_receivers_hear_and_see_no_other_receiver_unless_it_is_on_stage(
    lesson: tuple[LessonView, list[PeerView]],
) -> None:
    state, peers = lesson
    for peer in (p for p in peers if p.role is Role.RECEIVER):
        for ref in desired_subscriptions(state, peer):
            assert ref.peer_id == "L" or ref.classroom_id == state.stage


@settings(max_examples=100, deadline=None)
@given(lessons())
def test_the_lead_hears_only_audible_classrooms(
    lesson: tuple[LessonView, list[PeerView]],
) -> None:
    state, _ = lesson
    for ref in desired_subscriptions(state, LEAD):
        if ref.kind is Kind.AUDIO:
            assert ref.classroom_id in state.audible


@settings(max_examples=100, deadline=None)
@given(lessons())
def test_patrol_peers_publish_nothing_so_nobody_receives_a_patrol(
    lesson: tuple[LessonView, list[PeerView]],
) -> None:
    state, peers = lesson
    patrol_track = PublishedTrack("P", Role.PATROL, None, Source.CAMERA, MAIN)
    state = LessonView(
        (*state.tracks, patrol_track), state.stage, state.audible, state.low_layer_above
    )
    for peer in peers:
        assert all(r.peer_id != "P" for r in desired_subscriptions(state, peer))


@settings(max_examples=100, deadline=None)
@given(lessons())
def test_the_policy_is_deterministic(lesson: tuple[LessonView, list[PeerView]]) -> None:
    state, peers = lesson
    for peer in peers:
        assert desired_subscriptions(state, peer) == desired_subscriptions(state, peer)
