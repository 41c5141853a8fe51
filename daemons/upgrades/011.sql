-- lastmile schema upgrade 10 -> 11
--
-- acs: devices, their parameter trees, tasks, faults, presets (with the default one), files and
-- their chunks, connection requests, live sessions and the session log; services' cpe_serial;
-- the triggers that mark a device stale when its service or customer changes.
--
-- Locks, held until the step commits: services ACCESS EXCLUSIVE for an added column (no
-- rewrite: no default) and a trigger, customers SHARE ROW EXCLUSIVE for a trigger. Every other
-- table is new.

ALTER TABLE services ADD COLUMN cpe_serial text CONSTRAINT services_cpe_serial_nonempty CHECK (cpe_serial <> '');
CREATE INDEX services_cpe_serial_idx ON services (cpe_serial) WHERE cpe_serial IS NOT NULL;


-- Devices: one row per CPE that has informed (or was entered by hand before it did). cwmp_id is
-- the TR-069 device identity "OUI-ProductClass-SerialNumber" (each part with '%' and '-'
-- percent-encoded, as GenieACS does, so two devices never share an id).
CREATE TABLE acs_devices (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT acs_devices_pk PRIMARY KEY,
    cwmp_id text NOT NULL CONSTRAINT acs_devices_cwmp_id_unique UNIQUE,
    oui text NOT NULL,
    product_class text NOT NULL DEFAULT '',
    serial text NOT NULL,
    manufacturer text NOT NULL DEFAULT '',
    -- 'tr098' (InternetGatewayDevice.) or 'tr181' (Device.), from the Inform's parameter names.
    data_model text NOT NULL DEFAULT 'tr181' CONSTRAINT acs_devices_data_model_valid CHECK (data_model IN ('tr098', 'tr181')),
    cwmp_version text NOT NULL DEFAULT '1.0',
    hardware_version text NOT NULL DEFAULT '',
    software_version text NOT NULL DEFAULT '',
    provisioning_code text NOT NULL DEFAULT '',
    parameter_key text NOT NULL DEFAULT '',
    connection_request_url text NOT NULL DEFAULT '',
    address inet,                     -- where the last Inform came from
    wan_address text NOT NULL DEFAULT '',  -- the WAN address the Inform reports (as the CPE wrote it)
    pppoe_username text NOT NULL DEFAULT '',
    tags text[] NOT NULL DEFAULT '{}',
    customer_id bigint CONSTRAINT acs_devices_customer_fk REFERENCES customers ON DELETE RESTRICT,
    service_id bigint CONSTRAINT acs_devices_service_fk REFERENCES services ON DELETE RESTRICT,
    -- The credentials this CPE authenticates with (user name = cwmp_id), sealed ("lm1:...",
    -- daemons/secrets.py, purpose "acs-cpe"); NULL: the global ones of [acs].
    cpe_password text,
    -- What the ACS set ManagementServer.ConnectionRequestUsername/Password to (password sealed,
    -- purpose "acs-connection-request"); NULL until the default preset has run.
    connection_request_username text,
    connection_request_password text,
    first_inform_at timestamptz,
    last_inform_at timestamptz,
    last_boot_at timestamptz,
    last_bootstrap_at timestamptz,
    -- The presets' desired state: presets_key is the presets generation it was last brought to
    -- (acs/plan.py); stale is set when an input changed since (its service, customer, tags,
    -- software version); due_at is when a declared refresh falls due. A PERIODIC Inform of a
    -- device with presets_key current, stale false, due_at not passed and no task due is one
    -- round trip (InformResponse, then 204).
    presets_key text NOT NULL DEFAULT '',
    stale boolean NOT NULL DEFAULT true,
    due_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX acs_devices_serial_idx ON acs_devices (serial);
CREATE INDEX acs_devices_software_idx ON acs_devices (software_version);
CREATE INDEX acs_devices_last_inform_idx ON acs_devices (last_inform_at);
CREATE INDEX acs_devices_customer_idx ON acs_devices (customer_id) WHERE customer_id IS NOT NULL;
CREATE INDEX acs_devices_service_idx ON acs_devices (service_id) WHERE service_id IS NOT NULL;
CREATE INDEX acs_devices_pppoe_idx ON acs_devices (lower(pppoe_username)) WHERE pppoe_username <> '';
CREATE INDEX acs_devices_tags_idx ON acs_devices USING gin (tags);

-- The parameter tree as last read (or set): one row per parameter or object (path ending '.').
-- writable is NULL until a GetParameterNames said; read_at is when the value was last known.
CREATE TABLE acs_parameters (
    device_id bigint NOT NULL CONSTRAINT acs_parameters_device_fk REFERENCES acs_devices ON DELETE CASCADE,
    path text NOT NULL,
    value text,
    type text NOT NULL DEFAULT '',
    writable boolean,
    read_at timestamptz NOT NULL,
    CONSTRAINT acs_parameters_pk PRIMARY KEY (device_id, path)
);
-- "devices whose SSID is Y": by value (its first 200 characters), then path.
CREATE INDEX acs_parameters_value_idx ON acs_parameters (left(value, 200), path) WHERE value <> '';

-- Work for one device, run in its next session (or at once after a connection request), in id
-- order. waiting: the CPE accepted a Reboot, Download or Upload and reports the end later (M
-- Reboot, TransferComplete); a fault is retried after retry_delay * 2^attempts until
-- max_attempts, then stays 'fault'.
CREATE TABLE acs_tasks (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT acs_tasks_pk PRIMARY KEY,
    device_id bigint NOT NULL CONSTRAINT acs_tasks_device_fk REFERENCES acs_devices ON DELETE CASCADE,
    kind text NOT NULL CONSTRAINT acs_tasks_kind_valid CHECK (kind IN (
        'get', 'set', 'refresh', 'add_object', 'delete_object', 'get_attributes', 'set_attributes',
        'reboot', 'factory_reset', 'download', 'upload')),
    args jsonb NOT NULL DEFAULT '{}' CONSTRAINT acs_tasks_args_object CHECK (jsonb_typeof(args) = 'object'),
    status text NOT NULL DEFAULT 'queued' CONSTRAINT acs_tasks_status_valid CHECK (status IN (
        'queued', 'waiting', 'done', 'fault', 'cancelled')),
    attempts smallint NOT NULL DEFAULT 0,
    max_attempts smallint NOT NULL DEFAULT 5 CONSTRAINT acs_tasks_max_attempts_positive CHECK (max_attempts > 0),
    not_before timestamptz NOT NULL DEFAULT now(),
    command_key text NOT NULL DEFAULT '',
    result jsonb,
    fault_code integer,
    fault_string text,
    created_by text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE INDEX acs_tasks_due_idx ON acs_tasks (device_id, id) WHERE status = 'queued';
CREATE INDEX acs_tasks_waiting_idx ON acs_tasks (device_id, command_key) WHERE status = 'waiting';
CREATE INDEX acs_tasks_device_idx ON acs_tasks (device_id, created_at);

-- Faults of a device: a CPE's SOAP Fault to one of our RPCs, a task that ran out of attempts, a
-- preset that could not be applied, a session broken off. Kept for the device page.
CREATE TABLE acs_faults (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT acs_faults_pk PRIMARY KEY,
    device_id bigint NOT NULL CONSTRAINT acs_faults_device_fk REFERENCES acs_devices ON DELETE CASCADE,
    at timestamptz NOT NULL DEFAULT now(),
    source text NOT NULL CONSTRAINT acs_faults_source_valid CHECK (source IN ('task', 'preset', 'session')),
    task_id bigint CONSTRAINT acs_faults_task_fk REFERENCES acs_tasks ON DELETE CASCADE,
    rpc text NOT NULL DEFAULT '',
    code integer,
    message text NOT NULL DEFAULT '',
    detail jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX acs_faults_device_idx ON acs_faults (device_id, at);

-- Presets: the configuration a device should have, declared. match (all given keys must hold):
-- {"tags": [...], "oui": "...", "product_class": "...", "software_version": "glob", "data_model":
-- "tr098"|"tr181", "events": ["1 BOOT", ...]}; actions, applied in weight then id order (a
-- later one wins on the same parameter): [{"set": path, "value": template, "type": "xsd:..."},
-- {"refresh": path, "max_age": seconds}, {"add_object": path, "count": n}, {"download": file_id},
-- {"reboot": true}] (acs/plan.py). Values are Jinja2 templates over device, service, customer.
CREATE TABLE acs_presets (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT acs_presets_pk PRIMARY KEY,
    name text NOT NULL CONSTRAINT acs_presets_name_unique UNIQUE CONSTRAINT acs_presets_name_nonempty CHECK (name <> ''),
    enabled boolean NOT NULL DEFAULT true,
    weight integer NOT NULL DEFAULT 0,
    match jsonb NOT NULL DEFAULT '{}' CONSTRAINT acs_presets_match_object CHECK (jsonb_typeof(match) = 'object'),
    actions jsonb NOT NULL DEFAULT '[]' CONSTRAINT acs_presets_actions_array CHECK (jsonb_typeof(actions) = 'array'),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- The default preset (docs/acs.md says why 300 s): every device informs every 5 minutes, and
-- its connection request credentials are the ACS's.
INSERT INTO acs_presets (name, weight, match, actions) VALUES
    ('default', -100, '{}', '[{"set": "@management.periodic_inform_interval", "value": "300", "type": "xsd:unsignedInt"},
                             {"set": "@management.periodic_inform_enable", "value": "true", "type": "xsd:boolean"},
                             {"connection_request_credentials": true}]');

-- Files the ACS serves to CPEs (firmware, configuration; Download) and receives from them
-- (Upload), stored in chunks of 1 MiB so any instance serves any byte range.
CREATE TABLE acs_files (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT acs_files_pk PRIMARY KEY,
    name text NOT NULL CONSTRAINT acs_files_name_valid CHECK (name ~ '^[A-Za-z0-9._-]{1,200}$'),
    -- The TR-069 FileType: '1 Firmware Upgrade Image', '2 Web Content', '3 Vendor Configuration
    -- File', '4 Tone File', '5 Ringer File' (Download); '1 Vendor Configuration File', '2 Vendor
    -- Log File' (Upload, with device_id).
    file_type text NOT NULL,
    oui text NOT NULL DEFAULT '',
    product_class text NOT NULL DEFAULT '',
    version text NOT NULL DEFAULT '',
    size bigint NOT NULL DEFAULT 0 CONSTRAINT acs_files_size_nonnegative CHECK (size >= 0),
    sha256 text NOT NULL DEFAULT '',
    complete boolean NOT NULL DEFAULT false,   -- every chunk written
    device_id bigint CONSTRAINT acs_files_device_fk REFERENCES acs_devices ON DELETE CASCADE,
    created_by text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX acs_files_name_unique ON acs_files (name) WHERE device_id IS NULL;
CREATE TABLE acs_file_chunks (
    file_id bigint NOT NULL CONSTRAINT acs_file_chunks_file_fk REFERENCES acs_files ON DELETE CASCADE,
    n integer NOT NULL,
    data bytea NOT NULL,
    CONSTRAINT acs_file_chunks_pk PRIMARY KEY (file_id, n)
);

-- Connection requests asked for (admin, API): one acs instance takes each (FOR UPDATE SKIP
-- LOCKED) and sends it to the device's ConnectionRequestURL.
CREATE TABLE acs_wakeups (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT acs_wakeups_pk PRIMARY KEY,
    device_id bigint NOT NULL CONSTRAINT acs_wakeups_device_fk REFERENCES acs_devices ON DELETE CASCADE,
    status text NOT NULL DEFAULT 'pending' CONSTRAINT acs_wakeups_status_valid CHECK (status IN ('pending', 'sent', 'failed')),
    requested_by text NOT NULL DEFAULT '',
    requested_at timestamptz NOT NULL DEFAULT now(),
    done_at timestamptz,
    http_status integer,
    error text NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX acs_wakeups_pending_idx ON acs_wakeups (id) WHERE status = 'pending';

-- Dry runs of a preset against a device, asked for by the admin's presets editor: an acs
-- instance takes each (FOR UPDATE SKIP LOCKED), computes what the preset would do to the device
-- (acs/plan.py: matches, values, the RPCs of the first round, faults) and writes it to result.
CREATE TABLE acs_dry_runs (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT acs_dry_runs_pk PRIMARY KEY,
    device_id bigint NOT NULL CONSTRAINT acs_dry_runs_device_fk REFERENCES acs_devices ON DELETE CASCADE,
    preset jsonb NOT NULL CONSTRAINT acs_dry_runs_preset_object CHECK (jsonb_typeof(preset) = 'object'),
    status text NOT NULL DEFAULT 'pending' CONSTRAINT acs_dry_runs_status_valid CHECK (status IN ('pending', 'done', 'failed')),
    result jsonb,
    requested_by text NOT NULL DEFAULT '',
    requested_at timestamptz NOT NULL DEFAULT now(),
    done_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX acs_dry_runs_pending_idx ON acs_dry_runs (id) WHERE status = 'pending';

-- Sessions with work in flight (their RPC plan), so that any instance behind a balancer takes
-- the next request of a session (the cookie names it). A session that has nothing queued
-- lives in its cookie only. Unlogged: a live session is not worth a WAL write, and a crash
-- ends it (the CPE retries).
CREATE UNLOGGED TABLE acs_live_sessions (
    id uuid CONSTRAINT acs_live_sessions_pk PRIMARY KEY,
    device_id bigint NOT NULL,
    step integer NOT NULL,
    state jsonb NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX acs_live_sessions_device_idx ON acs_live_sessions (device_id);  -- claim_device_session

-- The access log: a line per session, written when it ends (GenieACS's cwmp-access log).
CREATE TABLE acs_sessions (
    started_at timestamptz NOT NULL,
    device_id bigint NOT NULL,
    address inet,
    events text[] NOT NULL,
    rpcs text[] NOT NULL,
    faults text[] NOT NULL DEFAULT '{}',
    duration_ms integer NOT NULL,
    outcome text NOT NULL CONSTRAINT acs_sessions_outcome_valid CHECK (outcome IN ('ok', 'fault', 'timeout', 'error')),
    instance text NOT NULL DEFAULT ''
) PARTITION BY RANGE (started_at);
CREATE INDEX acs_sessions_device_idx ON acs_sessions (device_id, started_at);
SELECT lastmile_partitioned('acs_sessions', 'day', 7);

-- acs_presets, acs_wakeups and acs_dry_runs notify (lastmile_watch); acs_devices does not (the ACS writes it
-- on every Inform), except for what the ACS caches of it: a device's own credentials.
SELECT lastmile_watch(t) FROM unnest(ARRAY['acs_presets', 'acs_wakeups', 'acs_dry_runs']::regclass[]) AS t;
CREATE TRIGGER acs_devices_credentials_insert AFTER INSERT ON acs_devices
    FOR EACH ROW WHEN (NEW.cpe_password IS NOT NULL) EXECUTE FUNCTION lastmile_acs_credentials();
CREATE TRIGGER acs_devices_credentials_update AFTER UPDATE ON acs_devices
    FOR EACH ROW WHEN (OLD.cpe_password IS DISTINCT FROM NEW.cpe_password) EXECUTE FUNCTION lastmile_acs_credentials();

-- An input of a device's desired state changed: its service (login, password, custom fields)
-- or its customer. The device is then brought to its presets in its next session.
CREATE TRIGGER services_acs_stale AFTER UPDATE ON services REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION lastmile_acs_stale();
CREATE TRIGGER customers_acs_stale AFTER UPDATE ON customers REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION lastmile_acs_stale();
