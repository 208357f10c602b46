"""pydantic v2 models of every record that crosses the hub's boundary."""
