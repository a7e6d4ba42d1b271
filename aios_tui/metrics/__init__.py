"""Run directories and metrics JSONL: writer, reader, follower (stdlib only)."""
