"""Gait analysis from keypoint trajectories: pure, synchronous, typed (no asyncio, no network)."""
