"""Data sources beyond the built-in reasoning-gym tasks: post-training sets and benchmarks, one item schema."""
