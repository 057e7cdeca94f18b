"""The stores a sweep keeps off its driver's disk, checked before anything is written: the MLflow tracking
store and the Optuna study (each a database URL: PostgreSQL on a cluster), and the lock that lets one
driver at a time run a sweep folder (which may sit on storage every node mounts).

Credentials never enter a URI: sweep.json, MLflow's tags and the logs would keep them. libpq reads the
password from PGPASSWORD or ~/.pgpass, so the URIs stay `postgresql://user@host/db`.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from lsdseg.sweep.errors import SweepError
from lsdseg.sweep.layout import SweepLayout

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from lsdseg.sweep.state import SweepState

SERVERS = ("postgresql", "mysql", "mssql")  # the database servers MLflow's SQLAlchemy store supports
MLFLOW_TABLES = {"experiments", "runs", "metrics"}


def _first_line(err: BaseException) -> str:
    text = str(getattr(err, "orig", None) or err).strip()
    return text.splitlines()[0][:200] if text else type(err).__name__


def _url(uri: str, flag: str):
    """The SQLAlchemy URL of a database server's URI, or None for any other URI (a file, an MLflow server)."""
    import sqlalchemy.engine

    scheme = uri.split("://", 1)[0].split("+", 1)[0] if "://" in uri else ""
    if scheme not in SERVERS:
        return None
    try:
        return sqlalchemy.engine.make_url(uri)
    except Exception as err:  # an unparsable URL is the user's to fix
        raise SweepError(f"{flag} {uri!r} is not a database URL ({_first_line(err)}): "
                         "write it as postgresql://user@host:5432/database") from None


def artifact_root(tracking_uri: str, root: Path) -> Optional[str]:
    """Where a new MLflow experiment keeps its artifacts. A database server holds runs but no files, and
    MLflow would put them in the driver's working folder (./mlruns), lost with its disk: they go beside the
    sweep folders instead, on the storage that outlives the driver. A server (http) and a sqlite file keep
    their own default."""
    return (root.resolve() / "mlflow-artifacts").as_uri() if _url(tracking_uri, "--tracking-uri") is not None else None


def no_password(uri: Optional[str], flag: str) -> None:
    """Refuse a URI that carries a password: it would be stored in sweep.json, MLflow and the logs."""
    if not uri or "://" not in uri:
        return
    from urllib.parse import urlsplit

    try:
        password = urlsplit(uri).password
    except ValueError:  # a malformed port: the store's own check names it
        return
    if password:
        raise SweepError(f"{flag} carries a password, which would be written to sweep.json, MLflow and the logs: "
                         "drop it from the URI and set PGPASSWORD or a ~/.pgpass line (libpq reads both)")


def database_tables(uri: str, flag: str, timeout_s: int = 5) -> Optional[set[str]]:
    """Connect once, without the stores' own retries, and list the tables; None for a URI that is no
    database server. An unreachable server, a refused login or a missing driver is one line."""
    url = _url(uri, flag)
    if url is None:
        return None
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    args = {"connect_timeout": timeout_s} if url.get_backend_name() == "postgresql" else {}
    try:
        engine = sqlalchemy.create_engine(url, poolclass=NullPool, connect_args=args)
        with engine.connect() as connection:
            return set(sqlalchemy.inspect(connection).get_table_names())
    except ModuleNotFoundError as err:
        raise SweepError(f"{flag} {uri}: its database driver ({err.name}) is not installed: "
                         "pip install 'psycopg[binary]' (PostgreSQL), or pass another URI") from None
    except Exception as err:  # any connection failure (refused, timeout, authentication, no such database)
        raise SweepError(f"{flag} {uri} cannot be reached ({_first_line(err)}): start the server or create the "
                         "database, and put the password in PGPASSWORD or ~/.pgpass") from None


