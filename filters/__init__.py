"""Filters: validity, execution success, LLM judge, exact and semantic dedupe, balancing."""
