"""The protocol schema and its documentation stay in step."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest
from pydantic import ValidationError

from signaling.errors import CloseCode, ErrorCode
from signaling.protocol import (
    CLIENT_TYPES,
    Error,
    Publish,
    ServerMessage,
    StageChanged,
    parse_client,
    server_adapter,
)

DOC = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
SERVER_TYPES = [
    m.model_fields["type"].default for m in typing.get_args(typing.get_args(ServerMessage)[0])
]


@pytest.mark.parametrize("code", [c.value for c in ErrorCode])
def test_every_error_code_is_documented(code: str) -> None:
    assert re.search(rf"\| `{code}` \|", DOC)


@pytest.mark.parametrize("code", [int(c) for c in CloseCode])
def test_every_close_code_is_documented(code: int) -> None:
    assert re.search(rf"\| {code} \|", DOC)


@pytest.mark.parametrize("kind", sorted(CLIENT_TYPES) + SERVER_TYPES)
def test_every_message_type_is_documented(kind: str) -> None:
    assert re.search(rf"\| `{kind}` \|", DOC)


def test_error_codes_are_unique_strings() -> None:
    values = [c.value for c in ErrorCode]
    assert len(values) == len(set(values))


def test_a_publish_message_parses_into_typed_tracks() -> None:
    message = parse_client(
        '{"type": "publish", "id": "7", "sdp": "v=0", "tracks": [{"mid": "0", "source": "mic"}]}'
    )
    assert isinstance(message, Publish)
    assert message.tracks[0].layer == "main"


def test_strict_fields_refuse_coercion() -> None:
    with pytest.raises(ValidationError):
        parse_client('{"type": "mute", "classroom_id": "r1", "muted": 1}')


def test_server_messages_round_trip_through_the_union() -> None:
    for message in (
        Error(id="x", code=ErrorCode.FORBIDDEN, message="no"),
        StageChanged(classroom_id="r1", previous=None, muted=["r2"]),
    ):
        assert server_adapter.validate_json(message.model_dump_json()) == message
