"""``lastmile acs`` as the benchmark runs it: an embedded PostgreSQL in the work directory with
lastmile's schema (``lastmile db init``), a customer and a service for every device the load
client plays (``services.cpe_serial`` = its serial, so each Inform links its device), the
default preset plus :data:`PPPOE_WIFI`, and the daemon pinned to CPU0 with HTTP digest and every
other setting its default (no MQTT, an empty settings file).

Every process started is written to ``<work>/pids`` (bench/driver.sh stops them if the driver
dies); each is stopped here by its own PID.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from benchkit import free_port
from database import Database

from acs import datamodel
from acs.model import DataModel
from daemons.config import SecretsSettings
from daemons.pgembed import EmbeddedPostgres
from daemons.secrets import Keyring

ROOT = Path(__file__).resolve().parents[2]
LASTMILE = ROOT / ".venv" / "bin" / "lastmile"
USER, PASSWORD = "cpe", "cpe-bench"
PPPOE_WIFI = [
    {"set": "@pppoe.username", "value": "{{ service.login }}"},
    {"set": "@pppoe.password", "value": "{{ service.password }}"},
    {"set": "@wifi.ssid", "value": "Home-{{ device.serial }}"},
    {"set": "@wifi.key", "value": "wpa-{{ service.password }}"},
]
"""The preset every device gets besides the default one (the BOOTSTRAP scenario's four values)."""
PRESET_ALIASES = tuple(str(a["set"]) for a in PPPOE_WIFI)


def register(work: Path, pid: int) -> None:
    """Name a running process in ``<work>/pids`` by its command line as /proc has it (what
    bench/driver.sh compares before it stops a PID)."""
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    with open(work / "pids", "a") as f:
        f.write(f"{pid}\t{b' '.join(argv).decode(errors='replace')}\n")


class AcsDaemon:
    """The database and the daemon; ``start(serials)`` then ``stop()``."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.port = free_port()
        self.metrics_port = free_port()
        self.pg = EmbeddedPostgres(work / "pg", free_port(), durable=True)
        self.db = Database(self.pg.port)
        self.postmaster = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.key_file = work / "secret.key"
        self.config_file = work / "lastmile.toml"
        self.log_file = work / "acs.log"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LASTMILE_")}
        env.update({"LASTMILE_DATABASE__URL": self.pg.url, "LASTMILE_SECRETS__KEY_FILE": str(self.key_file),
                    "LASTMILE_CONFIG": str(self.config_file), "LASTMILE_LOG__FORMAT": "json",
                    "LASTMILE_ACS__BIND": "127.0.0.1", "LASTMILE_ACS__PORT": str(self.port),
                    "LASTMILE_ACS__METRICS_PORT": str(self.metrics_port), "LASTMILE_ACS__USERNAME": USER,
                    "LASTMILE_ACS__PASSWORD": PASSWORD})
        return env

    def start(self, serial_prefixes: list[str], devices: int) -> None:
        self.pg.start()
        self.postmaster = int((self.work / "pg" / "postmaster.pid").read_text().split("\n", 1)[0])
        register(self.work, self.postmaster)
        self.config_file.write_text("# bench/cwmp: every setting from the environment or its default\n")
        Keyring.load(SecretsSettings(key_file=str(self.key_file)), create=True)
        out = subprocess.run([str(LASTMILE), "db", "init"], env=self.env(), cwd=self.work, capture_output=True,
                             text=True, timeout=300, check=False)
        if out.returncode != 0:
            raise SystemExit(f"bench/cwmp: lastmile db init failed: {(out.stderr or out.stdout)[-800:]}")
        self.load(serial_prefixes, devices)
        argv = ["taskset", "-c", "0", str(LASTMILE), "acs"]
        with self.log_file.open("wb") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self.env(), cwd=self.work,
                                         start_new_session=True)
        deadline = time.monotonic() + 60
        while not self.ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"bench/cwmp: lastmile acs did not start: {self.log_tail()}")
            time.sleep(0.1)
        register(self.work, self.proc.pid)  # after taskset's exec: the daemon's own command line

    def load(self, prefixes: list[str], devices: int) -> None:
        """A customer and a service (login, password, cpe_serial) per serial of each prefix, and
        the preset; then VACUUM ANALYZE and a checkpoint, so that none lands in a timed run."""
        values = ", ".join(f"'{p}'" for p in prefixes)
        actions = json.dumps(PPPOE_WIFI).replace("'", "''")
        self.db.run(f"""
            INSERT INTO partners (name) VALUES ('Bench ISP');
            INSERT INTO tariffs (name, download_kbps, upload_kbps) VALUES ('Fibre 100', 100000, 20000);
            INSERT INTO customers (partner_id, number, name)
            SELECT (SELECT id FROM partners WHERE name = 'Bench ISP'), p || lpad(g::text, 6, '0'),
                   'Customer ' || p || lpad(g::text, 6, '0')
            FROM unnest(ARRAY[{values}]) p, generate_series(0, {devices - 1}) g;
            INSERT INTO services (customer_id, tariff_id, login, password, cpe_serial)
            SELECT c.id, t.id, lower(c.number) || '@bench', 'pw-' || substr(md5(c.number), 1, 12), c.number
            FROM customers c, tariffs t WHERE t.name = 'Fibre 100';
            INSERT INTO acs_presets (name, weight, match, actions) VALUES ('pppoe-wifi', 0, '{{}}', '{actions}');
        """)
        self.db.settle()

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2) as r:
            text: str = r.read().decode()
            return text

    def ready(self) -> bool:
        try:
            return 'lastmile_ready{daemon="acs"} 1.0' in self.metrics()
        except OSError:
            return False

    def writer_counts(self) -> tuple[float, float]:
        """(statements, rows) the Inform writer has committed so far (its group commit)."""
        values = dict(line.rsplit(" ", 1) for line in self.metrics().splitlines()
                      if line.startswith(("lastmile_acs_inform_batches_total ", "lastmile_acs_inform_rows_total ")))
        return float(values["lastmile_acs_inform_batches_total"]), float(values["lastmile_acs_inform_rows_total"])

    def log_tail(self, chars: int = 1500) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def landed(self, prefix: str, data_model: DataModel) -> int:
        """Devices of ``prefix`` whose known tree holds the four values of :data:`PPPOE_WIFI` as
        their service says (and whose pppoe_username is its login)."""
        user, password, ssid, key = (datamodel.resolve(a, data_model) for a in PRESET_ALIASES)

        def holds(path: str, value: str) -> str:
            return f"EXISTS (SELECT FROM acs_parameters p WHERE p.device_id = d.id AND p.path = '{path}' " \
                   f"AND p.value = {value})"

        return int(self.db.value(f"""
            SELECT count(*) FROM acs_devices d JOIN services s ON s.id = d.service_id
            WHERE d.serial LIKE '{prefix}%' AND d.pppoe_username = s.login AND {holds(user, 's.login')}
              AND {holds(password, 's.password')} AND {holds(ssid, "'Home-' || d.serial")}
              AND {holds(key, "'wpa-' || s.password")}"""))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.pg.stop()
