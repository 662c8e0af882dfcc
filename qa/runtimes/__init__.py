"""The runtimes a generator runs on; each offers a `decoding.Batch` (see qa/generator.py)."""
