-- lastmile schema upgrade 6 -> 7
--
-- admin: administrators, roles, login sessions, API keys and their request log, the operations
-- log, custom fields; customers get the lifecycle new -> active -> blocked -> inactive -> deleted
-- ('disabled' becomes 'inactive', 'archived' becomes 'deleted'), more contact fields, custom
-- values and the search box's columns; tariffs a contention ratio; services start and end dates.
--
-- Locks, held until the step commits: customers ACCESS EXCLUSIVE while it is rewritten for its
-- two generated columns and indexed (about 1.5 s per 100,000 customers); services, tariffs and
-- routers ACCESS EXCLUSIVE for their new columns (no rewrite) and services SHARE while its new
-- indexes are built; radius_sessions SHARE while its address index is built (radiusd's
-- accounting writes wait: about 1 s per million sessions, for each of its four new indexes) and
-- radius_postauth SHARE while its two are built.

ALTER TABLE routers ADD COLUMN custom jsonb NOT NULL DEFAULT '{}' CONSTRAINT routers_custom_object CHECK (jsonb_typeof(custom) = 'object');

ALTER TABLE customers DROP CONSTRAINT customers_status_valid;
UPDATE customers SET status = CASE status WHEN 'disabled' THEN 'inactive' WHEN 'archived' THEN 'deleted' ELSE status END
WHERE status IN ('disabled', 'archived');
ALTER TABLE customers ADD CONSTRAINT customers_status_valid CHECK (status IN ('new', 'active', 'blocked', 'inactive', 'deleted'));
ALTER TABLE customers
    ADD COLUMN category text NOT NULL DEFAULT 'person' CONSTRAINT customers_category_valid CHECK (category IN ('person', 'company')),
    ADD COLUMN billing_email text,
    ADD COLUMN other_emails text[] NOT NULL DEFAULT '{}',
    ADD COLUMN other_phones text[] NOT NULL DEFAULT '{}',
    ADD COLUMN created_by bigint,
    ADD COLUMN custom jsonb NOT NULL DEFAULT '{}' CONSTRAINT customers_custom_object CHECK (jsonb_typeof(custom) = 'object'),
    ADD COLUMN notes text NOT NULL DEFAULT '',
    ADD COLUMN search_words tsvector GENERATED ALWAYS AS (
        to_tsvector('simple', coalesce(name, '') || ' ' || coalesce(street, '') || ' ' || coalesce(city, '') || ' '
                    || coalesce(zip, '') || ' ' || number)) STORED,
    ADD COLUMN phone_digits text GENERATED ALWAYS AS (nullif(regexp_replace(coalesce(phone, ''), '[^0-9]', '', 'g'), '')) STORED;
DROP INDEX customers_partner_idx;
CREATE INDEX customers_partner_idx ON customers (partner_id, id);
CREATE INDEX customers_status_idx ON customers (status, id);
CREATE INDEX customers_name_idx ON customers (lower(name), id);
CREATE INDEX customers_email_idx ON customers (lower(email) text_pattern_ops);
CREATE INDEX customers_billing_email_idx ON customers (lower(billing_email));
CREATE INDEX customers_other_emails_idx ON customers USING gin (other_emails);
CREATE INDEX customers_search_idx ON customers USING gin (search_words);
CREATE INDEX customers_phone_idx ON customers (reverse(phone_digits) text_pattern_ops);
CREATE INDEX customers_created_by_idx ON customers (created_by, id) WHERE created_by IS NOT NULL;

ALTER TABLE tariffs
    ADD COLUMN contention smallint NOT NULL DEFAULT 1 CONSTRAINT tariffs_contention_range CHECK (contention BETWEEN 1 AND 1000),
    ADD COLUMN custom jsonb NOT NULL DEFAULT '{}' CONSTRAINT tariffs_custom_object CHECK (jsonb_typeof(custom) = 'object');

ALTER TABLE services
    ADD COLUMN start_date date,
    ADD COLUMN end_date date,
    ADD COLUMN custom jsonb NOT NULL DEFAULT '{}' CONSTRAINT services_custom_object CHECK (jsonb_typeof(custom) = 'object'),
    ADD CONSTRAINT services_dates_ordered CHECK (end_date >= start_date);
