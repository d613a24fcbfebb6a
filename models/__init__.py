"""The LLM layer: one interface (`Backend.generate`) over local and served models.

backend.py (the interface and request/completion types), factory.py (`make_backend`, model
names), options.py (the generation options every stage shares, `open_backend`), one module per
engine (transformers.py, vllm.py, openai.py), grammars/ (constrained decoding, one module per
grammar engine), kv_cache.py and prefix_cache.py (the transformers backend's caches), tiny.py and
default.py (the embedded test and default models). Stages import this layer; it imports no stage.
"""
