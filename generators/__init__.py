"""Generation: backends, prompt templates, the STE explorer, paraphraser, TRICE sampler, simulator."""
