"""Learned cost models that rank candidate configs (features in, scores out).

Works on numbers and TVM objects only: it imports neither `schedules` nor `autotune`.
"""
