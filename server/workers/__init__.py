"""Media workers: one media process per core on one machine (`tongke serve --workers N`).

The service's process keeps HTTP, signaling, every lesson's room, the lead's media and the
recorder; worker processes serve the other classrooms' media. The service drives them with
the cascade's media RPC (server/cluster/media_rpc.py) over a local unix socket instead of
Redis (ipc.py), places peers on them by load (placement.py), restarts one that dies and
stops them with itself (pool.py). docs/architecture.md "Media workers".
"""
