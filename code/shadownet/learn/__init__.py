"""TensorFlow: records read back, the input pipeline, the model, training, evaluation, export and prediction.

What the training images run. The model-dir layout (what a run folder holds) is owned by ``run_dir``.
"""
