"""The table of :func:`meshstat.audit.audit`: one row per (service, client group) that diverges."""

from __future__ import annotations

from typing import Any

from meshstat.audit import AuditResult, format_split
from meshstat.report.text import Column

__all__ = ["AUDIT_COLUMNS", "COLUMNS", "audit_table"]

COLUMNS = ("service", "clients", "configured", "effective", "reason", "detail")

#: How ``--format table`` lays the rows out: fitted to the terminal, long cells wrapped (every column is
#: there; a column that does not fit even wrapped is named below the table, and ``--wide`` shows it).
AUDIT_COLUMNS = (
    Column("SERVICE", "service"),
    Column("CLIENTS", "clients", wrap=True),
    Column("CONFIGURED", "configured", wrap=True),
    Column("EFFECTIVE", "effective", wrap=True),
    Column("REASON", "reason"),
    Column("DETAIL", "detail", wrap=True),
)


def audit_table(res: AuditResult) -> Any:
    """A polars DataFrame with :data:`COLUMNS` (splits written by :func:`meshstat.audit.format_split`)."""
    import polars as pl

    rows = res.rows
    return pl.DataFrame(
        {
            "service": [r.service for r in rows],
            "clients": [r.clients for r in rows],
            "configured": [format_split(r.configured) for r in rows],
            "effective": [format_split(r.effective) for r in rows],
            "reason": [r.reason for r in rows],
            "detail": [r.detail for r in rows],
        },
        schema=dict.fromkeys(COLUMNS, pl.String),
    )
