"""import --partial where the meta-device trace must stop (a data-dependent operator: detection's proposals and
NMS), and models that loop over their samples in Python (detection transforms).

What ran before the stop is counted exactly; what did not is named, never counted as zero. Golden numbers are
the arithmetic written beside them, sum(p.numel()) of the modules that ran, and FlopCounterMode (2 FLOPs per
multiply-add) on the very submodules that ran, on the meta device.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from convaudit.cli import app
from convaudit.core.analysis import analyze, is_partial
from convaudit.core.model import Untraced
from convaudit.errors import SpecError
from convaudit.spec.library import load
from convaudit.spec.parser import parse_text

pytestmark = pytest.mark.needs_torch
torch = pytest.importorskip("torch")
nn = torch.nn

from convaudit.importers import read_model, spec_of, spec_text  # noqa: E402
from convaudit.importers.trace import TraceRefused, trace  # noqa: E402

NONZERO_REASON = ("data-dependent (nonzero's output size: torch.where with one argument, or boolean-mask indexing): "
                  "it needs tensor values, which the meta device does not have")


def run(*args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "160"})


class Proposals(nn.Module):
    """Convolutions, then a data-dependent step (which positions score above 0), then a head that never runs."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.body = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.score = nn.Conv2d(8, 1, 1)
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        x = self.stem(x)  # rebound at once: nothing holds the stem's output when the trace stops
        x = self.body(x)
        scores = self.score(x)
        keep = torch.nonzero(scores.flatten() > 0)  # the stop: how many there are depends on the values
        return self.head(x.flatten(2)[..., keep[:, 0]].transpose(1, 2))


def make_proposals():
    return Proposals()


# at 3×8×8: stem 8×8×8 outputs × 3·3·3 taps = 13,824; body 8×4×4 × 8·3·3 = 9,216; score 1×4×4 × 8 = 128
PROPOSALS_MACS = 8 * 8 * 8 * 27 + 8 * 4 * 4 * 72 + 4 * 4 * 8
PROPOSALS_PARAMS = (8 * 27 + 8) + (8 * 72 + 8) + (8 + 1)  # the head's 8·4 + 4 are never reached


def test_without_partial_the_stop_is_refused_in_one_line_naming_operator_and_module():
    with pytest.raises(TraceRefused) as refused:
        trace(Proposals(), (3, 8, 8))
    message = str(refused.value)
    assert "aten.nonzero.default in the model's own forward" in message and "\n" not in message
    assert message.endswith("(--partial counts what runs before it)")
    result = run("import", "tests.test_partial_trace:make_proposals", "--input", "8")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "aten.nonzero.default" in result.stderr and "--partial counts what runs before it" in result.stderr


def test_a_model_error_is_refused_even_with_partial():
    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            raise ValueError(f"no detections at {self.conv(x).shape[-1]}")  # the model's own error: no partial

    with pytest.raises(TraceRefused, match="ValueError: no detections at 6") as refused:
        trace(Broken(), (3, 8, 8), partial=True)
    assert "--partial" not in str(refused.value)


def test_nothing_before_the_stop_is_refused_not_written_empty():
    class Sparse(nn.Module):
        def forward(self, x):
            return torch.nonzero(x)

    with pytest.raises(SpecError, match="nothing before it makes a layer, so --partial has nothing to count"):
        read_model(Sparse(), (3, 8, 8), partial=True)


def test_partial_counts_what_ran_before_the_stop_and_names_the_rest():
    model = Proposals()
    imported = read_model(model, (3, 8, 8), "proposals", partial=True)
    assert imported.untraced == Untraced("aten.nonzero.default", "", NONZERO_REASON, ("head",))
    spec = spec_of(imported)
    report = analyze(spec)
    assert report.totals.macs == PROPOSALS_MACS
    reached = [model.stem, model.body, model.score]
    assert report.totals.params == PROPOSALS_PARAMS == sum(p.numel() for m in reached for p in m.parameters())
    assert is_partial(report) and spec.untraced == imported.untraced
    # the outputs: what the rest of the forward could read. The stop's argument (scores > 0) and what the
    # forward's variables hold (body's output in x, score's in scores); the stem's output nothing holds any more.
    made_by = {layer.name: layer.type for layer in report.layers}
    assert {"body", "score"} <= set(spec.outputs) and "stem" not in spec.outputs
    assert made_by[spec.outputs[0]] == "pointwise" and spec.layer(spec.outputs[0]).params["op"] == "gt"
    text = spec_text(imported)
    assert "\nuntraced: {op: aten.nonzero.default, module: \"\", reason: " in text
    assert "# partial: what the model runs from aten.nonzero.default in the model's own forward on" in text
    assert parse_text(text).untraced == imported.untraced  # read back as written


