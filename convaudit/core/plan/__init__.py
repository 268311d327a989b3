"""Plan a network across N devices: per layer and device, parameters, FLOPs, memory and the bytes that cross.

Pure and exact: no torch; counts are integers, bytes that a ring collective moves are Fractions. Every
collective's bytes come from core/collectives.py, which the distributed run measures with too.

Layout (columns, model). Every tensor is split by channels (by features, for a vector): each channel lives on
one device, or on every device (ALL: the network's input, and what a row-parallel layer or an output gather
leaves). One channel of a [C, H, W] tensor at batch B is B·H·W elements.

The communication rules, each stated once (the distributed run executes these very records):

  gather      forward: a device receives every channel it reads but does not hold (counted at the receiver).
              backward: the gradients of those channels go back to their owners, which add them to their
              own (a reduce-scatter): the same bytes, counted at the owner; nothing when no gradient flows
              into that tensor, or when the readers are replicated (each device already has the whole
              gradient and keeps its own channels: Megatron's gather_output).
  all-reduce  ring convention: each device sends and receives 2·(N−1)/N·S for a tensor of S bytes
              (a reduce-scatter then an all-gather, N−1 steps of S/N each).
              model: a row-parallel layer all-reduces its output (forward); a layer reading a replicated
              tensor that needs a gradient all-reduces that gradient (backward, Megatron's f).
              data: each trainable layer's gradients after backward.

Strategies.
  columns  AlexNet's two-GPU scheme (Krizhevsky et al. 2012, section 3.2): a weight layer is column-split
           (Megatron's ColumnParallel): output channel c goes to device ⌊c·N/C⌋, so a conv whose groups
           are a multiple of N keeps whole groups on a device and reads only its own maps; a layer that
           reads every channel gathers the other devices' maps first (every device holding outputs of it).
           A spec's `placement:` pins a layer whole to one device.
  model    Megatron-LM's tensor parallelism: like columns, except that a layer reading every channel of an
           input already split across the devices is row-parallel: each device multiplies its own input
           channels by its slice of the weights and the partial outputs are all-reduced (bias on device
           0). Pins are ignored.
  data     every device holds the whole model and runs ⌊B/N⌋ samples (the first B mod N devices one more);
           gradients are all-reduced after backward. Batchnorm statistics stay per device.
  fsdp, zero1, zero2
           data parallel with the parameters' state sharded along dimension 0 as fully_shard shards it
           (sharding.py states the rule, the units and the collectives).

What a layer does under columns and model is its type's `plan_role` (core/layers/base.py): follow (reads only
the channels it holds: activations, pooling, batchnorm, dropout, subsampling, flatten, and LRN, which
normalises over the maps on its own device, as the paper's GPUs did), columns (a weight layer; its
`column_split` says which input channels each output reads), concat, add, whole-free (parameter-free and
reading every channel, like softmax: whole on every device; a column layer it reads directly gathers its
output) and whole (anything else: whole on every device after gathering its input).

Many devices. Per-device values are `Spread`s (runs of equal values); the limits are MAX_DEVICES and
MAX_CHANNEL_DEVICES (columns, model), records.py says why; renderers
show each device up to SHOWN_ONE_BY_ONE devices, else each run of identical devices (`Plan.device_rows`).
"""

from __future__ import annotations

from convaudit.core.plan.channels import channel_elements, column_owners
from convaudit.core.plan.planner import check_devices, plan
from convaudit.core.plan.records import (
    ALL,
    CHANNEL_STRATEGIES,
    CONVENTIONS,
    MAX_CHANNEL_DEVICES,
    MAX_DEVICES,
    PROFILES,
    SHARDED_CONVENTIONS,
    SHARDED_STRATEGIES,
    SHOWN_ONE_BY_ONE,
    STRATEGIES,
    DeviceTotals,
    Exchange,
    LayerPlan,
    Plan,
    Profile,
    ReadSet,
    ShardedParameter,
    Share,
    held_by,
)
from convaudit.core.plan.sharding import chunk_rows
from convaudit.core.plan.sizes import SIZE_UNITS, parse_size, with_rates
from convaudit.core.plan.spread import Spread

__all__ = ["ALL", "CHANNEL_STRATEGIES", "CONVENTIONS", "MAX_CHANNEL_DEVICES", "MAX_DEVICES", "PROFILES",
           "SHARDED_CONVENTIONS", "SHARDED_STRATEGIES", "SHOWN_ONE_BY_ONE", "SIZE_UNITS", "STRATEGIES", "DeviceTotals",
           "Exchange", "LayerPlan", "Plan", "Profile", "ReadSet", "ShardedParameter", "Share", "Spread",
           "channel_elements", "check_devices", "chunk_rows", "column_owners", "held_by", "parse_size", "plan",
           "with_rates"]
