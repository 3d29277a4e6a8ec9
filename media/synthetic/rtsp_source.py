"""A 录播 host stand-in: an RTSP server (gst-rtsp-server) sending H.264 (or H.265) + AAC.

Run by the SYSTEM python3 with Debian's packages (gir1.2-gst-rtsp-server-1.0, x264/x265,
voaacenc; scripts/ensure-system-deps.sh). Serves ``rtsp://HOST:PORT/PATH`` with a moving
test picture and a 440 Hz tone, a keyframe every ``--gop`` frames (SPS/PPS in band), one
shared pipeline for every client (as a 录播 host's encoder is). With ``--user`` and
``--password`` it asks for Basic/Digest authentication. Prints ``ready`` when listening.

    python3 media/synthetic/rtsp_source.py --port 8554 --path /live/main --codec h264
"""

from __future__ import annotations

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

VIDEO = {
    "h264": "x264enc tune=zerolatency speed-preset={preset} bitrate={kbps} key-int-max={gop} "
    "bframes=0 ! video/x-h264,profile={profile} ! rtph264pay name=pay0 pt=96 "
    "config-interval=-1",
    "h265": "x265enc tune=zerolatency speed-preset=ultrafast bitrate={kbps} "
    "key-int-max={gop} ! rtph265pay name=pay0 pt=96 config-interval=-1",
}
AUDIO = (
    "audiotestsrc is-live=true wave=sine freq=440 volume=0.3 ! audioconvert ! audioresample ! "
    "audio/x-raw,rate=44100,channels=2 ! voaacenc bitrate=64000 ! rtpmp4gpay name=pay1 pt=97"
)


def launch_line(args: argparse.Namespace) -> str:
    # x264's ultrafast preset drops CABAC and 8x8 transforms and so writes Constrained
    # Baseline whatever profile is asked: Main and High need a preset that keeps them.
    preset = "ultrafast" if args.profile == "baseline" else "veryfast"
    video = VIDEO[args.codec].format(
        kbps=args.kbps, gop=args.gop, profile=args.profile, preset=preset
    )
    return (
        f"( videotestsrc is-live=true pattern={args.pattern} ! video/x-raw,width={args.width},"
        f"height={args.height},framerate={args.fps}/1 ! videoconvert ! "
        f"queue ! {video} {'' if args.no_audio else AUDIO} )"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8554)
    parser.add_argument("--path", default="/live/main")
    parser.add_argument("--codec", choices=sorted(VIDEO), default="h264")
    parser.add_argument("--profile", default="main", help="H.264 profile (baseline, main, high)")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--kbps", type=int, default=800)
    parser.add_argument("--gop", type=int, default=30, help="frames between keyframes")
    parser.add_argument("--no-audio", action="store_true")
    parser.add_argument(
        "--pattern", default="ball", help="videotestsrc pattern (snow: hard to compress)"
    )
    parser.add_argument("--user", default="")
    parser.add_argument("--password", default="")
    args = parser.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address(args.address)
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch_line(args))
    factory.set_shared(True)
    if args.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", args.user)
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password), token)
        server.set_auth(auth)
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_role(args.user)
        permissions.add_permission_for_role(args.user, "media.factory.access", True)
        permissions.add_permission_for_role(args.user, "media.factory.construct", True)
        factory.set_permissions(permissions)
    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on {args.address}:{args.port}", file=sys.stderr, flush=True)
        return 1
    loop = GLib.MainLoop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, loop.quit)
    print("ready", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
