"""What a joined peer may ask of its room: each message checked against the grant, then applied.

Order of checks, so every refusal is predictable: the grant (forbidden), the lesson state
(lesson_ended, lesson_not_live), then the target (invalid_target).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from signaling.errors import CloseCode, ErrorCode, SignalingError
from signaling.grants import Control, Role, Source
from signaling.hooks import LessonState, Note
from signaling.media_port import TrackOffer
from signaling.peer import Peer
from signaling.policy import Kind, Want, desired_subscriptions, kind_of
from signaling.protocol import (
    AddNote,
    ClientMessage,
    EndLesson,
    Error,
    HandRaised,
    Leave,
    LessonStarted,
    LowerHand,
    Mute,
    NoteAdded,
    NoteInfo,
    Ok,
    ParticipantUpdated,
    Producer,
    ProducersChanged,
    Publish,
    PublishAnswer,
    RaiseHand,
    RecordingChanged,
    SetMediaState,
    SetRecording,
    SetStage,
    SetSubscriptions,
    StartLesson,
    SubscribeAnswer,
    TalkStart,
    TalkStop,
)
from signaling.room import Room, producer_model, utcnow

LEAD_AND_PATROL = frozenset({Role.LEAD, Role.PATROL})


def _require(peer: Peer, control: Control) -> None:
    if not peer.grant.may(control):
        raise SignalingError(ErrorCode.FORBIDDEN, f"Your grant does not allow {control.value}.")


def _require_live(room: Room) -> None:
    if room.state is LessonState.ENDED:
        raise SignalingError(ErrorCode.LESSON_ENDED, "The lesson has ended.")
    if room.state is not LessonState.LIVE:
        raise SignalingError(ErrorCode.LESSON_NOT_LIVE, "The lesson has not started yet.")


def _check_lead_page(room: Room, wants: tuple[Want, ...] | None) -> None:
    """The lead chooses only which receiving classrooms' video its grid shows (a lesson may
    have hundreds); their audio follows the stage and mute rules."""
    for want in wants or ():
        if want.classroom_id not in room.roster or kind_of(want.source) is Kind.AUDIO:
            raise SignalingError(
                ErrorCode.INVALID_TARGET,
                "The lead's wants name receiving classrooms' video (camera, board or screen).",
            )


def _ok(peer: Peer, message: ClientMessage) -> None:
    # Every request gets exactly one answer, with its id when it had one.
    peer.send(Ok(id=message.id, of=message.type))


async def handle(room: Room, peer: Peer, message: ClientMessage) -> None:
    """Applies one message from a joined peer; raises SignalingError to refuse it."""
    match message:
        case Publish() | SubscribeAnswer() | SetSubscriptions():
            # Media calls may be slow; they do not hold the room lock.
            await _media(room, peer, message)
        case Leave():
            _ok(peer, message)
            session = peer.session
            room.remove(peer, "left")
            if session is not None:
                session.close(CloseCode.NORMAL, "left")
        case _:
            async with room.lock:
                if room.closed:
                    raise SignalingError(ErrorCode.LESSON_ENDED, "The lesson has ended.")
                await _control(room, peer, message)
                if not room.closed:
                    _ok(peer, message)


async def start_lesson(room: Room) -> SignalingError | None:
    """The lesson goes live (under ``room.lock``): by its lead's start_lesson, or with no lead
    page, from the API or the timetable (RoomManager.start_lesson). Returns why a recording
    the slot asks for (policy ``always``) could not start: the lesson stays live, unrecorded.
    Nothing happens to a lesson already live."""
    if room.state is LessonState.ENDED:
        raise SignalingError(ErrorCode.LESSON_ENDED, "The lesson has ended.")
    if room.state is LessonState.LIVE:
        return None
    at = utcnow()
    await room.hooks.lesson_started(room.lesson_id, at)
    room.state, room.started_at = LessonState.LIVE, at
    room.broadcast(LessonStarted(at=at.isoformat()))
    room.changed()
    room.watch_attendance()
    if room.info.recording_policy == "always" and not room.recording:
        # The slot records every lesson: recording starts with the lesson.
        try:
            await _switch_recording(room, True, at)
        except SignalingError as exc:
            return exc
    return None


async def _control(room: Room, peer: Peer, message: ClientMessage) -> None:
    match message:
        case StartLesson():
            _require(peer, Control.LESSON)
            refused = await start_lesson(room)
            if refused is not None:  # no id: its start_lesson still succeeded
                peer.send(Error(code=refused.code, message=str(refused)))
        case EndLesson():
            _require(peer, Control.LESSON)
            at = utcnow()
            await room.hooks.lesson_ended(room.lesson_id, at)
            _ok(peer, message)
            room.end(at)
        case SetStage(classroom_id=target):
            _require(peer, Control.STAGE)
            _require_live(room)
            if target is not None:
                occupant = room.classrooms.get(target)
                if target not in room.roster or occupant is None:
                    raise SignalingError(
                        ErrorCode.INVALID_TARGET,
                        "Only a receiving classroom present in the lesson can go on stage.",
                    )
            if target != room.stage:
                room.set_stage(target)
                room.sync()
        case RaiseHand():
            _require(peer, Control.HAND)
            _require_live(room)
            classroom = _own_classroom(room, peer)
            if classroom not in room.hands and classroom != room.stage:
                room.hands.append(classroom)
                room.hands_raised += 1
                room.broadcast(HandRaised(classroom_id=classroom, hands=list(room.hands)))
        case LowerHand():
            _require(peer, Control.HAND)
            room.lower_hand(_own_classroom(room, peer))
        case Mute(classroom_id=target, muted=muted):
            _require(peer, Control.MUTE)
            if target not in room.roster:
                raise SignalingError(
                    ErrorCode.INVALID_TARGET, "Only a receiving classroom of the lesson is muted."
                )
            if room.set_heard(target, not muted):
                room.sync()
        case SetRecording(on=on):
            _require(peer, Control.RECORDING)
            if on:
                _require_live(room)
                if room.info.recording_policy == "never":
                    raise SignalingError(
                        ErrorCode.RECORDING_NOT_ALLOWED,
                        "The timetable says this lesson is not recorded.",
                    )
            if on != room.recording:
                await _switch_recording(room, on, utcnow())
        case AddNote():
            _require(peer, Control.NOTE)
            await _add_note(room, peer, message)
        case SetMediaState(mic_on=mic_on, camera_on=camera_on):
            if not peer.visible:
                raise SignalingError(
                    ErrorCode.FORBIDDEN, "Only a lead or receiving classroom shows its devices."
                )
            if (peer.mic_on, peer.camera_on) != (mic_on, camera_on):
                peer.mic_on, peer.camera_on = mic_on, camera_on
                # The sender too: every peer's list, its own included, stays one picture.
                room.broadcast(ParticipantUpdated(participant=peer.participant()))
        case TalkStart(classroom_id=target):
            _require(peer, Control.TALK)
            _require_live(room)
            await room.talkback.start(peer, target, utcnow())
            room.sync()
        case TalkStop():
            _require(peer, Control.TALK)
            if room.talkback.stop(peer.peer_id, "released", utcnow()):
                room.sync()
        case _:  # join/resume/ping never reach a room; a new type must be routed here first
            raise SignalingError(ErrorCode.UNKNOWN_TYPE, f"{message.type} is not a room command.")


def _may_publish(room: Room, peer: Peer, source: Source) -> bool:
    """The grant's sources; and a patrol's mic while it talks back (control `talk`). Its
    mic producer outlives the talk, but the policy forwards it only during one."""
    if peer.grant.may_publish(source):
        return True
    talking = peer.peer_id in room.talkback.talks
    return source is Source.MIC and talking and peer.grant.may(Control.TALK)


async def _switch_recording(room: Room, on: bool, at: datetime) -> None:
    await room.hooks.recording_changed(room.lesson_id, on, at)
    room.recording = on
    room.ever_recorded = room.ever_recorded or on
    room.broadcast(RecordingChanged(on=on, at=at.isoformat()))


def _own_classroom(room: Room, peer: Peer) -> str:
    classroom = peer.classroom_id
    if classroom is None or classroom not in room.roster:
        raise SignalingError(ErrorCode.NOT_ON_ROSTER, "Only a receiving classroom has a hand.")
    return classroom


async def _add_note(room: Room, peer: Peer, message: AddNote) -> None:
    at = utcnow()
    offset = _offset(room, at)
    note = Note(
        id=uuid.uuid4().hex,
        lesson_id=room.lesson_id,
        author=peer.grant.name,
        author_role=peer.role.value,
        at=at,
        offset_s=offset,
        text=message.text,
        account_id=peer.grant.account_id,
        scores=dict(message.scores or {}),
        rubric_version_id=message.rubric_version_id,
    )
    note = await room.hooks.note_added(note)
    room.notes += 1
    info = NoteInfo(
        id=note.id,
        author=note.author,
        author_role=note.author_role,
        at=at.isoformat(),
        offset_s=offset,
        text=note.text,
        scores=note.scores,
        rubric_version_id=note.rubric_version_id,
    )
    room.broadcast(NoteAdded(note=info), roles=LEAD_AND_PATROL)


def _offset(room: Room, at: datetime) -> float | None:
    if room.state is not LessonState.LIVE or room.started_at is None:
        return None
    return round((at - room.started_at).total_seconds(), 3)


async def _media(room: Room, peer: Peer, message: ClientMessage) -> None:
    match message:
        case Publish(sdp=sdp, tracks=tracks):
            denied = sorted(
                {t.source.value for t in tracks if not _may_publish(room, peer, t.source)}
            )
            if denied:
                raise SignalingError(
                    ErrorCode.FORBIDDEN,
                    f"Your grant does not allow publishing {', '.join(denied)}.",
                )
            if len({t.mid for t in tracks}) != len(tracks):
                raise SignalingError(ErrorCode.INVALID_MESSAGE, "tracks: every mid must differ.")
            offers = [TrackOffer(t.mid, t.source, t.layer) for t in tracks]
            answer = await room.media.publish(peer.info, sdp, offers)
            peer.send(PublishAnswer(id=message.id, sdp=answer))
        case SubscribeAnswer(sdp=sdp):
            follow_up = await room.media.subscribe_answer(peer.info, sdp)
            _ok(peer, message)
            if follow_up is not None:
                room.send_offer(peer, follow_up)
        case SetSubscriptions(wants=wants):
            if peer.role is not Role.LEAD:  # the lead chooses its grid page (below)
                _require(peer, Control.SUBSCRIBE_ANY)
            allowed = set(room.roster) | {room.info.lead.id}
            chosen = None
            if wants is not None:
                if any(w.classroom_id is not None and w.classroom_id not in allowed for w in wants):
                    raise SignalingError(
                        ErrorCode.INVALID_TARGET, "wants names a classroom not in this lesson."
                    )
                chosen = tuple(Want(w.source, w.classroom_id, w.layer) for w in wants)
            if peer.role is Role.LEAD:
                _check_lead_page(room, chosen)
            peer.wants = chosen
            peer.desired = desired_subscriptions(room.view(), peer.view)
            producers: list[Producer] = [producer_model(r) for r in sorted(peer.desired)]
            peer.send(ProducersChanged(producers=producers))
            offer = await room.media_sync(peer, id=message.id, raise_errors=True)
            if offer is None:
                _ok(peer, message)
