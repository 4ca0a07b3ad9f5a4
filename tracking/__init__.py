"""Person detection and multi-object tracking: pure, synchronous, typed (no asyncio, no network)."""
