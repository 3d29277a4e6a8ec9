"""A classroom terminal on GStreamer's ``webrtcbin``: the WebRTC stack inside many terminals.

Run by the SYSTEM python3 with Debian's packages (python3-gi, gir1.2-gst-plugins-bad-1.0,
gstreamer1.0-plugins-{base,good,bad,ugly}, gstreamer1.0-nice, gstreamer1.0-libav,
python3-websockets; scripts/ensure-system-deps.sh installs them), never imported by the
service. It joins like any terminal: ``POST /api/join/{code}`` -> WebSocket ``join`` ->
``publish`` (its own offer) and ``subscribe_offer``/``subscribe_answer``; ICE on the
addresses given (loopback in tests). It writes one JSON object per line on stdout:
``{"event": "joined" | "published" | "error" | "stats" | "server", ...}``; ``stats`` each
second counts decoded video frames, audio buffers and decoder errors. It stops after
``--seconds`` or when stdin closes.

    python3 media/synthetic/gst_terminal.py --base http://127.0.0.1:8000 --code CODE \\
        --publish vp8 --start
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstWebRTC", "1.0")
import websockets  # noqa: E402  (Debian's python3-websockets, 10.x)
from gi.repository import Gst, GstSdp, GstWebRTC  # noqa: E402

VIDEO = {
    # Encoders tuned as a terminal's: short GOP, no B-frames, constrained baseline for H.264
    # (its profile-level-id comes from the stream: a fixed one in the caps that the encoder's
    # level does not match leaves the pipeline "not-negotiated", sending nothing).
    "vp8": "vp8enc deadline=1 target-bitrate=600000 keyframe-max-dist=60 ! "
    'rtpvp8pay pt=96 mtu=1200 ! capsfilter caps="application/x-rtp,media=video,'
    'encoding-name=VP8,payload=96,clock-rate=90000"',
    "h264": "x264enc tune=zerolatency speed-preset=ultrafast bitrate=600 key-int-max=60 ! "
    "video/x-h264,profile=constrained-baseline ! rtph264pay pt=102 mtu=1200 "
    'config-interval=-1 aggregate-mode=zero-latency ! capsfilter caps="application/x-rtp,'
    'media=video,encoding-name=H264,payload=102,clock-rate=90000,packetization-mode=(string)1"',
}
AUDIO = (
    "audiotestsrc is-live=true wave=sine freq=440 volume=0.3 ! audioconvert ! audioresample ! "
    'opusenc bitrate=32000 ! rtpopuspay pt=111 ! capsfilter caps="application/x-rtp,'
    'media=audio,encoding-name=OPUS,payload=111,clock-rate=48000"'
)


def say(**event: Any) -> None:
    print(json.dumps(event, ensure_ascii=False), flush=True)


class GstTerminal:
    def __init__(self, args: argparse.Namespace, loop: asyncio.AbstractEventLoop) -> None:
        self.args = args
        self.loop = loop
        self.ws: Any = None
        self.ids = itertools.count(1)
        self.waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.video_frames = 0
        self.audio_buffers = 0
        self.decode_errors = 0
        self.first_video_ms = -1
        self.video_caps = ""
        self.started = time.monotonic()
        self.pipe = Gst.Pipeline.new("terminal")
        self.webrtc = self._webrtcbin()
        self.pipe.add(self.webrtc)
        self.webrtc.connect("pad-added", self._on_pad)
        bus = self.pipe.get_bus()
        self._bus_thread = threading.Thread(target=self._watch_bus, args=(bus,), daemon=True)
        self._stop = threading.Event()

    def _webrtcbin(self) -> Any:
        webrtc = Gst.ElementFactory.make("webrtcbin", "webrtc")
        webrtc.set_property("bundle-policy", GstWebRTC.WebRTCBundlePolicy.MAX_BUNDLE)
        # Kept for the process's life: PyGObject drops one reference too many on this
        # property's object when its wrapper goes, which would free webrtcbin's ICE agent.
        self._ice = webrtc.get_property("ice-agent")
        for address in self.args.address:
            self._ice.emit("add-local-ip-address", address)
        return webrtc

    # -- GStreamer side (its threads) ----------------------------------------------------

    def _watch_bus(self, bus: Any) -> None:
        while not self._stop.is_set():
            message = bus.timed_pop_filtered(
                100 * Gst.MSECOND, Gst.MessageType.ERROR | Gst.MessageType.WARNING
            )
            if message is None:
                continue
            source = message.src.get_factory() if isinstance(message.src, Gst.Element) else None
            klass = source.get_klass() if source is not None else ""
            if message.type == Gst.MessageType.ERROR:
                error, _debug = message.parse_error()
            else:
                error, _debug = message.parse_warning()
            if "Decoder" in klass:
                self.decode_errors += 1
            say(event="gst_" + message.type.first_value_nick, element=message.src.get_name(),
                message=error.message)  # fmt: skip

    def _on_pad(self, element: Any, pad: Any) -> None:
        if pad.direction != Gst.PadDirection.SRC:
            return
        decode = Gst.ElementFactory.make("decodebin")
        decode.connect("pad-added", self._on_decoded)
        self.pipe.add(decode)
        decode.sync_state_with_parent()
        pad.link(decode.get_static_pad("sink"))

    def _on_decoded(self, element: Any, pad: Any) -> None:
        caps = pad.get_current_caps() or pad.query_caps(None)
        name = caps.get_structure(0).get_name()
        kind = "video" if name.startswith("video") else "audio"
        chain = "queue ! videoconvert ! fakesink sync=false" if kind == "video" else (
            "queue ! audioconvert ! fakesink sync=false")  # fmt: skip
        sink = Gst.parse_bin_from_description(chain, True)
        self.pipe.add(sink)
        sink.sync_state_with_parent()
        pad.link(sink.get_static_pad("sink"))
        if kind == "video":
            self.video_caps = caps.to_string()
        pad.add_probe(Gst.PadProbeType.BUFFER, self._count, kind)

    def _count(self, pad: Any, info: Any, kind: str) -> Any:
        if kind == "video":
            self.video_frames += 1
            if self.first_video_ms < 0:
                self.first_video_ms = int((time.monotonic() - self.started) * 1000)
        else:
            self.audio_buffers += 1
        return Gst.PadProbeReturn.OK

    def _promise(self, signal: str, *args: Any) -> Any:
        """Emit a webrtcbin action with a promise; block (in a worker thread) for its reply."""
        promise = Gst.Promise.new()
        self.webrtc.emit(signal, *args, promise)
        promise.wait()
        return promise.get_reply()

    def _description(self, kind: str, sdp: str) -> Any:
        _, message = GstSdp.SDPMessage.new_from_text(sdp)
        sdp_type = (
            GstWebRTC.WebRTCSDPType.OFFER if kind == "offer" else GstWebRTC.WebRTCSDPType.ANSWER
        )
        return GstWebRTC.WebRTCSessionDescription.new(sdp_type, message)

    async def _gathered(self) -> str:
        """The local description once ICE gathering is complete (candidates inside: the
        protocol does not trickle)."""
        complete = GstWebRTC.WebRTCICEGatheringState.COMPLETE
        for _ in range(200):
            if self.webrtc.get_property("ice-gathering-state") == complete:
                break
            await asyncio.sleep(0.05)
        return str(self.webrtc.get_property("local-description").sdp.as_text())

    # -- signaling ------------------------------------------------------------------------

    def grant(self) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.args.base}/api/join/{self.args.code}", method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        ident = str(next(self.ids))
        future: asyncio.Future[dict[str, Any]] = self.loop.create_future()
        self.waiting[ident] = future
        await self.ws.send(json.dumps({**message, "id": ident}))
        reply = await asyncio.wait_for(future, 30)
        if reply["type"] == "error":
            raise RuntimeError(f"{reply['code']}: {reply['message']}")
        return reply

    async def run(self) -> None:
        grant = await asyncio.to_thread(self.grant)
        ws_url = grant["ws_url"]
        if not ws_url.startswith(("ws://", "wss://")):
            ws_url = self.args.base.replace("http", "ws", 1) + ws_url
        self._bus_thread.start()
        async with websockets.connect(ws_url, max_size=1 << 22) as ws:
            self.ws = ws
            reader = asyncio.ensure_future(self._read())
            joined = await self.request({"type": "join", "version": 1, "token": grant["token"]})
            say(event="joined", peer_id=joined.get("peer_id"), role=joined.get("role"))
            pinger = asyncio.ensure_future(self._ping(float(joined["heartbeat_interval_s"])))
            if self.args.start and joined["lesson"]["state"] != "live":
                await self.request({"type": "start_lesson"})
            if self.args.publish:
                await self._publish()
            else:
                self.pipe.set_state(Gst.State.PLAYING)
            stats = asyncio.ensure_future(self._stats())
            stdin_closed = asyncio.ensure_future(asyncio.to_thread(sys.stdin.read))
            await asyncio.wait([stdin_closed, reader], timeout=self.args.seconds,
                               return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
            for task in (pinger, stats, reader):
                task.cancel()
            with contextlib.suppress(Exception):
                await ws.send(json.dumps({"type": "leave"}))
        self._stop.set()
        self.pipe.set_state(Gst.State.NULL)
        self._report()

    async def _publish(self) -> None:
        video = Gst.parse_bin_from_description(
            "videotestsrc is-live=true pattern=ball ! video/x-raw,width=640,height=360,"
            f"framerate=30/1 ! videoconvert ! queue ! {VIDEO[self.args.publish]}",
            True,
        )
        audio = Gst.parse_bin_from_description(AUDIO, True)
        for part in (video, audio):
            self.pipe.add(part)
            part.link(self.webrtc)
        for transceiver in self._transceivers():
            transceiver.set_property("direction", GstWebRTC.WebRTCRTPTransceiverDirection.SENDONLY)
        self.pipe.set_state(Gst.State.PLAYING)
        reply = await asyncio.to_thread(self._promise, "create-offer", None)
        offer = reply.get_value("offer")
        await asyncio.to_thread(self._promise, "set-local-description", offer)
        sdp = self._munge(await self._gathered())
        tracks = []
        for line in sdp.split("\r\n"):
            if line.startswith("m="):
                kind = line[2:7]
            elif line.startswith("a=mid:"):
                tracks.append({"mid": line[6:], "source": "camera" if kind == "video" else "mic"})
        reply = await self.request({"type": "publish", "sdp": sdp, "tracks": tracks})
        answer = self._description("answer", reply["sdp"])
        await asyncio.to_thread(self._promise, "set-remote-description", answer)
        say(event="published", offer=sdp, answer=reply["sdp"])

    def _transceivers(self) -> list[Any]:
        found = []
        for i in itertools.count():
            transceiver = self.webrtc.emit("get-transceiver", i)
            if transceiver is None:
                return found
            found.append(transceiver)
        return found

    def _munge(self, sdp: str) -> str:
        """What terminals write differently: no a=ssrc lines; a passive DTLS setup."""
        lines = sdp.split("\r\n")
        if self.args.no_ssrc:
            lines = [line for line in lines if not line.startswith(("a=ssrc", "a=msid"))]
        if self.args.setup:
            lines = [
                f"a=setup:{self.args.setup}" if line.startswith("a=setup:") else line
                for line in lines
            ]
        return "\r\n".join(lines)

    async def _answer(self, message: dict[str, Any]) -> None:
        offer = self._description("offer", message["sdp"])
        await asyncio.to_thread(self._promise, "set-remote-description", offer)
        reply = await asyncio.to_thread(self._promise, "create-answer", None)
        answer = reply.get_value("answer")
        await asyncio.to_thread(self._promise, "set-local-description", answer)
        sdp = await self._gathered()
        try:
            await self.request({"type": "subscribe_answer", "sdp": sdp})
        except RuntimeError as exc:
            say(event="error", message=str(exc))

    async def _read(self) -> None:
        answering: asyncio.Future[None] | None = None
        async for frame in self.ws:
            message = json.loads(frame)
            waiting = self.waiting.pop(str(message.get("id")), None)
            if waiting is not None and not waiting.done():
                waiting.set_result(message)
            kind = message["type"]
            if kind == "subscribe_offer":
                if answering is not None:
                    await answering  # one negotiation at a time, in order
                answering = asyncio.ensure_future(self._answer(message))
            elif kind == "error" and waiting is None:
                say(event="error", code=message["code"], message=message["message"])
            elif kind in ("producers_changed", "lesson_ended", "publish_answer"):
                say(event="server", type=kind)

    async def _ping(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self.ws.send(json.dumps({"type": "ping", "id": f"p{next(self.ids)}"}))

    async def _stats(self) -> None:
        while True:
            await asyncio.sleep(1)
            self._report()

    def _report(self) -> None:
        say(event="stats", video_frames=self.video_frames, audio_buffers=self.audio_buffers,
            decode_errors=self.decode_errors, first_video_ms=self.first_video_ms,
            video_caps=self.video_caps)  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the service, e.g. http://127.0.0.1:8000")
    parser.add_argument("--code", required=True, help="a join link's code")
    parser.add_argument("--publish", choices=sorted(VIDEO), help="publish camera + mic")
    parser.add_argument("--start", action="store_true", help="start the lesson (lead)")
    parser.add_argument("--address", action="append", default=[],
                        help="gather ICE on this address only (repeatable)")  # fmt: skip
    parser.add_argument("--no-ssrc", action="store_true", help="offer without a=ssrc lines")
    parser.add_argument("--setup", choices=["actpass", "passive", "active"], help="offer setup")
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    Gst.init(None)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    terminal = GstTerminal(args, loop)
    try:
        loop.run_until_complete(terminal.run())
    except (OSError, RuntimeError, urllib.error.URLError, websockets.WebSocketException) as exc:
        say(event="error", message=str(exc))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
