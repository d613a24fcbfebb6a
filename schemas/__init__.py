"""ToolSpec, the importers that produce it, constraint schemas for calls, and record schemas."""
