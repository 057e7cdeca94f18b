"""A throwaway PostgreSQL server on 127.0.0.1 for tests: initdb and pg_ctl of the installed server (Debian's
package keeps them in /usr/lib/postgresql/<version>/bin). Both refuse to run as root, so under root they run
as the `postgres` user. Logins need a password (scram-sha-256), which clients get from PGPASSWORD only, as
a user's would: the URIs carry none.
"""
from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

from localcluster import free_port


def server_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    return versions[-1].parent if versions else None


class Postgres:
    USER = "lsdseg"

    def __init__(self, databases: tuple[str, ...] = ("mlflow", "optuna")):
        bin_dir = server_bin()
        if bin_dir is None:
            raise RuntimeError("no PostgreSQL server found (initdb): apt install postgresql")
        self.dir = Path(tempfile.mkdtemp(prefix="lsdseg-pg-"))
        self.dir.chmod(0o755)  # the postgres user must reach it
        self.password = secrets.token_hex(12)
        self.port = free_port()
        # runuser lives in /usr/sbin, which a PATH without the sbin folders (e.g. `env -i PATH=/usr/bin:/bin`) lacks
        runuser = shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin") or "runuser"
        as_postgres = [runuser, "-u", "postgres", "--"] if os.geteuid() == 0 else []
        (self.dir / "pw").write_text(self.password)
        if as_postgres:
            shutil.chown(self.dir, "postgres")
            shutil.chown(self.dir / "pw", "postgres")
        self._pg_ctl = [*as_postgres, str(bin_dir / "pg_ctl"), "-D", str(self.dir / "data")]
        subprocess.run([*as_postgres, str(bin_dir / "initdb"), "-D", str(self.dir / "data"), "-U", self.USER,
                        "--auth=scram-sha-256", f"--pwfile={self.dir / 'pw'}"], check=True, capture_output=True)
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
        subprocess.run([*self._pg_ctl, "-l", str(self.dir / "server.log"), "-o", options, "-w", "start"],
                       check=True, capture_output=True)
        self.env = {**os.environ, "PGPASSWORD": self.password}
        for name in databases:
            self.create(name)

    def uri(self, database: str) -> str:
        return f"postgresql://{self.USER}@127.0.0.1:{self.port}/{database}"

    def create(self, database: str) -> None:
        import psycopg

        # CREATE DATABASE runs outside a transaction
        with psycopg.connect(host="127.0.0.1", port=self.port, user=self.USER, password=self.password, dbname="postgres",
                             autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{database}"')

    def stop(self) -> None:
        subprocess.run([*self._pg_ctl, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)
