"""The tables, in SQLAlchemy Core. Alembic migrations build exactly this schema.

JSON values are stored as text, so the same schema runs on SQLite and
PostgreSQL. Sequence numbers (entity, transition and event ``seq``) come
from the ``counters`` table inside the writing transaction on SQLite, not
from autoincrement, so that the outbox sequence has no gaps. On PostgreSQL,
whose sequences skip numbers on rollback and hand them out in an order that
is not the commits', the outbox is numbered after the commits (see
``pending_events``) and the journal's ``seq`` comes from a sequence (0009).
"""

from __future__ import annotations

import sqlalchemy as sa

__all__ = [
    "chart_versions",
    "counters",
    "entities",
    "events",
    "metadata",
    "owners",
    "pending_events",
    "steps",
    "timers",
    "transitions",
]

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

entities = sa.Table(
    "entities",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("seq", Seq, nullable=False, unique=True),
    sa.Column("chart", sa.String(200), nullable=False),
    sa.Column("name", sa.String(300), nullable=False),
    # Active states as "|running|running.paused|", so a state filter is a LIKE.
    sa.Column("states", sa.Text, nullable=False),
    sa.Column("configuration", sa.Text, nullable=False),
    sa.Column("data", sa.Text, nullable=False),
    sa.Column("history", sa.Text, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    # False once the entity is in a top-level final state: it keeps its journal but
    # no longer holds its name, so a new entity may take it (as docker rm frees one).
    sa.Column("live", sa.Boolean, nullable=False, server_default=sa.true()),
    # The version of its chart the entity runs on (0006). NULL: created before versions
    # were kept; the first version of its chart registered afterwards adopts it.
    sa.Column("chart_version", sa.Integer),
    # The node an entity of a chart with `affinity: node` belongs to (NULL: any node).
    sa.Column("node", sa.String(300)),
)

sa.Index(
    "uq_entities_live_name",
    entities.c.chart,
    entities.c.name,
    unique=True,
    sqlite_where=entities.c.live,
    postgresql_where=entities.c.live,
)
# Reads that must cost the same at a thousand entities and at a million (0003).
sa.Index("ix_entities_name_seq", entities.c.name, entities.c.seq)
sa.Index("ix_entities_chart_seq", entities.c.chart, entities.c.seq)
# Finished entities cost a listing of live ones nothing, and the retention sweep
# finds them without reading the live ones (0005).
sa.Index(
    "ix_entities_live_chart_seq",
    entities.c.chart,
    entities.c.seq,
    sqlite_where=entities.c.live,
    postgresql_where=entities.c.live,
)
sa.Index(
    "ix_entities_finished_seq",
    entities.c.seq,
    sqlite_where=sa.not_(entities.c.live),
    postgresql_where=sa.not_(entities.c.live),
)

transitions = sa.Table(
    "transitions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("seq", Seq, nullable=False, unique=True),
    # Looked up through the unique (entity_id, idempotency_key) index, whose prefix it is:
    # an index of its own would be one more random page to write per fire (0003).
    sa.Column("entity_id", sa.String(64), nullable=False),
    sa.Column("event", sa.String(200), nullable=False),
    sa.Column("params", sa.Text, nullable=False),
    sa.Column("status", sa.String(32), nullable=False, index=True),
    sa.Column("version_from", sa.Integer, nullable=False),
    sa.Column("version_to", sa.Integer),
    sa.Column("plan", sa.Text, nullable=False),
    sa.Column("owner", sa.String(64), nullable=False),
    sa.Column("idempotency_key", sa.String(300)),
    sa.Column("error_category", sa.String(32)),
    sa.Column("error_message", sa.Text),
    sa.Column("compensation_errors", sa.Text, nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float),
    # Where the fire sat in a distributed trace, and the transition that caused it (0007).
    sa.Column("trace_id", sa.String(32)),
    sa.Column("span_id", sa.String(16)),
    sa.Column("caused_by", sa.String(64)),
    sa.UniqueConstraint("entity_id", "idempotency_key"),
)

steps = sa.Table(
    "steps",
    metadata,
    sa.Column("transition_id", sa.String(64), primary_key=True),
    sa.Column("index", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("payload", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("effects", sa.Text),
    sa.Column("started_at", sa.Float),
    sa.Column("finished_at", sa.Float),
    sa.Column("compensated_at", sa.Float),
    sa.Column("compensation_error", sa.Text),
)

timers = sa.Table(
    "timers",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("entity_id", sa.String(64), nullable=False, index=True),
    sa.Column("event", sa.String(200), nullable=False),
    sa.Column("params", sa.Text, nullable=False),
    sa.Column("due_at", sa.Float, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_by", sa.String(64)),
    sa.Column("fired_transition", sa.String(64)),
    sa.Column("error", sa.Text),
    # Which engine claimed the due timer to fire it, and until when its claim holds.
    sa.Column("claimed_by", sa.String(64)),
    sa.Column("claimed_until", sa.Float),
    sa.Index(None, "status", "due_at"),
)


def _outbox_columns() -> list[sa.Column[object]]:
    """The columns of an outbox event beside its number."""
    return [
        sa.Column("entity_id", sa.String(64), nullable=False),
        sa.Column("entity_name", sa.String(300), nullable=False),
        sa.Column("chart", sa.String(200), nullable=False),
        sa.Column("type", sa.String(200), nullable=False),
        sa.Column("attributes", sa.Text, nullable=False),
        sa.Column("transition_id", sa.String(64)),
        sa.Column("created_at", sa.Float, nullable=False),
    ]


events = sa.Table(
    "events",
    metadata,
    sa.Column("seq", Seq, primary_key=True, autoincrement=False),
    *_outbox_columns(),
)

# On PostgreSQL a commit writes its outbox events here, not numbered (0009): numbering
# them inside the writing transaction took a lock that every process's commit held
# through its fsync, one commit after another. They are numbered into ``events`` later,
# in the order they committed (engine.store.sequencer). SQLite numbers in the commit.
pending_events = sa.Table(
    "pending_events",
    metadata,
    sa.Column("id", Seq, primary_key=True, autoincrement=True),
    *_outbox_columns(),
)

counters = sa.Table(
    "counters",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("value", Seq, nullable=False),
)

# Every registered version of every chart (0006): the document, so that an entity keeps
# running on its version's chart after a newer one is registered, and its content hash,
# so that a version number is never registered twice with different content.
chart_versions = sa.Table(
    "chart_versions",
    metadata,
    sa.Column("chart", sa.String(200), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("document", sa.Text, nullable=False),
    sa.Column("registered_at", sa.Float, nullable=False),
)

owners = sa.Table(
    "owners",
    metadata,
    sa.Column("owner", sa.String(64), primary_key=True),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("host", sa.String(300), nullable=False),
    sa.Column("beat_at", sa.Float, nullable=False),
)
