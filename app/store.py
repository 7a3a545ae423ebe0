"""Where corrections live: one small interface over SQLite (default) and PostgreSQL.

SQLAlchemy Core builds every statement, so the same code runs on both. Two
things differ and are handled here, once:

- SQLite: WAL journal (readers never block the writer), a busy timeout, and
  `BEGIN IMMEDIATE` for every transaction, so that several gunicorn workers
  writing at once queue for the write lock instead of failing with
  "database is locked" when a read transaction tries to become a write one.
- PostgreSQL (psycopg 3): schema changes run under a transaction-scoped
  advisory lock, so replicas starting together do not race to create tables.

The cap on stored corrections is enforced with one counter row, reserved by a
conditional UPDATE in the same transaction as the INSERT: concurrent writers
(threads, workers, replicas) can never store more than the cap.

This module knows nothing of Flask; `python -m model.corrections export`
reads the store through it too.
"""
import contextlib
import datetime as dt
import os
import sqlite3
import time
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy import event

# Version 1: the corrections table and the state row (schema version, counter).
SCHEMA_VERSION = 1
# Key of the PostgreSQL advisory lock held while creating or upgrading the schema
# (any fixed 64-bit number; this one spells "digitdra" in ASCII).
MIGRATION_LOCK = 0x6469676974647261
# How long a SQLite writer waits for another one before giving up; a write takes
# about a millisecond, so this only matters when something holds the file.
SQLITE_BUSY_SECONDS = 30
IMAGE_SIDE = 28

metadata = sa.MetaData()

state = sa.Table(
    "digitdraw_state", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("schema_version", sa.Integer, nullable=False),
    sa.Column("corrections_stored", sa.Integer, nullable=False),
)

corrections = sa.Table(
    "corrections", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("label", sa.SmallInteger, nullable=False),
    # The 28x28 uint8 image the model classified (white ink on black), row-major.
    sa.Column("image", sa.LargeBinary, nullable=False),
    sa.Column("predicted", sa.SmallInteger, nullable=False),
    sa.Column("confidence", sa.Float, nullable=False),
    sa.Column("is_digit", sa.Boolean, nullable=False),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_sha256", sa.String(64), nullable=False),
    # The uploaded file as sent, only when FEEDBACK_KEEP_UPLOADS is on.
    sa.Column("upload", sa.LargeBinary, nullable=True),
    sa.CheckConstraint("label BETWEEN 0 AND 9", name="label_is_a_digit"),
)

# Upgrades from each older version to the next, applied in order at start-up:
# {1: upgrade_1_to_2, ...}. Empty while there is only version 1.
MIGRATIONS = {}


class StoreError(RuntimeError):
    """The store cannot be opened or used; the message says what to fix."""


class StoreUnreachable(StoreError):
    """The database stopped answering while the app runs (restarting, failing over,
    network down); nothing was stored, and the next request tries again."""


class StoreFull(Exception):
    """The configured cap on stored corrections is reached."""

    def __init__(self, cap):
        super().__init__(f"the store holds its maximum of {cap} corrections")
        self.cap = cap


@dataclass(frozen=True)
class Correction:
    label: int
    image: bytes          # 784 bytes
    predicted: int
    confidence: float
    is_digit: bool
    model_name: str
    model_sha256: str
    upload: bytes | None = None


