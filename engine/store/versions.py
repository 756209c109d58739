"""The registered versions of charts: their documents and content hashes (rare paths)."""

from __future__ import annotations

import sqlalchemy as sa

from engine.ports import ChartVersionRow
from engine.store import schema as t
from engine.store.database import Database
from engine.store.queries import ReadStatements
from engine.store.rows import dumps, loads

__all__ = ["ChartVersions"]

_v, _e = t.chart_versions.c, t.entities.c


class ChartVersions:
    """The Store port's chart versions, on :class:`Database`."""

    _db: Database
    _reads: ReadStatements

    def chart_versions(self, chart: str) -> list[ChartVersionRow]:
        """Every stored version of ``chart``, oldest first."""
        query = self._reads.shape(
            "chart_versions",
            lambda: (
                t.chart_versions.select()
                .where(_v.chart == sa.bindparam("chart"))
                .order_by(_v.version)
            ),
        )
        with self._db.querying() as conn:
            rows = self._db.query(conn, query, {"chart": chart})
        return [
            ChartVersionRow(
                r["chart"], r["version"], r["hash"], loads(r["document"]), r["registered_at"]
            )
            for r in rows
        ]

    def add_chart_version(self, row: ChartVersionRow) -> bool:
        """Store ``row`` unless its (chart, version) is stored; see the Store port."""
        db = self._db
        # Read before the write transaction: on a database in memory both share one connection.
        first = not self.chart_versions(row.chart)
        try:
            with db.writing() as conn:
                db.run_statement(
                    conn,
                    t.chart_versions.insert().values(
                        chart=row.chart,
                        version=row.version,
                        hash=row.hash,
                        document=dumps(row.document),
                        registered_at=row.registered_at,
                    ),
                )
                if first:
                    # Entities created before versions were kept ran on this chart.
                    db.run_statement(
                        conn,
                        t.entities.update()
                        .where(_e.chart == row.chart, _e.chart_version.is_(None))
                        .values(chart_version=row.version),
                    )
        except sa.exc.IntegrityError:
            return False  # stored meanwhile, by another engine
        return True
