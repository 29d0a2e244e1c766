"""Datasets in, TFRecords out, without TensorFlow: everything the generation image runs.

Charsets, annotation files, image decoding, validation, the synthetic generator, the record format and the
sharded writer. Nothing here may import TensorFlow or Keras (tests/test_boundary.py holds it).
"""
