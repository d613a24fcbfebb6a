"""Generation stages: the STE explorer (explore), its queries and quality report, and augment (paraphrases)."""
