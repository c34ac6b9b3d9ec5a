"""Profiling: exact cost accounting, TFLite Micro arena, measured latency (next: target estimates)."""
