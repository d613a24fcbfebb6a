"""BFCL-compatible evaluation."""
