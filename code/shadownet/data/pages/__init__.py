"""Text detection's data: page images annotated with text regions (polygons), read without TensorFlow.

``annotations`` reads ICDAR 2015 ground truth and PaddleOCR detection labels into regions and checks them
against their image; ``polygons`` holds the plane geometry both they and the detection scorer use;
``synth_pages`` (with ``page_look``) draws the synthetic pages of ``synth --kind pages``.
"""
