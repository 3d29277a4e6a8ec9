"""tongke signaling: the WebSocket protocol, lesson rooms, subscription policy, bus."""
