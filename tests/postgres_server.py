"""A throwaway PostgreSQL server for tests: Debian's `postgresql` package,
`initdb` into a temporary directory, `pg_ctl` on a free 127.0.0.1 port with
its unix socket in that directory, stopped and deleted afterwards.

PostgreSQL refuses to run as root. When the tests run as root (CI containers),
the server runs as the `postgres` system user that Debian's package creates,
through `runuser`; the temporary directory is handed to that user.
"""
import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time

SERVER_USER = "postgres"   # created by Debian's postgresql package
SUPERUSER = "digitdraw"    # the role initdb creates; trust auth on 127.0.0.1 only
START_TIMEOUT_S = 60


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL binaries here (apt-get install postgresql)."""


def bin_dir():
    """Newest /usr/lib/postgresql/<version>/bin holding initdb, or $PG_BIN."""
    if os.environ.get("PG_BIN"):
        return os.environ["PG_BIN"]
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if not found:
        raise PostgresUnavailable("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb; "
                                  "apt-get install -y postgresql)")
    return os.path.dirname(found[-1])


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PostgresServer:
    def __init__(self):
        self.bin = bin_dir()
        self.as_user = SERVER_USER if os.geteuid() == 0 else None
        if self.as_user:
            try:
                self._account = pwd.getpwnam(self.as_user)
            except KeyError:
                raise PostgresUnavailable(f"running as root but there is no {self.as_user!r} user "
                                          f"to run PostgreSQL as (apt-get install -y postgresql "
                                          f"creates it)") from None
        self.root = tempfile.mkdtemp(prefix="digitdraw-pg-")
        self.data = os.path.join(self.root, "data")
        self.log = os.path.join(self.root, "server.log")
        self.port = None

    def _run(self, *args, timeout=120):
        command = [os.path.join(self.bin, args[0]), *args[1:]]
        if self.as_user:
            command = ["runuser", "-u", self.as_user, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=self.root)
        if result.returncode != 0:
            log = open(self.log).read()[-3000:] if os.path.exists(self.log) else ""
            raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n"
                               f"{result.stdout}{result.stderr}{log}")
        return result

    def start(self):
        if self.as_user:
            os.chown(self.root, self._account.pw_uid, self._account.pw_gid)
            os.chmod(self.root, 0o700)
        self._run("initdb", "-D", self.data, "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
                  "--no-sync", "--no-instructions")
        # Another test run may take the port between probing and binding: retry.
        for _attempt in range(3):
            self.port = _free_port()
            self.options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                            f"-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
            try:
                self._start()
                return self
            except RuntimeError:
                if "could not bind" not in (open(self.log).read() if os.path.exists(self.log) else ""):
                    raise
        raise RuntimeError(f"PostgreSQL found no free port; see {self.log}")

    def _start(self):
        self._run("pg_ctl", "-D", self.data, "-o", self.options, "-l", self.log, "-w",
                  "-t", str(START_TIMEOUT_S), "start", timeout=START_TIMEOUT_S + 30)

    @contextlib.contextmanager
    def down(self):
        """The server stopped (its data kept) for the block, then started again on its port."""
        self._run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop", timeout=60)
        try:
            yield
        finally:
            self._start()

    def restart(self):
        """Stop and start again on the same port and data (pg_ctl reuses the options it
        started with): every open connection is cut, as by an upgrade or a failover."""
        self._run("pg_ctl", "-D", self.data, "-l", self.log, "-m", "fast", "-w", "-t", str(START_TIMEOUT_S), "restart",
                  timeout=START_TIMEOUT_S + 30)

    def url(self, database="postgres"):
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name):
        """A fresh, empty database; returns its URL."""
        import sqlalchemy as sa
        engine = sa.create_engine(self.url(), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        finally:
            engine.dispose()
        return self.url(name)

    def stop(self):
        try:
            if os.path.exists(os.path.join(self.data, "postmaster.pid")):
                self._run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop", timeout=60)
        finally:
            deadline = time.monotonic() + 10
            while True:
                try:
                    shutil.rmtree(self.root)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
