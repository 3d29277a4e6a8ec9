"""tongke media plane: an RTP-level SFU on top of aiortc's transports. Imports nothing of ours."""
