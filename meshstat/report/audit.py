"""The table of :func:`meshstat.audit.audit`: one row per (service, client group) that diverges."""

from __future__ import annotations

from typing import Any

from meshstat.audit import AuditResult, format_split

__all__ = ["COLUMNS", "audit_table"]

COLUMNS = ("service", "clients", "configured", "effective", "reason", "detail")


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
