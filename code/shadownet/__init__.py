"""shadownet: CRNN text recognition trained as containerised cloud jobs."""

# Single source of the version: pyproject.toml reads it from here.
__version__ = "0.1.0"
