"""causalmtl.methods: training objectives and gradient aggregators, one class per method."""

from .base import ENV_PROTOCOLS, EnvProtocol, GradientMethod, Method, cat_batches
from .batch import Batch, targets_to_tensor, to_tensor_inputs
from .dann import DANN, GradientReversal, dann_lambda, grad_reverse
from .erm import ERM
from .gradients import per_task_gradients, write_flat_grad
from .gradvac import GradVac, gradvac_aggregate, parameter_groups
from .irm import IRM, irm_penalty, irm_penalty_linear_heads
from .mtcrl import MTCRL
from .pcgrad import PCGrad, pcgrad_aggregate, random_task_orders
from .vrex import VREx, vrex_penalty

#: the training methods by name (a new method class adds one line here)
METHODS: dict[str, type[Method]] = {
    "erm": ERM, "pcgrad": PCGrad, "gradvac": GradVac, "irm": IRM, "vrex": VREx, "dann": DANN, "mtcrl": MTCRL,
}

__all__ = [
    "ENV_PROTOCOLS", "EnvProtocol", "GradientMethod", "Method", "cat_batches", "METHODS",
    "Batch", "targets_to_tensor", "to_tensor_inputs",
    "ERM", "PCGrad", "GradVac", "IRM", "VREx", "DANN",
    "pcgrad_aggregate", "random_task_orders", "gradvac_aggregate", "parameter_groups",
    "irm_penalty", "irm_penalty_linear_heads", "vrex_penalty", "GradientReversal", "grad_reverse", "dann_lambda",
    "per_task_gradients", "write_flat_grad", "MTCRL",
]
