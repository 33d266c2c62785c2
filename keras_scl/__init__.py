"""keras_scl: Sparse Connectivity Learning for Keras 3 on TensorFlow.

Every prunable weight gets a trainable mask `m`; layers compute with
`w * H(m)`; a straight-through estimator carries gradients to the masks; an
optimizer wrapper normalises mask gradients per feature; a regularizer counts
live connections. The network learns its own layer-wise sparsity.
"""

from keras_scl.callback import SCLCallback
from keras_scl.deploy import deployment_size
from keras_scl.distillation import DistillationLoss
from keras_scl.distillation import LabelAccuracy
from keras_scl.distillation import SCLDistiller
from keras_scl.distillation import teacher_targets
from keras_scl.optimizer import SCLOptimizer
from keras_scl.prunable import supported_layer_names as supported_layers
from keras_scl.prune import prune_scl
from keras_scl.prune import strip_scl
from keras_scl.regularizer import LiveConnections
from keras_scl.report import format_report
from keras_scl.report import global_sparsity
from keras_scl.report import layer_sparsity
from keras_scl.report import mask_stats
from keras_scl.report import plot_sparsity
from keras_scl.report import sparsity_report
from keras_scl.shrink import ShrinkReport
from keras_scl.shrink import shrink
from keras_scl.step import CustomSTE
from keras_scl.step import IdentitySTE
from keras_scl.step import LeakyReLUSTE
from keras_scl.step import SoftplusSTE
from keras_scl.step import StraightThroughEstimator
from keras_scl.tflite import export_tflite
from keras_scl.wrapper import SCLWrapper

__version__ = "0.1.0"

__all__ = [
    "CustomSTE",
    "DistillationLoss",
    "IdentitySTE",
    "LabelAccuracy",
    "LeakyReLUSTE",
    "LiveConnections",
    "SCLCallback",
    "SCLDistiller",
    "SCLOptimizer",
    "SCLWrapper",
    "ShrinkReport",
    "SoftplusSTE",
    "deployment_size",
    "export_tflite",
    "StraightThroughEstimator",
    "format_report",
    "global_sparsity",
    "layer_sparsity",
    "mask_stats",
    "plot_sparsity",
    "prune_scl",
    "shrink",
    "sparsity_report",
    "strip_scl",
    "supported_layers",
    "teacher_targets",
]