def test_partial_outputs_name_the_stop_in_the_table_json_and_report(tmp_path: Path):
    out = tmp_path / "proposals.yaml"
    result = run("import", "tests.test_partial_trace:make_proposals", "--input", "8", "--partial", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert f"MACs {PROPOSALS_MACS:,} at 3×8×8 (partial:" in result.stderr
    table = run("summary", str(out))
    assert table.exit_code == 0, table.output
    assert "Total (partial)" in table.stdout
    line = " ".join(table.stdout.split())
    assert ("not counted: what the model runs from aten.nonzero.default in the model's own forward on, where its "
            "trace stopped (data-dependent") in line
    assert "modules that had not run: head: params, MACs, FLOPs, other ops and memory are those of the part" in line
    data = json.loads(run("summary", str(out), "--format", "json").stdout)
    assert data["totals"]["macs"] == PROPOSALS_MACS
    assert data["not_counted"] == [{"layer": None, "op": "aten.nonzero.default", "module": "", "reason": NONZERO_REASON,
                                    "unreached": ["head"], "note": load(str(out)).untraced.describe()}]
    assert "main path" not in table.stdout  # the outputs are what the rest would read, none the model's own
    report = tmp_path / "proposals.html"
    assert run("report", str(out), "-o", str(report)).exit_code == 0
    blob = re.search(r'<script type="application/json" id="data">(.*?)</script>', report.read_text("utf-8"), re.S)
    assert json.loads(blob.group(1))["summary"]["not_counted"] == data["not_counted"]  # shown under the totals


def test_untraced_is_checked_like_every_key():
    base = "name: n\ninput: [3, 8, 8]\nlayers:\n  - {type: conv, name: c, out: 4, kernel: 3}\n"
    parsed = parse_text(base + "untraced: {op: aten.nonzero.default, module: rpn, reason: why, unreached: [roi]}\n")
    assert parsed.untraced == Untraced("aten.nonzero.default", "rpn", "why", ("roi",))
    for bad, key in (("untraced: {op: x, where: rpn}", "untraced"), ("untraced: {op: x, unreached: roi}",
                                                                     "untraced.unreached"),
                     ("untraced: {op: 3}", "untraced.op"), ("untraced: [x]", "untraced")):
        with pytest.raises(SpecError) as error:
            parse_text(base + bad + "\n", "n.yaml")
        assert error.value.where.key == key and error.value.where.line == 5


# ------------------------------------------------------------------ a Python loop over the batch


class PerImage(nn.Module):
    """A detection transform's habit: each image normalised alone, then stacked into a batch."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, images):
        return self.conv(torch.stack([(image - 0.5) / 2 for image in images]))


def test_a_loop_over_the_samples_is_named_and_what_follows_it_counted():
    graph = trace(PerImage(), (3, 8, 8))
    assert graph.batch_known  # aligned: batch 2 runs the loop twice
    looped = {graph.nodes[graph.tensor(t).producer].packet for t in graph.batch_looped}
    assert looped == {"unbind", "sub", "div"}  # one sample each; the stack of them holds the batch again
    conv = next(n for n in graph.nodes if n.packet == "conv2d")
    assert graph.tensor(conv.args["input"]).batch_dim == 0
    with pytest.raises(SpecError, match=r"cannot be counted: aten\.unbind\.int ×1, aten\.sub\.Tensor ×1, "
                                        r"aten\.div\.Tensor ×1, aten\.stack\.default ×1 \(run once per sample in a "
                                        r"Python loop over the batch"):
        read_model(PerImage(), (3, 8, 8))
    spec = spec_of(read_model(PerImage(), (3, 8, 8), partial=True))
    # conv: 4×6×6 outputs × 3·3·3 taps, per sample: twice that at batch 2
    assert analyze(spec).totals.macs == 4 * 6 * 6 * 27
    assert analyze(spec, batch=2).totals.macs == 2 * 4 * 6 * 6 * 27


# ------------------------------------------------------------------ torchvision's detection models


def detector(name: str, **kwargs):
    from convaudit.importers.targets import load_torchvision, on_meta

    torchvision = load_torchvision()
    return on_meta(lambda: torchvision.models.get_model(name, weights=None, weights_backbone=None, **kwargs)).eval()


def macs_of(*calls) -> int:
    """FlopCounterMode's multiply-adds (FLOPs / 2) over these calls, on the meta device."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        for call in calls:
            call()
    return counter.get_total_flops() // 2


def test_faster_rcnn_counts_transform_backbone_fpn_and_rpn_head_exactly():
    model = detector("fasterrcnn_resnet50_fpn", min_size=64, max_size=64)
    imported = read_model(model, (3, 64, 64), "fasterrcnn", partial=True)
    assert (imported.untraced.op, imported.untraced.module) == ("aten.nonzero.default", "rpn")  # remove_small_boxes
    assert imported.untraced.unreached == ("roi_heads",)
    report = analyze(spec_of(imported))
    # the transform keeps 64×64 (min_size 64, a multiple of 32): the backbone and the RPN head see that batch
    x = torch.empty(1, 3, 64, 64, device="meta")
    features = list(model.backbone(x).values())
    expected = macs_of(lambda: model.backbone(x), lambda: model.rpn.head(features))
    counted = sum(layer.macs for layer in report.layers if layer.name.startswith(("backbone.", "rpn.head.")))
    assert counted == expected == report.totals.macs  # nothing else before the stop multiplies
    assert report.totals.params == sum(p.numel() for m in (model.backbone, model.rpn) for p in m.parameters())
    assert imported.model_params - report.totals.params == sum(p.numel() for p in model.roi_heads.parameters())


def test_ssdlite_counts_backbone_and_head_exactly():
    model = detector("ssdlite320_mobilenet_v3_large")
    imported = read_model(model, (3, 320, 320), "ssdlite", partial=True)
    assert (imported.untraced.op, imported.untraced.module) == ("aten.index.Tensor", "")  # score > threshold
    assert imported.untraced.unreached == ()  # every module ran; the post-processing is the model's own forward
    report = analyze(spec_of(imported))
    x = torch.empty(1, 3, 320, 320, device="meta")
    features = list(model.backbone(x).values())
    assert report.totals.macs == macs_of(lambda: model.backbone(x), lambda: model.head(features))
    assert report.totals.params == sum(p.numel() for p in model.parameters())


def test_detection_from_the_command_line(tmp_path: Path):
    args = ("--arg", "min_size=64", "--arg", "max_size=64", "--arg", "weights_backbone=null")
    refused = run("import", "torchvision:fasterrcnn_resnet50_fpn", *args)
    assert refused.exit_code == 2 and refused.stderr.count("\n") == 1
    assert "aten.nonzero.default in module 'rpn': data-dependent" in refused.stderr
    assert refused.stderr.rstrip().endswith("(--partial counts what runs before it)")
    out = tmp_path / "fasterrcnn.yaml"
    assert run("import", "torchvision:fasterrcnn_resnet50_fpn", *args, "--partial", "-o", str(out)).exit_code == 0
    data = json.loads(run("summary", str(out), "--format", "json").stdout)
    stop = data["not_counted"][-1]
    assert (stop["layer"], stop["op"], stop["module"], stop["unreached"]) == (None, "aten.nonzero.default", "rpn",
                                                                              ["roi_heads"])
    # the transform normalises and resizes image by image: named, with its module, never counted as zero
    looped = [entry for entry in data["not_counted"][:-1] if entry["layer"].startswith("transform")]
    assert {entry["op"] for entry in looped} >= {"aten.sub.Tensor", "aten.div.Tensor", "aten.upsample_bilinear2d.vec"}
