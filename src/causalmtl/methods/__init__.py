"""causalmtl.methods: training objectives and gradient aggregators, one class per method."""

from .base import ENV_PROTOCOLS, EnvProtocol, GradientMethod, Method, cat_batches
from .batch import Batch, targets_to_tensor, to_tensor_inputs
from .erm import ERM
from .gradients import per_task_gradients, write_flat_grad

__all__ = [
    "ENV_PROTOCOLS", "EnvProtocol", "GradientMethod", "Method", "cat_batches",
    "Batch", "targets_to_tensor", "to_tensor_inputs",
    "ERM",
    "per_task_gradients", "write_flat_grad",
]
