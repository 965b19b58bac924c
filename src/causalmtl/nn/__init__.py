"""causalmtl.nn: encoders, heads and multi-task architectures (the MultiTaskModel contract)."""

from .base import (
    ModelInput,
    ModelOutput,
    MultiTaskModel,
    batch_size_of,
    check_tasks,
    grouped_risks,
    masked_task_losses,
    row_losses,
    seeded,
)
from .cross_stitch import CrossStitch, CrossStitchNetwork
from .dense import (
    ConvHead,
    PooledHead,
    TaskonomyDecoder,
    is_map_encoder,
    make_map_head,
    make_map_heads,
)
from .encoders import CNNEncoder, EmbeddingEncoder, MLPEncoder, encoder_out_dim
from .fps import FPS
from .heads import ClassificationHead, RegressionHead, make_head, make_heads
from .image import PooledEncoder, build_image_encoder
from .mmoe import MMoE
from .mtcrl import MTCRLNet, module_width
from .resnet import ResNet, resnet18, resnet50
from .segnet import SegNet
from .shared_trunk import SharedTrunk
from .stl import NPS, STL

__all__ = [
    "ModelInput", "ModelOutput", "MultiTaskModel", "batch_size_of", "check_tasks",
    "grouped_risks", "masked_task_losses", "row_losses", "seeded",
    "CNNEncoder", "EmbeddingEncoder", "MLPEncoder", "encoder_out_dim",
    "ClassificationHead", "RegressionHead", "make_head", "make_heads",
    "SharedTrunk", "STL", "NPS", "CrossStitch", "CrossStitchNetwork", "MMoE", "FPS",
    "MTCRLNet", "module_width",
    "ResNet", "resnet18", "resnet50", "SegNet", "PooledEncoder", "build_image_encoder",
    "ConvHead", "PooledHead", "TaskonomyDecoder", "is_map_encoder", "make_map_head", "make_map_heads",
]
