"""Offline gait work: generated walkers, training/cross-validation, label files, replay of recordings.

Not on the daemon's path: ``gaitwatch.gait`` itself holds what runs live.
"""