CREATE INDEX services_login_pattern_idx ON services (lower(login) text_pattern_ops);
CREATE INDEX services_mac_idx ON services (mac) WHERE mac IS NOT NULL;
CREATE INDEX services_pool_idx ON services (pool_id) WHERE pool_id IS NOT NULL;

-- flowcollector flags traffic of customers in the new statuses (the old names stay valid for old rows)
ALTER TABLE traffic_usage DROP CONSTRAINT traffic_usage_billing_valid;
ALTER TABLE traffic_usage ADD CONSTRAINT traffic_usage_billing_valid CHECK (billing IN (
    'service_blocked', 'service_disabled', 'service_archived',
    'customer_new', 'customer_blocked', 'customer_inactive', 'customer_deleted',
    'customer_disabled', 'customer_archived'));

CREATE INDEX radius_sessions_ip_idx ON radius_sessions (framed_ip, started_at) WHERE framed_ip IS NOT NULL;
CREATE INDEX radius_sessions_started_idx ON radius_sessions (started_at, acct_unique_id);
CREATE INDEX radius_sessions_open_started_idx ON radius_sessions (started_at, acct_unique_id) WHERE stopped_at IS NULL;
CREATE INDEX radius_sessions_open_address_idx
    ON radius_sessions ((coalesce(framed_ip, '0.0.0.0'::inet)), acct_unique_id) WHERE stopped_at IS NULL;
CREATE INDEX radius_postauth_at_idx ON radius_postauth (at);
CREATE INDEX radius_postauth_result_idx ON radius_postauth (result, at);

