"""timm's zoo, imported: one model of each of these families traced on the meta device with random weights (nothing
downloaded), its parameters against PyTorch's sum(p.numel()) and its MACs against FlopCounterMode's forward FLOPs,
halved (its convention: convolutions and matrix products). The README's timm table runs every family
(scripts/timm_table.py); these are the habits that once broke the importer, kept in CI."""

from __future__ import annotations

import os

import pytest

from convaudit.core.analysis import analyze
from convaudit.importers import read, spec_of

pytestmark = pytest.mark.needs_torch

MODELS = (
    "beit_base_patch16_224",  # qkv bias = cat(q_bias, zero k buffer, v_bias)
    "botnet26t_256",  # a block whose slices differ in `start`
    "convnext_atto",
    "deit3_base_patch16_224",  # the batch moved by reshape and permute
    "edgenext_base",  # a Fourier position encoding: a conv on a constant grid
    "efficientnet_b0",
    "efficientvit_m0",  # convolutions on B·k windows
    "hieradet_small",
    "levit_128",  # batchnorm on flattened tokens
    "mvitv2_base",  # einsum over relative positions
    "swinv2_base_window12_192",  # a position MLP on constant coordinates, window attention
    "swinv2_cr_base_224",
    "test_vit_relpos",  # a relative-position table indexed
    "tnt_b_patch16_224",
    "xcit_large_24_p16_224",  # a position encoding repeated over the batch
)


@pytest.mark.parametrize("name", MODELS)
def test_timm_model_counts_as_torch_does(name: str) -> None:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from convaudit.importers.targets import build
    from convaudit.pytorch.verify import counted_by_torch

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = {"model_name": name, "pretrained": False}
    imported = read("timm:create_model", args)
    report = analyze(spec_of(imported))
    model = build("timm:create_model", args).eval()  # on the meta device
    assert report.totals.params == sum(p.numel() for p in model.parameters()) == imported.model_params
    with FlopCounterMode(display=False) as counter:  # with autograd on: PiT's and CaiT's forward need it
        model(torch.empty(1, *report.input, device="meta"))
    assert sum(layer.macs for layer in report.layers if counted_by_torch(layer)) == counter.get_total_flops() // 2