def _same_database(a: str, b: str) -> bool:
    import sqlalchemy.engine

    try:
        ua, ub = sqlalchemy.engine.make_url(a), sqlalchemy.engine.make_url(b)
    except Exception:  # not both database URLs
        return False
    return (ua.get_backend_name(), ua.host, ua.port, ua.database) == (ub.get_backend_name(), ub.host, ub.port, ub.database)


def check_tracking_database(uri: str) -> None:
    """A tracking URI that names a database server: reachable, and not the Optuna study's database."""
    tables = database_tables(uri, "--tracking-uri")
    if tables is not None and "studies" in tables and not MLFLOW_TABLES <= tables:
        raise SweepError(f"--tracking-uri {uri} holds an Optuna study's tables: MLflow and Optuna each keep an "
                         "alembic_version table, so give MLflow a database of its own (CREATE DATABASE mlflow)")


def check_study_storage(uri: Optional[str], tracking_uri: str) -> None:
    """The study's own database: reachable, apart from MLflow's, and of this Optuna's schema version. Before
    MLflow's own check, which makes MLflow's tables in an empty database."""
    no_password(uri, "--study-uri")
    if uri is None:
        return
    if _url(uri, "--study-uri") is None and not uri.startswith("sqlite:///"):
        raise SweepError(f"--study-uri {uri!r} is not a database URL: write it as postgresql://user@host:5432/optuna "
                         "(or leave it out: the study goes to the sweep folder's optuna.db)")
    if _same_database(uri, tracking_uri):
        raise SweepError("--study-uri and --tracking-uri name the same database: MLflow and Optuna each keep an "
                         "alembic_version table and would overwrite each other's; CREATE DATABASE optuna and point --study-uri there")
    tables = database_tables(uri, "--study-uri") or set()
    if MLFLOW_TABLES <= tables:
        raise SweepError(f"--study-uri {uri} holds MLflow's tables: give the study a database of its own "
                         "(MLflow and Optuna each keep an alembic_version table)")
    if "version_info" in tables:
        import optuna

        try:  # reads the schema version only: nothing is created or changed in a database of another version
            optuna.storages.RDBStorage(uri, skip_table_creation=True)
        except Exception as err:  # Optuna's own message names the upgrade command
            raise SweepError(f"--study-uri {uri}: {_first_line(err)}") from None


def check_owner(state: SweepState, client: MlflowClient, study_storage: str) -> None:
    """A resume's stores hold this sweep: its parent run in the tracking store and its study in the study's
    storage, as sweep.json names them. A store that was emptied or replaced (a head node's disk gone with
    `ray down`) would otherwise get new runs beside a sweep folder that knows others."""
    import optuna
    from mlflow.exceptions import MlflowException

    try:
        parent = client.get_run(state.parent_run_id)
    except MlflowException:
        parent = None
    if parent is None or parent.data.tags.get("sweep") != state.settings.name:
        raise SweepError(f"the MLflow store {state.tracking_uri} holds no parent run {state.parent_run_id} of sweep "
                         f"{state.settings.name!r}: it is not the store this sweep wrote to (was it lost with the head node?); "
                         "point MLFLOW_TRACKING_URI's server at the sweep's database, or start a new sweep")
    if state.settings.name not in optuna.study.get_all_study_names(study_storage):
        raise SweepError(f"the study storage {study_storage} holds no study {state.settings.name!r}: it is not the one this "
                         "sweep searched in; point the sweep at its own database, or start a new sweep")


@contextlib.contextmanager
def driving(layout: SweepLayout) -> Iterator[None]:
    """Hold the sweep folder's lock while this process drives it. flock is released by the kernel when the
    process dies, so a driver killed with its node leaves no stale lock (on NFS the client turns it into a
    lock the server keeps for every node)."""
    handle = open(layout.lock, "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise SweepError(f"sweep {layout.folder} is being driven by {holder}: wait for it to end, or stop it "
                             "(Ctrl-C) before resuming; one driver at a time") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)  # released: the file names no holder (a driver that died leaves its line, and no lock)
    finally:
        handle.close()
