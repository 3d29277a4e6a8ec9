#!/usr/bin/env bash
# Makes sure the system services and packages the tests use are present.
# PostgreSQL and Redis run on the development and CI machines already; start them if stopped.
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else "$@"; fi; }

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v turnserver >/dev/null 2>&1 || need_apt+=(coturn)
# tests/web/test_https.py trusts the local CA in an NSS database, as a classroom PC does.
command -v certutil >/dev/null 2>&1 || need_apt+=(libnss3-tools)
# The nginx server block of docs/operations.md is run for real (tests/web/test_nginx_proxy.py).
[ -x /usr/sbin/nginx ] || need_apt+=(nginx-light)
# The rendition title card draws Chinese text.
fc-list :lang=zh 2>/dev/null | grep -q . || need_apt+=(fonts-wqy-microhei fontconfig)
# GStreamer for the system python3 (where Debian's python3-gi lives): tests/media/
# test_gstreamer.py joins lessons through webrtcbin as classroom terminals do, and the RTSP
# tests serve a 录播 host's H.264 + AAC stream from gst-rtsp-server.
gst_probe='import sys, gi, websockets
gi.require_version("Gst", "1.0"); gi.require_version("GstWebRTC", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst
Gst.init(None)
sys.exit(any(Gst.ElementFactory.find(e) is None for e in ("webrtcbin", "nicesrc", "vp8enc",
    "x264enc", "avdec_h264", "opusenc", "voaacenc", "rtspsrc", "rtph264pay")))'
/usr/bin/python3 -c "$gst_probe" 2>/dev/null || need_apt+=(python3-gi python3-websockets \
  gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 gir1.2-gst-plugins-bad-1.0 \
  gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-nice gstreamer1.0-libav \
  gstreamer1.0-rtsp gstreamer1.0-tools)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]} from Debian packages"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! port_open 5432 && command -v pg_ctlcluster >/dev/null; then
  echo "starting PostgreSQL"
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
fi
if ! port_open 6379 && command -v redis-server >/dev/null; then
  echo "starting Redis"
  as_root redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no || true
fi
