"""A real PostgreSQL server from the OS packages (Debian's /usr/lib/postgresql/<n>/bin).

Its files live in its state dir:

    data/            the cluster, made by initdb once; heartbeat_localstack.conf there sets
                     the address
    run/             the unix socket (a short folder under /tmp when this path is too long)
    postgres.log     the server's log
    state.json       the port, so a later start keeps the same address

Run as root, the server runs as the ``postgres`` OS user (PostgreSQL refuses root).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from heartbeat_localstack.exceptions import LocalStackError, MissingToolError, ServiceStartError
from heartbeat_localstack.ports import HOST, reuse_or_pick
from heartbeat_localstack.process import children, send_signal, tail

logger = logging.getLogger(__name__)

COMPONENT = "PostgreSQL"
SERVER_OS_USER = "postgres"
# sun_path holds 108 bytes; the socket file name (.s.PGSQL.<port>) needs 16 of them.
MAX_SOCKET_DIR = 90


def find_bindir() -> Path:
    """The newest Debian PostgreSQL bin folder, else the folder of `pg_ctl` on PATH."""
    candidates = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")]
    numbered = [p for p in candidates if p.parent.name.isdigit()]
    if numbered:
        return max(numbered, key=lambda p: int(p.parent.name))
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl is not None:
        return Path(pg_ctl).parent
    raise MissingToolError("PostgreSQL server programs are not installed; run make system-deps")


def hba_conf(password_required: bool) -> str:
    """Socket connections are trusted; TCP on 127.0.0.1 too unless a password is set."""
    host_method = "scram-sha-256" if password_required else "trust"
    return (
        "# TYPE  DATABASE  USER  ADDRESS       METHOD\n"
        "local   all       all                 trust\n"
        f"host    all       all   127.0.0.1/32  {host_method}\n"
    )


def tls_hba_conf(cert_user: str) -> str:
    """TCP only over TLS: `cert_user` by client certificate (CN), everyone else by password."""
    return (
        "# TYPE    DATABASE  USER  ADDRESS       METHOD\n"
        "local     all       all                 trust\n"
        f"hostssl   all       {cert_user}  127.0.0.1/32  cert\n"
        "hostssl   all       all   127.0.0.1/32  scram-sha-256\n"
        "hostnossl all       all   127.0.0.1/32  reject\n"
    )


def server_conf(port: int, socket_dir: Path, *, tls: bool = False) -> str:
    """The address settings (and TLS files in the data dir), rewritten at every start."""
    text = f"listen_addresses = '{HOST}'\nport = {port}\nunix_socket_directories = '{socket_dir}'\n"
    if tls:
        text += (
            "ssl = on\nssl_cert_file = 'tls-server.crt'\nssl_key_file = 'tls-server.key'\n"
            "ssl_ca_file = 'tls-ca.crt'\nssl_min_protocol_version = 'TLSv1.2'\n"
        )
    return text


class PostgresServer:
    """One PostgreSQL cluster whose files live in `state_dir`."""

    def __init__(
        self,
        state_dir: Path,
        *,
        user: str = "heartbeat",
        database: str = "heartbeat",
        password: str | None = None,
        ready_timeout: float = 60.0,
        tls_dir: Path | None = None,
        cert_user: str = "heartbeat_cert",
    ) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.user = user
        self.database = database
        self.password = password
        self.ready_timeout = ready_timeout
        # A `heartbeat_localstack.tls.Authority` folder: TLS on, hostssl rules only.
        self.tls_dir = Path(tls_dir).resolve() if tls_dir is not None else None
        self.cert_user = cert_user
        if self.tls_dir is not None and not password:
            raise ValueError("a PostgreSQL server with TLS needs a password for its password rule")
        self.host = HOST
        self._bindir: Path | None = None
        self.port: int | None = self._running_port()

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "data"

    @property
    def log_path(self) -> Path:
        return self.state_dir / "postgres.log"

    @property
    def socket_dir(self) -> Path:
        preferred = self.state_dir / "run"
        if len(str(preferred)) <= MAX_SOCKET_DIR:
            return preferred
        digest = hashlib.sha256(str(self.state_dir).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"heartbeat-pg-{digest}"

    @property
    def _saved_path(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def conninfo(self) -> str:
        """A libpq connection string for the server's TCP address."""
        parts = self.env()
        keys = {"PGHOST": "host", "PGPORT": "port", "PGUSER": "user"}
        keys |= {"PGDATABASE": "dbname", "PGPASSWORD": "password"}
        return " ".join(f"{keys[name]}={_quote(value)}" for name, value in parts.items())

    def env(self) -> dict[str, str]:
        """PG* variables that point libpq clients (psql, psycopg) at this server."""
        if self.port is None:
            raise RuntimeError("the server has no address before start()")
        values = {
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGUSER": self.user,
            "PGDATABASE": self.database,
        }
        if self.password:
            values["PGPASSWORD"] = self.password
        return values

    def is_running(self) -> bool:
        if not (self.data_dir / "PG_VERSION").exists():
            return False
        return self._pg_ctl("status").returncode == 0

    def start(self) -> None:
        """Start the server, or adopt the one already running from this state dir."""
        if self.is_running():
            self.port = self._running_port()
            self._create_database()
            logger.info("PostgreSQL already runs at %s:%s", self.host, self.port)
            return
        self._prepare_dirs()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        self.port = reuse_or_pick(self.port or self._saved_port())
        tls = self.tls_dir is not None
        if self.tls_dir is not None:
            for source, target in (
                ("server.crt", "tls-server.crt"),
                ("server.key", "tls-server.key"),
                ("ca.crt", "tls-ca.crt"),
            ):
                self._write_owned(self.data_dir / target, (self.tls_dir / source).read_text())
            self._write_owned(self.data_dir / "pg_hba.conf", tls_hba_conf(self.cert_user))
        self._write_owned(
            self.data_dir / "heartbeat_localstack.conf",
            server_conf(self.port, self.socket_dir, tls=tls),
        )
        self._saved_path.write_text(json.dumps({"port": self.port}) + "\n")
        timeout = str(int(self.ready_timeout))
        result = self._pg_ctl("start", "-w", "-t", timeout, "-l", str(self.log_path))
        if result.returncode != 0:
            error = self._start_error("pg_ctl start failed", result.stdout + result.stderr)
            self.stop(mode="immediate")  # it may still be starting after pg_ctl gave up
            raise error
        self._create_database()
        logger.info("PostgreSQL answers at %s:%s", self.host, self.port)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (`mode`: smart, fast or immediate). Idempotent; ends a `hang()`."""
        if not self.is_running():
            return
        self.resume()
        logger.info("stopping PostgreSQL at %s:%s (%s)", self.host, self.port, mode)
        result = self._pg_ctl("stop", "-m", mode, "-w", "-t", "60")
        if result.returncode != 0 and self.is_running():
            output = (result.stdout + result.stderr).strip()
            raise LocalStackError(f"PostgreSQL did not stop ({output}); its log is {self.log_path}")

    def restart(self) -> None:
        """Stop and start again on the same port, so clients can reconnect."""
        self.stop()
        self.start()

    def crash(self) -> None:
        """Stop as a crash would (immediate shutdown: no checkpoint, every session cut).

        `start()` afterwards runs crash recovery from the WAL, on the same port.
        """
        self.resume()
        self.stop(mode="immediate")

    def hang(self) -> None:
        """Freeze the server (SIGSTOP to the postmaster, then to each of its processes).

        The kernel still accepts TCP connections into the listen queue, but no connection
        gets an answer and no query returns, as with a server stuck on a dead disk.
        """
        postmaster = self._postmaster_pid()
        if postmaster is None:
            raise LocalStackError(f"PostgreSQL in {self.data_dir} does not run: nothing to hang")
        logger.info("hanging PostgreSQL at %s:%s (pid %d)", self.host, self.port, postmaster)
        send_signal(postmaster, signal.SIGSTOP)  # first, so it forks nothing new meanwhile
        for pid in children(postmaster):
            send_signal(pid, signal.SIGSTOP)

    def resume(self) -> None:
        """Undo `hang()`: SIGCONT to each process, the postmaster last. Harmless otherwise."""
        postmaster = self._postmaster_pid()
        if postmaster is None:
            return
        for pid in children(postmaster):
            send_signal(pid, signal.SIGCONT)
        send_signal(postmaster, signal.SIGCONT)

    def _postmaster_pid(self) -> int | None:
        """The pid in postmaster.pid while that process lives, else None."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, IndexError, ValueError):
            return None
        return pid if Path(f"/proc/{pid}").exists() else None

    def _start_error(self, reason: str, output: str = "") -> ServiceStartError:
        """The error for a failed start: `output` of the failing program, then the log's end."""
        details = "\n".join(part for part in (output.strip(), tail(self.log_path)) if part)
        return ServiceStartError(COMPONENT, reason, self.log_path, details)

    def _tool(self, name: str) -> str:
        if self._bindir is None:
            self._bindir = find_bindir()
        return str(self._bindir / name)

    def _run(
        self, argv: Sequence[str], *, as_server: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL program; as root, server-side ones run as the postgres user."""
        env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        options: dict[str, Any] = {}
        account = _server_account() if as_server else None
        if account is not None:
            options = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
            env["HOME"] = account.pw_dir
        cwd = self.state_dir if self.state_dir.exists() else None
        return subprocess.run(
            list(argv),
            cwd=cwd,
            env=env,
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            check=False,
            # pg_ctl leaves the server running: keep it out of our session and its signals.
            start_new_session=True,
            **options,
        )

    def _pg_ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self._run([self._tool("pg_ctl"), "-D", str(self.data_dir), *args])

    def _prepare_dirs(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        account = _server_account()
        if account is None:
            return
        for path in (self.state_dir, self.socket_dir):
            os.chown(path, account.pw_uid, account.pw_gid)
            _make_ancestors_traversable(path)
        if self.log_path.exists():
            os.chown(self.log_path, account.pw_uid, account.pw_gid)

    def _initdb(self) -> None:
        logger.info("creating a PostgreSQL cluster in %s", self.data_dir)
        argv = [
            self._tool("initdb"),
            "--pgdata",
            str(self.data_dir),
            "--username",
            self.user,
            "--encoding",
            "UTF8",
            "--locale",
            "C",
            "--auth",
            "trust",
        ]
        password_file = self.state_dir / "initdb.pw"
        if self.password:
            self._write_owned(password_file, self.password + "\n")
            argv += ["--pwfile", str(password_file)]
        try:
            result = self._run(argv)
        finally:
            password_file.unlink(missing_ok=True)
        if result.returncode != 0:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            raise ServiceStartError(
                COMPONENT, "initdb failed", self.log_path, (result.stdout + result.stderr).strip()
            )
        self._write_owned(self.data_dir / "pg_hba.conf", hba_conf(bool(self.password)))
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\n# Address settings written by heartbeat_localstack at every start.\n")
            conf.write("include_if_exists = 'heartbeat_localstack.conf'\n")

    def _create_database(self) -> None:
        socket = ["--host", str(self.socket_dir), "--port", str(self.port), "--username", self.user]
        exists = self._run(
            [
                self._tool("psql"),
                *socket,
                "--dbname",
                "postgres",
                "--no-psqlrc",
                "--tuples-only",
                "--no-align",
                "--set",
                f"name={self.database}",
            ],
            as_server=False,
            # Variables are interpolated in scripts, not in --command: the name gets quoted.
            stdin="SELECT 1 FROM pg_database WHERE datname = :'name';\n",
        )
        if exists.returncode != 0:
            raise self._start_error("it does not answer queries", exists.stderr)
        if exists.stdout.strip() != "1":
            created = self._run([self._tool("createdb"), *socket, self.database], as_server=False)
            if created.returncode != 0:
                raise self._start_error("createdb failed", created.stderr)
        if self.tls_dir is not None:
            self._create_cert_user(socket)

    def _create_cert_user(self, socket: list[str]) -> None:
        """The role that logs in by client certificate, owner of a database of its own name."""
        psql = [self._tool("psql"), *socket, "--no-psqlrc", "--set", "ON_ERROR_STOP=1"]
        script = (
            "SELECT format('CREATE ROLE %I LOGIN', :'name') "
            "WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'name') \\gexec\n"
            "SELECT format('CREATE DATABASE %I OWNER %I', :'name', :'name') "
            "WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'name') \\gexec\n"
        )
        result = self._run(
            [*psql, "--dbname", "postgres", "--set", f"name={self.cert_user}"],
            as_server=False,
            stdin=script,
        )
        if result.returncode != 0:
            raise self._start_error("creating the certificate user failed", result.stderr)

    def _running_port(self) -> int | None:
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
            return int(lines[3])
        except (OSError, IndexError, ValueError):
            return self._saved_port()

    def _saved_port(self) -> int | None:
        try:
            port = json.loads(self._saved_path.read_text()).get("port")
        except (OSError, ValueError, AttributeError):
            return None
        return port if isinstance(port, int) else None

    def _write_owned(self, path: Path, text: str) -> None:
        """Write a file the server can read: owned by the postgres user when we are root."""
        path.write_text(text)
        path.chmod(0o600)
        account = _server_account()
        if account is not None:
            os.chown(path, account.pw_uid, account.pw_gid)


def _server_account() -> pwd.struct_passwd | None:
    """The OS account the server runs as when we are root; None when we are not root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVER_OS_USER)
    except KeyError:
        raise MissingToolError(
            f"running as root, PostgreSQL needs the {SERVER_OS_USER!r} OS user, which the "
            "postgresql package creates; run make system-deps"
        ) from None


def _make_ancestors_traversable(path: Path) -> None:
    """Let the server's user reach `path`: add the search bit for others where it is missing."""
    for parent in path.parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            logger.warning("letting PostgreSQL's user traverse %s (chmod o+x)", parent)
            parent.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


def _quote(value: str) -> str:
    """A conninfo value, quoted when it needs to be."""
    if value and not any(ch in value for ch in " '\\"):
        return value
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"
