"""Every list of choices, in one place: the config, the CLI's flags, the job specs and the stages read them here.

Plain tuples, and the names of a registry that is plain data too (``architectures``): the generation image
(no TensorFlow) and the training images share this module.
"""

from .architectures import ARCHITECTURES, DETECTORS

# -- datasets and records (data/)
SYNTH_KINDS = ("lines", "captcha", "digits", "sentences", "pages")  # pages: page images for text detection
CHARSET_CASES = ("keep", "lower")  # `charset build --case`
CASE_POLICIES = ("auto", "lower", "keep")  # labels against the charset: auto lowercases a charset without capitals
ERROR_POLICIES = ("error", "skip")
INPUT_MODES = ("keep_ratio", "fixed")
IMAGE_FORMATS = ("jpeg", "png")
SPLITS = ("train", "validation", "test")
# Dataset layouts (`--layout`) and `convert --to`: LAYOUTS and CONVERT_TARGETS of data/layouts.py, from the layout
# registry (a class declared in data/ adds a layout).

# -- training settings (config.TrainConfig)
MODELS = tuple(ARCHITECTURES) + tuple(DETECTORS)  # the model variants by name: recognisers, then detectors
OPTIMIZERS = ("adam", "adadelta")
LR_SCHEDULES = ("cosine", "constant")
MIXED_PRECISION = ("auto", "off", "bfloat16", "float16")
BEST_METRICS = ("word_accuracy", "char_error_rate", "loss", "hmean", "precision", "recall")  # the last 3: detectors
FREEZE = ("none", "conv")  # fine-tuning: conv trains only the recurrent and output layers
# how hard a run regularises (learn/regime.py): auto, from the epochs it plans, or a regime by name
REGULARIZATION = ("auto", "none", "light", "medium", "strong")
HPO_METRICS = ("word_accuracy", "char_error_rate", "validation_loss", "hmean")  # what a tuner's metric file reports

# -- evaluation, export and serving (learn/)
DECODERS = ("greedy", "beam")
CHECKPOINTS = ("best", "latest")
EXPORT_PRECISIONS = ("float32", "bfloat16")  # learn/inference.py's compute dtypes, by name
EXPORT_FORMATS = ("savedmodel", "onnx")  # `export --format`, comma-separated
QUANTIZATIONS = ("none", "int8")  # `export --quantize` (ONNX)

# -- platforms (cloud/): what `jobs render` and `submit` take are the names of cloud/registry.py's declarations
