"""Receivers: sans-I/O framers for sticks and text formats, delivering frames to the core."""
