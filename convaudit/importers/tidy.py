"""Front-end-independent passes over imported layers: channel shuffles, and names from module paths."""

from __future__ import annotations

from dataclasses import replace

from convaudit.core.model import INPUT
from convaudit.importers.graph import Layer


def consumers(layers: list[Layer], outputs: tuple[str, ...]) -> dict[str, int]:
    count: dict[str, int] = {}
    for layer in layers:
        for source in layer.inputs:
            count[source] = count.get(source, 0) + 1
    for name in outputs:
        count[name] = count.get(name, 0) + 1
    return count


def fuse_shuffles(layers: list[Layer], outputs: tuple[str, ...]) -> tuple[list[Layer], tuple[str, ...]]:
    """ShuffleNet's channel shuffle, traced as reshape [g, C/g, H, W] → swap the first two → reshape [C, H, W],
    becomes one `shuffle` layer with `groups: g`."""
    used = consumers(layers, outputs)
    by_name = {layer.name: layer for layer in layers}
    fused: dict[str, Layer] = {}  # last reshape's name -> the shuffle
    dropped: set[str] = set()
    for layer in layers:
        if layer.type != "reshape" or len(layer.shape) != 3 or not layer.inputs:
            continue
        permute = by_name.get(layer.inputs[0])
        copied = None
        if permute is not None and permute.type == "copy" and used.get(permute.name) == 1:  # .contiguous() between
            copied, permute = permute, by_name.get(permute.inputs[0])
        if permute is None or permute.type != "permute" or permute.params.get("order") != [1, 0, 2, 3]:
            continue
        split = by_name.get(permute.inputs[0])
        if split is None or split.type != "reshape" or len(split.shape) != 4 or not split.inputs:
            continue
        groups, per_group, height, width = split.shape
        if layer.shape != (groups * per_group, height, width) or used.get(split.name) != 1 \
                or used.get(permute.name) != 1:
            continue
        fused[layer.name] = replace(layer, type="shuffle", params={"groups": groups}, inputs=split.inputs,
                                    scopes=split.scopes, leaf=False, op="channel shuffle")
        dropped |= {split.name, permute.name} | ({copied.name} if copied is not None else set())
    return [fused.get(layer.name, layer) for layer in layers if layer.name not in dropped], outputs


def base_name(layer: Layer) -> str:
    if layer.named_after:
        return layer.named_after
    if layer.leaf and layer.scopes:
        return layer.scopes[-1]
    prefix = f"{layer.scopes[-1]}." if layer.scopes else ""
    op = layer.params.get("op") if layer.type in ("pointwise", "reduce", "gather", "uncounted") else None
    return prefix + (str(op).rsplit(".", 2)[-2 if str(op).count(".") >= 2 else -1].strip("_") if op else layer.type)


def one_layer_per_call(layers: list[Layer]) -> None:
    """A childless module whose forward runs several operators (timm's RelPosEmb: reshapes, matmuls, gathers) is
    one call: its last layer, the call's output, takes the module's path; the others are operations written in
    its forward (`pos_embed.reshape`), not further calls of the module (`pos_embed_2` is its second call)."""
    last: dict[tuple[str, int | None], int] = {}
    for index, layer in enumerate(layers):
        if layer.leaf and not layer.named_after and layer.scopes:
            last[layer.scopes[-1], layer.call] = index
    for index, layer in enumerate(layers):
        if layer.leaf and not layer.named_after and layer.scopes and last[layer.scopes[-1], layer.call] != index:
            layer.leaf = False


def name_layers(layers: list[Layer], outputs: tuple[str, ...]) -> tuple[list[Layer], tuple[str, ...]]:
    """Names from module paths: a module's own layer takes its path (a module called again gets _2, _3),
    an operation written in a module's forward takes the module's path and its type (layer1.0.add)."""
    one_layer_per_call(layers)
    taken: set[str] = {INPUT}
    chosen: dict[int, str] = {}
    calls: dict[str, int] = {}
    for pass_leaf in (True, False):  # modules first, so `layer1.0.relu` is the module's, not a functional relu's
        for index, layer in enumerate(layers):
            if (layer.leaf and not layer.named_after) != pass_leaf:
                continue
            base = base_name(layer)
            name, count = base, 1
            while name in taken:
                count += 1
                name = f"{base}_{count}"
            taken.add(name)
            chosen[index] = name
            if pass_leaf:
                calls[base] = calls.get(base, 0) + 1
                layer.module = (base, calls[base] - 1)
    renamed = {layer.name: chosen[index] for index, layer in enumerate(layers)}
    renamed[INPUT] = INPUT
    result = [replace(layer, name=renamed[layer.name], inputs=tuple(renamed[s] for s in layer.inputs),
                      params={**layer.params, "shares": renamed[layer.params["shares"]]}
                      if "shares" in layer.params else layer.params)
              for layer in layers]
    return result, tuple(renamed[name] for name in outputs)
