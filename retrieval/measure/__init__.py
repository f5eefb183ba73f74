"""Measure: evaluation, baselines and benchmarks; never imported by serving code."""
