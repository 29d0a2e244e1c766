"""``shadownet serve``: an export behind HTTP, in the training images (TensorFlow).

``protocols`` (no TensorFlow) reads and writes the request bodies of each platform's contract,
``model`` loads the export and runs its stages, ``batcher`` groups concurrent images into batches,
``metrics`` counts for Prometheus, ``server`` ties them into the aiohttp application.
"""
