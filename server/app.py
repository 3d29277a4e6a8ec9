"""The app factory and its one lifespan. Nothing is built at import time."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from media.sfu import MediaService
from recorder.jobs import RenditionRunner
from server.api.access import access, require_declared_access
from server.api.nul_guard import NulGuardMiddleware
from server.cluster.cascade_wiring import cascade_port, join_cascade
from server.cluster.wiring import join_cluster, node_id_for
from server.db import open_database
from server.disk_space import DiskSpaceCollector
from server.lesson_hooks import DatabaseLessonHooks
from server.login_throttle import LoginThrottle
from server.media_metrics import MediaCollector
from server.metrics import CONTENT_TYPE, HttpMetricsMiddleware, Metrics
from server.recording import RecordingController, RecordingObserver
from server.rtsp_sources import RtspSupervisor
from server.security_headers import SecurityHeadersMiddleware
from server.settings import Settings
from server.state import AppState
from server.tls import ServingTls
from server.tokens import JoinTokens
from server.turn import IceServerIssuer
from server.workers.wiring import start_workers
from signaling.bus import open_bus
from signaling.faults import FaultyBus, SignalingFaults
from signaling.rooms import RoomConfig, RoomManager
from signaling.sfu_port import SfuMediaPort

log = logging.getLogger("tongke")


def freeze_startup_objects() -> None:
    """Take what exists once the service has started out of the cyclic collector's view.

    Modules, classes and the app's own objects live as long as the process; a full
    collection still walked all of them: a 97 ms pause of the event loop with 50 receivers
    (every packet waiting meanwhile), 13 ms after freezing (a one-off timing in the bench
    host, docs/benchmarks.md).
    Frozen objects are never collected, so this runs once per process, after the first start.
    """
    if gc.get_freeze_count() == 0:
        gc.freeze()


def create_app(settings: Settings, tls: ServingTls | None = None) -> FastAPI:
    """`tls`: what server.tls.prepare_tls made for this start (None: plain HTTP)."""
    metrics = Metrics()
    # Built here so bad ICE/TURN settings stop the start, not a browser's join.
    ice = IceServerIssuer.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, AppState]]:
        async with AsyncExitStack() as stack:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            db = await stack.enter_async_context(open_database(settings))
            tokens = JoinTokens(settings.resolved_secret(), settings.join_token_ttl_s)
            bus = await stack.enter_async_context(
                open_bus(
                    settings.redis_url, node_id=node_id_for(settings), prefix=settings.redis_prefix
                )
            )
            cluster_bus = bus  # the real bus (the fault wrapper below only wraps it)
            # Fault drills only (never in production: Settings refuses the combination).
            signaling_faults = SignalingFaults() if settings.faults else None
            if settings.faults and (settings.faults_bus_drop or settings.faults_bus_delay_ms):
                bus = FaultyBus(bus, settings.faults_bus_drop, settings.faults_bus_delay_ms)
            media = MediaService(
                ice_servers=settings.ice_servers,
                host_addresses=settings.media_addresses or None,
            )
            stack.push_async_callback(media.close)
            # Recording: closed before media (its consumers), the runner after it (its jobs),
            # then the runner's last job updates are written.
            stack.push_async_callback(lambda: recording.flush())
            runner = RenditionRunner(
                settings.rendition_concurrency,
                settings.rendition_nice,
                on_update=lambda job: recording.job_updated(job),
            )
            stack.push_async_callback(runner.close)
            recording = RecordingController(media, db, settings, runner)
            stack.push_async_callback(recording.close)
            recording.start_recovery()
            sfu_port = SfuMediaPort(media)
            sfu_port.add_observer(RecordingObserver(recording))
            media_metrics = MediaCollector(media, sfu_port.peer_info)
            metrics.watch(media_metrics)
            # Many nodes: a peer's media may be served by another node (the cascade).
            media_port = cascade_port(settings, sfu_port)
            # Closed after the rooms: its queued attendance records are written first.
            hooks = DatabaseLessonHooks(
                db, recording, settings.zone, settings.attendance_late_after_s
            )
            stack.push_async_callback(hooks.close)
            rooms = RoomManager(
                bus=bus,
                faults=signaling_faults,
                media=media_port,
                ice_servers=ice.for_peer,
                hooks=hooks,
                config=RoomConfig(
                    heartbeat_interval_s=settings.heartbeat_interval_s,
                    heartbeat_timeout_s=settings.heartbeat_timeout_s,
                    silence_timeout_s=settings.silence_timeout_s,
                    resume_window_s=settings.resume_window_s,
                    max_message_bytes=settings.ws_max_message_bytes,
                    rate_per_s=settings.ws_rate_per_s,
                    rate_burst=settings.ws_rate_burst,
                    max_peers=settings.max_peers,
                    late_after_s=settings.attendance_late_after_s,
                ),
            )
            stack.push_async_callback(rooms.close)
            stack.push_async_callback(media_port.close)
            recording.on_error = rooms.recording_failed
            metrics.watch_signaling(lambda: rooms.stats)
            metrics.watch(DiskSpaceCollector(settings))
            stack.callback(metrics.count_error_logs())
            # Many nodes: register, heartbeat, place lessons (closed before rooms: leave first).
            cluster = await join_cluster(
                stack, settings, cluster_bus, rooms, media, metrics, recording=recording
            )
            if cluster is not None:
                rpc = await join_cascade(stack, settings, cluster_bus, media_port, cluster, metrics)
                if rpc is not None:
                    media_metrics.also_look_up(rpc.peer_info)
            # Media workers (one process per core): the classrooms' media in child processes.
            await start_workers(stack, settings, media_port, metrics)
            app.state.cluster = cluster  # the draining server (SIGTERM) finds it here
            state = AppState(
                settings=settings,
                db=db,
                tokens=tokens,
                bus=bus,
                rooms=rooms,
                media=media,
                metrics=metrics,
                recording=recording,
                cluster=cluster,
                tls=tls,
                login_throttle=LoginThrottle(
                    settings.login_window_s,
                    settings.login_max_failures_per_account,
                    settings.login_max_failures_per_address,
                ),
            )
            if settings.seed_demo:
                from server.demo import seed_demo_if_empty

                await seed_demo_if_empty(state)
            # 录播 hosts: their RTSP picture while their classroom's lesson is live (stopped
            # before the rooms close).
            rtsp = RtspSupervisor(
                state, settings.rtsp_poll_s, backoff_s=(0.25, settings.rtsp_backoff_max_s)
            )
            rtsp.start()
            stack.push_async_callback(rtsp.close)
            app.state.rtsp = rtsp  # the admin API's view of each source
            freeze_startup_objects()
            yield {"app": state}

    app = FastAPI(
        title="tongke 同课",
        version="0.1.0",
        description="Synchronous 1+N live teaching: lessons, classrooms, join links, signaling.",
        lifespan=lifespan,
        # Deny by default: an HTTP route that declares no access rule is refused.
        dependencies=[Depends(require_declared_access)],
    )
    app.add_middleware(HttpMetricsMiddleware, metrics=lambda: metrics)
    app.add_middleware(NulGuardMiddleware)  # no text with U+0000 reaches a route
    app.add_middleware(SecurityHeadersMiddleware)  # outermost: error responses get them too

    from server.api import api_router, install_error_handlers
    from server.cluster.routes import cluster_router
    from server.health import health_router
    from server.pages import pages_router
    from server.tls_routes import tls_router
    from server.whip import router as whip_router
    from server.ws import ws_router

    app.include_router(api_router)
    app.include_router(cluster_router)
    install_error_handlers(app)
    app.include_router(health_router)
    app.include_router(pages_router)
    app.include_router(tls_router)
    app.include_router(ws_router)
    app.include_router(whip_router)

    @app.get(
        "/metrics",
        include_in_schema=False,
        dependencies=[access(None, why="scraped by Prometheus; counts only, no names")],
    )
    async def prometheus_metrics() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    app.mount("/", StaticFiles(directory=settings.web_dir, html=True), name="web")
    return app
