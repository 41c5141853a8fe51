"""Private FreeRADIUS configurations for the benchmark, one per setup.

The stock Debian tree (/etc/freeradius/3.0, never modified) is copied to a private directory
and changed only where the benchmark needs it:

* paths (logs, pid, accounting detail files) under the private directory; run as the invoking
  user (no switch to ``freerad``);
* ``max_requests`` 262,144 (the stock 16,384 holds only ~3,000 req/s for the 5 s of
  ``cleanup_delay``) and ``max_servers`` (threads, and so SQL connections) settable;
* one virtual server ``bench`` on 127.0.0.1 and private ports, with 4 MB receive buffers (the
  kernel's rmem_max here; the default ~200 KB drops bursts of 256 requests); the stock
  ``default`` and ``inner-tunnel`` servers and the ``eap`` module (needs TLS material) are off;
* one client, 127.0.0.1, with the demo NAS's secret.

Setups:

``files``
    users file with every active subscriber (Cleartext-Password; reply Framed-IP-Address,
    Mikrotik-Rate-Limit, Acct-Interim-Interval), accounting to a ``detail`` file.
``sql``
    rlm_sql/PostgreSQL on lastmile's database: the check and reply queries read lastmile's
    ``services`` (active services of active customers) and ``tariffs``; accounting with the
    stock queries into radacct. Stock sizing: the connection pool follows the thread pool,
    ``read_groups`` stays on (the group queries find nothing, as on a server without groups).
``sql+simul+postauth``
    ``sql`` plus what ISP setups run on every Access-Request: the check query also returns
    ``Simultaneous-Use`` from services.simultaneous_use, so ``session { sql }`` counts the
    user's open sessions in radacct (stock simul_count_query), and ``Calling-Station-Id ==``
    the service's MAC address where it has one (the MAC binding lastmile checks too); and
    ``post-auth { sql }`` inserts into radpostauth (stock query).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from database import FR_ROLE
from workload import Subscriber

STOCK = Path("/etc/freeradius/3.0")
BINARY = shutil.which("freeradius") or "/usr/sbin/freeradius"
SETUPS = ("sql", "sql+simul+postauth", "files")
RECV_BUFF = 4 * 1024 * 1024

CHECK_QUERY = """\
SELECT s.id, s.login, a.attribute, a.value, a.op \\
	FROM public.services s JOIN public.customers c ON c.id = s.customer_id \\
	CROSS JOIN LATERAL (VALUES {items}) AS a(attribute, value, op) \\
	WHERE s.login = '%{{SQL-User-Name}}' AND s.status = 'active' AND c.status = 'active' \\
	AND a.value IS NOT NULL"""
CHECK_PASSWORD = "('Cleartext-Password', s.password, ':=')"
# what the ISP setup adds: the session limit, and the binding to the CPE's MAC address
CHECK_ISP = "('Simultaneous-Use', s.simultaneous_use::text, ':='), ('Calling-Station-Id', upper(s.mac::text), '==')"
REPLY_QUERY = """\
SELECT s.id, s.login, r.attribute, r.value, '=' \\
	FROM public.services s JOIN public.tariffs t ON t.id = s.tariff_id \\
	CROSS JOIN LATERAL (VALUES ('Framed-IP-Address', host(s.ipv4)), \\
		('Mikrotik-Rate-Limit', t.upload_kbps || 'k/' || t.download_kbps || 'k'), \\
		('Acct-Interim-Interval', '300')) AS r(attribute, value) \\
	WHERE s.login = '%{SQL-User-Name}' AND r.value IS NOT NULL"""

SQL_MODULE = """\
sql {{
	dialect = "postgresql"
	driver = "rlm_sql_postgresql"
	postgresql {{
		send_application_name = yes
	}}
	server = "127.0.0.1"
	port = {pg_port}
	login = "{role}"
	password = ""
	radius_db = "{database}"
	acct_table1 = "radacct"
	acct_table2 = "radacct"
	postauth_table = "radpostauth"
	authcheck_table = "radcheck"
	groupcheck_table = "radgroupcheck"
	authreply_table = "radreply"
	groupreply_table = "radgroupreply"
	usergroup_table = "radusergroup"
	delete_stale_sessions = yes
	read_clients = no
	client_table = "nas"
	group_attribute = "SQL-Group"
	pool {{
		start = ${{thread[pool].start_servers}}
		min = ${{thread[pool].min_spare_servers}}
		max = ${{thread[pool].max_servers}}
		spare = ${{thread[pool].max_spare_servers}}
		uses = 0
		retry_delay = 30
		lifetime = 0
		idle_timeout = 60
	}}
	$INCLUDE ${{modconfdir}}/${{.:name}}/main/${{dialect}}/queries.conf
}}
"""

SITE = """\
server bench {{
	listen {{
		type = auth
		ipaddr = 127.0.0.1
		port = {auth_port}
		recv_buff = {recv_buff}
	}}
	listen {{
		type = acct
		ipaddr = 127.0.0.1
		port = {acct_port}
		recv_buff = {recv_buff}
	}}
	authorize {{
		preprocess
		chap
		mschap
		{users}
		pap
	}}
	authenticate {{
		Auth-Type PAP {{
			pap
		}}
		Auth-Type CHAP {{
			chap
		}}
		Auth-Type MS-CHAP {{
			mschap
		}}
	}}
	preacct {{
		preprocess
		acct_unique
	}}
	accounting {{
		{accounting}
	}}
	session {{
		{session}
	}}
	post-auth {{
		{postauth}
		Post-Auth-Type REJECT {{
			{postauth}
			attr_filter.access_reject
		}}
	}}
}}
"""

CLIENTS = """\
client bench_nas {{
	ipaddr = 127.0.0.1
	secret = {secret}
	shortname = bench-bras
	nas_type = other
}}
"""


def make_raddb(
    base: Path,
    setup: str,
    auth_port: int,
    acct_port: int,
    secret: str,
    pg_port: int,
    database: str,
    subscribers: list[Subscriber],
    max_servers: int,
) -> Path:
    """Write the configuration of ``setup`` under ``base``; return the raddb directory."""
    raddb = base / "raddb"
    shutil.copytree(STOCK, raddb, symlinks=True)
    for sub in ("log/radacct", "run"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    _edit_radiusd_conf(raddb / "radiusd.conf", base, max_servers)
    for link in (raddb / "sites-enabled").iterdir():
        link.unlink()
    (raddb / "mods-enabled" / "eap").unlink()
    (raddb / "clients.conf").write_text(CLIENTS.format(secret=secret))
    simul = setup == "sql+simul+postauth"
    if setup == "files":
        _write_users(raddb / "mods-config" / "files" / "authorize", subscribers)
    else:
        (raddb / "mods-enabled" / "sql").write_text(SQL_MODULE.format(pg_port=pg_port, role=FR_ROLE, database=database))
        _edit_queries(raddb / "mods-config" / "sql" / "main" / "postgresql" / "queries.conf", simul)
    site = SITE.format(
        auth_port=auth_port,
        acct_port=acct_port,
        recv_buff=RECV_BUFF,
        users="files" if setup == "files" else "sql",
        accounting="detail" if setup == "files" else "sql",
        session="sql" if simul else "",
        postauth="sql" if simul else "",
    )
    (raddb / "sites-enabled" / "bench").write_text(site)
    return raddb


def check(raddb: Path) -> None:
    """``freeradius -C``: fail with its output when the configuration does not load."""
    result = subprocess.run([BINARY, "-C", "-d", str(raddb)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"FreeRADIUS rejects {raddb}:\n{(result.stdout + result.stderr)[-3000:]}")


def command(raddb: Path) -> list[str]:
    return [BINARY, "-f", "-d", str(raddb)]


def version() -> str:
    result = subprocess.run([BINARY, "-v"], capture_output=True, text=True, check=False)
    return result.stdout.splitlines()[0].split("Version ")[-1].split(",")[0] if result.stdout else "?"


def _edit_radiusd_conf(path: Path, base: Path, max_servers: int) -> None:
    text = path.read_text()
    settings = {
        "logdir": str(base / "log"),
        "raddbdir": str(path.parent),
        "run_dir": str(base / "run"),
        "max_requests": "262144",
        "max_servers": str(max_servers),
    }
    for key, value in settings.items():
        text, count = re.subn(rf"^(\s*){key} = .*$", rf"\g<1>{key} = {value}", text, count=1, flags=re.M)
        if count != 1:
            raise RuntimeError(f"{path}: no {key} setting to change")
    text = re.sub(r"^(\s*)(user|group) = freerad$", r"\1# \2 = freerad", text, flags=re.M)
    path.write_text(text)


def _edit_queries(path: Path, simul: bool) -> None:
    items = CHECK_PASSWORD + (", " + CHECK_ISP if simul else "")
    text = path.read_text()
    text = _replace_query(text, "authorize_check_query", CHECK_QUERY.format(items=items))
    text = _replace_query(text, "authorize_reply_query", REPLY_QUERY)
    path.write_text(text)


def _replace_query(text: str, name: str, query: str) -> str:
    # The active (unindented, uncommented) definition: name = "...", continued with backslashes.
    pattern = re.compile(rf'^{name} = "(?:[^"\\]|\\[\s\S])*"', re.M)
    new, count = pattern.subn(lambda _: f'{name} = "\\\n\t{query}"', text, count=1)
    if count != 1:
        raise RuntimeError(f"no {name} in the stock queries.conf")
    return new


def _write_users(path: Path, subscribers: list[Subscriber]) -> None:
    entries = []
    for sub in subscribers:
        reply = [f'Mikrotik-Rate-Limit = "{sub.rate_limit}"', "Acct-Interim-Interval = 300"]
        if sub.ipv4:
            reply.insert(0, f"Framed-IP-Address = {sub.ipv4}")
        entries.append(f'{sub.login} Cleartext-Password := "{sub.password}"\n\t' + ",\n\t".join(reply) + "\n")
    path.write_text("\n".join(entries))
