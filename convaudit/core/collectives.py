"""The bytes each collective moves, counted at the receiving device: one formula per collective.

The planner (`split`, core/plan/) states every exchange with these, and the distributed run
(pytorch/distributed.py) measures by calling them on the sizes of the tensors that really went through
torch.distributed, so the two can differ only where the plan and the run move different tensors.

The collective library picks its own algorithm (ring, tree, direct); the counts are the ring convention's, the
usual one for bandwidth (NCCL's "bus bandwidth" uses the same factors), for N devices and a tensor of S bytes:

  gather          point to point: a device receives the S bytes it reads and does not hold.
  all-gather      each device contributes S/N and receives the N − 1 other shards: (N − 1)/N·S,
                  S being the gathered (output) tensor.
  reduce-scatter  each device reduces S and keeps S/N; in N − 1 steps it receives S/N each: (N − 1)/N·S,
                  S being the input tensor every device holds.
  all-reduce      a reduce-scatter, then an all-gather of the result: 2·(N − 1)/N·S.

Pure: no torch; sizes are ints, results exact Fractions (a ring over 3 devices moves thirds of a byte).
"""

from __future__ import annotations

from fractions import Fraction


def gather(received_bytes: int) -> Fraction:
    """Point to point: what a device receives is what it lacks, the bytes of the channels others send it."""
    return Fraction(received_bytes)


def all_gather(gathered_bytes: int, devices: int) -> Fraction:
    """(N − 1)/N·S per device for a gathered tensor of S bytes: the N − 1 shards of the others."""
    return Fraction(devices - 1, devices) * gathered_bytes


def reduce_scatter(input_bytes: int, devices: int) -> Fraction:
    """(N − 1)/N·S per device for an input of S bytes on every device: N − 1 steps of S/N."""
    return Fraction(devices - 1, devices) * input_bytes


def all_reduce(tensor_bytes: int, devices: int) -> Fraction:
    """2·(N − 1)/N·S per device for a tensor of S bytes: a reduce-scatter, then an all-gather of the result."""
    return reduce_scatter(tensor_bytes, devices) + all_gather(tensor_bytes, devices)


FORMULAS = {
    "gather": "point to point: the bytes a device reads and does not hold",
    "all-gather": "(N−1)/N·S per device for a gathered tensor of S bytes",
    "reduce-scatter": "(N−1)/N·S per device for an input of S bytes",
    "all-reduce": "ring: 2·(N−1)/N·S per device for a tensor of S bytes",
}