-- Roles: a set of permissions "<area>.<action>" (admin/auth/permissions.py names them). The
-- built-in ones (builtin set) are created by `lastmile db init` from that module and cannot be
-- deleted; a custom role starts as a copy of one.
CREATE TABLE admin_roles (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT admin_roles_pk PRIMARY KEY,
    name text NOT NULL CONSTRAINT admin_roles_name_unique UNIQUE CONSTRAINT admin_roles_name_nonempty CHECK (name <> ''),
    builtin text CONSTRAINT admin_roles_builtin_unique UNIQUE,
    permissions text[] NOT NULL DEFAULT '{}',
    -- Its administrators see only the customers they created (the "Customer creator").
    own_customers_only boolean NOT NULL DEFAULT false,
    require_2fa boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The built-in roles (admin/auth/permissions.py BUILTIN; a test holds the two equal). Their
-- permissions may be edited in the admin afterwards; they are not reset here.
INSERT INTO admin_roles (name, builtin, permissions, own_customers_only) VALUES
    ('Super administrator', 'super', '{administration.add,administration.delete,administration.edit,administration.view,config.add,config.delete,config.edit,config.view,customers.add,customers.delete,customers.edit,customers.view,dashboard.add,dashboard.delete,dashboard.edit,dashboard.view,finance.add,finance.delete,finance.edit,finance.view,inventory.add,inventory.delete,inventory.edit,inventory.view,networking.add,networking.delete,networking.edit,networking.view,support.add,support.delete,support.edit,support.view,tariffs.add,tariffs.delete,tariffs.edit,tariffs.view,voice.add,voice.delete,voice.edit,voice.view}', false),
    ('Administrator', 'admin', '{administration.add,administration.delete,administration.edit,administration.view,customers.add,customers.delete,customers.edit,customers.view,dashboard.add,dashboard.delete,dashboard.edit,dashboard.view,finance.add,finance.delete,finance.edit,finance.view,inventory.add,inventory.delete,inventory.edit,inventory.view,networking.add,networking.delete,networking.edit,networking.view,support.add,support.delete,support.edit,support.view,tariffs.add,tariffs.delete,tariffs.edit,tariffs.view,voice.add,voice.delete,voice.edit,voice.view}', false),
    ('Customer creator', 'creator', '{customers.add,customers.edit,customers.view,dashboard.view,tariffs.view}', true),
    ('Financial manager', 'finance', '{customers.view,dashboard.view,finance.add,finance.delete,finance.edit,finance.view,tariffs.view}', false),
    ('Manager', 'manager', '{customers.add,customers.delete,customers.edit,customers.view,dashboard.view,finance.view,inventory.view,networking.view,support.add,support.delete,support.edit,support.view,tariffs.add,tariffs.delete,tariffs.edit,tariffs.view,voice.view}', false),
    ('Engineer', 'engineer', '{customers.view,dashboard.view,inventory.view,networking.add,networking.delete,networking.edit,networking.view,support.edit,support.view,tariffs.view}', false),
    ('Technician', 'technician', '{customers.view,dashboard.view,inventory.edit,inventory.view,networking.view,support.edit,support.view}', false)
ON CONFLICT (builtin) DO NOTHING;

CREATE TABLE administrators (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT administrators_pk PRIMARY KEY,
    login text NOT NULL CONSTRAINT administrators_login_valid CHECK (login ~ '^[a-z0-9][a-z0-9_.@-]{0,63}$'),
    name text NOT NULL DEFAULT '',
    email text,
    password_hash text NOT NULL,                -- argon2id (admin/auth/passwords.py)
    role_id bigint NOT NULL CONSTRAINT administrators_role_fk REFERENCES admin_roles ON DELETE RESTRICT,
    -- Set: sees only this partner's rows, everywhere (404 for the others').
    partner_id bigint CONSTRAINT administrators_partner_fk REFERENCES partners ON DELETE RESTRICT,
    enabled boolean NOT NULL DEFAULT true,
    grants text[] NOT NULL DEFAULT '{}',        -- permissions added to the role's, for this administrator
    revokes text[] NOT NULL DEFAULT '{}',       -- and taken from it
    totp_secret text,                           -- sealed ("lm1:", daemons/secrets.py); NULL: no second factor
    totp_last_step bigint,                      -- the last time step used: a code is accepted once
    recovery_codes text[] NOT NULL DEFAULT '{}',  -- sha256 of the unused recovery codes
    idle_timeout_s integer NOT NULL DEFAULT 1800 CONSTRAINT administrators_idle_positive CHECK (idle_timeout_s > 0),
    absolute_timeout_s integer NOT NULL DEFAULT 43200
        CONSTRAINT administrators_absolute_positive CHECK (absolute_timeout_s >= idle_timeout_s),
    last_login_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX administrators_login_unique ON administrators (login);
-- customers.created_by names an administrator; administrators are disabled, never deleted.
ALTER TABLE customers ADD CONSTRAINT customers_created_by_fk FOREIGN KEY (created_by) REFERENCES administrators ON DELETE RESTRICT;

-- Settings an administrator changes in the admin (one row).
CREATE TABLE admin_settings (
    id boolean CONSTRAINT admin_settings_pk PRIMARY KEY DEFAULT true CONSTRAINT admin_settings_one_row CHECK (id),
    require_2fa boolean NOT NULL DEFAULT false,  -- every administrator, whatever the role
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO admin_settings (id) VALUES (true);

-- Server-side login sessions. The cookie holds a random token; only its sha256 is stored.
CREATE TABLE admin_sessions (
    token_hash bytea CONSTRAINT admin_sessions_pk PRIMARY KEY,
    admin_id bigint NOT NULL CONSTRAINT admin_sessions_admin_fk REFERENCES administrators ON DELETE CASCADE,
    csrf_token text NOT NULL,
    -- false until the second factor is given (or the administrator has none to give).
    verified boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,             -- the absolute timeout
    address inet,
    user_agent text NOT NULL DEFAULT ''
);
CREATE INDEX admin_sessions_admin_idx ON admin_sessions (admin_id);
CREATE INDEX admin_sessions_expiry_idx ON admin_sessions (expires_at);

-- Login attempts, for throttling by account and by address (admin/auth/throttle.py).
CREATE TABLE admin_login_attempts (
    at timestamptz NOT NULL DEFAULT now(),
    login text NOT NULL,
    address inet,
    ok boolean NOT NULL
);
CREATE INDEX admin_login_attempts_login_idx ON admin_login_attempts (login, at);
CREATE INDEX admin_login_attempts_address_idx ON admin_login_attempts (address, at);

-- API keys: "lm_<prefix>_<secret>", shown once; only the sha256 of the whole key is stored.
CREATE TABLE api_keys (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT api_keys_pk PRIMARY KEY,
    name text NOT NULL CONSTRAINT api_keys_name_nonempty CHECK (name <> ''),
    prefix text NOT NULL CONSTRAINT api_keys_prefix_unique UNIQUE,
    key_hash bytea NOT NULL CONSTRAINT api_keys_hash_unique UNIQUE,
    role_id bigint NOT NULL CONSTRAINT api_keys_role_fk REFERENCES admin_roles ON DELETE RESTRICT,
    partner_id bigint CONSTRAINT api_keys_partner_fk REFERENCES partners ON DELETE RESTRICT,
    allow_from cidr[] NOT NULL DEFAULT '{}',    -- empty: from anywhere
    created_by bigint CONSTRAINT api_keys_created_by_fk REFERENCES administrators ON DELETE RESTRICT,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at timestamptz
);

-- One row per API request (the key's request log), kept 7 days ahead by partitions.
CREATE TABLE api_requests (
    at timestamptz NOT NULL,
    key_id bigint NOT NULL,
    method text NOT NULL,
    path text NOT NULL,
    status smallint NOT NULL,
    address inet,
    duration_ms real NOT NULL
) PARTITION BY RANGE (at);
CREATE INDEX api_requests_key_idx ON api_requests (key_id, at);
SELECT lastmile_partitioned('api_requests', 'day', 7);

-- Every change made by an administrator or an API key: who, when, from where, what, before and
-- after. Append-only: the trigger below refuses UPDATE and DELETE.
CREATE TABLE operations_log (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT operations_log_pk PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    admin_id bigint,
    api_key_id bigint,
    actor text NOT NULL,                         -- the administrator's login or "key:<name>", as it was then
    address inet,
    action text NOT NULL,                        -- create, update, delete, block, unblock, login, ...
    object_type text NOT NULL,                   -- customer, service, tariff, router, administrator, ...
    object_id bigint,
    customer_id bigint,
    partner_id bigint,
    summary text NOT NULL DEFAULT '',
    before jsonb,
    after jsonb
);
CREATE INDEX operations_log_at_idx ON operations_log (at, id);
CREATE INDEX operations_log_customer_idx ON operations_log (customer_id, id) WHERE customer_id IS NOT NULL;
CREATE INDEX operations_log_object_idx ON operations_log (object_type, object_id, id);
CREATE INDEX operations_log_admin_idx ON operations_log (admin_id, id) WHERE admin_id IS NOT NULL;

CREATE OR REPLACE FUNCTION lastmile_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER operations_log_append_only BEFORE UPDATE OR DELETE ON operations_log
    FOR EACH ROW EXECUTE FUNCTION lastmile_append_only();

-- Custom fields on customers, services, tariffs and routers; values live in each row's `custom`.
CREATE TABLE custom_fields (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT custom_fields_pk PRIMARY KEY,
    object_type text NOT NULL CONSTRAINT custom_fields_object_valid CHECK (object_type IN ('customer', 'service', 'tariff', 'router')),
    key text NOT NULL CONSTRAINT custom_fields_key_valid CHECK (key ~ '^[a-z][a-z0-9_]{0,39}$'),
    label text NOT NULL CONSTRAINT custom_fields_label_nonempty CHECK (label <> ''),
    kind text NOT NULL CONSTRAINT custom_fields_kind_valid CHECK (kind IN ('text', 'number', 'date', 'choice', 'url')),
    choices text[] NOT NULL DEFAULT '{}',
    required boolean NOT NULL DEFAULT false,
    position integer NOT NULL DEFAULT 0,
    CONSTRAINT custom_fields_key_unique UNIQUE (object_type, key),
    CONSTRAINT custom_fields_choices_given CHECK (kind <> 'choice' OR cardinality(choices) > 0)
);


SELECT lastmile_watch(t) FROM unnest(ARRAY['administrators', 'admin_roles']::regclass[]) AS t;
