"""The synchronous client, generated from ``_async`` by tools/generate_sync.py (unasync).
Edit the async source, never the generated files, except compat.py."""
