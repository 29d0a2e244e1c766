"""Text detection (DBNet): what is shared by its training and its scoring.

Modules here import what they need themselves; this package imports nothing, so ``hmean`` (numpy only)
can be used where TensorFlow is not installed.
"""
