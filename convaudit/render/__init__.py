"""Presentation: reports, findings and runs as Rich tables, JSON, CSV and Markdown. No counting here."""

from .findings import Checked, findings_json, findings_markdown, findings_rich, library_table
from .formatting import fmt_bytes, fmt_int, fmt_shape, fmt_share, fmt_si, rounding_note
from .summary import (
                      COLUMNS,
                      DEFAULT_COLUMNS,
                      parse_columns,
                      report_dict,
                      summary_csv,
                      summary_json,
                      summary_markdown,
                      summary_table,
)

__all__ = ["COLUMNS", "DEFAULT_COLUMNS", "Checked", "findings_json", "findings_markdown", "findings_rich",
           "fmt_bytes", "fmt_int", "fmt_shape", "fmt_share", "fmt_si", "library_table", "parse_columns",
           "report_dict", "rounding_note", "summary_csv", "summary_json", "summary_markdown", "summary_table"]
