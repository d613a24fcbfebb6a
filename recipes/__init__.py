"""YAML recipes (quickstart, ste, trice, continual) and the runner that chains stages."""
