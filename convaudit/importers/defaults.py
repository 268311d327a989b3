"""A model's own input shape, per sample, where the model or its weights state one.

    default_input_shape(model, target) -> (3, 224, 224), (3, 16, 112, 112), ... or None
    positional_inputs(model)           -> how many tensors the forward takes (RAFT: 2 frames)

Where each comes from, first match wins:
1. timm: `model.pretrained_cfg["input_size"]` (every timm model has it; SwinV2 window8 says (3, 256, 256)).
2. torchvision targets (`torchvision:NAME`), from the DEFAULT weights' metadata (nothing is downloaded):
   - classification: the transform's `crop_size` (224; 299 for inception_v3; 600 for efficientnet_b7);
   - video: `crop_size` for height and width, and the frame count from the `clip_len=` the weights' docs give
     (16 for R3D, MC3, R(2+1)D and MViT, 32 for Swin3D, 128 for S3D), as (3, frames, height, width);
   - segmentation: the transform's `resize_size` (520) for both sides;
   - optical flow and detection: their weights state no size. Detection models resize their images inside
     (`model.transform`): SSD to a fixed 300×300 or 320×320, R-CNN/RetinaNet/FCOS to a shorter side of 800,
     so that side is used, square (our choice). RAFT takes two frames of any size that is a multiple of 8:
     (3, 520, 960) is our choice (see positional_inputs for the second frame).
3. a ViT-like `image_size` attribute (torchvision's VisionTransformer): (3, size, size).
Otherwise None: the caller asks for --input-shape or uses its own default.

Torch-free at import time; torchvision is imported only for torchvision targets.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

TORCHVISION = "torchvision:"
RAFT_SIZE = (520, 960)  # our choice: RAFT needs both sides divisible by 8, and its weights state no size
_CLIP_LEN = re.compile(r"clip_len=(\d+)")


def default_input_shape(model: Any, target: str | None = None) -> tuple[int, ...] | None:
    """The per-sample input shape `model` expects, or None where neither it nor its weights say. A size the model
    holds (ViT's image_size, which it asserts) wins over its weights' (vit_h_14's SWAG weights are at 518, the
    model built without them at 224)."""
    return _timm(model) or _image_size(model) or (_torchvision(model, target[len(TORCHVISION):])
                                                  if target and target.startswith(TORCHVISION) else None)


def positional_inputs(model: Any) -> int:
    """How many positional arguments the forward requires (1 for most models, 2 for RAFT's two frames)."""
    try:
        parameters = inspect.signature(model.forward).parameters.values()
    except (TypeError, ValueError):
        return 1
    required = [p for p in parameters if p.default is inspect.Parameter.empty
                and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return max(1, len(required))


def _timm(model: Any) -> tuple[int, ...] | None:
    config = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None)
    size = config.get("input_size") if isinstance(config, dict) else None
    return _ints(size)


def _torchvision(model: Any, name: str) -> tuple[int, ...] | None:
    from convaudit.importers.targets import load_torchvision

    torchvision = load_torchvision()
    try:
        weights = torchvision.models.get_model_weights(name).DEFAULT
    except (ValueError, AttributeError, KeyError):
        return None
    preset = getattr(weights.transforms, "func", weights.transforms)
    settings = getattr(weights.transforms, "keywords", {}) or {}
    kind = getattr(preset, "__name__", "")
    if kind == "ImageClassification":
        side = _side(settings.get("crop_size"))
        return (3, side, side) if side else None
    if kind == "VideoClassification":
        crop = settings.get("crop_size")
        frames = _CLIP_LEN.search(weights.meta.get("_docs", ""))
        height, width = (crop, crop) if isinstance(crop, int) else tuple(crop or ())[:2] or (None, None)
        if frames and height and width:
            return (3, int(frames.group(1)), int(height), int(width))
        return None
    if kind == "SemanticSegmentation":
        side = _side(settings.get("resize_size"))
        return (3, side, side) if side else None
    if kind == "OpticalFlow":
        return (3, *RAFT_SIZE)
    if kind == "ObjectDetection":
        return _detection(model)
    return None


def _detection(model: Any) -> tuple[int, ...] | None:
    """The size a detection model resizes its images to: SSD's fixed size, or an R-CNN's shorter side."""
    transform = getattr(model, "transform", None)
    fixed = getattr(transform, "fixed_size", None)
    if fixed:
        return (3, *(int(d) for d in fixed))
    side = _side(getattr(transform, "min_size", None))
    return (3, side, side) if side else None


def _image_size(model: Any) -> tuple[int, ...] | None:
    size = getattr(model, "image_size", None)
    if isinstance(size, int) and not isinstance(size, bool):
        return (3, size, size)
    return None


def _side(value: Any) -> int | None:
    if isinstance(value, (list, tuple)):
        value = value[-1] if value else None
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _ints(value: Any) -> tuple[int, ...] | None:
    if isinstance(value, (list, tuple)) and value and all(isinstance(d, int) for d in value):
        return tuple(int(d) for d in value)
    return None
