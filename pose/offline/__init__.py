"""Offline pose work: keypoint evaluation (COCO PCK, MPII PCKh) and distillation of the site-specific student.

Not on the daemon's path: ``gaitwatch.pose`` itself holds what runs live.
"""
