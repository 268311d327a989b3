"""docs/python-summary-notebook.png: what a notebook shows for a convaudit.summary(...), drawn by headless Chromium.

    python scripts/notebook_screenshot.py

The cell's output is the summary's own `_repr_html_()`, the HTML Jupyter displays, in a page styled like a
notebook's input and output cells.
"""

from __future__ import annotations

import html
import subprocess
import tempfile
from pathlib import Path

import convaudit

ROOT = Path(__file__).resolve().parent.parent
CODE = 'import convaudit\ns = convaudit.summary("alexnet", input_size=224)\ns'
STYLE = """body { font-family: sans-serif; margin: 16px; background: #fff; }
.cell { border: 1px solid #e0e0e0; border-radius: 4px; padding: 8px 12px; margin-bottom: 8px; background: #f7f7f7; }
.prompt { color: #303f9f; font-family: monospace; font-size: 14px; margin-bottom: 4px; }
.out { color: #d84315; font-family: monospace; font-size: 14px; margin-bottom: 4px; }
pre.code { margin: 0; font-size: 14px; }"""


def main() -> None:
    shown = convaudit.summary("alexnet", input_size=224)._repr_html_()
    page = (f'<!DOCTYPE html><html><head><meta charset="utf-8"><style>{STYLE}</style></head><body>'
            f'<div class="prompt">In [1]:</div><div class="cell"><pre class="code">{html.escape(CODE)}</pre></div>'
            f'<div class="out">Out[1]:</div><div class="output">{shown}</div></body></html>')
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder, "notebook.html")
        source.write_text(page, encoding="utf-8")
        subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        "--window-size=1360,1010", f"--screenshot={ROOT / 'docs' / 'python-summary-notebook.png'}",
                        source.as_uri()], check=True, capture_output=True, timeout=120)


if __name__ == "__main__":
    main()
