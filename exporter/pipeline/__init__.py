"""From frames to state: duplicates, meters heard on the air, and the per-meter state."""
