"""Global pools and dropout at p = 0 save nothing for backward (PyTorch's own saved tensors agree), and
`summary --rf` prints every receptive-field note, however many there are."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from convaudit.cli import app
from convaudit.core.analysis import analyze
from convaudit.core.memory import training_memory
from convaudit.spec.parser import parse_text

from .torch_oracles import saved_activation_bytes


def pooled(pool: str) -> str:
    return f"""\
name: t
input: [3, 8, 8]
layers:
  - {{type: conv, out: 4, kernel: 3, padding: 1}}
  - {{type: relu6}}
  - {pool}
  - {{type: dropout, p: 0}}
  - {{type: linear, out: 10}}
"""


GLOBAL = pooled("{type: globalavgpool}")
ADAPTIVE_1 = pooled("{type: adaptiveavgpool, output: 1}")
ADAPTIVE_2 = pooled("{type: adaptiveavgpool, output: 2}")


def test_a_global_pool_and_dropout_at_p_0_save_nothing_by_hand() -> None:
    for text in (GLOBAL, ADAPTIVE_1):
        memory = training_memory(analyze(parse_text(text), batch=2))
        # conv saves its input, 2·3·8·8 = 384 values; relu6 its input, the conv's 2·4·8·8 = 512 outputs; the
        # pool (a mean over H and W) and the dropout (its input passed through) nothing; linear its input,
        # the pool's 2·4·1·1 = 8 outputs (dropout's output is that very tensor).
        assert sum(memory.saved_by_layer.values()) == memory.saved_activations == (384 + 512 + 8) * 4, text
        assert [nbytes for nbytes in memory.saved_by_layer.values()] == [384 * 4, 512 * 4, 0, 0, 8 * 4]
    memory = training_memory(analyze(parse_text(ADAPTIVE_2), batch=2))
    # pooled to 2 × 2 the pool saves its input, relu6's 512 outputs; linear saves 2·4·2·2 = 32 values
    assert memory.saved_activations == (384 + 512 + 512 + 32) * 4


@pytest.mark.needs_torch
@pytest.mark.parametrize("text", [GLOBAL, ADAPTIVE_1, ADAPTIVE_2], ids=["global", "adaptive1", "adaptive2"])
def test_pools_and_dropout_at_p_0_match_what_pytorch_saves(text: str) -> None:
    import torch

    from convaudit.pytorch.builder import build_model

    report = analyze(parse_text(text), batch=2)
    model = build_model(report).train()
    assert training_memory(report).saved_activations == saved_activation_bytes(model, torch.randn((2, *report.input)))


def rf_notes(path, width: str = "300") -> list[str]:
    result = CliRunner().invoke(app, ["summary", str(path), "--rf"], env={"COLUMNS": width})
    assert result.exit_code == 0, result.output
    return [line for line in result.stdout.splitlines() if "H and W:" in line or "…" in line]


def test_summary_rf_prints_every_note(write_spec) -> None:
    layers = "".join("  - {type: conv, out: 2, kernel: 2, stride: 2}\n" for _ in range(10))
    path = write_spec(f"name: chain\ninput: [1, 2047, 2047]\nlayers:\n{layers}")
    # side n = 2ᵏ − 1: (n − 2)/2 + 1 = n/2 = 2ᵏ⁻¹ − 1/2, floored to n // 2 = 2ᵏ⁻¹ − 1, the next side; 2047 … 3
    sides = [2 ** k - 1 for k in range(11, 1, -1)]
    notes = rf_notes(path)
    assert len(notes) == 10, notes
    for index, (note, n) in enumerate(zip(notes, sides, strict=True), start=1):
        assert note.startswith(f"conv{index}: H and W: ({n} − 2 + 2·0)/2 + 1 = {n // 2}.5 floored to {n // 2}:"), note


def test_layers_with_the_same_note_share_one_line(write_spec) -> None:
    path = write_spec("""\
name: branch
input: [1, 15, 15]
layers:
  - {type: conv, name: a, out: 2, kernel: 2, stride: 2}
  - {type: conv, name: b, out: 2, kernel: 2, stride: 2, from: input}
  - {type: add, name: c, from: [a, b]}
""")
    # both read the 15-pixel input: (15 − 2)/2 + 1 = 7.5, floored to 7
    assert [note.split(": RF and")[0] for note in rf_notes(path)] == ["a, b: H and W: (15 − 2 + 2·0)/2 + 1 = 7.5 "
                                                                       "floored to 7"]
