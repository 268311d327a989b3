"""The command line, `convaudit`: thin commands, as fastapi-cli writes them (parse the options, call the core
through the one resolver, emit the result).

    app.py         the Typer app, its error boundary, and main()
    options.py     the options commands share (Annotated), and parsing of option values
    emit.py        emit(result, format): every output, through one table of renderers
    networks.py    summary, rf, check, audit, diff, list, schema: the analysis, torch-free
    files.py       report, draw, import: the commands that write files
    plans.py       split
    fit.py         fit: the largest batch that trains within a device's memory
    torch_side.py  verify, bench: PyTorch

Importing this package loads Typer and these modules only; each command imports what it needs when it runs,
so `convaudit --help` stays fast. The commands are registered here, in the order --help lists them.
"""

from convaudit.cli import files, fit, networks, plans, torch_side
from convaudit.cli.app import app, main

COMMANDS = (
    ("summary", networks.summary),
    ("rf", networks.receptive_field),
    ("report", files.html_report),
    ("draw", files.draw_network),
    ("split", plans.split_plan),
    ("fit", fit.fit_batch),
    ("check", networks.check),
    ("verify", torch_side.verify),
    ("bench", torch_side.bench),
    ("audit", networks.audit_claims),
    ("diff", networks.diff_specs),
    ("list", networks.list_architectures),
    ("import", files.import_model),
    ("schema", networks.schema),
)
for _name, _command in COMMANDS:
    app.command(_name)(_command)

__all__ = ["app", "main"]
