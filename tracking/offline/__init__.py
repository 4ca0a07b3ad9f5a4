"""Offline tracking and detection evaluation (MOTChallenge I/O, CLEAR-MOT/IDF1/HOTA, detection recall/precision).

Not on the daemon's path: ``gaitwatch.tracking`` itself holds what runs live.
"""
