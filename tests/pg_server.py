"""A throwaway PostgreSQL server for the test session (real server, no mocks).

`PostgresServer.start()` runs `initdb` into a fresh temporary folder and starts `postgres` on a
free port on 127.0.0.1 (and a unix socket inside the folder), tuned for speed rather than
durability; `stop()` shuts it down with `-m immediate` and removes the folder. Each test gets its
own database (`create_database`), so tests never see each other's rows.

The server's TimeZone is Asia/Singapore, not UTC, so timestamptz values come back from the
driver with a +08:00 offset and the store's conversion to UTC is really exercised.

PostgreSQL refuses to run as root: then every server command runs as the `postgres` user through
`runuser`, in a folder that user owns.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

PREFERRED_BINDIR = "/usr/lib/postgresql/15/bin"
SERVER_USER = "postgres"
SUPERUSER = "postgres"  # the database role `initdb -U` creates


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries (initdb, pg_ctl, postgres) could be found."""


def find_bindir() -> Path:
    """The folder holding initdb, pg_ctl and postgres: 15 first, then PATH, then any version."""
    needed = ("initdb", "pg_ctl", "postgres")
    candidates = [Path(PREFERRED_BINDIR)]
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for bindir in candidates:
        if all(os.access(bindir / name, os.X_OK) for name in needed):
            return bindir
    raise PostgresUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found in "
        f"{PREFERRED_BINDIR}, on PATH, or under /usr/lib/postgresql/*/bin"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """One PostgreSQL cluster in a temporary folder, reachable at 127.0.0.1:`port`."""

    def __init__(self, bindir: Path | None = None) -> None:
        self.bindir = bindir or find_bindir()
        self.as_root = os.geteuid() == 0
        self.base: Path | None = None
        self.port = 0
        self._counter = 0
        self._running = False

    # ---- paths and commands -------------------------------------------------------------

    @property
    def datadir(self) -> Path:
        assert self.base is not None
        return self.base / "data"

    @property
    def sockdir(self) -> Path:
        assert self.base is not None
        return self.base / "sock"

    @property
    def logfile(self) -> Path:
        assert self.base is not None
        return self.base / "server.log"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.as_root:
            cmd = ["runuser", "-u", SERVER_USER, "--", *cmd]
        env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
        env.pop("PGDATA", None)
        result = subprocess.run(
            cmd, cwd=self.base, env=env, capture_output=True, text=True, timeout=60
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
                f"{self._log_tail()}"
            )
        return result

    def _log_tail(self) -> str:
        try:
            lines = self.logfile.read_text(errors="replace").splitlines()[-20:]
        except OSError:
            return ""
        return "\nserver log:\n" + "\n".join(lines)

    # ---- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="aggregator-pg-"))
        self.sockdir.mkdir()
        if self.as_root:
            try:
                user = pwd.getpwnam(SERVER_USER)
            except KeyError:
                raise PostgresUnavailable(
                    f"running as root, PostgreSQL must run as the `{SERVER_USER}` user, "
                    "which does not exist"
                ) from None
            for path in (self.base, self.sockdir):
                os.chown(path, user.pw_uid, user.pw_gid)
        self._run(
            "initdb",
            "-D", str(self.datadir),
            "-A", "trust",
            "-U", SUPERUSER,
            "-E", "UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        )  # fmt: skip
        for attempt in range(3):  # the port may be taken between choosing and binding it
            self.port = free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.sockdir} "
                "-c fsync=off -c full_page_writes=off -c synchronous_commit=off "
                "-c max_connections=200 -c TimeZone=Asia/Singapore"
            )
            result = self._run(
                "pg_ctl", "-D", str(self.datadir), "-l", str(self.logfile),
                "-w", "-t", "30", "-o", options, "start",
                check=attempt == 2,
            )  # fmt: skip
            if result.returncode == 0:
                break
        self._running = True

    def stop(self) -> None:
        """Shut the server down at once and delete its folder (safe to call twice)."""
        try:
            if self._running:
                self._running = False
                self._run("pg_ctl", "-D", str(self.datadir), "-w", "stop", "-m", "immediate")
        finally:
            if self.base is not None:
                shutil.rmtree(self.base, ignore_errors=True)
                self.base = None

    # ---- databases ----------------------------------------------------------------------

    def url(self, dbname: str) -> str:
        """The SQLAlchemy URL of database `dbname` on this server."""
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def _admin(self, *statements: str) -> None:
        import psycopg

        conninfo = f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname=postgres"
        with psycopg.connect(conninfo, autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)  # names are ours, not input: no injection

    def create_database(self) -> str:
        """A new empty database; returns its name."""
        self._counter += 1
        name = f"test_{self._counter}"
        self._admin(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def recreate_database(self, name: str) -> None:
        """Drop `name` and create it again, empty (as if the operator deleted the database)."""
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
