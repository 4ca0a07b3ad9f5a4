"""Pose estimation on tracked people's crops: pure, synchronous, typed (no asyncio, no network)."""
