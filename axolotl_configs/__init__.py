"""Axolotl YAML templates, rendering, validation with Axolotl itself, and launching."""