class CorrectionStore:
    """Add corrections, count them, read them back for training."""

    def __init__(self, url):
        self.url = url
        self.dialect = url.split(":", 1)[0].split("+", 1)[0]
        if self.dialect == "sqlite":
            self.engine = _sqlite_engine(url)
        elif self.dialect == "postgresql":
            self.engine = sa.create_engine(url, pool_pre_ping=True)
        else:
            raise StoreError(f"unsupported database URL scheme {self.dialect!r}; use sqlite or postgresql")

    @property
    def where(self):
        """The URL without its password, for logs and messages."""
        return sa.engine.make_url(self.url).render_as_string(hide_password=True)

    def migrate(self):
        """Create the schema, or upgrade it to SCHEMA_VERSION; refuse a newer one."""
        try:
            with self.engine.begin() as conn:
                if self.dialect == "postgresql":
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK)))
                metadata.create_all(conn)
                row = conn.execute(sa.select(state).where(state.c.id == 1)).first()
                if row is None:
                    stored = conn.execute(sa.select(sa.func.count()).select_from(corrections)).scalar_one()
                    conn.execute(sa.insert(state).values(id=1, schema_version=SCHEMA_VERSION,
                                                         corrections_stored=stored))
                    return SCHEMA_VERSION
                version = row.schema_version
                if version > SCHEMA_VERSION:
                    raise StoreError(
                        f"the corrections database at {self.where} has schema version {version}, newer "
                        f"than this digitdraw understands ({SCHEMA_VERSION}); upgrade digitdraw or "
                        f"point DATA_DIR/DATABASE_URL elsewhere")
                while version < SCHEMA_VERSION:
                    MIGRATIONS[version](conn)
                    version += 1
                    conn.execute(sa.update(state).where(state.c.id == 1).values(schema_version=version))
                return version
        except sa.exc.OperationalError as exc:
            raise StoreError(f"cannot open the corrections database at {self.where}: {exc.orig}") from None

    @contextlib.contextmanager
    def _reached(self):
        """A transaction, or StoreUnreachable when the database cannot be reached.
        (On PostgreSQL a pooled connection the server dropped is replaced first:
        pool_pre_ping; so a restart costs no request, an outage costs a 503.)"""
        try:
            with self.engine.begin() as conn:
                yield conn
        except sa.exc.OperationalError as exc:
            raise StoreUnreachable(f"cannot reach the corrections database at {self.where}: "
                                   f"{str(exc.orig).strip()}") from None

    def schema_version(self):
        with self.engine.begin() as conn:
            return conn.execute(sa.select(state.c.schema_version).where(state.c.id == 1)).scalar_one()

    def add(self, correction, cap):
        """Store one correction and return its id; StoreFull once `cap` are stored."""
        ident = uuid.uuid4().hex
        with self._reached() as conn:
            reserved = conn.execute(
                sa.update(state)
                .where(state.c.id == 1, state.c.corrections_stored < cap)
                .values(corrections_stored=state.c.corrections_stored + 1)).rowcount
            if reserved != 1:
                raise StoreFull(cap)
            conn.execute(sa.insert(corrections).values(
                id=ident, created_at=dt.datetime.now(dt.timezone.utc),
                label=int(correction.label), image=bytes(correction.image),
                predicted=int(correction.predicted), confidence=float(correction.confidence),
                is_digit=bool(correction.is_digit), model_name=correction.model_name,
                model_sha256=correction.model_sha256, upload=correction.upload))
        return ident

    def summary(self):
        """(count, {"0": n0, ..., "9": n9}) from the rows themselves."""
        with self._reached() as conn:
            rows = conn.execute(sa.select(corrections.c.label, sa.func.count())
                                .group_by(corrections.c.label)).all()
        per_label = {str(d): 0 for d in range(10)}
        for label, count in rows:
            per_label[str(label)] = int(count)
        return sum(per_label.values()), per_label

    def rows(self, with_uploads=False):
        """Every correction, oldest first, as dicts (the image as bytes)."""
        columns = [c for c in corrections.c if with_uploads or c.name != "upload"]
        with self._reached() as conn:
            result = conn.execute(sa.select(*columns).order_by(corrections.c.created_at, corrections.c.id))
            return [dict(row._mapping) for row in result]

    def close(self):
        """Drop pooled connections (also before gunicorn forks its workers)."""
        self.engine.dispose()


def _sqlite_engine(url):
    path = sa.engine.make_url(url).database
    if path and path != ":memory:":
        directory = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the data directory {directory} for corrections "
                             f"({exc.strerror}); set DATA_DIR to a writable folder, or FEEDBACK=off") from None
        if not os.access(directory, os.W_OK):
            raise StoreError(f"the data directory {directory} is not writable by this user; "
                             f"set DATA_DIR to a writable folder, or FEEDBACK=off")
    # The driver's timeout is SQLite's busy timeout: a writer waits for another's lock.
    engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_SECONDS})

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection, _record):
        # Transactions are begun by us (below), not by the driver's own guesswork.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        _switch_to_wal(cursor)
        # In WAL mode NORMAL survives any crash of the app; a power cut may lose the
        # last commits but never corrupts the file (SQLite docs, "WAL mode").
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin_immediate(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _switch_to_wal(cursor):
    """Turn on WAL, retrying: SQLite answers "locked" at once, without its busy
    handler, when workers starting together race to convert a new file."""
    deadline = time.monotonic() + SQLITE_BUSY_SECONDS
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def open_store(url):
    """A store at `url` with its schema ready; StoreError says what is wrong."""
    store = CorrectionStore(url)
    store.migrate()
    return store
