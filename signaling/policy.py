"""The 1+N subscription policy: which producers each peer should receive. A pure function.

Rules (DESIGN.md, roles table):

- lead: its grid page of receivers' video, never more than `LEAD_GRID_MAX` classrooms (a
  lesson may have hundreds): the classrooms it asked for (`PeerView.wants`, at the layer
  asked), by default the first `LEAD_GRID_DEFAULT` by classroom id (the low layer when more
  than `low_layer_above` receivers publish video, main otherwise); the on-stage receiver's
  video always, on the main layer; a receiver's audio only while `audible` names it.
- receiver: every video source of the lead (main) and the lead's audio; the on-stage
  receiver's video (main) and audio; never another receiver otherwise.
- patrol: what it asked for (`PeerView.wants`); by default the lead's camera (low) and mic.
- recorder: the lead's tracks (main) and the on-stage receiver's tracks (main).
- talkback: while a patrol talks to a classroom (`LessonView.talks`), that classroom's
  peer (lead or receiver) also receives the patrol's mic; nobody else ever does.
- nobody receives its own producers; a wanted layer a producer lacks falls back to main
  (or to whatever layer it has).

Audio toward the lead (classroom echo): `LessonView.audible` is the set of receiving
classrooms whose audio reaches the lead. The room computes it as: the on-stage classroom,
unless the lead muted it, plus any classroom the lead explicitly unmuted. See room.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from signaling.grants import Role, Source

LOW_LAYER_ABOVE = 4
# The lead's grid: classrooms whose video it gets when it has not chosen, and at most ever.
LEAD_GRID_DEFAULT = 16
LEAD_GRID_MAX = 32


class Kind(StrEnum):
    AUDIO = "audio"
    VIDEO = "video"


class Layer(StrEnum):
    MAIN = "main"
    LOW = "low"


def kind_of(source: Source) -> Kind:
    return Kind.AUDIO if source is Source.MIC else Kind.VIDEO


@dataclass(frozen=True, slots=True, order=True)
class ProducerRef:
    """One producer a peer should receive: whose, which source and which layer."""

    peer_id: str
    source: Source
    layer: Layer = Layer.MAIN
    classroom_id: str | None = field(default=None, compare=False)

    @property
    def kind(self) -> Kind:
        return kind_of(self.source)


@dataclass(frozen=True, slots=True)
class PublishedTrack:
    """A source a peer publishes and the layers it sends of it (as the media plane reports)."""

    peer_id: str
    role: Role
    classroom_id: str | None
    source: Source
    layers: frozenset[Layer] = frozenset({Layer.MAIN})


@dataclass(frozen=True, slots=True)
class Want:
    """A patrol's wish: a classroom's source (None: the lead's) at a layer."""

    source: Source
    classroom_id: str | None = None
    layer: Layer = Layer.LOW


DEFAULT_PATROL_WANTS: tuple[Want, ...] = (
    Want(Source.CAMERA, None, Layer.LOW),
    Want(Source.MIC, None, Layer.MAIN),
)


@dataclass(frozen=True, slots=True)
class LessonView:
    """What the policy needs to know about a lesson at one moment."""

    tracks: tuple[PublishedTrack, ...] = ()
    stage: str | None = None
    audible: frozenset[str] = frozenset()
    low_layer_above: int = LOW_LAYER_ABOVE
    # Talkback: (patrol peer id, classroom id it talks to) pairs.
    talks: frozenset[tuple[str, str]] = frozenset()


@dataclass(frozen=True, slots=True)
class PeerView:
    peer_id: str
    role: Role
    classroom_id: str | None = None
    # Patrol only: None means the default wall view.
    wants: tuple[Want, ...] | None = None


def _ref(track: PublishedTrack, layer: Layer) -> ProducerRef:
    if layer not in track.layers:
        # Fall back to main; a producer sending only its low copy is received as it is.
        layer = Layer.LOW if track.layers == {Layer.LOW} else Layer.MAIN
    return ProducerRef(track.peer_id, track.source, layer, track.classroom_id)


def _on_stage(track: PublishedTrack, stage: str | None) -> bool:
    return stage is not None and track.role is Role.RECEIVER and track.classroom_id == stage


def _lead_grid(
    wants: tuple[Want, ...] | None, videos: list[PublishedTrack], grid: Layer
) -> dict[tuple[str | None, Source], Layer]:
    """(classroom, source) -> layer of the lead's grid page: what it chose, else the first
    classrooms by id; never more than LEAD_GRID_MAX classrooms."""
    if wants is None:
        first = sorted({t.classroom_id or "" for t in videos})[:LEAD_GRID_DEFAULT]
        return {(t.classroom_id, t.source): grid for t in videos if t.classroom_id in first}
    chosen: dict[tuple[str | None, Source], Layer] = {}
    classrooms: set[str | None] = set()
    for want in wants:
        if want.classroom_id not in classrooms and len(classrooms) >= LEAD_GRID_MAX:
            continue
        classrooms.add(want.classroom_id)
        chosen[(want.classroom_id, want.source)] = want.layer
    return chosen


def _for_lead(
    state: LessonView, receivers: Iterable[PublishedTrack], wants: tuple[Want, ...] | None
) -> set[ProducerRef]:
    receivers = list(receivers)
    videos = [t for t in receivers if kind_of(t.source) is Kind.VIDEO]
    grid = Layer.LOW if len({t.peer_id for t in videos}) > state.low_layer_above else Layer.MAIN
    page = _lead_grid(wants, videos, grid)
    out: set[ProducerRef] = set()
    for track in receivers:
        if kind_of(track.source) is Kind.AUDIO:
            if track.classroom_id in state.audible:
                out.add(_ref(track, Layer.MAIN))
        elif _on_stage(track, state.stage):
            out.add(_ref(track, Layer.MAIN))
        elif (layer := page.get((track.classroom_id, track.source))) is not None:
            out.add(_ref(track, layer))
    return out


def _for_patrol(state: LessonView, wants: tuple[Want, ...]) -> set[ProducerRef]:
    out: set[ProducerRef] = set()
    for want in wants:
        for track in state.tracks:
            if track.source is not want.source or track.role is Role.PATROL:
                continue
            if want.classroom_id is None and track.role is not Role.LEAD:
                continue
            if want.classroom_id is not None and track.classroom_id != want.classroom_id:
                continue
            layer = Layer.MAIN if kind_of(track.source) is Kind.AUDIO else want.layer
            out.add(_ref(track, layer))
    return out


def desired_subscriptions(state: LessonView, peer: PeerView) -> frozenset[ProducerRef]:
    """The producers `peer` should receive in `state`. Deterministic; no side effects."""
    others = [t for t in state.tracks if t.peer_id != peer.peer_id]
    lead = [t for t in others if t.role is Role.LEAD]
    receivers = [t for t in others if t.role is Role.RECEIVER]
    staged = [t for t in receivers if _on_stage(t, state.stage)]
    out: set[ProducerRef]
    if peer.role is Role.LEAD:
        out = _for_lead(state, receivers, peer.wants)
    elif peer.role is Role.RECEIVER:
        out = {_ref(t, Layer.MAIN) for t in lead + staged}
    elif peer.role is Role.PATROL:
        wants = DEFAULT_PATROL_WANTS if peer.wants is None else peer.wants
        out = _for_patrol(
            LessonView(tuple(others), state.stage, state.audible, state.low_layer_above), wants
        )
    elif peer.role is Role.RECORDER:
        out = {_ref(t, Layer.MAIN) for t in lead + staged}
    else:  # pragma: no cover - a new role must be given a rule here first
        out = set()
    if state.talks and peer.role in (Role.LEAD, Role.RECEIVER) and peer.classroom_id:
        out |= {
            _ref(t, Layer.MAIN)
            for t in others
            if t.role is Role.PATROL
            and t.source is Source.MIC
            and (t.peer_id, peer.classroom_id) in state.talks
        }
    return frozenset(r for r in out if r.peer_id != peer.peer_id)
