"""What ovsvx works from: the topology, where each host lives, what was decided and built (the record)."""
