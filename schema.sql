-- lastmile schema version 16
-- lastmile schema hash 84a514258548f96335ee543327c04ac9b83c8359052e504d4588dd5c3d04f4df
--
-- The whole database as a fresh installation gets it: `lastmile db init` (and `lastmile up`)
-- applies this file to an empty database, in one transaction, and records the version and hash
-- above in schema_version. A database of an older version is not brought here by this file but
-- by the upgrade steps in daemons/upgrades/ (see "Changing the schema" below). Statements are
-- written to be safe to run again (IF NOT EXISTS, CREATE OR REPLACE, ON CONFLICT), since a
-- fresh apply may be retried. Needs PostgreSQL 14 or newer (CREATE OR REPLACE TRIGGER).
--
-- Contents
--   1. The kit: the version, change notifications     schema_version, lastmile_watch()
--   2. Time series: partitioned tables                 partitioned_tables, lastmile_partitioned()
--   3. Network                                         routers, nas, ip_pools, flow_exporters
--   4. Business                                        partners, customers, tariffs, services
--   5. radiusd                                         ip_leases, radius_sessions, radius_postauth, coa_requests
--   6. flowcollector                                   traffic_usage, traffic_unknown, rollups, traffic_*()
--   7. Admin                                           administrators, admin_roles, admin_sessions, api_keys,
--                                                      operations_log, custom_fields
--   8. Billing                                         billing_settings, customer_billing, tax_*, documents,
--                                                      transactions, allocations, billing_runs, number_counters
--   9. Payments                                        payments, payment_types, bank_statements, sepa_mandates,
--                                                      dd_batches, payment_gateways, payment_methods, gateway_events
--  10. Notifications and events                       notification_settings, notice_rules, message_templates,
--                                                      messages, events, event_cursors, webhooks,
--                                                      webhook_deliveries, webhook_attempts
--  11. ACS                                            acs_devices, acs_parameters, acs_tasks, acs_faults,
--                                                      acs_presets, acs_files, acs_wakeups, acs_dry_runs, acs_sessions
--  12. Tickets                                        ticket_statuses, ticket_groups, ticket_group_members,
--                                                      ticket_shifts, ticket_inboxes, ticket_denylist, tickets,
--                                                      ticket_watchers, ticket_messages, ticket_attachments,
--                                                      ticket_canned_replies, ticket_rules, ticket_settings
--  13. Portal                                         portal_accounts, portal_sessions, portal_login_attempts,
--                                                      portal_codes, portal_brands, portal_hosts,
--                                                      tariff_portal_targets
--  14. Resellers                                      partner_modes, tariff_partners, partner_commission_rates,
--                                                      partner_statements, partner_commissions, partner_payouts
--  15. The worker's job queue                          pgqueuer (pgqueuer's own tables)
--  16. Partitions                                      lastmile_maintain_partitions()
--
-- Conventions
--   * PostgreSQL types: inet/cidr/macaddr for addresses, numeric(14,4) for money,
--     timestamptz for every time (stored UTC).
--   * Constraints are named (<table>_<what>) so an error maps to a message.
--   * Foreign keys are ON DELETE RESTRICT unless the row is a part of its parent.
--   * Statuses are text + CHECK, not enums (easy to extend, no CREATE TYPE IF NOT EXISTS).
--   * Tables the daemons cache NOTIFY on channel lastmile_<table> with a JSON payload
--     {"table": ..., "op": "INSERT"|"UPDATE"|"DELETE", "id": N}; a statement touching more
--     than 100 rows sends one notification with "id": null, which means "reload the table".
--     lastmile_watch(table) gives a table these triggers.
--   * Time series (accounting sessions, traffic) are range-partitioned by time:
--     lastmile_partitioned(table, unit, ahead) gives a table its default partition and
--     registers it, and lastmile_maintain_partitions(), which the daemons run at start and
--     daily, makes its partitions ahead.
--   * Every function is written CREATE OR REPLACE FUNCTION (or PROCEDURE): they are created
--     again from this file after every upgrade (below).
--
-- Changing the schema (any change a fresh database would see, however small)
--   1. Edit this file so that it describes the new schema as a fresh database gets it. A new
--      column goes at the end of its table (an upgraded table can only append it).
--   2. Bump the version line at the top, N -> N+1.
--   3. Add the step from N to N+1 as daemons/upgrades/<N+1>.sql, three digits (006.sql makes
--      version 6), its first line "-- lastmile schema upgrade N -> N+1". `lastmile db init`
--      runs it on a database of version N only, in one transaction under [database]
--      lock_timeout, and records N+1. Tables, columns, constraints, indexes, triggers and rows
--      change there, written for version N exactly (no IF NOT EXISTS); its header says what it
--      locks and for how long. Functions do not: after the last step every function of this
--      file is created again (CREATE OR REPLACE), so a step only drops a function whose
--      arguments or result type change, or that goes away. A step may call this file's
--      functions: one the database lacks is created before the step, one it has runs as the
--      database has it. (Triggers belong to their table: re-creating one locks the table.)
--   4. Record the new hash on the second line (tests/db/test_schema_hash.py prints it). It is
--      the sha256 of the schema itself: pg_dump --schema-only of a fresh database without its
--      comment lines and dated partitions, and the rows of partitioned_tables; so a comment
--      needs no bump, and a change without one fails that test.
--   tests/db/test_schema_upgrade.py then upgrades a database of the previous release (with
--   demo data) and compares it with a fresh one.

-- =============================================================================================
-- 1. The kit: the version, change notifications
-- =============================================================================================

-- One row: the version of this database's schema and the hash of that version's schema (as
-- recorded at the top of this file). hash is NULL while an upgrade over several versions is
-- under way: only `lastmile db init`, which finishes it, accepts such a database.
CREATE TABLE IF NOT EXISTS schema_version (
    singleton boolean DEFAULT true CONSTRAINT schema_version_pk PRIMARY KEY
        CONSTRAINT schema_version_singleton CHECK (singleton),
    version integer NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    hash text
);

CREATE OR REPLACE FUNCTION lastmile_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END $$;

-- Statement-level, so a bulk load sends one "reload" instead of a notification per row.
CREATE OR REPLACE FUNCTION lastmile_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    channel text := 'lastmile_' || TG_TABLE_NAME;
    n bigint;
    row_id bigint;
BEGIN
    IF TG_OP = 'DELETE' THEN
        SELECT count(*) INTO n FROM old_rows;
    ELSE
        SELECT count(*) INTO n FROM new_rows;
    END IF;
    IF n > 100 THEN
        PERFORM pg_notify(channel, json_build_object('table', TG_TABLE_NAME, 'op', TG_OP, 'id', NULL)::text);
    ELSIF TG_OP = 'DELETE' THEN
        FOR row_id IN SELECT id FROM old_rows LOOP
            PERFORM pg_notify(channel, json_build_object('table', TG_TABLE_NAME, 'op', TG_OP, 'id', row_id)::text);
        END LOOP;
    ELSE
        FOR row_id IN SELECT id FROM new_rows LOOP
            PERFORM pg_notify(channel, json_build_object('table', TG_TABLE_NAME, 'op', TG_OP, 'id', row_id)::text);
        END LOOP;
    END IF;
    RETURN NULL;
END $$;

-- Give a table its updated_at toucher and its three NOTIFY triggers.
CREATE OR REPLACE FUNCTION lastmile_watch(tbl regclass) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    name text := (SELECT relname FROM pg_class WHERE oid = tbl);
BEGIN
    EXECUTE format('CREATE OR REPLACE TRIGGER %I BEFORE UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION lastmile_touch()',
                   name || '_touch', tbl);
    EXECUTE format('CREATE OR REPLACE TRIGGER %I AFTER INSERT ON %s REFERENCING NEW TABLE AS new_rows '
                   'FOR EACH STATEMENT EXECUTE FUNCTION lastmile_notify()', name || '_notify_insert', tbl);
    EXECUTE format('CREATE OR REPLACE TRIGGER %I AFTER UPDATE ON %s REFERENCING NEW TABLE AS new_rows '
                   'FOR EACH STATEMENT EXECUTE FUNCTION lastmile_notify()', name || '_notify_update', tbl);
    EXECUTE format('CREATE OR REPLACE TRIGGER %I AFTER DELETE ON %s REFERENCING OLD TABLE AS old_rows '
                   'FOR EACH STATEMENT EXECUTE FUNCTION lastmile_notify()', name || '_notify_delete', tbl);
END $$;

-- =============================================================================================
-- 2. Time series: partitioned tables
-- No foreign keys on time series: they would cost every COPY a lookup, and these rows outlive
-- the services they name.
-- =============================================================================================

CREATE TABLE IF NOT EXISTS partitioned_tables (
    parent regclass CONSTRAINT partitioned_tables_pk PRIMARY KEY,
    unit text NOT NULL CONSTRAINT partitioned_tables_unit_valid CHECK (unit IN ('day', 'month')),
    ahead integer NOT NULL CONSTRAINT partitioned_tables_ahead_positive CHECK (ahead > 0),
    fillfactor integer NOT NULL DEFAULT 100
);

-- Make `parent`, a table PARTITION BY RANGE on a timestamptz column, a time series: give it its
-- default partition (<parent>_default, which takes the rows no other partition does, so no insert
-- fails for a missing partition) and register it, so that lastmile_maintain_partitions() makes a
-- partition per `unit` ('day' or 'month') from the current one through `ahead` units on. Every
-- partition gets `fillfactor`. Calling it again with other values changes the registration
-- (partitions made from then on follow it).
CREATE OR REPLACE FUNCTION lastmile_partitioned(parent regclass, unit text, ahead integer, fillfactor integer DEFAULT 100)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_partitioned_table p WHERE p.partrelid = parent AND p.partstrat = 'r') THEN
        RAISE EXCEPTION 'lastmile_partitioned: % is not a table partitioned by range', parent;
    END IF;
    EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF %s DEFAULT WITH (fillfactor = %s)',
                   (SELECT c.relname FROM pg_class c WHERE c.oid = parent) || '_default', parent, fillfactor);
    INSERT INTO partitioned_tables AS p VALUES (parent, unit, ahead, fillfactor)
    ON CONFLICT ON CONSTRAINT partitioned_tables_pk DO UPDATE
        SET unit = EXCLUDED.unit, ahead = EXCLUDED.ahead, fillfactor = EXCLUDED.fillfactor
        WHERE (p.unit, p.ahead, p.fillfactor) IS DISTINCT FROM (EXCLUDED.unit, EXCLUDED.ahead, EXCLUDED.fillfactor);
END $$;

-- Create the partitions of every registered table from the current unit's start through
-- `ahead` units on. A range that already has rows in the default partition is skipped with a
-- warning (they stay readable there) rather than failing the whole run.
CREATE OR REPLACE FUNCTION lastmile_maintain_partitions() RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    t record;
    step interval;
    start timestamptz;
    stop timestamptz;
    part text;
    created integer := 0;
BEGIN
    FOR t IN SELECT parent, unit, ahead, fillfactor, (SELECT relname FROM pg_class WHERE oid = parent) AS name
             FROM partitioned_tables LOOP
        step := CASE t.unit WHEN 'day' THEN interval '1 day' ELSE interval '1 month' END;
        start := date_trunc(t.unit, now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
        FOR i IN 0 .. t.ahead LOOP
            stop := start + step;
            part := t.name || '_p' || to_char(start AT TIME ZONE 'UTC',
                                             CASE t.unit WHEN 'day' THEN 'YYYYMMDD' ELSE 'YYYYMM' END);
            IF to_regclass(part) IS NULL THEN
                BEGIN
                    EXECUTE format('CREATE TABLE %I PARTITION OF %s FOR VALUES FROM (%L) TO (%L) WITH (fillfactor = %s)',
                                   part, t.parent, start, stop, t.fillfactor);
                    created := created + 1;
                EXCEPTION WHEN check_violation THEN
                    RAISE WARNING 'partition % not created: rows for it are in the default partition', part;
                END;
            END IF;
            start := stop;
        END LOOP;
    END LOOP;
    RETURN created;
END $$;

-- =============================================================================================
-- 3. Network: routers, RADIUS clients, address pools, flow exporters
-- =============================================================================================

-- MikroTik routers lastmile provisions through the RouterOS API.
CREATE TABLE IF NOT EXISTS routers (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT routers_pk PRIMARY KEY,
    name text NOT NULL CONSTRAINT routers_name_unique UNIQUE,
    host text NOT NULL,
    api_port integer NOT NULL DEFAULT 8728 CONSTRAINT routers_api_port_range CHECK (api_port BETWEEN 1 AND 65535),
    api_tls boolean NOT NULL DEFAULT false,
    username text NOT NULL,
    -- Sealed with the key of [secrets] key_file ("lm1:..."; daemons/secrets.py), never in clear
    -- text; provisiond seals a clear-text one it finds (a row written by hand) on its start.
    password text NOT NULL,
    enabled boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    -- 'radius': subscribers log in through radiusd (PPPoE/hotspot with RADIUS); 'api': provisiond
    -- writes a PPP secret per service to the router (the router then works without radiusd).
    auth_mode text NOT NULL DEFAULT 'radius' CONSTRAINT routers_auth_mode_valid CHECK (auth_mode IN ('radius', 'api')),
    -- With api_tls: check the router's certificate against [provisiond] ca_file (or the system's
    -- CAs) and its host name. false only for a router with a self-signed certificate.
    api_tls_verify boolean NOT NULL DEFAULT true,
    custom jsonb NOT NULL DEFAULT '{}' CONSTRAINT routers_custom_object CHECK (jsonb_typeof(custom) = 'object')
);

-- What provisiond last did on each router (operational state, overwritten by every run).
CREATE TABLE IF NOT EXISTS router_sync (
    router_id bigint CONSTRAINT router_sync_pk PRIMARY KEY CONSTRAINT router_sync_router_fk REFERENCES routers ON DELETE CASCADE,
    generation bigint NOT NULL DEFAULT 0,      -- runs that reached the router
    reachable boolean NOT NULL DEFAULT false,
    last_attempt_at timestamptz,
    last_success_at timestamptz,
    last_error text,
    adds integer NOT NULL DEFAULT 0,           -- of the last successful run
    sets integer NOT NULL DEFAULT 0,
    removes integer NOT NULL DEFAULT 0,
    duration_ms integer NOT NULL DEFAULT 0,
    drift integer NOT NULL DEFAULT 0,          -- owned objects that differed from billing before that run
    -- The last run's report: {"drift": [...], "leaks": [...], "missing": [...], "conflicts": [...]}
    report jsonb NOT NULL DEFAULT '{}' CONSTRAINT router_sync_report_object CHECK (jsonb_typeof(report) = 'object')
);

-- RADIUS clients. A request is matched by its source address against `address` (a host or a
-- prefix); prefixes may not overlap, so the match is never ambiguous.
CREATE TABLE IF NOT EXISTS nas (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT nas_pk PRIMARY KEY,
    name text NOT NULL CONSTRAINT nas_name_unique UNIQUE,
    address cidr NOT NULL,
    secret text NOT NULL CONSTRAINT nas_secret_nonempty CHECK (secret <> ''),
    type text NOT NULL DEFAULT 'mikrotik'
        CONSTRAINT nas_type_valid CHECK (type IN ('mikrotik', 'cisco', 'juniper', 'huawei', 'accel-ppp', 'other')),
    coa_port integer NOT NULL DEFAULT 3799 CONSTRAINT nas_coa_port_range CHECK (coa_port BETWEEN 1 AND 65535),
    -- BlastRADIUS (CVE-2024-3596): false only for a NAS that cannot send Message-Authenticator.
    require_message_authenticator boolean NOT NULL DEFAULT true,
    router_id bigint CONSTRAINT nas_router_fk REFERENCES routers ON DELETE RESTRICT,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    -- BlastRADIUS: a NAS exempt from Message-Authenticator must at least have Proxy-State limited
    -- (FreeRADIUS 3.2.5's rule: one of the two must be on for any protection).
    limit_proxy_state boolean NOT NULL DEFAULT true,
    CONSTRAINT nas_blastradius_protected CHECK (require_message_authenticator OR limit_proxy_state),
    CONSTRAINT nas_address_no_overlap EXCLUDE USING gist (address inet_ops WITH &&)
);

-- Address pools. 'lastmile' pools are leased here (an address per session, never two live
-- sessions on one address, whatever the number of radiusd instances); 'nas' pools are only
-- named in Framed-Pool and the NAS allocates from its own pool of that name.
CREATE TABLE IF NOT EXISTS ip_pools (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT ip_pools_pk PRIMARY KEY,
    name text NOT NULL CONSTRAINT ip_pools_name_unique UNIQUE,
    network cidr NOT NULL,
    managed_by text NOT NULL DEFAULT 'lastmile' CONSTRAINT ip_pools_managed_by_valid CHECK (managed_by IN ('lastmile', 'nas')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ip_pools_network_no_overlap EXCLUDE USING gist (network inet_ops WITH &&)
);

-- NetFlow/IPFIX exporters allowed to send to flowcollector (routers and NAS are allowed too).
CREATE TABLE IF NOT EXISTS flow_exporters (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT flow_exporters_pk PRIMARY KEY,
    name text NOT NULL CONSTRAINT flow_exporters_name_unique UNIQUE,
    address inet NOT NULL CONSTRAINT flow_exporters_address_unique UNIQUE,
    -- 1 in N packets sampled, when the exporter does not say so itself (MikroTik does not).
    sampling_rate integer NOT NULL DEFAULT 1 CONSTRAINT flow_exporters_sampling_positive CHECK (sampling_rate >= 1),
    router_id bigint CONSTRAINT flow_exporters_router_fk REFERENCES routers ON DELETE RESTRICT,
    enabled boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

SELECT lastmile_watch(t) FROM unnest(ARRAY['routers', 'nas', 'ip_pools', 'flow_exporters']::regclass[]) AS t;

-- =============================================================================================
-- 4. Business: partners (resellers, brands), customers, tariffs, services
-- =============================================================================================

-- A partner: the ISP itself (the first partner) or a reseller, with its company, contact and bank
-- details (its documents and payouts name them) and a parent when it is a sub-partner (a tree:
-- partners_no_cycle). How it works with the ISP (its mode) is in partner_modes, section 14.
CREATE TABLE IF NOT EXISTS partners (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT partners_pk PRIMARY KEY,
    name text NOT NULL CONSTRAINT partners_name_unique UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    parent_id bigint CONSTRAINT partners_parent_fk REFERENCES partners ON DELETE RESTRICT,
    legal_name text NOT NULL DEFAULT '',
    vat_id text NOT NULL DEFAULT '',
    street text NOT NULL DEFAULT '',
    city text NOT NULL DEFAULT '',
    zip text NOT NULL DEFAULT '',
    country text CONSTRAINT partners_country_iso CHECK (country ~ '^[A-Z]{2}$'),
    contact_name text NOT NULL DEFAULT '',
    email text NOT NULL DEFAULT '',
    phone text NOT NULL DEFAULT '',
    bank_name text NOT NULL DEFAULT '',
    iban text NOT NULL DEFAULT '',
    bic text NOT NULL DEFAULT '',
    -- Percentage mode: the share of what its customers pay that the ISP owes it, unless a rate of
    -- partner_commission_rates (a tariff's, a category's) says otherwise.
    commission_percent numeric(7, 4) NOT NULL DEFAULT 0
        CONSTRAINT partners_commission_percent_range CHECK (commission_percent BETWEEN 0 AND 100),
    CONSTRAINT partners_not_own_parent CHECK (parent_id <> id)
);
CREATE INDEX IF NOT EXISTS partners_parent_idx ON partners (parent_id) WHERE parent_id IS NOT NULL;

-- A sub-partner's parents never lead back to it.
CREATE OR REPLACE FUNCTION lastmile_partners_no_cycle() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.parent_id IS NOT NULL AND EXISTS (
        WITH RECURSIVE up(id) AS (
            SELECT NEW.parent_id
            UNION
            SELECT p.parent_id FROM partners p JOIN up ON p.id = up.id WHERE p.parent_id IS NOT NULL)
        SELECT 1 FROM up WHERE id = NEW.id) THEN
        RAISE EXCEPTION 'partner % cannot be under its own sub-partner %', NEW.id, NEW.parent_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'partners_no_cycle';
    END IF;
    RETURN NEW;
END $$;
CREATE OR REPLACE TRIGGER partners_no_cycle BEFORE UPDATE OF parent_id ON partners
    FOR EACH ROW EXECUTE FUNCTION lastmile_partners_no_cycle();

CREATE TABLE IF NOT EXISTS customers (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT customers_pk PRIMARY KEY,
    partner_id bigint NOT NULL CONSTRAINT customers_partner_fk REFERENCES partners ON DELETE RESTRICT,
    number text NOT NULL CONSTRAINT customers_number_unique UNIQUE,
    name text NOT NULL CONSTRAINT customers_name_nonempty CHECK (name <> ''),
    email text,
    phone text,
    street text,
    city text,
    zip text,
    country text CONSTRAINT customers_country_iso CHECK (country ~ '^[A-Z]{2}$'),
    -- new -> active -> blocked -> inactive (services stopped, no billing) -> deleted (only from
    -- inactive; the row stays for finance, hidden from lists): admin/customers/lifecycle.py.
    status text NOT NULL DEFAULT 'active'
        CONSTRAINT customers_status_valid CHECK (status IN ('new', 'active', 'blocked', 'inactive', 'deleted')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    category text NOT NULL DEFAULT 'person' CONSTRAINT customers_category_valid CHECK (category IN ('person', 'company')),
    billing_email text,
    other_emails text[] NOT NULL DEFAULT '{}',
    other_phones text[] NOT NULL DEFAULT '{}',
    -- The administrator who created it (a "Customer creator" sees only its own customers).
    created_by bigint,
    -- Values of the custom fields (custom_fields) of object type 'customer', by key.
    custom jsonb NOT NULL DEFAULT '{}' CONSTRAINT customers_custom_object CHECK (jsonb_typeof(custom) = 'object'),
    notes text NOT NULL DEFAULT '',
    -- The search box: words of the name and address, digits of the phones (admin/search.py).
    search_words tsvector GENERATED ALWAYS AS (
        to_tsvector('simple', coalesce(name, '') || ' ' || coalesce(street, '') || ' ' || coalesce(city, '') || ' '
                    || coalesce(zip, '') || ' ' || number)) STORED,
    phone_digits text GENERATED ALWAYS AS (nullif(regexp_replace(coalesce(phone, ''), '[^0-9]', '', 'g'), '')) STORED,
    -- The language of the messages sent to the customer (a template's language); NULL: the partner's default.
    language text CONSTRAINT customers_language_valid CHECK (language ~ '^[a-z]{2}(_[A-Z]{2})?$'),
    -- Announcements (marketing) are not sent to the customer; legal notices (invoices, reminders) are.
    marketing_opt_out boolean NOT NULL DEFAULT false
);
CREATE INDEX IF NOT EXISTS customers_partner_idx ON customers (partner_id, id);
CREATE INDEX IF NOT EXISTS customers_status_idx ON customers (status, id);
-- The list sorted by name (names are searched by their words, customers_search_idx).
CREATE INDEX IF NOT EXISTS customers_name_idx ON customers (lower(name), id);
CREATE INDEX IF NOT EXISTS customers_email_idx ON customers (lower(email) text_pattern_ops);
CREATE INDEX IF NOT EXISTS customers_billing_email_idx ON customers (lower(billing_email));
CREATE INDEX IF NOT EXISTS customers_other_emails_idx ON customers USING gin (other_emails);
CREATE INDEX IF NOT EXISTS customers_search_idx ON customers USING gin (search_words);
-- A phone is found by its last digits, whatever prefix it was written with.
CREATE INDEX IF NOT EXISTS customers_phone_idx ON customers (reverse(phone_digits) text_pattern_ops);
CREATE INDEX IF NOT EXISTS customers_created_by_idx ON customers (created_by, id) WHERE created_by IS NOT NULL;

-- Internet tariffs; speeds in kbit/s. Bursts follow MikroTik's queue semantics: the rate may
-- reach burst_* while the average over burst_time_s stays below burst_threshold_*.
CREATE TABLE IF NOT EXISTS tariffs (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT tariffs_pk PRIMARY KEY,
    name text NOT NULL CONSTRAINT tariffs_name_unique UNIQUE,
    download_kbps integer NOT NULL CONSTRAINT tariffs_download_positive CHECK (download_kbps > 0),
    upload_kbps integer NOT NULL CONSTRAINT tariffs_upload_positive CHECK (upload_kbps > 0),
    burst_download_kbps integer CONSTRAINT tariffs_burst_download_above CHECK (burst_download_kbps >= download_kbps),
    burst_upload_kbps integer CONSTRAINT tariffs_burst_upload_above CHECK (burst_upload_kbps >= upload_kbps),
    burst_threshold_download_kbps integer,
    burst_threshold_upload_kbps integer,
    burst_time_s integer CONSTRAINT tariffs_burst_time_positive CHECK (burst_time_s > 0),
    priority smallint NOT NULL DEFAULT 8 CONSTRAINT tariffs_priority_range CHECK (priority BETWEEN 1 AND 8),
    price numeric(14, 4) NOT NULL DEFAULT 0 CONSTRAINT tariffs_price_nonnegative CHECK (price >= 0),
    currency text NOT NULL DEFAULT 'EUR' CONSTRAINT tariffs_currency_iso CHECK (currency ~ '^[A-Z]{3}$'),
    session_timeout_s integer CONSTRAINT tariffs_session_timeout_positive CHECK (session_timeout_s > 0),
    -- Extra RADIUS reply attributes: [["Attribute-Name", "value"], ...]
    radius_reply jsonb NOT NULL DEFAULT '[]'
        CONSTRAINT tariffs_radius_reply_array CHECK (jsonb_typeof(radius_reply) = 'array'),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    -- Guaranteed rates (MikroTik limit-at); NULL: none (0).
    limit_at_download_kbps integer CONSTRAINT tariffs_limit_at_download_range CHECK (limit_at_download_kbps BETWEEN 0 AND download_kbps),
    limit_at_upload_kbps integer CONSTRAINT tariffs_limit_at_upload_range CHECK (limit_at_upload_kbps BETWEEN 0 AND upload_kbps),
    -- Contention ratio (1:N, shared by N subscribers); informational, for plans and reports.
    contention smallint NOT NULL DEFAULT 1 CONSTRAINT tariffs_contention_range CHECK (contention BETWEEN 1 AND 1000),
    custom jsonb NOT NULL DEFAULT '{}' CONSTRAINT tariffs_custom_object CHECK (jsonb_typeof(custom) = 'object'),
    CONSTRAINT tariffs_burst_complete CHECK (
        (burst_download_kbps IS NULL) = (burst_upload_kbps IS NULL)
        AND (burst_download_kbps IS NULL) = (burst_time_s IS NULL))
);

CREATE TABLE IF NOT EXISTS services (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT services_pk PRIMARY KEY,
    customer_id bigint NOT NULL CONSTRAINT services_customer_fk REFERENCES customers ON DELETE RESTRICT,
    tariff_id bigint NOT NULL CONSTRAINT services_tariff_fk REFERENCES tariffs ON DELETE RESTRICT,
    router_id bigint CONSTRAINT services_router_fk REFERENCES routers ON DELETE RESTRICT,
    login text NOT NULL CONSTRAINT services_login_unique UNIQUE CONSTRAINT services_login_nonempty CHECK (login <> ''),
    -- Kept readable: CHAP and MS-CHAPv2 need the password itself, as FreeRADIUS's Cleartext-Password.
    password text NOT NULL,
    status text NOT NULL DEFAULT 'active'
        CONSTRAINT services_status_valid CHECK (status IN ('active', 'blocked', 'disabled', 'archived')),
    ipv4 inet CONSTRAINT services_ipv4_unique UNIQUE
        CONSTRAINT services_ipv4_host CHECK (family(ipv4) = 4 AND masklen(ipv4) = 32),
    ipv6_prefix cidr CONSTRAINT services_ipv6_prefix_family CHECK (family(ipv6_prefix) = 6),
    delegated_ipv6_prefix cidr CONSTRAINT services_delegated_prefix_family CHECK (family(delegated_ipv6_prefix) = 6),
    mac macaddr,
    simultaneous_use smallint NOT NULL DEFAULT 1 CONSTRAINT services_simultaneous_use_nonnegative CHECK (simultaneous_use >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    -- The pool a login without a static address gets its address from (radiusd).
    pool_id bigint CONSTRAINT services_pool_fk REFERENCES ip_pools ON DELETE RESTRICT,
    start_date date,
    end_date date,
    custom jsonb NOT NULL DEFAULT '{}' CONSTRAINT services_custom_object CHECK (jsonb_typeof(custom) = 'object'),
    CONSTRAINT services_dates_ordered CHECK (end_date >= start_date)
);
CREATE INDEX IF NOT EXISTS services_customer_idx ON services (customer_id);
CREATE INDEX IF NOT EXISTS services_tariff_idx ON services (tariff_id);
CREATE INDEX IF NOT EXISTS services_login_pattern_idx ON services (lower(login) text_pattern_ops);
CREATE INDEX IF NOT EXISTS services_mac_idx ON services (mac) WHERE mac IS NOT NULL;
CREATE INDEX IF NOT EXISTS services_pool_idx ON services (pool_id) WHERE pool_id IS NOT NULL;
-- provisiond computes each router's desired state from its services.
CREATE INDEX IF NOT EXISTS services_router_idx ON services (router_id) WHERE router_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS services_ipv6_prefix_idx ON services USING gist (ipv6_prefix inet_ops);
-- The leak report looks addresses up in services' delegated prefixes too.
CREATE INDEX IF NOT EXISTS services_delegated_prefix_idx ON services USING gist (delegated_ipv6_prefix inet_ops);

SELECT lastmile_watch(t) FROM unnest(ARRAY['partners', 'customers', 'tariffs', 'services']::regclass[]) AS t;

-- =============================================================================================
-- 5. radiusd: address leases, accounting sessions, the post-auth log, CoA
-- =============================================================================================

-- One row per address of a 'lastmile' pool. state: free -> reserved (Access-Accept sent, until
-- the session's Accounting-Start or expires_at) -> bound (to acct_unique_id, renewed by each
-- Interim until expires_at) -> free (Stop, Accounting-On/Off, or expiry). service_id stays on a
-- freed row so the same service gets its old address back when it is still free.
-- free -> stock: taken out of circulation for one radiusd instance (holder), which hands it to
-- a login from memory and then records it (-> reserved, or bound when the Start came first);
-- renewed by its holder, freed by expiry when the holder died (radiusd/leases.py).
CREATE TABLE IF NOT EXISTS ip_leases (
    address inet CONSTRAINT ip_leases_pk PRIMARY KEY,
    pool_id bigint NOT NULL CONSTRAINT ip_leases_pool_fk REFERENCES ip_pools ON DELETE CASCADE,
    state text NOT NULL DEFAULT 'free'
        CONSTRAINT ip_leases_state_valid CHECK (state IN ('free', 'stock', 'reserved', 'bound')),
    service_id bigint,
    acct_unique_id text,
    expires_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now(),
    holder text,
    CONSTRAINT ip_leases_live_has_expiry CHECK (state = 'free' OR (expires_at IS NOT NULL AND service_id IS NOT NULL)
                                                OR (state = 'stock' AND expires_at IS NOT NULL AND holder IS NOT NULL))
);
CREATE INDEX IF NOT EXISTS ip_leases_free_idx ON ip_leases (pool_id, updated_at) WHERE state = 'free';
CREATE INDEX IF NOT EXISTS ip_leases_service_idx ON ip_leases (service_id);
CREATE INDEX IF NOT EXISTS ip_leases_session_idx ON ip_leases (acct_unique_id) WHERE state = 'bound';
CREATE INDEX IF NOT EXISTS ip_leases_expiry_idx ON ip_leases (expires_at) WHERE state <> 'free';
CREATE INDEX IF NOT EXISTS ip_leases_holder_idx ON ip_leases (holder) WHERE state = 'stock';
-- A stock refill takes the free addresses no service had first, then the longest free: in this
-- order, so a refill reads as many index entries as it takes instead of sorting the whole pool.
CREATE INDEX IF NOT EXISTS ip_leases_free_unused_idx ON ip_leases (pool_id, (service_id IS NOT NULL), updated_at)
    WHERE state = 'free';

-- Lease an address for each (pool, service) of a batch of logins, in one call and one commit:
-- the service's previous address when free (or, where `reuse` says the service has one
-- session at most, still reserved by an Accept that no Accounting-Start followed: the NAS
-- asked again), else the longest-free one. SKIP LOCKED lets
-- concurrent batches (this or another radiusd) take different rows instead of waiting; the
-- state check means an address is never given to two live sessions. NULL: the pool is full.
CREATE OR REPLACE FUNCTION lastmile_lease(pools bigint[], services bigint[], reuse boolean[], reserve_s integer)
RETURNS TABLE (n integer, address text) LANGUAGE plpgsql AS $$
DECLARE
    i integer;
    got inet;
BEGIN
    FOR i IN 1 .. coalesce(array_length(pools, 1), 0) LOOP
        UPDATE ip_leases SET state = 'reserved', service_id = services[i], acct_unique_id = NULL,
            expires_at = now() + make_interval(secs => reserve_s), updated_at = now()
        WHERE ip_leases.address = COALESCE(
            (SELECT l.address FROM ip_leases l WHERE l.service_id = services[i] AND l.pool_id = pools[i]
               AND (l.state = 'free' OR (reuse[i] AND l.state = 'reserved'))
             ORDER BY l.state DESC LIMIT 1 FOR UPDATE SKIP LOCKED),
            (SELECT l.address FROM ip_leases l WHERE l.pool_id = pools[i] AND l.state = 'free'
             ORDER BY l.updated_at LIMIT 1 FOR UPDATE SKIP LOCKED))
        RETURNING ip_leases.address INTO got;
        n := i;
        address := host(got);
        got := NULL;
        RETURN NEXT;
    END LOOP;
END $$;

-- A new 'lastmile' pool gets a row per usable host address (not the network and broadcast
-- addresses of IPv4 networks larger than /31).
CREATE OR REPLACE FUNCTION lastmile_fill_pool() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.managed_by = 'lastmile' AND family(NEW.network) = 4 THEN
        INSERT INTO ip_leases (address, pool_id)
        SELECT host(NEW.network)::inet + g, NEW.id
        FROM generate_series(CASE WHEN masklen(NEW.network) < 31 THEN 1 ELSE 0 END,
                             (2 ^ (32 - masklen(NEW.network)))::bigint
                             - CASE WHEN masklen(NEW.network) < 31 THEN 2 ELSE 1 END) AS g
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER ip_pools_fill AFTER INSERT ON ip_pools FOR EACH ROW EXECUTE FUNCTION lastmile_fill_pool();

-- The one row per accounting session that decides which partition its session lives in:
-- PostgreSQL cannot enforce a unique acct_unique_id across partitions keyed by started_at, so
-- this small table does, and concurrent writers (several radiusd) agree on started_at.
CREATE TABLE IF NOT EXISTS radius_session_index (
    acct_unique_id text CONSTRAINT radius_session_index_pk PRIMARY KEY,
    started_at timestamptz NOT NULL
);

-- RADIUS accounting sessions, one row per session, keyed by Acct-Unique-Session-Id.
CREATE TABLE IF NOT EXISTS radius_sessions (
    acct_unique_id text NOT NULL,
    started_at timestamptz NOT NULL,
    service_id bigint,
    nas_id bigint,
    username text NOT NULL,
    acct_session_id text NOT NULL,
    nas_address inet,
    nas_port_id text,
    calling_station_id text,
    called_station_id text,
    framed_ip inet,
    framed_ipv6_prefix cidr,
    delegated_ipv6_prefix cidr,
    updated_at timestamptz NOT NULL,
    stopped_at timestamptz,
    session_time_s bigint NOT NULL DEFAULT 0,
    input_octets bigint NOT NULL DEFAULT 0,
    output_octets bigint NOT NULL DEFAULT 0,
    input_packets bigint NOT NULL DEFAULT 0,
    output_packets bigint NOT NULL DEFAULT 0,
    terminate_cause text,
    -- The last CoA-Request or Disconnect-Request sent for the session, and its answer.
    last_coa_at timestamptz,
    last_coa_result text,
    CONSTRAINT radius_sessions_pk PRIMARY KEY (acct_unique_id, started_at)
) PARTITION BY RANGE (started_at);
CREATE INDEX IF NOT EXISTS radius_sessions_open_service_idx ON radius_sessions (service_id) WHERE stopped_at IS NULL;
CREATE INDEX IF NOT EXISTS radius_sessions_open_nas_idx ON radius_sessions (nas_id) WHERE stopped_at IS NULL;
CREATE INDEX IF NOT EXISTS radius_sessions_open_ip_idx ON radius_sessions (framed_ip) WHERE stopped_at IS NULL;
CREATE INDEX IF NOT EXISTS radius_sessions_username_idx ON radius_sessions (username, started_at);
-- Interim-Updates change no indexed column: with room left on each page they are HOT updates
-- (no index touched), which is most of the accounting write load. Half of each page is left
-- free: sessions that start together (a NAS reboot, a bulk load) sit on the same pages and send
-- their Interim-Updates together, so one batch may need a new version of every row on a page
-- before any old version is dead and can be pruned (at 80 % only a third of them were HOT).
SELECT lastmile_partitioned('radius_sessions', 'month', 2, fillfactor => 50);

-- Every Access-Accept and -Reject with its reason ("why can't this customer log in").
CREATE TABLE IF NOT EXISTS radius_postauth (
    at timestamptz NOT NULL,
    username text NOT NULL,
    service_id bigint,
    nas_id bigint,
    result text NOT NULL CONSTRAINT radius_postauth_result_valid CHECK (result IN ('accept', 'reject')),
    reason text NOT NULL,
    calling_station_id text,
    framed_ip inet
) PARTITION BY RANGE (at);
CREATE INDEX IF NOT EXISTS radius_postauth_username_idx ON radius_postauth (username, at);
SELECT lastmile_partitioned('radius_postauth', 'day', 7);

-- Changes that need a CoA-Request or Disconnect-Request to the NAS of a live session. Written
-- by the triggers below, taken by one radiusd instance (FOR UPDATE SKIP LOCKED), answered once.
CREATE TABLE IF NOT EXISTS coa_requests (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT coa_requests_pk PRIMARY KEY,
    service_id bigint NOT NULL,
    action text NOT NULL CONSTRAINT coa_requests_action_valid CHECK (action IN ('rate', 'block', 'unblock', 'disconnect')),
    state text NOT NULL DEFAULT 'pending'
        CONSTRAINT coa_requests_state_valid CHECK (state IN ('pending', 'sending', 'done', 'failed')),
    result text,
    attempts integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS coa_requests_open_idx ON coa_requests (id) WHERE state IN ('pending', 'sending');
SELECT lastmile_watch('coa_requests');

-- What a change of status means for a live session.
CREATE OR REPLACE FUNCTION lastmile_coa_action(old_status text, new_status text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN new_status = 'blocked' THEN 'block'
                WHEN old_status = 'blocked' AND new_status = 'active' THEN 'unblock'
                ELSE 'disconnect' END
$$;

CREATE OR REPLACE FUNCTION lastmile_coa_on_service() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IS DISTINCT FROM OLD.status THEN
        INSERT INTO coa_requests (service_id, action) VALUES (NEW.id, lastmile_coa_action(OLD.status, NEW.status));
    ELSIF NEW.tariff_id IS DISTINCT FROM OLD.tariff_id THEN
        INSERT INTO coa_requests (service_id, action) VALUES (NEW.id, 'rate');
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION lastmile_coa_on_customer() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IS DISTINCT FROM OLD.status THEN
        INSERT INTO coa_requests (service_id, action)
        SELECT s.id, lastmile_coa_action(OLD.status, NEW.status)
        FROM services s WHERE s.customer_id = NEW.id AND s.status = 'active';
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION lastmile_coa_on_tariff() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.download_kbps, NEW.upload_kbps, NEW.burst_download_kbps, NEW.burst_upload_kbps,
        NEW.burst_threshold_download_kbps, NEW.burst_threshold_upload_kbps, NEW.burst_time_s, NEW.priority)
       IS DISTINCT FROM
       (OLD.download_kbps, OLD.upload_kbps, OLD.burst_download_kbps, OLD.burst_upload_kbps,
        OLD.burst_threshold_download_kbps, OLD.burst_threshold_upload_kbps, OLD.burst_time_s, OLD.priority) THEN
        INSERT INTO coa_requests (service_id, action)
        SELECT DISTINCT r.service_id, 'rate' FROM radius_sessions r JOIN services s ON s.id = r.service_id
        WHERE r.stopped_at IS NULL AND s.tariff_id = NEW.id;
    END IF;
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER services_coa AFTER UPDATE ON services FOR EACH ROW EXECUTE FUNCTION lastmile_coa_on_service();
CREATE OR REPLACE TRIGGER customers_coa AFTER UPDATE ON customers FOR EACH ROW EXECUTE FUNCTION lastmile_coa_on_customer();
CREATE OR REPLACE TRIGGER tariffs_coa AFTER UPDATE ON tariffs FOR EACH ROW EXECUTE FUNCTION lastmile_coa_on_tariff();

-- =============================================================================================
-- 6. flowcollector: traffic by minute, unknown traffic, rollups, traffic reports
-- =============================================================================================

-- Addresses a session held, found by when it ended (flowcollector reloads the last hours).
CREATE INDEX IF NOT EXISTS radius_sessions_stopped_ip_idx ON radius_sessions (stopped_at) WHERE framed_ip IS NOT NULL;
-- "Who had this address at that time" (the admin's search box and abuse reports).
CREATE INDEX IF NOT EXISTS radius_sessions_ip_idx ON radius_sessions (framed_ip, started_at) WHERE framed_ip IS NOT NULL;
-- The admin's session lists, newest first (Interim-Updates change neither column: still HOT).
CREATE INDEX IF NOT EXISTS radius_sessions_started_idx ON radius_sessions (started_at, acct_unique_id);
CREATE INDEX IF NOT EXISTS radius_sessions_open_started_idx ON radius_sessions (started_at, acct_unique_id)
    WHERE stopped_at IS NULL;
CREATE INDEX IF NOT EXISTS radius_sessions_open_address_idx
    ON radius_sessions ((coalesce(framed_ip, '0.0.0.0'::inet)), acct_unique_id) WHERE stopped_at IS NULL;
-- The admin's login log, newest first, and its rejects.
CREATE INDEX IF NOT EXISTS radius_postauth_at_idx ON radius_postauth (at);
CREATE INDEX IF NOT EXISTS radius_postauth_result_idx ON radius_postauth (result, at);

-- Per-service traffic by minute, written by flowcollector with COPY. A minute may have several
-- rows (one per flush); readers sum them.
CREATE TABLE IF NOT EXISTS traffic_usage (
    service_id bigint NOT NULL,
    minute timestamptz NOT NULL,
    bytes_down bigint NOT NULL,
    bytes_up bigint NOT NULL,
    packets_down bigint NOT NULL,
    packets_up bigint NOT NULL,
    -- What billing said of the service when its traffic was written, NULL when the service and
    -- its customer are active (the status of the service, else of its customer): traffic that
    -- passed while nobody was paying for it.
    -- (customer_disabled and customer_archived: rows written before schema version 7)
    billing text CONSTRAINT traffic_usage_billing_valid CHECK (billing IN (
        'service_blocked', 'service_disabled', 'service_archived',
        'customer_new', 'customer_blocked', 'customer_inactive', 'customer_deleted',
        'customer_disabled', 'customer_archived'))
) PARTITION BY RANGE (minute);
CREATE INDEX IF NOT EXISTS traffic_usage_service_minute_idx ON traffic_usage (service_id, minute);
CREATE INDEX IF NOT EXISTS traffic_usage_billing_minute_idx ON traffic_usage (minute) WHERE billing IS NOT NULL;
SELECT lastmile_partitioned('traffic_usage', 'day', 7);

-- Traffic of addresses that belong to no service, per exporter: revenue leaks and misconfig.
CREATE TABLE IF NOT EXISTS traffic_unknown (
    exporter inet NOT NULL,
    minute timestamptz NOT NULL,
    bytes bigint NOT NULL,
    packets bigint NOT NULL,
    -- The subscriber-side address, when it is in the ISP's own prefixes (NULL: it is not, the row
    -- counts per exporter only). flowcollector records at most max_unknown_addresses addresses
    -- per flush; the rest are folded into 0.0.0.0/0 or ::/0 ("other addresses").
    address inet
) PARTITION BY RANGE (minute);
CREATE INDEX IF NOT EXISTS traffic_unknown_exporter_minute_idx ON traffic_unknown (exporter, minute);
CREATE INDEX IF NOT EXISTS traffic_unknown_address_minute_idx ON traffic_unknown (minute) WHERE address IS NOT NULL;
SELECT lastmile_partitioned('traffic_unknown', 'day', 7);

-- Rollups for long history: one row per service and hour / day, recomputed from the finer table
-- (so late flows and repeated runs give the same result).
CREATE TABLE IF NOT EXISTS traffic_usage_hourly (
    service_id bigint NOT NULL,
    hour timestamptz NOT NULL,
    bytes_down bigint NOT NULL,
    bytes_up bigint NOT NULL,
    packets_down bigint NOT NULL,
    packets_up bigint NOT NULL,
    CONSTRAINT traffic_usage_hourly_pk PRIMARY KEY (service_id, hour)
) PARTITION BY RANGE (hour);
SELECT lastmile_partitioned('traffic_usage_hourly', 'month', 2);

CREATE TABLE IF NOT EXISTS traffic_usage_daily (
    service_id bigint NOT NULL,
    day date NOT NULL,
    bytes_down bigint NOT NULL,
    bytes_up bigint NOT NULL,
    packets_down bigint NOT NULL,
    packets_up bigint NOT NULL,
    CONSTRAINT traffic_usage_daily_pk PRIMARY KEY (service_id, day)
);

-- Up to when the rollups are complete: readers take rolled-up rows before it and minute rows after.
CREATE TABLE IF NOT EXISTS traffic_rollup_state (
    singleton boolean DEFAULT true CONSTRAINT traffic_rollup_state_pk PRIMARY KEY
        CONSTRAINT traffic_rollup_state_singleton CHECK (singleton),
    rolled_until timestamptz NOT NULL
);
INSERT INTO traffic_rollup_state (rolled_until) VALUES ('-infinity') ON CONFLICT DO NOTHING;

-- Hours before the rollup mark that got minute rows after they were rolled up (late traffic):
-- until the next rollup recomputes them, readers take their minute rows instead of the
-- hourly row, so totals are exact at any time and nothing is counted twice.
CREATE TABLE IF NOT EXISTS traffic_rollup_dirty (
    hour timestamptz CONSTRAINT traffic_rollup_dirty_pk PRIMARY KEY
);

-- Whoever writes traffic_usage rows calls this in the same transaction, with the minutes
-- written: the hours already rolled up among them are marked dirty. It takes the rollup's
-- lock shared, so a rollup waits for writes in flight and no write slips between a rollup's
-- reading of the minute rows and its moving of the mark. Returns the hours marked.
CREATE OR REPLACE FUNCTION lastmile_traffic_written(minutes timestamptz[]) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    marked integer;
BEGIN
    PERFORM pg_advisory_xact_lock_shared(hashtext('lastmile traffic rollup'));
    INSERT INTO traffic_rollup_dirty
    SELECT DISTINCT date_trunc('hour', m) FROM unnest(minutes) m, traffic_rollup_state s WHERE m < s.rolled_until
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS marked = ROW_COUNT;
    RETURN marked;
END $$;

-- Recompute the hours from `since` (or from the mark, if it is behind) to the last complete
-- hour, the dirty hours, and their days; move the mark. Flows can arrive late (long flows are
-- exported when they end), so callers pass a `since` some hours back; older late traffic is
-- found through traffic_rollup_dirty.
CREATE OR REPLACE FUNCTION lastmile_rollup_traffic(since timestamptz) RETURNS timestamptz
LANGUAGE plpgsql AS $$
DECLARE
    from_hour timestamptz;
    until timestamptz := date_trunc('hour', now());
    late timestamptz[];
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('lastmile traffic rollup'));
    -- Never past hours not rolled yet (the mark is where the last rollup ended).
    SELECT LEAST(date_trunc('hour', since), rolled_until) INTO from_hour FROM traffic_rollup_state;
    WITH taken AS (DELETE FROM traffic_rollup_dirty RETURNING hour)
    SELECT coalesce(array_agg(hour) FILTER (WHERE hour < from_hour OR hour >= until), '{}') INTO late FROM taken;
    DELETE FROM traffic_usage_hourly WHERE (hour >= from_hour AND hour < until) OR hour = ANY (late);
    INSERT INTO traffic_usage_hourly
    SELECT service_id, date_trunc('hour', minute), sum(bytes_down), sum(bytes_up), sum(packets_down), sum(packets_up)
    FROM traffic_usage WHERE minute >= from_hour AND minute < until
    GROUP BY 1, 2;
    INSERT INTO traffic_usage_hourly
    SELECT u.service_id, h, sum(u.bytes_down), sum(u.bytes_up), sum(u.packets_down), sum(u.packets_up)
    FROM unnest(late) h JOIN traffic_usage u ON u.minute >= h AND u.minute < h + interval '1 hour'
    GROUP BY 1, 2;
    DELETE FROM traffic_usage_daily WHERE day >= (from_hour AT TIME ZONE 'UTC')::date
        OR day IN (SELECT (h AT TIME ZONE 'UTC')::date FROM unnest(late) h);
    INSERT INTO traffic_usage_daily
    SELECT service_id, (hour AT TIME ZONE 'UTC')::date, sum(bytes_down), sum(bytes_up), sum(packets_down), sum(packets_up)
    FROM traffic_usage_hourly WHERE hour >= date_trunc('day', from_hour AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
    GROUP BY 1, 2;
    INSERT INTO traffic_usage_daily
    SELECT t.service_id, d, sum(t.bytes_down), sum(t.bytes_up), sum(t.packets_down), sum(t.packets_up)
    FROM (SELECT DISTINCT (h AT TIME ZONE 'UTC')::date AS d FROM unnest(late) h) days
    JOIN traffic_usage_hourly t ON t.hour >= days.d AT TIME ZONE 'UTC' AND t.hour < (days.d + 1) AT TIME ZONE 'UTC'
    WHERE days.d < (from_hour AT TIME ZONE 'UTC')::date
    GROUP BY 1, 2;
    UPDATE traffic_rollup_state SET rolled_until = GREATEST(rolled_until, until);
    RETURN until;
END $$;

-- The rows of a service's traffic in [from_ts, to_ts): with `rolled`, whole hours before the
-- rollup mark come from the hourly table (the minute rows of dirty ones, until they are rolled
-- up again) and the rest from the minute table.
CREATE OR REPLACE FUNCTION traffic_rows(service bigint, from_ts timestamptz, to_ts timestamptz, rolled boolean)
RETURNS TABLE (at timestamptz, bytes_down bigint, bytes_up bigint, packets_down bigint, packets_up bigint)
LANGUAGE sql STABLE AS $$
    WITH mark AS (SELECT CASE WHEN rolled THEN rolled_until ELSE '-infinity' END AS t FROM traffic_rollup_state)
    SELECT h.hour, h.bytes_down, h.bytes_up, h.packets_down, h.packets_up
    FROM traffic_usage_hourly h, mark
    WHERE h.service_id = service AND h.hour >= from_ts AND h.hour < LEAST(to_ts, mark.t)
      AND NOT EXISTS (SELECT 1 FROM traffic_rollup_dirty d WHERE d.hour = h.hour)
    UNION ALL
    SELECT u.minute, u.bytes_down, u.bytes_up, u.packets_down, u.packets_up
    FROM traffic_usage u, mark
    WHERE u.service_id = service AND u.minute >= GREATEST(from_ts, mark.t) AND u.minute < to_ts
    UNION ALL
    SELECT u.minute, u.bytes_down, u.bytes_up, u.packets_down, u.packets_up
    FROM traffic_rollup_dirty d, mark, traffic_usage u
    WHERE d.hour >= from_ts AND d.hour < LEAST(to_ts, mark.t)
      AND u.service_id = service AND u.minute >= d.hour AND u.minute < d.hour + interval '1 hour'
$$;

-- The traffic of a service over [from_ts, to_ts) in buckets of `step` (at most a day): graph
-- data for the admin and the portal.
CREATE OR REPLACE FUNCTION traffic_series(service bigint, from_ts timestamptz, to_ts timestamptz, step interval)
RETURNS TABLE (bucket timestamptz, bytes_down numeric, bytes_up numeric, packets_down numeric, packets_up numeric)
LANGUAGE sql STABLE AS $$
    SELECT date_bin(step, r.at, '2000-01-01 00:00+00'), sum(r.bytes_down), sum(r.bytes_up), sum(r.packets_down),
           sum(r.packets_up)
    FROM traffic_rows(service, from_ts, to_ts, step >= interval '1 hour') r GROUP BY 1 ORDER BY 1
$$;

-- Bytes of a service in the calendar month holding `at` (UTC): what fair-usage caps count.
CREATE OR REPLACE FUNCTION traffic_month_total(service bigint, at timestamptz DEFAULT now())
RETURNS TABLE (bytes_down numeric, bytes_up numeric)
LANGUAGE sql STABLE AS $$
    SELECT coalesce(sum(r.bytes_down), 0), coalesce(sum(r.bytes_up), 0)
    FROM traffic_rows(service, date_trunc('month', at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
                      (date_trunc('month', at AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC', true) r
$$;

-- Traffic billing gets nothing for, since `since`, most bytes first (the revenue-leak report):
-- addresses of the ISP's own prefixes that passed traffic while no service held them
-- (traffic_unknown.address), and services that passed traffic while they or their customer
-- were not active (traffic_usage.billing). `billing` says what billing says of each row:
-- no_service, other_addresses (more own addresses than flowcollector's max_unknown_addresses
-- in a flush), service_<status> / customer_<status> of the service holding the address now
-- (service_active: it holds it now, but did not then), or the flag the traffic was written
-- with. `lastmile flows leaks` and the admin's revenue-leak report read this.
CREATE OR REPLACE FUNCTION traffic_leaks(since timestamptz, top integer DEFAULT 100)
RETURNS TABLE (address inet, service_id bigint, login text, customer text, billing text, bytes numeric,
               packets numeric, first_seen timestamptz, last_seen timestamptz)
LANGUAGE sql STABLE AS $$
    WITH unknown AS (
        SELECT u.address AS address, sum(u.bytes) AS bytes, sum(u.packets) AS packets,
               min(u.minute) AS first_seen, max(u.minute) AS last_seen
        FROM traffic_unknown u WHERE u.minute >= since AND u.address IS NOT NULL GROUP BY u.address
    ), flagged AS (
        SELECT t.service_id AS service_id, t.billing AS billing, sum(t.bytes_down + t.bytes_up) AS bytes,
               sum(t.packets_down + t.packets_up) AS packets, min(t.minute) AS first_seen,
               max(t.minute) AS last_seen
        FROM traffic_usage t WHERE t.minute >= since AND t.billing IS NOT NULL GROUP BY 1, 2
    )
    SELECT l.* FROM (
        SELECT un.address AS address, s.id AS service_id, s.login AS login, c.name AS customer,
               CASE WHEN masklen(un.address) < CASE family(un.address) WHEN 4 THEN 32 ELSE 128 END
                        THEN 'other_addresses'
                    WHEN s.id IS NULL THEN 'no_service'
                    WHEN s.status <> 'active' THEN 'service_' || s.status
                    WHEN c.status <> 'active' THEN 'customer_' || c.status
                    ELSE 'service_active' END AS billing,
               un.bytes AS bytes, un.packets AS packets, un.first_seen AS first_seen, un.last_seen AS last_seen
        FROM unknown un
        LEFT JOIN LATERAL (
            SELECT s4.id, s4.login, s4.status, s4.customer_id FROM services s4
            WHERE family(un.address) = 4 AND masklen(un.address) = 32 AND s4.ipv4 = un.address
            UNION ALL
            SELECT s6.id, s6.login, s6.status, s6.customer_id FROM services s6
            WHERE family(un.address) = 6 AND masklen(un.address) = 128 AND un.address <<= s6.ipv6_prefix
            UNION ALL
            SELECT sd.id, sd.login, sd.status, sd.customer_id FROM services sd
            WHERE family(un.address) = 6 AND masklen(un.address) = 128 AND un.address <<= sd.delegated_ipv6_prefix
            LIMIT 1) s ON true
        LEFT JOIN customers c ON c.id = s.customer_id
        UNION ALL
        SELECT coalesce(s.ipv4, (SELECT r.framed_ip FROM radius_sessions r
                                 WHERE r.service_id = f.service_id AND r.stopped_at IS NULL LIMIT 1)),
               f.service_id, s.login, c.name, f.billing, f.bytes, f.packets, f.first_seen, f.last_seen
        FROM flagged f LEFT JOIN services s ON s.id = f.service_id LEFT JOIN customers c ON c.id = s.customer_id
    ) l
    ORDER BY l.bytes DESC, l.address LIMIT top
$$;

-- The services moving the most bytes in the last `window`: "who is filling the uplink now".
CREATE OR REPLACE FUNCTION traffic_top(window_length interval DEFAULT interval '5 minutes', top integer DEFAULT 20)
RETURNS TABLE (service_id bigint, bytes_down numeric, bytes_up numeric)
LANGUAGE sql STABLE AS $$
    SELECT u.service_id, sum(u.bytes_down), sum(u.bytes_up)
    FROM traffic_usage u WHERE u.minute >= now() - window_length
    GROUP BY 1 ORDER BY sum(u.bytes_down) + sum(u.bytes_up) DESC LIMIT top
$$;

-- =============================================================================================
-- 7. Admin: administrators, roles, sessions, API keys, the operations log, custom fields
-- =============================================================================================

-- Roles: a set of permissions "<area>.<action>" (admin/auth/permissions.py names them). The
-- built-in ones (builtin set) are created by `lastmile db init` from that module and cannot be
-- deleted; a custom role starts as a copy of one.
CREATE TABLE IF NOT EXISTS admin_roles (
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
    ('Super administrator', 'super', '{administration.add,administration.delete,administration.edit,administration.view,config.add,config.delete,config.edit,config.view,customers.add,customers.delete,customers.edit,customers.view,dashboard.add,dashboard.delete,dashboard.edit,dashboard.view,finance.add,finance.delete,finance.edit,finance.view,inventory.add,inventory.delete,inventory.edit,inventory.view,networking.add,networking.delete,networking.edit,networking.view,notifications.add,notifications.delete,notifications.edit,notifications.view,payments.add,payments.delete,payments.edit,payments.view,support.add,support.delete,support.edit,support.view,tariffs.add,tariffs.delete,tariffs.edit,tariffs.view,voice.add,voice.delete,voice.edit,voice.view}', false),
    ('Administrator', 'admin', '{administration.add,administration.delete,administration.edit,administration.view,customers.add,customers.delete,customers.edit,customers.view,dashboard.add,dashboard.delete,dashboard.edit,dashboard.view,finance.add,finance.delete,finance.edit,finance.view,inventory.add,inventory.delete,inventory.edit,inventory.view,networking.add,networking.delete,networking.edit,networking.view,notifications.add,notifications.delete,notifications.edit,notifications.view,payments.add,payments.delete,payments.edit,payments.view,support.add,support.delete,support.edit,support.view,tariffs.add,tariffs.delete,tariffs.edit,tariffs.view,voice.add,voice.delete,voice.edit,voice.view}', false),
    ('Customer creator', 'creator', '{customers.add,customers.edit,customers.view,dashboard.view,tariffs.view}', true),
    ('Financial manager', 'finance', '{customers.view,dashboard.view,finance.add,finance.delete,finance.edit,finance.view,notifications.add,notifications.delete,notifications.edit,notifications.view,payments.add,payments.delete,payments.edit,payments.view,tariffs.view}', false),
    ('Manager', 'manager', '{customers.add,customers.delete,customers.edit,customers.view,dashboard.view,finance.view,inventory.view,networking.view,notifications.view,payments.view,support.add,support.delete,support.edit,support.view,tariffs.add,tariffs.delete,tariffs.edit,tariffs.view,voice.view}', false),
    ('Engineer', 'engineer', '{customers.view,dashboard.view,inventory.view,networking.add,networking.delete,networking.edit,networking.view,support.edit,support.view,tariffs.view}', false),
    ('Technician', 'technician', '{customers.view,dashboard.view,inventory.edit,inventory.view,networking.view,support.edit,support.view}', false),
    ('Cashier', 'cashier', '{customers.view,dashboard.view,payments.add,payments.view}', false)
ON CONFLICT (builtin) DO NOTHING;

CREATE TABLE IF NOT EXISTS administrators (
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
CREATE UNIQUE INDEX IF NOT EXISTS administrators_login_unique ON administrators (login);
-- customers.created_by names an administrator; administrators are disabled, never deleted.
DO $$ BEGIN
    ALTER TABLE customers ADD CONSTRAINT customers_created_by_fk FOREIGN KEY (created_by) REFERENCES administrators ON DELETE RESTRICT;
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;

-- Settings an administrator changes in the admin (one row).
CREATE TABLE IF NOT EXISTS admin_settings (
    id boolean CONSTRAINT admin_settings_pk PRIMARY KEY DEFAULT true CONSTRAINT admin_settings_one_row CHECK (id),
    require_2fa boolean NOT NULL DEFAULT false,  -- every administrator, whatever the role
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO admin_settings (id) VALUES (true) ON CONFLICT DO NOTHING;

-- Server-side login sessions. The cookie holds a random token; only its sha256 is stored.
CREATE TABLE IF NOT EXISTS admin_sessions (
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
CREATE INDEX IF NOT EXISTS admin_sessions_admin_idx ON admin_sessions (admin_id);
CREATE INDEX IF NOT EXISTS admin_sessions_expiry_idx ON admin_sessions (expires_at);

-- Login attempts, for throttling by account and by address (admin/auth/throttle.py).
CREATE TABLE IF NOT EXISTS admin_login_attempts (
    at timestamptz NOT NULL DEFAULT now(),
    login text NOT NULL,
    address inet,
    ok boolean NOT NULL
);
CREATE INDEX IF NOT EXISTS admin_login_attempts_login_idx ON admin_login_attempts (login, at);
CREATE INDEX IF NOT EXISTS admin_login_attempts_address_idx ON admin_login_attempts (address, at);

-- API keys: "lm_<prefix>_<secret>", shown once; only the sha256 of the whole key is stored.
CREATE TABLE IF NOT EXISTS api_keys (
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
CREATE TABLE IF NOT EXISTS api_requests (
    at timestamptz NOT NULL,
    key_id bigint NOT NULL,
    method text NOT NULL,
    path text NOT NULL,
    status smallint NOT NULL,
    address inet,
    duration_ms real NOT NULL
) PARTITION BY RANGE (at);
CREATE INDEX IF NOT EXISTS api_requests_key_idx ON api_requests (key_id, at);
SELECT lastmile_partitioned('api_requests', 'day', 7);

-- Every change made by an administrator or an API key: who, when, from where, what, before and
-- after. Append-only: the trigger below refuses UPDATE and DELETE.
CREATE TABLE IF NOT EXISTS operations_log (
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
CREATE INDEX IF NOT EXISTS operations_log_at_idx ON operations_log (at, id);
CREATE INDEX IF NOT EXISTS operations_log_customer_idx ON operations_log (customer_id, id) WHERE customer_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS operations_log_object_idx ON operations_log (object_type, object_id, id);
CREATE INDEX IF NOT EXISTS operations_log_admin_idx ON operations_log (admin_id, id) WHERE admin_id IS NOT NULL;

CREATE OR REPLACE FUNCTION lastmile_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE OR REPLACE TRIGGER operations_log_append_only BEFORE UPDATE OR DELETE ON operations_log
    FOR EACH ROW EXECUTE FUNCTION lastmile_append_only();

-- Custom fields on customers, services, tariffs and routers; values live in each row's `custom`.
CREATE TABLE IF NOT EXISTS custom_fields (
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

-- =============================================================================================
-- 8. Billing: settings, taxes, the ledger, documents, allocations, runs (admin/billing/)
-- Money is numeric(14,4) with its currency beside it; amounts are rounded to the currency's minor
-- unit by admin/billing/money.py before they are written. Financial rows are append-only (the
-- trigger refuses UPDATE and DELETE): a mistake is reversed or voided by a new row.
-- =============================================================================================

-- The ISP's billing settings (one row): the global switch, what new customers get, numbering,
-- dunning's calendar and automatic issuing.
CREATE TABLE IF NOT EXISTS billing_settings (
    id boolean CONSTRAINT billing_settings_pk PRIMARY KEY DEFAULT true CONSTRAINT billing_settings_one_row CHECK (id),
    enabled boolean NOT NULL DEFAULT true,       -- off: no billing run bills anybody
    currency text NOT NULL DEFAULT 'EUR' CONSTRAINT billing_settings_currency_iso CHECK (currency ~ '^[A-Z]{3}$'),
    -- What a new customer's billing settings start as (customer_billing).
    billing_type text NOT NULL DEFAULT 'recurring'
        CONSTRAINT billing_settings_type_valid CHECK (billing_type IN ('recurring', 'prepaid_daily', 'prepaid_custom')),
    timing text NOT NULL DEFAULT 'advance' CONSTRAINT billing_settings_timing_valid CHECK (timing IN ('advance', 'arrears')),
    billing_day smallint CONSTRAINT billing_settings_day_range CHECK (billing_day BETWEEN 1 AND 28),  -- NULL: the creation date's
    due_days smallint NOT NULL DEFAULT 15 CONSTRAINT billing_settings_due_range CHECK (due_days BETWEEN 0 AND 365),
    block_after_due_days smallint DEFAULT 0 CONSTRAINT billing_settings_block_range CHECK (block_after_due_days BETWEEN 0 AND 365),
    deactivate_after_block_days smallint DEFAULT 10
        CONSTRAINT billing_settings_deactivate_range CHECK (deactivate_after_block_days BETWEEN 0 AND 365),
    min_balance numeric(14, 4) NOT NULL DEFAULT 0,
    -- Fees for a plan change mid-period, to a dearer plan or a cheaper one.
    upgrade_fee numeric(14, 4) NOT NULL DEFAULT 0 CONSTRAINT billing_settings_upgrade_fee_nonnegative CHECK (upgrade_fee >= 0),
    downgrade_fee numeric(14, 4) NOT NULL DEFAULT 0 CONSTRAINT billing_settings_downgrade_fee_nonnegative CHECK (downgrade_fee >= 0),
    -- Document numbers (admin/billing/numbering.py patterns).
    invoice_pattern text NOT NULL DEFAULT '{year}{partner_id|2}{next|6}',
    proforma_pattern text NOT NULL DEFAULT '{year}{next|6}',
    credit_note_pattern text NOT NULL DEFAULT 'CN{year}{partner_id|2}{next|6}',
    receipt_pattern text NOT NULL DEFAULT 'R{year}-{next|5}',
    -- Dunning's calendar: off, blocking and deactivation wait for the next working day.
    block_on_non_working_days boolean NOT NULL DEFAULT false,
    holiday_country text CONSTRAINT billing_settings_holiday_country_iso CHECK (holiday_country ~ '^[A-Z]{2}$'),
    holiday_subdivision text,
    -- Automatic issuing: a run's preview is confirmed by itself confirmation_days after it was made.
    auto_issue boolean NOT NULL DEFAULT false,
    confirmation_days smallint NOT NULL DEFAULT 3 CONSTRAINT billing_settings_confirmation_range CHECK (confirmation_days BETWEEN 0 AND 30),
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO billing_settings (id) VALUES (true) ON CONFLICT DO NOTHING;

-- The ISP's own days off, beside the country's public holidays.
CREATE TABLE IF NOT EXISTS billing_holidays (
    day date CONSTRAINT billing_holidays_pk PRIMARY KEY,
    name text NOT NULL DEFAULT ''
);

-- What a partner's documents show of it (the branding of its invoices, and later its portal).
CREATE TABLE IF NOT EXISTS partner_branding (
    partner_id bigint CONSTRAINT partner_branding_pk PRIMARY KEY
        CONSTRAINT partner_branding_partner_fk REFERENCES partners ON DELETE CASCADE,
    company_name text NOT NULL DEFAULT '',
    address text NOT NULL DEFAULT '',            -- lines as written
    tax_id text NOT NULL DEFAULT '',
    bank text NOT NULL DEFAULT '',               -- lines as written (IBAN, BIC, ...)
    email text NOT NULL DEFAULT '',
    phone text NOT NULL DEFAULT '',
    website text NOT NULL DEFAULT '',
    logo_svg text,
    accent_color text NOT NULL DEFAULT '#1f6feb' CONSTRAINT partner_branding_color_hex CHECK (accent_color ~ '^#[0-9a-fA-F]{6}$'),
    footer text NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS tax_rates (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT tax_rates_pk PRIMARY KEY,
    name text NOT NULL CONSTRAINT tax_rates_name_unique UNIQUE CONSTRAINT tax_rates_name_nonempty CHECK (name <> ''),
    percent numeric(7, 4) NOT NULL CONSTRAINT tax_rates_percent_range CHECK (percent >= 0 AND percent < 1000),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The rates a line pays together (each on the net: admin/billing/taxes.py). A group without
-- rates is a line outside the scope of tax.
CREATE TABLE IF NOT EXISTS tax_groups (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT tax_groups_pk PRIMARY KEY,
    name text NOT NULL CONSTRAINT tax_groups_name_unique UNIQUE CONSTRAINT tax_groups_name_nonempty CHECK (name <> ''),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS tax_group_rates (
    group_id bigint NOT NULL CONSTRAINT tax_group_rates_group_fk REFERENCES tax_groups ON DELETE CASCADE,
    rate_id bigint NOT NULL CONSTRAINT tax_group_rates_rate_fk REFERENCES tax_rates ON DELETE RESTRICT,
    CONSTRAINT tax_group_rates_pk PRIMARY KEY (group_id, rate_id)
);

-- A tariff's taxes, and whether its price includes them.
ALTER TABLE tariffs
    ADD COLUMN IF NOT EXISTS tax_group_id bigint CONSTRAINT tariffs_tax_group_fk REFERENCES tax_groups ON DELETE RESTRICT,
    ADD COLUMN IF NOT EXISTS price_includes_tax boolean NOT NULL DEFAULT false;
-- A service's billing starts over on this day (its customer's billing type changed): what was
-- charged before it stays, periods are counted again from it (admin/billing/changes.py).
ALTER TABLE services ADD COLUMN IF NOT EXISTS billing_since date;

-- A customer's billing settings; every customer has a row (customers_billing_defaults makes it
-- from billing_settings).
CREATE TABLE IF NOT EXISTS customer_billing (
    customer_id bigint CONSTRAINT customer_billing_pk PRIMARY KEY
        CONSTRAINT customer_billing_customer_fk REFERENCES customers ON DELETE CASCADE,
    enabled boolean NOT NULL DEFAULT true,
    billing_type text NOT NULL DEFAULT 'recurring'
        CONSTRAINT customer_billing_type_valid CHECK (billing_type IN ('recurring', 'prepaid_daily', 'prepaid_custom')),
    timing text NOT NULL DEFAULT 'advance' CONSTRAINT customer_billing_timing_valid CHECK (timing IN ('advance', 'arrears')),
    billing_day smallint NOT NULL DEFAULT 1 CONSTRAINT customer_billing_day_range CHECK (billing_day BETWEEN 1 AND 28),
    months_in_advance smallint NOT NULL DEFAULT 1 CONSTRAINT customer_billing_months_range CHECK (months_in_advance BETWEEN 1 AND 12),
    period_days smallint CONSTRAINT customer_billing_period_days_range CHECK (period_days BETWEEN 1 AND 366),  -- prepaid_custom; NULL: monthly
    due_days smallint NOT NULL DEFAULT 15 CONSTRAINT customer_billing_due_range CHECK (due_days BETWEEN 0 AND 365),
    block_after_due_days smallint DEFAULT 0 CONSTRAINT customer_billing_block_range CHECK (block_after_due_days BETWEEN 0 AND 365),  -- NULL: never
    deactivate_after_block_days smallint DEFAULT 10
        CONSTRAINT customer_billing_deactivate_range CHECK (deactivate_after_block_days BETWEEN 0 AND 365),  -- NULL: never
    min_balance numeric(14, 4) NOT NULL DEFAULT 0,  -- negative: a credit limit
    currency text NOT NULL DEFAULT 'EUR' CONSTRAINT customer_billing_currency_iso CHECK (currency ~ '^[A-Z]{3}$'),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE OR REPLACE FUNCTION lastmile_customer_billing_defaults() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO customer_billing (customer_id, enabled, billing_type, timing, billing_day, due_days,
                                  block_after_due_days, deactivate_after_block_days, min_balance, currency)
    SELECT n.id, s.enabled, s.billing_type, s.timing,
           coalesce(s.billing_day, least(extract(day FROM n.created_at AT TIME ZONE 'UTC')::int, 28)),
           s.due_days, s.block_after_due_days, s.deactivate_after_block_days, s.min_balance, s.currency
    FROM new_rows n CROSS JOIN billing_settings s
    ON CONFLICT (customer_id) DO NOTHING;
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER customers_billing_defaults AFTER INSERT ON customers REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION lastmile_customer_billing_defaults();

-- Every change of a customer's status, and why: reason is the session's lastmile.status_reason
-- ('dunning' when the dunning job moved it; 'staff' by default), so dunning lifts only the
-- blocks it set itself.
CREATE TABLE IF NOT EXISTS customer_status_changes (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT customer_status_changes_pk PRIMARY KEY,
    customer_id bigint NOT NULL CONSTRAINT customer_status_changes_customer_fk REFERENCES customers ON DELETE CASCADE,
    at timestamptz NOT NULL DEFAULT now(),
    from_status text NOT NULL,
    to_status text NOT NULL,
    reason text NOT NULL DEFAULT 'staff' CONSTRAINT customer_status_changes_reason_valid CHECK (reason IN ('staff', 'dunning'))
);
CREATE INDEX IF NOT EXISTS customer_status_changes_customer_idx ON customer_status_changes (customer_id, id);

CREATE OR REPLACE FUNCTION lastmile_customer_status_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO customer_status_changes (customer_id, from_status, to_status, reason)
    SELECT n.id, o.status, n.status, coalesce(nullif(current_setting('lastmile.status_reason', true), ''), 'staff')
    FROM new_rows n JOIN old_rows o ON o.id = n.id
    WHERE n.status IS DISTINCT FROM o.status;
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER customers_status_changed AFTER UPDATE ON customers
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION lastmile_customer_status_changed();

-- A service's pause (vacation): [starts_on, ends_on) is not charged; a billed part comes back as
-- a credit.
CREATE TABLE IF NOT EXISTS service_pauses (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT service_pauses_pk PRIMARY KEY,
    service_id bigint NOT NULL CONSTRAINT service_pauses_service_fk REFERENCES services ON DELETE CASCADE,
    starts_on date NOT NULL,
    ends_on date NOT NULL,
    reason text NOT NULL DEFAULT '',
    created_by bigint,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT service_pauses_ordered CHECK (ends_on > starts_on)
);
CREATE INDEX IF NOT EXISTS service_pauses_service_idx ON service_pauses (service_id, starts_on);

-- One billing run: its preview (billing_run_items) waits to be confirmed (or cancelled and made
-- again); confirmed, its documents are issued. One preview per (partner, date) at a time.
CREATE TABLE IF NOT EXISTS billing_runs (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT billing_runs_pk PRIMARY KEY,
    partner_id bigint CONSTRAINT billing_runs_partner_fk REFERENCES partners ON DELETE RESTRICT,  -- NULL: every partner
    billing_date date NOT NULL,
    status text NOT NULL DEFAULT 'preview'
        CONSTRAINT billing_runs_status_valid CHECK (status IN ('preview', 'cancelled', 'issuing', 'issued')),
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text NOT NULL DEFAULT '',
    confirm_after timestamptz,                   -- automatic issuing: confirmed by itself after this
    finished_at timestamptz,
    finished_by text,
    customers integer NOT NULL DEFAULT 0,
    documents integer NOT NULL DEFAULT 0,
    totals jsonb NOT NULL DEFAULT '{}',          -- {"EUR": "1234.5600", ...}
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS billing_runs_one_preview ON billing_runs (coalesce(partner_id, 0), billing_date)
    WHERE status IN ('preview', 'issuing');
CREATE INDEX IF NOT EXISTS billing_runs_date_idx ON billing_runs (billing_date DESC, id DESC);

-- What a preview would issue to a customer: its lines as the engine priced them.
CREATE TABLE IF NOT EXISTS billing_run_items (
    run_id bigint NOT NULL CONSTRAINT billing_run_items_run_fk REFERENCES billing_runs ON DELETE CASCADE,
    customer_id bigint NOT NULL CONSTRAINT billing_run_items_customer_fk REFERENCES customers ON DELETE CASCADE,
    currency text NOT NULL,
    total numeric(14, 4) NOT NULL,
    lines jsonb NOT NULL,
    CONSTRAINT billing_run_items_pk PRIMARY KEY (run_id, customer_id)
);

-- Invoices, proforma invoices, credit notes and receipts. Issued, a document never changes:
-- its status (paid, overdue, ...) comes from allocations and document_voids (billing_documents_state).
CREATE TABLE IF NOT EXISTS documents (
    id bigint GENERATED BY DEFAULT AS IDENTITY CONSTRAINT documents_pk PRIMARY KEY,  -- a run reserves ids and COPYs
    kind text NOT NULL CONSTRAINT documents_kind_valid CHECK (kind IN ('invoice', 'proforma', 'credit_note', 'receipt')),
    customer_id bigint NOT NULL CONSTRAINT documents_customer_fk REFERENCES customers ON DELETE RESTRICT,
    partner_id bigint NOT NULL CONSTRAINT documents_partner_fk REFERENCES partners ON DELETE RESTRICT,
    number text NOT NULL CONSTRAINT documents_number_nonempty CHECK (number <> ''),
    issued_on date NOT NULL,
    due_on date,
    period_start date,
    period_end date,                             -- exclusive
    currency text NOT NULL CONSTRAINT documents_currency_iso CHECK (currency ~ '^[A-Z]{3}$'),
    subtotal numeric(14, 4) NOT NULL,
    tax_total numeric(14, 4) NOT NULL,
    total numeric(14, 4) NOT NULL CONSTRAINT documents_total_nonnegative CHECK (total >= 0),
    origin text NOT NULL CONSTRAINT documents_origin_valid
        CHECK (origin IN ('recurring', 'prepaid', 'one_time', 'manual', 'plan_change', 'pause', 'proforma', 'payment')),
    related_id bigint CONSTRAINT documents_related_fk REFERENCES documents ON DELETE RESTRICT,  -- credit note: its invoice; tax invoice: its proforma
    run_id bigint CONSTRAINT documents_run_fk REFERENCES billing_runs ON DELETE RESTRICT,
    note text NOT NULL DEFAULT '',
    idempotency_key text CONSTRAINT documents_idempotency_unique UNIQUE,
    created_by text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT documents_number_unique UNIQUE (kind, number),
    CONSTRAINT documents_totals_add_up CHECK (total = subtotal + tax_total),
    CONSTRAINT documents_period_ordered CHECK (period_end > period_start)
);
CREATE INDEX IF NOT EXISTS documents_customer_idx ON documents (customer_id, issued_on, id);
CREATE INDEX IF NOT EXISTS documents_kind_idx ON documents (kind, issued_on DESC, id DESC);
CREATE INDEX IF NOT EXISTS documents_partner_idx ON documents (partner_id, kind, id);
CREATE INDEX IF NOT EXISTS documents_related_idx ON documents (related_id) WHERE related_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS documents_run_idx ON documents (run_id) WHERE run_id IS NOT NULL;

-- The ledger: every debit (charge, fee, refund) and credit (payment, credit note, correction)
-- of a customer; the balance is the credits less the debits. amount is always positive.
CREATE TABLE IF NOT EXISTS transactions (
    id bigint GENERATED BY DEFAULT AS IDENTITY CONSTRAINT transactions_pk PRIMARY KEY,  -- a run reserves ids and COPYs
    customer_id bigint NOT NULL CONSTRAINT transactions_customer_fk REFERENCES customers ON DELETE RESTRICT,
    direction text NOT NULL CONSTRAINT transactions_direction_valid CHECK (direction IN ('debit', 'credit')),
    kind text NOT NULL CONSTRAINT transactions_kind_valid
        CHECK (kind IN ('charge', 'fee', 'refund', 'payment', 'credit_note', 'correction', 'reversal')),
    amount numeric(14, 4) NOT NULL CONSTRAINT transactions_amount_positive CHECK (amount > 0),
    currency text NOT NULL CONSTRAINT transactions_currency_iso CHECK (currency ~ '^[A-Z]{3}$'),
    posted_on date NOT NULL,
    description text NOT NULL CONSTRAINT transactions_description_nonempty CHECK (description <> ''),
    service_id bigint CONSTRAINT transactions_service_fk REFERENCES services ON DELETE RESTRICT,
    period_start date,
    period_end date,                             -- exclusive
    document_id bigint CONSTRAINT transactions_document_fk REFERENCES documents ON DELETE RESTRICT,
    reverses_id bigint CONSTRAINT transactions_reverses_unique UNIQUE
        CONSTRAINT transactions_reverses_fk REFERENCES transactions ON DELETE RESTRICT,
    idempotency_key text CONSTRAINT transactions_idempotency_unique UNIQUE,
    created_by text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT transactions_period_ordered CHECK (period_end > period_start),
    CONSTRAINT transactions_reversal_named CHECK ((kind = 'reversal') = (reverses_id IS NOT NULL))
);
CREATE INDEX IF NOT EXISTS transactions_customer_idx ON transactions (customer_id, posted_on, id);
CREATE INDEX IF NOT EXISTS transactions_service_idx ON transactions (service_id, period_end) WHERE service_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS transactions_document_idx ON transactions (document_id) WHERE document_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS transactions_posted_idx ON transactions (posted_on, id);

-- The lines of a document, as priced (admin/billing/taxes.py): net + tax = gross, and the
-- lines add up to the document's totals. taxes: [{"name", "percent", "amount"}].
CREATE TABLE IF NOT EXISTS document_lines (
    document_id bigint NOT NULL CONSTRAINT document_lines_document_fk REFERENCES documents ON DELETE RESTRICT,
    position smallint NOT NULL,
    description text NOT NULL CONSTRAINT document_lines_description_nonempty CHECK (description <> ''),
    period_start date,
    period_end date,
    quantity numeric(14, 4) NOT NULL DEFAULT 1,
    unit text NOT NULL DEFAULT '',
    unit_price numeric(14, 4) NOT NULL,
    net numeric(14, 4) NOT NULL,
    tax numeric(14, 4) NOT NULL,
    gross numeric(14, 4) NOT NULL,
    taxes jsonb NOT NULL DEFAULT '[]',
    service_id bigint CONSTRAINT document_lines_service_fk REFERENCES services ON DELETE RESTRICT,
    transaction_id bigint CONSTRAINT document_lines_transaction_fk REFERENCES transactions ON DELETE RESTRICT,
    CONSTRAINT document_lines_pk PRIMARY KEY (document_id, position),
    CONSTRAINT document_lines_add_up CHECK (gross = net + tax)
);

-- Items for the customer's next invoice (one-time charges, "include in next invoice"); an
-- invoice takes an item by naming it (document_line_items), once.
CREATE TABLE IF NOT EXISTS next_invoice_items (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT next_invoice_items_pk PRIMARY KEY,
    customer_id bigint NOT NULL CONSTRAINT next_invoice_items_customer_fk REFERENCES customers ON DELETE RESTRICT,
    service_id bigint CONSTRAINT next_invoice_items_service_fk REFERENCES services ON DELETE RESTRICT,
    description text NOT NULL CONSTRAINT next_invoice_items_description_nonempty CHECK (description <> ''),
    quantity numeric(14, 4) NOT NULL DEFAULT 1 CONSTRAINT next_invoice_items_quantity_positive CHECK (quantity > 0),
    unit_price numeric(14, 4) NOT NULL CONSTRAINT next_invoice_items_price_nonnegative CHECK (unit_price >= 0),
    price_includes_tax boolean NOT NULL DEFAULT false,
    tax_group_id bigint CONSTRAINT next_invoice_items_tax_group_fk REFERENCES tax_groups ON DELETE RESTRICT,
    currency text NOT NULL CONSTRAINT next_invoice_items_currency_iso CHECK (currency ~ '^[A-Z]{3}$'),
    created_by text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS next_invoice_items_customer_idx ON next_invoice_items (customer_id, id);
CREATE TABLE IF NOT EXISTS document_line_items (
    item_id bigint CONSTRAINT document_line_items_pk PRIMARY KEY
        CONSTRAINT document_line_items_item_fk REFERENCES next_invoice_items ON DELETE RESTRICT,
    document_id bigint NOT NULL,
    position smallint NOT NULL,
    CONSTRAINT document_line_items_line_fk FOREIGN KEY (document_id, position) REFERENCES document_lines ON DELETE RESTRICT
);

-- A document made void: its debits reversed, its allocations released; it keeps its number.
CREATE TABLE IF NOT EXISTS document_voids (
    document_id bigint CONSTRAINT document_voids_pk PRIMARY KEY
        CONSTRAINT document_voids_document_fk REFERENCES documents ON DELETE RESTRICT,
    at timestamptz NOT NULL DEFAULT now(),
    by text NOT NULL DEFAULT '',
    reason text NOT NULL CONSTRAINT document_voids_reason_nonempty CHECK (reason <> '')
);

-- A document's PDF as it was first rendered, kept.
CREATE TABLE IF NOT EXISTS document_files (
    document_id bigint CONSTRAINT document_files_pk PRIMARY KEY
        CONSTRAINT document_files_document_fk REFERENCES documents ON DELETE RESTRICT,
    sha256 bytea NOT NULL,
    pdf bytea NOT NULL,
    rendered_at timestamptz NOT NULL DEFAULT now()
);

-- Credits (payments, credit notes, corrections) applied to debts: a debit transaction that is on
-- no invoice, or an invoice. A negative row releases an earlier one (its releases_id), as when
-- the invoice is voided. lastmile_allocations_fit holds every credit and debt within its amount.
CREATE TABLE IF NOT EXISTS allocations (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT allocations_pk PRIMARY KEY,
    customer_id bigint NOT NULL CONSTRAINT allocations_customer_fk REFERENCES customers ON DELETE RESTRICT,
    credit_id bigint NOT NULL CONSTRAINT allocations_credit_fk REFERENCES transactions ON DELETE RESTRICT,
    target_transaction_id bigint CONSTRAINT allocations_target_transaction_fk REFERENCES transactions ON DELETE RESTRICT,
    target_document_id bigint CONSTRAINT allocations_target_document_fk REFERENCES documents ON DELETE RESTRICT,
    amount numeric(14, 4) NOT NULL CONSTRAINT allocations_amount_nonzero CHECK (amount <> 0),
    releases_id bigint CONSTRAINT allocations_releases_unique UNIQUE
        CONSTRAINT allocations_releases_fk REFERENCES allocations ON DELETE RESTRICT,
    created_by text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT allocations_one_target CHECK (num_nonnulls(target_transaction_id, target_document_id) = 1),
    CONSTRAINT allocations_release_negative CHECK ((amount < 0) = (releases_id IS NOT NULL))
);
CREATE INDEX IF NOT EXISTS allocations_credit_idx ON allocations (credit_id);
CREATE INDEX IF NOT EXISTS allocations_target_document_idx ON allocations (target_document_id) WHERE target_document_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS allocations_target_transaction_idx ON allocations (target_transaction_id) WHERE target_transaction_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS allocations_customer_idx ON allocations (customer_id, id);

-- After each insert: no credit allocated beyond its amount, no debt paid beyond its total, no
-- release beyond what it releases (statement-level, so a run's thousands of rows cost one check).
CREATE OR REPLACE FUNCTION lastmile_allocations_fit() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    over text;
BEGIN
    SELECT format('credit %s: %s allocated of %s', t.id, sum(a.amount), t.amount) INTO over
    FROM allocations a JOIN transactions t ON t.id = a.credit_id
    WHERE a.credit_id IN (SELECT credit_id FROM new_rows) GROUP BY t.id, t.amount
    HAVING sum(a.amount) > t.amount OR sum(a.amount) < 0 LIMIT 1;
    IF over IS NULL THEN
        SELECT format('document %s: %s paid of %s', d.id, sum(a.amount), d.total) INTO over
        FROM allocations a JOIN documents d ON d.id = a.target_document_id
        WHERE a.target_document_id IN (SELECT target_document_id FROM new_rows) GROUP BY d.id, d.total
        HAVING sum(a.amount) > d.total OR sum(a.amount) < 0 LIMIT 1;
    END IF;
    IF over IS NULL THEN
        SELECT format('transaction %s: %s paid of %s', t.id, sum(a.amount), t.amount) INTO over
        FROM allocations a JOIN transactions t ON t.id = a.target_transaction_id
        WHERE a.target_transaction_id IN (SELECT target_transaction_id FROM new_rows) GROUP BY t.id, t.amount
        HAVING sum(a.amount) > t.amount OR sum(a.amount) < 0 LIMIT 1;
    END IF;
    IF over IS NOT NULL THEN
        RAISE EXCEPTION 'allocation beyond the amount: %', over USING ERRCODE = 'check_violation',
            CONSTRAINT = 'allocations_fit';
    END IF;
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER allocations_fit AFTER INSERT ON allocations REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION lastmile_allocations_fit();

-- Gap-free document numbers: a counter per series and period (admin/billing/numbering.py's
-- counter_key), taken under its row lock in the transaction that issues the document.
CREATE TABLE IF NOT EXISTS number_counters (
    key text CONSTRAINT number_counters_pk PRIMARY KEY,
    last_value bigint NOT NULL CONSTRAINT number_counters_positive CHECK (last_value > 0)
);

CREATE OR REPLACE FUNCTION lastmile_append_only_on(tbl regclass) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE OR REPLACE TRIGGER %I BEFORE UPDATE OR DELETE ON %s FOR EACH ROW EXECUTE FUNCTION lastmile_append_only()',
                   (SELECT relname FROM pg_class WHERE oid = tbl) || '_append_only', tbl);
END $$;
SELECT lastmile_append_only_on(t) FROM unnest(ARRAY['transactions', 'documents', 'document_lines', 'document_line_items',
    'document_voids', 'document_files', 'allocations', 'customer_status_changes']::regclass[]) AS t;

-- A balance is the credits less the debits; the state of a document comes from what was
-- allocated to it and whether it was voided.
CREATE OR REPLACE VIEW customer_balances AS
    SELECT customer_id, currency,
           sum(CASE direction WHEN 'credit' THEN amount ELSE -amount END) AS balance
    FROM transactions GROUP BY customer_id, currency;

CREATE OR REPLACE VIEW billing_documents_state AS
    SELECT d.id, d.kind, d.customer_id, d.total,
           coalesce(p.paid, 0) AS paid,
           d.total - coalesce(p.paid, 0) AS open,
           CASE
               WHEN v.document_id IS NOT NULL THEN 'void'
               WHEN d.kind = 'proforma' AND EXISTS (SELECT 1 FROM documents t WHERE t.related_id = d.id AND t.kind = 'invoice')
                   THEN 'paid'
               WHEN d.kind IN ('credit_note', 'receipt') THEN 'issued'
               WHEN coalesce(p.paid, 0) >= d.total THEN 'paid'
               WHEN d.due_on < current_date THEN 'overdue'
               WHEN coalesce(p.paid, 0) > 0 THEN 'partially_paid'
               ELSE 'unpaid'
           END AS status
    FROM documents d
    LEFT JOIN document_voids v ON v.document_id = d.id
    LEFT JOIN LATERAL (SELECT sum(a.amount) AS paid FROM allocations a WHERE a.target_document_id = d.id) p ON true;

CREATE OR REPLACE TRIGGER billing_settings_touch BEFORE UPDATE ON billing_settings FOR EACH ROW EXECUTE FUNCTION lastmile_touch();
CREATE OR REPLACE TRIGGER customer_billing_touch BEFORE UPDATE ON customer_billing FOR EACH ROW EXECUTE FUNCTION lastmile_touch();
CREATE OR REPLACE TRIGGER billing_runs_touch BEFORE UPDATE ON billing_runs FOR EACH ROW EXECUTE FUNCTION lastmile_touch();
CREATE OR REPLACE TRIGGER partner_branding_touch BEFORE UPDATE ON partner_branding FOR EACH ROW EXECUTE FUNCTION lastmile_touch();

-- An operator's own document templates (Jinja2, sandboxed: admin/billing/render/templates.py),
-- per partner (partner_id NULL: every partner's default); without one, the built-in file.
-- Not financial: an issued document keeps the PDF it was rendered as (document_files).
CREATE TABLE IF NOT EXISTS document_templates (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT document_templates_pk PRIMARY KEY,
    partner_id bigint CONSTRAINT document_templates_partner_fk REFERENCES partners ON DELETE CASCADE,
    kind text NOT NULL CONSTRAINT document_templates_kind_valid
        CHECK (kind IN ('invoice', 'proforma', 'credit_note', 'receipt', 'statement')),
    body text NOT NULL CONSTRAINT document_templates_body_nonempty CHECK (body <> ''),
    updated_by text NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS document_templates_partner_kind_unique ON document_templates (partner_id, kind)
    WHERE partner_id IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS document_templates_default_kind_unique ON document_templates (kind)
    WHERE partner_id IS NULL;
CREATE OR REPLACE TRIGGER document_templates_touch BEFORE UPDATE ON document_templates FOR EACH ROW EXECUTE FUNCTION lastmile_touch();

-- =============================================================================================
-- 9. Payments: manual and online payments, saved cards (tokens), direct debit, bank statements
-- (admin/payments/). A payment is a receipt and its credit in the ledger (section 8) plus the
-- row here that says how it came; both are append-only, a reversal is a new row. No column
-- holds a card number: a saved card is the gateway's token, its brand, last four digits and
-- expiry (tests/db/test_schema.py greps for it).
-- =============================================================================================

-- How money came: the built-in kinds (builtin) and the operator's own.
CREATE TABLE IF NOT EXISTS payment_types (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT payment_types_pk PRIMARY KEY,
    code text NOT NULL CONSTRAINT payment_types_code_unique UNIQUE
        CONSTRAINT payment_types_code_valid CHECK (code ~ '^[a-z][a-z0-9_]{0,31}$'),
    name text NOT NULL CONSTRAINT payment_types_name_nonempty CHECK (name <> ''),
    builtin boolean NOT NULL DEFAULT false,
    enabled boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO payment_types (code, name, builtin) VALUES
    ('cash', 'Cash', true), ('bank_transfer', 'Bank transfer', true), ('card', 'Card', true),
    ('cheque', 'Cheque', true), ('other', 'Other', true), ('online', 'Online', true),
    ('direct_debit', 'Direct debit', true)
ON CONFLICT (code) DO NOTHING;

-- Bank statements: a file (CSV through a saved column mapping, CAMT.053, MT940) and its lines.
-- A line's hash (what the bank says of it, and its place among identical ones) is unique, so
-- a file or an overlapping statement imported again adds nothing.
CREATE TABLE IF NOT EXISTS bank_mappings (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT bank_mappings_pk PRIMARY KEY,
    name text NOT NULL CONSTRAINT bank_mappings_name_unique UNIQUE CONSTRAINT bank_mappings_name_nonempty CHECK (name <> ''),
    delimiter text NOT NULL DEFAULT ',' CONSTRAINT bank_mappings_delimiter_one CHECK (length(delimiter) = 1),
    encoding text NOT NULL DEFAULT 'utf-8',
    skip_lines smallint NOT NULL DEFAULT 0 CONSTRAINT bank_mappings_skip_range CHECK (skip_lines BETWEEN 0 AND 100),
    has_header boolean NOT NULL DEFAULT true,
    columns jsonb NOT NULL,                      -- {"date": 0, "amount": 3, "payer_name": 1, ...}
    date_format text NOT NULL DEFAULT '%Y-%m-%d',
    decimal_comma boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS bank_statements (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT bank_statements_pk PRIMARY KEY,
    file_name text NOT NULL,
    format text NOT NULL CONSTRAINT bank_statements_format_valid CHECK (format IN ('csv', 'camt053', 'mt940')),
    mapping_id bigint CONSTRAINT bank_statements_mapping_fk REFERENCES bank_mappings ON DELETE RESTRICT,
    file_sha256 text NOT NULL CONSTRAINT bank_statements_file_unique UNIQUE,
    account text NOT NULL DEFAULT '',            -- the account statement's own IBAN or number
    line_count integer NOT NULL DEFAULT 0,
    duplicate_count integer NOT NULL DEFAULT 0,  -- lines an earlier statement had
    imported_by text NOT NULL DEFAULT '',
    imported_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS bank_statement_lines (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT bank_statement_lines_pk PRIMARY KEY,
    statement_id bigint NOT NULL CONSTRAINT bank_statement_lines_statement_fk REFERENCES bank_statements ON DELETE RESTRICT,
    line_hash text NOT NULL CONSTRAINT bank_statement_lines_hash_unique UNIQUE,
    position integer NOT NULL,
    booked_on date NOT NULL,
    amount numeric(14, 4) NOT NULL,              -- negative: money out (ignored)
    currency text NOT NULL CONSTRAINT bank_statement_lines_currency_iso CHECK (currency ~ '^[A-Z]{3}$'),
    payer_name text NOT NULL DEFAULT '',
    payer_account text NOT NULL DEFAULT '',
    reference text NOT NULL DEFAULT '',
    description text NOT NULL DEFAULT '',
    bank_ref text NOT NULL DEFAULT '',           -- the bank's own id of the entry, when it gives one
    status text NOT NULL DEFAULT 'new' CONSTRAINT bank_statement_lines_status_valid
        CHECK (status IN ('new', 'matched', 'paired', 'ignored', 'error')),
    customer_id bigint CONSTRAINT bank_statement_lines_customer_fk REFERENCES customers ON DELETE RESTRICT,
    document_id bigint CONSTRAINT bank_statement_lines_document_fk REFERENCES documents ON DELETE RESTRICT,
    score smallint CONSTRAINT bank_statement_lines_score_range CHECK (score BETWEEN 0 AND 100),
    explanation jsonb NOT NULL DEFAULT '[]',     -- why it matched (or did not): [{"signal", "points", "detail"}]
    error text NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS bank_statement_lines_statement_idx ON bank_statement_lines (statement_id, position);
CREATE INDEX IF NOT EXISTS bank_statement_lines_review_idx ON bank_statement_lines (status, id) WHERE status IN ('new', 'error');
-- The accounts that paid for a customer before (matching's "account" signal, admin/payments/matching.py).
CREATE INDEX IF NOT EXISTS bank_statement_lines_account_idx ON bank_statement_lines (payer_account, customer_id)
    WHERE status IN ('matched', 'paired') AND payer_account <> '';

-- SEPA direct debit: the creditor (one row), mandates, collection batches (pain.008) and their
-- collections, marked paid or failed from the return file or the statement.
CREATE TABLE IF NOT EXISTS sepa_settings (
    id boolean CONSTRAINT sepa_settings_pk PRIMARY KEY DEFAULT true CONSTRAINT sepa_settings_one_row CHECK (id),
    creditor_id text NOT NULL DEFAULT '',        -- the SEPA creditor identifier (e.g. DE98ZZZ09999999999)
    creditor_name text NOT NULL DEFAULT '',
    iban text NOT NULL DEFAULT '',
    bic text NOT NULL DEFAULT '',
    scheme text NOT NULL DEFAULT 'CORE' CONSTRAINT sepa_settings_scheme_valid CHECK (scheme IN ('CORE', 'B2B')),
    lead_days smallint NOT NULL DEFAULT 2 CONSTRAINT sepa_settings_lead_range CHECK (lead_days BETWEEN 1 AND 30),
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO sepa_settings (id) VALUES (true) ON CONFLICT DO NOTHING;

CREATE TABLE IF NOT EXISTS sepa_mandates (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT sepa_mandates_pk PRIMARY KEY,
    customer_id bigint NOT NULL CONSTRAINT sepa_mandates_customer_fk REFERENCES customers ON DELETE RESTRICT,
    reference text NOT NULL CONSTRAINT sepa_mandates_reference_unique UNIQUE
        CONSTRAINT sepa_mandates_reference_valid CHECK (reference ~ '^[A-Za-z0-9+?/:().,'' -]{1,35}$'),
    iban text NOT NULL CONSTRAINT sepa_mandates_iban_valid CHECK (iban ~ '^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$'),
    bic text NOT NULL DEFAULT '',
    holder text NOT NULL CONSTRAINT sepa_mandates_holder_nonempty CHECK (holder <> ''),
    signed_on date NOT NULL,
    revoked_at timestamptz,
    created_by text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS sepa_mandates_one_active ON sepa_mandates (customer_id) WHERE revoked_at IS NULL;

CREATE TABLE IF NOT EXISTS dd_batches (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT dd_batches_pk PRIMARY KEY,
    message_id text NOT NULL CONSTRAINT dd_batches_message_unique UNIQUE,
    collection_date date NOT NULL,
    currency text NOT NULL CONSTRAINT dd_batches_currency_iso CHECK (currency ~ '^[A-Z]{3}$'),
    count integer NOT NULL CONSTRAINT dd_batches_count_positive CHECK (count > 0),
    total numeric(14, 4) NOT NULL CONSTRAINT dd_batches_total_positive CHECK (total > 0),
    xml text NOT NULL,                           -- the pain.008 file as made
    created_by text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS dd_collections (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT dd_collections_pk PRIMARY KEY,
    batch_id bigint NOT NULL CONSTRAINT dd_collections_batch_fk REFERENCES dd_batches ON DELETE RESTRICT,
    mandate_id bigint NOT NULL CONSTRAINT dd_collections_mandate_fk REFERENCES sepa_mandates ON DELETE RESTRICT,
    customer_id bigint NOT NULL CONSTRAINT dd_collections_customer_fk REFERENCES customers ON DELETE RESTRICT,
    document_id bigint NOT NULL CONSTRAINT dd_collections_document_fk REFERENCES documents ON DELETE RESTRICT,
    amount numeric(14, 4) NOT NULL CONSTRAINT dd_collections_amount_positive CHECK (amount > 0),
    sequence text NOT NULL CONSTRAINT dd_collections_sequence_valid CHECK (sequence IN ('FRST', 'RCUR', 'OOFF', 'FNAL')),
    end_to_end_id text NOT NULL CONSTRAINT dd_collections_end_to_end_unique UNIQUE,
    status text NOT NULL DEFAULT 'pending' CONSTRAINT dd_collections_status_valid CHECK (status IN ('pending', 'paid', 'failed')),
    reason text NOT NULL DEFAULT '',             -- a failure's reason code and text (AC04 account closed, ...)
    settled_at timestamptz
);
-- An invoice is in one collection at a time: a failed one may be collected again.
CREATE UNIQUE INDEX IF NOT EXISTS dd_collections_document_open ON dd_collections (document_id) WHERE status <> 'failed';
CREATE INDEX IF NOT EXISTS dd_collections_batch_idx ON dd_collections (batch_id);

-- Online payments: the gateways (keys sealed with daemons/secrets.py), their customers, saved
-- cards (tokens only), payment attempts, and every event a gateway sent, kept raw and
-- processed once.
CREATE TABLE IF NOT EXISTS payment_gateways (
    name text CONSTRAINT payment_gateways_pk PRIMARY KEY CONSTRAINT payment_gateways_name_valid CHECK (name IN ('stripe', 'paypal')),
    enabled boolean NOT NULL DEFAULT false,
    settings jsonb NOT NULL DEFAULT '{}',        -- what is not secret: publishable key, client id, API base, mode
    secret_key text,                             -- sealed ("lm1:")
    webhook_secret text,                         -- sealed; Stripe's signing secret, PayPal's webhook id
    updated_by text NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS gateway_customers (
    customer_id bigint NOT NULL CONSTRAINT gateway_customers_customer_fk REFERENCES customers ON DELETE RESTRICT,
    gateway text NOT NULL CONSTRAINT gateway_customers_gateway_fk REFERENCES payment_gateways ON DELETE RESTRICT,
    external_id text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT gateway_customers_pk PRIMARY KEY (customer_id, gateway),
    CONSTRAINT gateway_customers_external_unique UNIQUE (gateway, external_id)
);

CREATE TABLE IF NOT EXISTS payment_methods (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT payment_methods_pk PRIMARY KEY,
    customer_id bigint NOT NULL CONSTRAINT payment_methods_customer_fk REFERENCES customers ON DELETE RESTRICT,
    gateway text NOT NULL CONSTRAINT payment_methods_gateway_fk REFERENCES payment_gateways ON DELETE RESTRICT,
    token text NOT NULL,                         -- the gateway's payment-method id (pm_..., a vault id)
    brand text NOT NULL DEFAULT '',
    last4 text CONSTRAINT payment_methods_last4_digits CHECK (last4 ~ '^[0-9]{4}$'),
    exp_month smallint CONSTRAINT payment_methods_exp_month_range CHECK (exp_month BETWEEN 1 AND 12),
    exp_year smallint CONSTRAINT payment_methods_exp_year_range CHECK (exp_year BETWEEN 2000 AND 2100),
    autopay boolean NOT NULL DEFAULT false,      -- charged on the due date (the customer opted in)
    created_at timestamptz NOT NULL DEFAULT now(),
    removed_at timestamptz,
    CONSTRAINT payment_methods_token_unique UNIQUE (gateway, token)
);
CREATE INDEX IF NOT EXISTS payment_methods_customer_idx ON payment_methods (customer_id) WHERE removed_at IS NULL;

CREATE TABLE IF NOT EXISTS payment_intents (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT payment_intents_pk PRIMARY KEY,
    customer_id bigint NOT NULL CONSTRAINT payment_intents_customer_fk REFERENCES customers ON DELETE RESTRICT,
    gateway text NOT NULL CONSTRAINT payment_intents_gateway_fk REFERENCES payment_gateways ON DELETE RESTRICT,
    external_id text,                            -- pi_..., a PayPal order id; NULL until the gateway answered
    purpose text NOT NULL CONSTRAINT payment_intents_purpose_valid CHECK (purpose IN ('invoice', 'top_up', 'autopay')),
    document_id bigint CONSTRAINT payment_intents_document_fk REFERENCES documents ON DELETE RESTRICT,
    payment_method_id bigint CONSTRAINT payment_intents_method_fk REFERENCES payment_methods ON DELETE RESTRICT,
    amount numeric(14, 4) NOT NULL CONSTRAINT payment_intents_amount_positive CHECK (amount > 0),
    currency text NOT NULL CONSTRAINT payment_intents_currency_iso CHECK (currency ~ '^[A-Z]{3}$'),
    status text NOT NULL DEFAULT 'created' CONSTRAINT payment_intents_status_valid
        CHECK (status IN ('created', 'requires_action', 'processing', 'succeeded', 'failed', 'canceled')),
    idempotency_key text NOT NULL CONSTRAINT payment_intents_idempotency_unique UNIQUE,  -- sent to the gateway, kept before the call
    error text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT payment_intents_external_unique UNIQUE (gateway, external_id)
);

CREATE TABLE IF NOT EXISTS gateway_events (
    gateway text NOT NULL CONSTRAINT gateway_events_gateway_fk REFERENCES payment_gateways ON DELETE RESTRICT,
    event_id text NOT NULL,
    type text NOT NULL,
    payload jsonb NOT NULL,                      -- as the gateway sent it
    received_at timestamptz NOT NULL DEFAULT now(),
    processed_at timestamptz,                    -- set in the transaction that made its effect
    outcome text NOT NULL DEFAULT '',
    CONSTRAINT gateway_events_pk PRIMARY KEY (gateway, event_id)
);

-- Every payment: how it came and what it names; its money is its receipt's credit
-- (transaction_id). The gateway's own id of it is unique, so a payment it reports twice is
-- recorded once.
CREATE TABLE IF NOT EXISTS payments (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT payments_pk PRIMARY KEY,
    customer_id bigint NOT NULL CONSTRAINT payments_customer_fk REFERENCES customers ON DELETE RESTRICT,
    transaction_id bigint NOT NULL CONSTRAINT payments_transaction_unique UNIQUE
        CONSTRAINT payments_transaction_fk REFERENCES transactions ON DELETE RESTRICT,
    receipt_id bigint NOT NULL CONSTRAINT payments_receipt_fk REFERENCES documents ON DELETE RESTRICT,
    type_id bigint NOT NULL CONSTRAINT payments_type_fk REFERENCES payment_types ON DELETE RESTRICT,
    source text NOT NULL CONSTRAINT payments_source_valid
        CHECK (source IN ('desk', 'api', 'online', 'direct_debit', 'bank_statement')),
    paid_on date NOT NULL,
    amount numeric(14, 4) NOT NULL CONSTRAINT payments_amount_positive CHECK (amount > 0),
    currency text NOT NULL CONSTRAINT payments_currency_iso CHECK (currency ~ '^[A-Z]{3}$'),
    receipt_number text NOT NULL DEFAULT '',     -- the operator's own (a paper receipt's); lastmile's is the receipt's
    payer text NOT NULL DEFAULT '',
    comment text NOT NULL DEFAULT '',
    document_id bigint CONSTRAINT payments_document_fk REFERENCES documents ON DELETE RESTRICT,  -- the invoice or proforma it names
    service_id bigint CONSTRAINT payments_service_fk REFERENCES services ON DELETE RESTRICT,
    period_start date,
    period_end date,                             -- exclusive
    gateway text CONSTRAINT payments_gateway_fk REFERENCES payment_gateways ON DELETE RESTRICT,
    gateway_ref text,
    intent_id bigint CONSTRAINT payments_intent_fk REFERENCES payment_intents ON DELETE RESTRICT,
    statement_line_id bigint CONSTRAINT payments_statement_line_unique UNIQUE
        CONSTRAINT payments_statement_line_fk REFERENCES bank_statement_lines ON DELETE RESTRICT,
    collection_id bigint CONSTRAINT payments_collection_unique UNIQUE
        CONSTRAINT payments_collection_fk REFERENCES dd_collections ON DELETE RESTRICT,
    idempotency_key text CONSTRAINT payments_idempotency_unique UNIQUE,
    created_by text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT payments_gateway_ref_unique UNIQUE (gateway, gateway_ref),
    CONSTRAINT payments_gateway_named CHECK ((gateway IS NULL) = (gateway_ref IS NULL)),
    CONSTRAINT payments_period_ordered CHECK (period_end > period_start),
    CONSTRAINT payments_period_whole CHECK ((period_start IS NULL) = (period_end IS NULL))
);
CREATE INDEX IF NOT EXISTS payments_customer_idx ON payments (customer_id, paid_on, id);
CREATE INDEX IF NOT EXISTS payments_paid_idx ON payments (paid_on DESC, id DESC);

-- A payment taken back: its receipt voided (the ledger's reversal), and why; a refund through
-- the gateway names the gateway's refund.
CREATE TABLE IF NOT EXISTS payment_reversals (
    payment_id bigint CONSTRAINT payment_reversals_pk PRIMARY KEY
        CONSTRAINT payment_reversals_payment_fk REFERENCES payments ON DELETE RESTRICT,
    reason text NOT NULL CONSTRAINT payment_reversals_reason_nonempty CHECK (reason <> ''),
    refund_ref text,                             -- the gateway's refund id (re_...), for a refund
    created_by text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now()
);
SELECT lastmile_append_only_on(t) FROM unnest(ARRAY['payments', 'payment_reversals']::regclass[]) AS t;

-- The API's Idempotency-Key: the first answer to a (caller, key) is kept and given again; the
-- same key with another request is refused. Kept for a day at least (the worker prunes).
CREATE TABLE IF NOT EXISTS idempotency_keys (
    principal text NOT NULL,                     -- "key:<api key id>" or "admin:<administrator id>"
    key text NOT NULL CONSTRAINT idempotency_keys_key_valid CHECK (length(key) BETWEEN 1 AND 255),
    request_sha256 text NOT NULL,                -- of the method, the path and the body
    status smallint,                             -- NULL while the first request runs
    content_type text NOT NULL DEFAULT '',
    body bytea,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT idempotency_keys_pk PRIMARY KEY (principal, key)
);
CREATE INDEX IF NOT EXISTS idempotency_keys_created_idx ON idempotency_keys (created_at);

CREATE OR REPLACE TRIGGER bank_mappings_touch BEFORE UPDATE ON bank_mappings FOR EACH ROW EXECUTE FUNCTION lastmile_touch();
CREATE OR REPLACE TRIGGER bank_statement_lines_touch BEFORE UPDATE ON bank_statement_lines FOR EACH ROW EXECUTE FUNCTION lastmile_touch();
CREATE OR REPLACE TRIGGER sepa_settings_touch BEFORE UPDATE ON sepa_settings FOR EACH ROW EXECUTE FUNCTION lastmile_touch();
CREATE OR REPLACE TRIGGER payment_gateways_touch BEFORE UPDATE ON payment_gateways FOR EACH ROW EXECUTE FUNCTION lastmile_touch();
CREATE OR REPLACE TRIGGER payment_intents_touch BEFORE UPDATE ON payment_intents FOR EACH ROW EXECUTE FUNCTION lastmile_touch();
INSERT INTO payment_gateways (name) VALUES ('stripe'), ('paypal') ON CONFLICT DO NOTHING;

-- =============================================================================================
-- 10. Notifications and events (admin/notifications/): per-partner settings, what is sent when
-- (notice rules), operators' message templates, every message, the events outbox, webhooks.
-- =============================================================================================

-- Per partner (partner_id NULL: every partner without a row of its own): the mail server and
-- SMS gateway messages go out through, and when document notices may go. A partner's row is
-- used whole, not merged with the default one.
CREATE TABLE IF NOT EXISTS notification_settings (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT notification_settings_pk PRIMARY KEY,
    partner_id bigint CONSTRAINT notification_settings_partner_fk REFERENCES partners ON DELETE CASCADE,
    timezone text NOT NULL DEFAULT 'UTC',        -- IANA name: hours below are this zone's
    -- The send window of document notices: ISO weekdays (1 Monday .. 7 Sunday), [send_from, send_until)
    -- hours, and whether public holidays (billing_settings' country) and billing_holidays are off.
    send_days smallint[] NOT NULL DEFAULT '{1,2,3,4,5}'
        CONSTRAINT notification_settings_days_valid CHECK (send_days <@ '{1,2,3,4,5,6,7}' AND cardinality(send_days) > 0),
    send_from smallint NOT NULL DEFAULT 8 CONSTRAINT notification_settings_from_range CHECK (send_from BETWEEN 0 AND 23),
    send_until smallint NOT NULL DEFAULT 20 CONSTRAINT notification_settings_until_range CHECK (send_until BETWEEN 1 AND 24),
    skip_holidays boolean NOT NULL DEFAULT true,
    -- Payment reminders' days: 'relative' (#1 that many days after the invoice, #2 after #1, #3
    -- after #2) or 'static' (days of the month; past the month's end: its last day).
    reminder_days text NOT NULL DEFAULT 'relative'
        CONSTRAINT notification_settings_reminder_days_valid CHECK (reminder_days IN ('relative', 'static')),
    mail_from text NOT NULL DEFAULT '',          -- "Name <address>" or an address
    mail_reply_to text NOT NULL DEFAULT '',
    smtp_host text NOT NULL DEFAULT '',          -- '': no mail server (mail waits, failed, until one is set)
    smtp_port integer NOT NULL DEFAULT 587 CONSTRAINT notification_settings_smtp_port_range CHECK (smtp_port BETWEEN 1 AND 65535),
    smtp_security text NOT NULL DEFAULT 'starttls'
        CONSTRAINT notification_settings_smtp_security_valid CHECK (smtp_security IN ('starttls', 'tls', 'none')),
    smtp_username text NOT NULL DEFAULT '',
    smtp_password text,                          -- sealed (daemons/secrets.py)
    mail_per_minute integer NOT NULL DEFAULT 6000 CONSTRAINT notification_settings_mail_rate_positive CHECK (mail_per_minute > 0),
    -- The SMS gateway: a URL the message is POSTed to, as JSON or a form, with these field names.
    sms_url text NOT NULL DEFAULT '',            -- '': no gateway
    sms_format text NOT NULL DEFAULT 'json' CONSTRAINT notification_settings_sms_format_valid CHECK (sms_format IN ('json', 'form')),
    sms_to_field text NOT NULL DEFAULT 'to',
    sms_text_field text NOT NULL DEFAULT 'text',
    sms_from_field text NOT NULL DEFAULT 'from',
    sms_sender text NOT NULL DEFAULT '',
    sms_auth_header text,                        -- sealed; the Authorization header's value
    sms_id_field text NOT NULL DEFAULT 'id',     -- where the answer's JSON names the message's id
    sms_region text NOT NULL DEFAULT '' CONSTRAINT notification_settings_sms_region_iso CHECK (sms_region = '' OR sms_region ~ '^[A-Z]{2}$'),
    sms_per_minute integer NOT NULL DEFAULT 60 CONSTRAINT notification_settings_sms_rate_positive CHECK (sms_per_minute > 0),
    updated_by text NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT notification_settings_window_ordered CHECK (send_until > send_from)
);
CREATE UNIQUE INDEX IF NOT EXISTS notification_settings_partner_unique ON notification_settings (partner_id)
    WHERE partner_id IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS notification_settings_default_unique ON notification_settings ((true))
    WHERE partner_id IS NULL;

-- What is sent and when, per partner (NULL: the default of partners without their own) and kind:
--   invoice, proforma, payment, credit_note: on creation, after delay_hours, in the send window;
--   reminder_1..3: day = the reminder's day (notification_settings.reminder_days), at send_hour;
--   prepaid_1..3: day = days before blocking, at send_hour; blocking, inactive: at send_hour after
--   the wave; card_expiry, contract_end: day = days before, at send_hour.
CREATE TABLE IF NOT EXISTS notice_rules (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT notice_rules_pk PRIMARY KEY,
    partner_id bigint CONSTRAINT notice_rules_partner_fk REFERENCES partners ON DELETE CASCADE,
    kind text NOT NULL CONSTRAINT notice_rules_kind_valid CHECK (kind IN (
        'invoice', 'proforma', 'payment', 'credit_note', 'reminder_1', 'reminder_2', 'reminder_3',
        'prepaid_1', 'prepaid_2', 'prepaid_3', 'blocking', 'inactive', 'card_expiry', 'contract_end')),
    enabled boolean NOT NULL DEFAULT false,
    channels text[] NOT NULL DEFAULT '{email}'
        CONSTRAINT notice_rules_channels_valid CHECK (channels <@ '{email,sms,portal}' AND cardinality(channels) > 0),
    subject text NOT NULL DEFAULT '',            -- a template too (the message's variables)
    delay_hours smallint NOT NULL DEFAULT 0 CONSTRAINT notice_rules_delay_valid CHECK (delay_hours IN (0, 1, 3, 6, 12, 24, 48, 72)),
    send_hour smallint NOT NULL DEFAULT 9 CONSTRAINT notice_rules_hour_range CHECK (send_hour BETWEEN 0 AND 23),
    day smallint CONSTRAINT notice_rules_day_range CHECK (day BETWEEN 0 AND 366),
    attach boolean NOT NULL DEFAULT true,        -- the document, the receipt, the unpaid invoices
    bcc text NOT NULL DEFAULT '',
    -- Reminders only to customers who pay this way ('manual', 'direct_debit', 'card'); empty: all.
    payment_methods text[] NOT NULL DEFAULT '{}'
        CONSTRAINT notice_rules_payment_methods_valid CHECK (payment_methods <@ '{manual,direct_debit,card}'),
    updated_by text NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS notice_rules_partner_kind_unique ON notice_rules (partner_id, kind) WHERE partner_id IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS notice_rules_default_kind_unique ON notice_rules (kind) WHERE partner_id IS NULL;

-- Operators' message templates (Jinja2 in the sandbox: admin/notifications/templates.py), per
-- partner (NULL: the default), kind, channel and language ('': any); without one, the built-in.
CREATE TABLE IF NOT EXISTS message_templates (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT message_templates_pk PRIMARY KEY,
    partner_id bigint CONSTRAINT message_templates_partner_fk REFERENCES partners ON DELETE CASCADE,
    kind text NOT NULL CONSTRAINT message_templates_kind_valid CHECK (kind IN (
        'invoice', 'proforma', 'payment', 'credit_note', 'reminder_1', 'reminder_2', 'reminder_3',
        'prepaid_1', 'prepaid_2', 'prepaid_3', 'blocking', 'inactive', 'card_expiry', 'contract_end',
        'ticket_reply', 'ticket_staff', 'portal_code', 'announcement')),
    channel text NOT NULL CONSTRAINT message_templates_channel_valid CHECK (channel IN ('email', 'sms', 'portal')),
    language text NOT NULL DEFAULT '' CONSTRAINT message_templates_language_valid CHECK (language ~ '^([a-z]{2}(_[A-Z]{2})?)?$'),
    body text NOT NULL CONSTRAINT message_templates_body_nonempty CHECK (body <> ''),
    updated_by text NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS message_templates_partner_unique ON message_templates (partner_id, kind, channel, language)
    WHERE partner_id IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS message_templates_default_unique ON message_templates (kind, channel, language)
    WHERE partner_id IS NULL;

-- Every message: scheduled (send_at: not before), sending (leased by a worker until
-- lease_until), sent, failed (permanently, or out of attempts: "retry" schedules it again), or
-- cancelled (its cause went away: the invoice was paid before the reminder's hour). cause is
-- what it is about ('document:12', 'invoice:12', 'status:7', 'prepaid:<customer>:<date>',
-- 'card:<id>:<yyyy-mm>', 'service:<id>:<date>', 'announcement:<uuid>', 'ticket_message:<id>' for a
-- ticket's reply, 'ticket_message:<id>:administrator:<id>' for an agent's notice of it): one
-- message per (cause, kind, channel), however often it is scheduled. Subject and body are
-- rendered when it is sent (an announcement's are written when it is made).
CREATE TABLE IF NOT EXISTS messages (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT messages_pk PRIMARY KEY,
    partner_id bigint NOT NULL CONSTRAINT messages_partner_fk REFERENCES partners ON DELETE RESTRICT,
    customer_id bigint CONSTRAINT messages_customer_fk REFERENCES customers ON DELETE RESTRICT,
    kind text NOT NULL,
    channel text NOT NULL CONSTRAINT messages_channel_valid CHECK (channel IN ('email', 'sms', 'portal')),
    cause text NOT NULL CONSTRAINT messages_cause_nonempty CHECK (cause <> ''),
    document_id bigint CONSTRAINT messages_document_fk REFERENCES documents ON DELETE RESTRICT,
    marketing boolean NOT NULL DEFAULT false,    -- an announcement a customer may opt out of
    recipient text NOT NULL DEFAULT '',          -- the address or E.164 number, set when sent; '' for the portal
    bcc text NOT NULL DEFAULT '',
    subject text NOT NULL DEFAULT '',
    body text NOT NULL DEFAULT '',
    attachments bigint[] NOT NULL DEFAULT '{}',  -- documents whose PDFs go with it
    status text NOT NULL DEFAULT 'scheduled'
        CONSTRAINT messages_status_valid CHECK (status IN ('scheduled', 'sending', 'sent', 'failed', 'cancelled')),
    send_at timestamptz NOT NULL DEFAULT now(),
    attempts smallint NOT NULL DEFAULT 0,
    lease_until timestamptz,
    last_error text NOT NULL DEFAULT '',
    provider_answer text NOT NULL DEFAULT '',
    provider_id text NOT NULL DEFAULT '',        -- the Message-ID, the gateway's id
    read_at timestamptz,                         -- the portal: when the customer opened it
    created_by text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now(),
    -- A ticket's reply (admin/tickets/): its threading headers, {"message_id", "in_reply_to",
    -- "references"}; a person's reply, so it goes out without Auto-Submitted. NULL: a notice.
    reply_headers jsonb CONSTRAINT messages_reply_headers_object CHECK (jsonb_typeof(reply_headers) = 'object'),
    cc text NOT NULL DEFAULT '',                 -- addresses in the Cc header (a ticket's CC), comma-separated
    CONSTRAINT messages_once UNIQUE (cause, kind, channel)
);
CREATE INDEX IF NOT EXISTS messages_due_idx ON messages (send_at) WHERE status = 'scheduled';
CREATE INDEX IF NOT EXISTS messages_leased_idx ON messages (lease_until) WHERE status = 'sending';
CREATE INDEX IF NOT EXISTS messages_customer_idx ON messages (customer_id, created_at DESC) WHERE customer_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS messages_created_idx ON messages (created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS messages_document_idx ON messages (document_id) WHERE document_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS messages_failed_idx ON messages (partner_id, id) WHERE status = 'failed';

-- The events outbox: what happened (customer, service, invoice, payment, session, ...), written
-- in the transaction that did it (the triggers below) or by the job that reads it from its table
-- (sessions). The worker's dispatch fans each one out once (dispatched_at): to the webhooks
-- subscribed, to MQTT (lastmile/<subject>/<name>), and to the document notices.
CREATE TABLE IF NOT EXISTS events (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT events_pk PRIMARY KEY,
    subject text NOT NULL CONSTRAINT events_subject_valid CHECK (subject ~ '^[a-z][a-z_]*$'),
    name text NOT NULL CONSTRAINT events_name_valid CHECK (name ~ '^[a-z][a-z_]*$'),
    partner_id bigint,                           -- whose (a partner's webhooks see only its own); no FK: kept as it was
    payload jsonb NOT NULL CONSTRAINT events_payload_object CHECK (jsonb_typeof(payload) = 'object'),
    occurred_at timestamptz NOT NULL DEFAULT now(),
    dispatched_at timestamptz
);
CREATE INDEX IF NOT EXISTS events_pending_idx ON events (id) WHERE dispatched_at IS NULL;
CREATE INDEX IF NOT EXISTS events_occurred_idx ON events (occurred_at);

-- Where the jobs that read events from a table got to ('sessions': radius_sessions' times).
CREATE TABLE IF NOT EXISTS event_cursors (
    name text CONSTRAINT event_cursors_pk PRIMARY KEY,
    position timestamptz NOT NULL
);

-- Integrators' webhooks: events matching a pattern ('invoice.created', 'invoice.*', '*') are
-- POSTed to url as JSON signed with HMAC-SHA256 under secret (sealed). A partner's webhook sees
-- only that partner's events; partner_id NULL: every partner's.
CREATE TABLE IF NOT EXISTS webhooks (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT webhooks_pk PRIMARY KEY,
    partner_id bigint CONSTRAINT webhooks_partner_fk REFERENCES partners ON DELETE CASCADE,
    url text NOT NULL CONSTRAINT webhooks_url_http CHECK (url ~ '^https?://'),
    events text[] NOT NULL DEFAULT '{*}' CONSTRAINT webhooks_events_nonempty CHECK (cardinality(events) > 0),
    secret text NOT NULL,                        -- sealed
    enabled boolean NOT NULL DEFAULT true,
    description text NOT NULL DEFAULT '',
    created_by text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- One event to one webhook: pending (next_attempt_at), delivered or failed (out of attempts);
-- "replay" makes it pending again. Each try is a row of webhook_attempts.
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT webhook_deliveries_pk PRIMARY KEY,
    webhook_id bigint NOT NULL CONSTRAINT webhook_deliveries_webhook_fk REFERENCES webhooks ON DELETE CASCADE,
    event_id bigint NOT NULL CONSTRAINT webhook_deliveries_event_fk REFERENCES events ON DELETE CASCADE,
    status text NOT NULL DEFAULT 'pending'
        CONSTRAINT webhook_deliveries_status_valid CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts smallint NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_until timestamptz,
    delivered_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT webhook_deliveries_once UNIQUE (webhook_id, event_id)
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS webhook_deliveries_event_idx ON webhook_deliveries (event_id);
CREATE INDEX IF NOT EXISTS webhook_deliveries_webhook_idx ON webhook_deliveries (webhook_id, id DESC);

CREATE TABLE IF NOT EXISTS webhook_attempts (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT webhook_attempts_pk PRIMARY KEY,
    delivery_id bigint NOT NULL CONSTRAINT webhook_attempts_delivery_fk REFERENCES webhook_deliveries ON DELETE CASCADE,
    attempted_at timestamptz NOT NULL DEFAULT now(),
    response_status smallint,                    -- NULL: no answer (refused, timed out)
    response_body text NOT NULL DEFAULT '',      -- its first 2 KiB
    error text NOT NULL DEFAULT '',
    duration_ms integer NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS webhook_attempts_delivery_idx ON webhook_attempts (delivery_id, id);

CREATE OR REPLACE TRIGGER notification_settings_touch BEFORE UPDATE ON notification_settings FOR EACH ROW EXECUTE FUNCTION lastmile_touch();
CREATE OR REPLACE TRIGGER notice_rules_touch BEFORE UPDATE ON notice_rules FOR EACH ROW EXECUTE FUNCTION lastmile_touch();
CREATE OR REPLACE TRIGGER message_templates_touch BEFORE UPDATE ON message_templates FOR EACH ROW EXECUTE FUNCTION lastmile_touch();
CREATE OR REPLACE TRIGGER messages_touch BEFORE UPDATE ON messages FOR EACH ROW EXECUTE FUNCTION lastmile_touch();
CREATE OR REPLACE TRIGGER webhooks_touch BEFORE UPDATE ON webhooks FOR EACH ROW EXECUTE FUNCTION lastmile_touch();
CREATE OR REPLACE TRIGGER webhook_deliveries_touch BEFORE UPDATE ON webhook_deliveries FOR EACH ROW EXECUTE FUNCTION lastmile_touch();

-- The outbox's writers: statement-level, so a billing run's COPY of a million invoices adds one
-- INSERT ... SELECT, not a million trigger calls.
CREATE OR REPLACE FUNCTION lastmile_emit_customers() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO events (subject, name, partner_id, payload)
        SELECT 'customer', 'created', n.partner_id,
               jsonb_build_object('id', n.id, 'number', n.number, 'name', n.name, 'status', n.status, 'partner_id', n.partner_id)
        FROM new_rows n ORDER BY n.id;
    ELSE
        INSERT INTO events (subject, name, partner_id, payload)
        SELECT 'customer', 'updated', n.partner_id,
               jsonb_build_object('id', n.id, 'number', n.number, 'name', n.name, 'status', n.status, 'partner_id', n.partner_id)
        FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE (to_jsonb(n) - 'updated_at' - 'search_words') IS DISTINCT FROM (to_jsonb(o) - 'updated_at' - 'search_words')
        ORDER BY n.id;
    END IF;
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER customers_emit_insert AFTER INSERT ON customers REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION lastmile_emit_customers();
CREATE OR REPLACE TRIGGER customers_emit_update AFTER UPDATE ON customers REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION lastmile_emit_customers();

CREATE OR REPLACE FUNCTION lastmile_emit_status_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO events (subject, name, partner_id, payload)
    SELECT 'customer', 'status_changed', c.partner_id,
           jsonb_build_object('id', n.customer_id, 'number', c.number, 'from', n.from_status, 'to', n.to_status,
                              'reason', n.reason, 'change_id', n.id)
    FROM new_rows n JOIN customers c ON c.id = n.customer_id ORDER BY n.id;
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER customer_status_changes_emit AFTER INSERT ON customer_status_changes REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION lastmile_emit_status_changes();

CREATE OR REPLACE FUNCTION lastmile_emit_services() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO events (subject, name, partner_id, payload)
        SELECT 'service', 'created', c.partner_id,
               jsonb_build_object('id', n.id, 'customer_id', n.customer_id, 'tariff_id', n.tariff_id, 'login', n.login,
                                  'status', n.status, 'ipv4', host(n.ipv4), 'start_date', n.start_date, 'end_date', n.end_date)
        FROM new_rows n JOIN customers c ON c.id = n.customer_id ORDER BY n.id;
    ELSE
        INSERT INTO events (subject, name, partner_id, payload)
        SELECT 'service', 'updated', c.partner_id,
               jsonb_build_object('id', n.id, 'customer_id', n.customer_id, 'tariff_id', n.tariff_id, 'login', n.login,
                                  'status', n.status, 'ipv4', host(n.ipv4), 'start_date', n.start_date, 'end_date', n.end_date)
        FROM new_rows n JOIN old_rows o ON o.id = n.id JOIN customers c ON c.id = n.customer_id
        WHERE (to_jsonb(o) - 'updated_at') IS DISTINCT FROM (to_jsonb(n) - 'updated_at')
        ORDER BY n.id;
    END IF;
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER services_emit_insert AFTER INSERT ON services REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION lastmile_emit_services();
CREATE OR REPLACE TRIGGER services_emit_update AFTER UPDATE ON services REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION lastmile_emit_services();

CREATE OR REPLACE FUNCTION lastmile_emit_documents() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO events (subject, name, partner_id, payload)
    SELECT n.kind, 'created', n.partner_id,
           jsonb_build_object('id', n.id, 'number', n.number, 'customer_id', n.customer_id, 'issued_on', n.issued_on,
                              'due_on', n.due_on, 'currency', n.currency, 'total', n.total, 'origin', n.origin,
                              'related_id', n.related_id)
    FROM new_rows n ORDER BY n.id;
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER documents_emit AFTER INSERT ON documents REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION lastmile_emit_documents();

CREATE OR REPLACE FUNCTION lastmile_emit_document_voids() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO events (subject, name, partner_id, payload)
    SELECT d.kind, 'voided', d.partner_id,
           jsonb_build_object('id', d.id, 'number', d.number, 'customer_id', d.customer_id, 'reason', n.reason)
    FROM new_rows n JOIN documents d ON d.id = n.document_id ORDER BY n.document_id;
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER document_voids_emit AFTER INSERT ON document_voids REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION lastmile_emit_document_voids();

CREATE OR REPLACE FUNCTION lastmile_emit_payments() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'payments' THEN
        INSERT INTO events (subject, name, partner_id, payload)
        SELECT 'payment', 'recorded', c.partner_id,
               jsonb_build_object('id', n.id, 'customer_id', n.customer_id, 'receipt_id', n.receipt_id, 'amount', n.amount,
                                  'currency', n.currency, 'paid_on', n.paid_on, 'source', n.source, 'document_id', n.document_id)
        FROM new_rows n JOIN customers c ON c.id = n.customer_id ORDER BY n.id;
    ELSE
        INSERT INTO events (subject, name, partner_id, payload)
        SELECT 'payment', 'reversed', c.partner_id,
               jsonb_build_object('id', p.id, 'customer_id', p.customer_id, 'amount', p.amount, 'currency', p.currency,
                                  'reason', n.reason, 'refund_ref', n.refund_ref)
        FROM new_rows n JOIN payments p ON p.id = n.payment_id JOIN customers c ON c.id = p.customer_id ORDER BY p.id;
    END IF;
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER payments_emit AFTER INSERT ON payments REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION lastmile_emit_payments();
CREATE OR REPLACE TRIGGER payment_reversals_emit AFTER INSERT ON payment_reversals REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION lastmile_emit_payments();

-- =============================================================================================
-- 11. ACS (acs/): customer routers managed over CWMP/TR-069, what the ACS knows of each, the
-- tasks queued for them, the presets that declare their configuration, the files it serves,
-- and a line per session
-- =============================================================================================

-- The serial number of the customer's router (CPE): the ACS links the device that informs with
-- it to this service (or to the one whose login is the device's PPPoE user name).
ALTER TABLE services ADD COLUMN IF NOT EXISTS cpe_serial text CONSTRAINT services_cpe_serial_nonempty CHECK (cpe_serial <> '');
CREATE INDEX IF NOT EXISTS services_cpe_serial_idx ON services (cpe_serial) WHERE cpe_serial IS NOT NULL;

-- Devices: one row per CPE that has informed (or was entered by hand before it did). cwmp_id is
-- the TR-069 device identity "OUI-ProductClass-SerialNumber" (each part with '%' and '-'
-- percent-encoded, as GenieACS does, so two devices never share an id).
CREATE TABLE IF NOT EXISTS acs_devices (
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
CREATE INDEX IF NOT EXISTS acs_devices_serial_idx ON acs_devices (serial);
CREATE INDEX IF NOT EXISTS acs_devices_software_idx ON acs_devices (software_version);
CREATE INDEX IF NOT EXISTS acs_devices_last_inform_idx ON acs_devices (last_inform_at);
CREATE INDEX IF NOT EXISTS acs_devices_customer_idx ON acs_devices (customer_id) WHERE customer_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS acs_devices_service_idx ON acs_devices (service_id) WHERE service_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS acs_devices_pppoe_idx ON acs_devices (lower(pppoe_username)) WHERE pppoe_username <> '';
CREATE INDEX IF NOT EXISTS acs_devices_tags_idx ON acs_devices USING gin (tags);

-- The parameter tree as last read (or set): one row per parameter or object (path ending '.').
-- writable is NULL until a GetParameterNames said; read_at is when the value was last known.
CREATE TABLE IF NOT EXISTS acs_parameters (
    device_id bigint NOT NULL CONSTRAINT acs_parameters_device_fk REFERENCES acs_devices ON DELETE CASCADE,
    path text NOT NULL,
    value text,
    type text NOT NULL DEFAULT '',
    writable boolean,
    read_at timestamptz NOT NULL,
    CONSTRAINT acs_parameters_pk PRIMARY KEY (device_id, path)
);
-- "devices whose SSID is Y": by value (its first 200 characters), then path.
CREATE INDEX IF NOT EXISTS acs_parameters_value_idx ON acs_parameters (left(value, 200), path) WHERE value <> '';

-- Work for one device, run in its next session (or at once after a connection request), in id
-- order. waiting: the CPE accepted a Reboot, Download or Upload and reports the end later (M
-- Reboot, TransferComplete); a fault is retried after retry_delay * 2^attempts until
-- max_attempts, then stays 'fault'.
CREATE TABLE IF NOT EXISTS acs_tasks (
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
CREATE INDEX IF NOT EXISTS acs_tasks_due_idx ON acs_tasks (device_id, id) WHERE status = 'queued';
CREATE INDEX IF NOT EXISTS acs_tasks_waiting_idx ON acs_tasks (device_id, command_key) WHERE status = 'waiting';
CREATE INDEX IF NOT EXISTS acs_tasks_device_idx ON acs_tasks (device_id, created_at);

-- Faults of a device: a CPE's SOAP Fault to one of our RPCs, a task that ran out of attempts, a
-- preset that could not be applied, a session broken off. Kept for the device page.
CREATE TABLE IF NOT EXISTS acs_faults (
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
CREATE INDEX IF NOT EXISTS acs_faults_device_idx ON acs_faults (device_id, at);

-- Presets: the configuration a device should have, declared. match (all given keys must hold):
-- {"tags": [...], "oui": "...", "product_class": "...", "software_version": "glob", "data_model":
-- "tr098"|"tr181", "events": ["1 BOOT", ...]}; actions, applied in weight then id order (a
-- later one wins on the same parameter): [{"set": path, "value": template, "type": "xsd:..."},
-- {"refresh": path, "max_age": seconds}, {"add_object": path, "count": n}, {"download": file_id},
-- {"reboot": true}] (acs/plan.py). Values are Jinja2 templates over device, service, customer.
CREATE TABLE IF NOT EXISTS acs_presets (
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
                             {"connection_request_credentials": true}]')
ON CONFLICT (name) DO NOTHING;

-- Files the ACS serves to CPEs (firmware, configuration; Download) and receives from them
-- (Upload), stored in chunks of 1 MiB so any instance serves any byte range.
CREATE TABLE IF NOT EXISTS acs_files (
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
CREATE UNIQUE INDEX IF NOT EXISTS acs_files_name_unique ON acs_files (name) WHERE device_id IS NULL;
CREATE TABLE IF NOT EXISTS acs_file_chunks (
    file_id bigint NOT NULL CONSTRAINT acs_file_chunks_file_fk REFERENCES acs_files ON DELETE CASCADE,
    n integer NOT NULL,
    data bytea NOT NULL,
    CONSTRAINT acs_file_chunks_pk PRIMARY KEY (file_id, n)
);

-- Connection requests asked for (admin, API): one acs instance takes each (FOR UPDATE SKIP
-- LOCKED) and sends it to the device's ConnectionRequestURL.
CREATE TABLE IF NOT EXISTS acs_wakeups (
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
CREATE INDEX IF NOT EXISTS acs_wakeups_pending_idx ON acs_wakeups (id) WHERE status = 'pending';

-- Dry runs of a preset against a device, asked for by the admin's presets editor: an acs
-- instance takes each (FOR UPDATE SKIP LOCKED), computes what the preset would do to the device
-- (acs/plan.py: matches, values, the RPCs of the first round, faults) and writes it to result.
CREATE TABLE IF NOT EXISTS acs_dry_runs (
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
CREATE INDEX IF NOT EXISTS acs_dry_runs_pending_idx ON acs_dry_runs (id) WHERE status = 'pending';

-- Sessions with work in flight (their RPC plan), so that any instance behind a balancer takes
-- the next request of a session (the cookie names it). A session that has nothing queued
-- lives in its cookie only. Unlogged: a live session is not worth a WAL write, and a crash
-- ends it (the CPE retries).
CREATE UNLOGGED TABLE IF NOT EXISTS acs_live_sessions (
    id uuid CONSTRAINT acs_live_sessions_pk PRIMARY KEY,
    device_id bigint NOT NULL,
    step integer NOT NULL,
    state jsonb NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS acs_live_sessions_device_idx ON acs_live_sessions (device_id);  -- claim_device_session

-- The access log: a line per session, written when it ends (GenieACS's cwmp-access log).
CREATE TABLE IF NOT EXISTS acs_sessions (
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
CREATE INDEX IF NOT EXISTS acs_sessions_device_idx ON acs_sessions (device_id, started_at);
SELECT lastmile_partitioned('acs_sessions', 'day', 7);

-- acs_presets, acs_wakeups and acs_dry_runs notify (lastmile_watch); acs_devices does not (the ACS writes it
-- on every Inform), except for what the ACS caches of it: a device's own credentials.
SELECT lastmile_watch(t) FROM unnest(ARRAY['acs_presets', 'acs_wakeups', 'acs_dry_runs']::regclass[]) AS t;
CREATE OR REPLACE FUNCTION lastmile_acs_credentials() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('lastmile_acs_credentials', NEW.cwmp_id);
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER acs_devices_credentials_insert AFTER INSERT ON acs_devices
    FOR EACH ROW WHEN (NEW.cpe_password IS NOT NULL) EXECUTE FUNCTION lastmile_acs_credentials();
CREATE OR REPLACE TRIGGER acs_devices_credentials_update AFTER UPDATE ON acs_devices
    FOR EACH ROW WHEN (OLD.cpe_password IS DISTINCT FROM NEW.cpe_password) EXECUTE FUNCTION lastmile_acs_credentials();

-- An input of a device's desired state changed: its service (login, password, custom fields)
-- or its customer. The device is then brought to its presets in its next session.
CREATE OR REPLACE FUNCTION lastmile_acs_stale() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'services' THEN
        UPDATE acs_devices d SET stale = true FROM new_rows n
        WHERE d.service_id = n.id AND NOT d.stale;
    ELSE
        UPDATE acs_devices d SET stale = true FROM new_rows n
        WHERE d.customer_id = n.id AND NOT d.stale;
    END IF;
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER services_acs_stale AFTER UPDATE ON services REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION lastmile_acs_stale();
CREATE OR REPLACE TRIGGER customers_acs_stale AFTER UPDATE ON customers REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION lastmile_acs_stale();

-- =============================================================================================
-- 12. Tickets (admin/tickets/): the helpdesk. Tickets and their messages (from the customer,
-- from staff, internal notes), attachments, groups and who is in them, the inboxes read over
-- IMAP into tickets, the sender deny-list, canned replies, the automation rules
-- =============================================================================================

-- Statuses: the five built-ins the automation moves tickets through (builtin: their codes are
-- fixed, admin/tickets/automation.py Status) and the operator's own. closed: the ticket is done
-- (a customer's reply to it reopens it); position orders them in lists.
CREATE TABLE IF NOT EXISTS ticket_statuses (
    code text CONSTRAINT ticket_statuses_pk PRIMARY KEY CONSTRAINT ticket_statuses_code_valid CHECK (code ~ '^[a-z][a-z0-9_]{0,39}$'),
    title text NOT NULL CONSTRAINT ticket_statuses_title_nonempty CHECK (title <> ''),
    closed boolean NOT NULL DEFAULT false,
    builtin boolean NOT NULL DEFAULT false,
    position smallint NOT NULL DEFAULT 100
);
INSERT INTO ticket_statuses (code, title, closed, builtin, position) VALUES
    ('new', 'New', false, true, 10),
    ('in_progress', 'Work in progress', false, true, 20),
    ('waiting_agent', 'Waiting on agent', false, true, 30),
    ('waiting_customer', 'Waiting on customer', false, true, 40),
    ('resolved', 'Resolved', true, true, 50)
ON CONFLICT (code) DO NOTHING;

-- Groups of agents a ticket is given to. assign_mode says who gets a new ticket of the group:
-- 'nobody' (every member is told, none is assigned), 'random' (a random member), 'shift' (a
-- random member on shift now, ticket_shifts; nobody on shift: as 'nobody').
CREATE TABLE IF NOT EXISTS ticket_groups (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT ticket_groups_pk PRIMARY KEY,
    partner_id bigint CONSTRAINT ticket_groups_partner_fk REFERENCES partners ON DELETE RESTRICT,
    name text NOT NULL CONSTRAINT ticket_groups_name_nonempty CHECK (name <> ''),
    assign_mode text NOT NULL DEFAULT 'nobody'
        CONSTRAINT ticket_groups_assign_mode_valid CHECK (assign_mode IN ('nobody', 'random', 'shift')),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS ticket_groups_name_unique ON ticket_groups (coalesce(partner_id, 0), lower(name));

CREATE TABLE IF NOT EXISTS ticket_group_members (
    group_id bigint NOT NULL CONSTRAINT ticket_group_members_group_fk REFERENCES ticket_groups ON DELETE CASCADE,
    administrator_id bigint NOT NULL CONSTRAINT ticket_group_members_administrator_fk REFERENCES administrators ON DELETE RESTRICT,
    CONSTRAINT ticket_group_members_pk PRIMARY KEY (group_id, administrator_id)
);

-- A member's shift: on these weekdays (0 Monday .. 6 Sunday), from starts to ends in the
-- operator's time zone; ends <= starts crosses midnight (the hours after it belong to the day before).
CREATE TABLE IF NOT EXISTS ticket_shifts (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT ticket_shifts_pk PRIMARY KEY,
    group_id bigint NOT NULL CONSTRAINT ticket_shifts_group_fk REFERENCES ticket_groups ON DELETE CASCADE,
    administrator_id bigint NOT NULL CONSTRAINT ticket_shifts_administrator_fk REFERENCES administrators ON DELETE RESTRICT,
    weekdays smallint[] NOT NULL
        CONSTRAINT ticket_shifts_weekdays_valid CHECK (weekdays <@ '{0,1,2,3,4,5,6}' AND cardinality(weekdays) > 0),
    starts time NOT NULL,
    ends time NOT NULL
);
CREATE INDEX IF NOT EXISTS ticket_shifts_group_idx ON ticket_shifts (group_id);

-- Inboxes read over IMAP into tickets (admin/tickets/mailbox.py, intake.py), each a partner's
-- (replies go out with its mail settings). read_mode: 'unread' (UNSEEN) or 'all', since: from
-- that day; mark_read: \Seen once a mail is a ticket's message. accept_unknown: a mail from an
-- address no customer has makes a ticket of an unknown sender (false: it is refused, and counted).
-- address: the inbox's own address (replies come from it, and mail from it is a loop).
-- uidvalidity/last_uid: where the reading got to (a new UIDVALIDITY reads the folder again; the
-- Message-ID keeps a mail from landing twice).
CREATE TABLE IF NOT EXISTS ticket_inboxes (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT ticket_inboxes_pk PRIMARY KEY,
    partner_id bigint NOT NULL CONSTRAINT ticket_inboxes_partner_fk REFERENCES partners ON DELETE RESTRICT,
    name text NOT NULL CONSTRAINT ticket_inboxes_name_nonempty CHECK (name <> ''),
    enabled boolean NOT NULL DEFAULT true,
    address text NOT NULL CONSTRAINT ticket_inboxes_address_valid CHECK (address ~ '^[^@\s]+@[^@\s]+$'),
    host text NOT NULL CONSTRAINT ticket_inboxes_host_nonempty CHECK (host <> ''),
    port integer NOT NULL DEFAULT 993 CONSTRAINT ticket_inboxes_port_range CHECK (port BETWEEN 1 AND 65535),
    security text NOT NULL DEFAULT 'tls' CONSTRAINT ticket_inboxes_security_valid CHECK (security IN ('tls', 'starttls', 'none')),
    username text NOT NULL CONSTRAINT ticket_inboxes_username_nonempty CHECK (username <> ''),
    password text NOT NULL,                      -- sealed (daemons/secrets.py)
    folder text NOT NULL DEFAULT 'INBOX',
    read_mode text NOT NULL DEFAULT 'unread' CONSTRAINT ticket_inboxes_read_mode_valid CHECK (read_mode IN ('unread', 'all')),
    since date,
    mark_read boolean NOT NULL DEFAULT true,
    accept_unknown boolean NOT NULL DEFAULT true,
    group_id bigint CONSTRAINT ticket_inboxes_group_fk REFERENCES ticket_groups ON DELETE RESTRICT,
    priority text NOT NULL DEFAULT 'medium'
        CONSTRAINT ticket_inboxes_priority_valid CHECK (priority IN ('low', 'medium', 'high', 'urgent')),
    type text NOT NULL DEFAULT 'question'
        CONSTRAINT ticket_inboxes_type_valid CHECK (type IN ('question', 'incident', 'problem', 'feature_request')),
    uidvalidity bigint NOT NULL DEFAULT 0,
    last_uid bigint NOT NULL DEFAULT 0,
    last_checked_at timestamptz,
    last_error text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS ticket_inboxes_address_unique ON ticket_inboxes (lower(address));

-- Mail not to make tickets of (admin/tickets/denylist.py): on the sender's address, the subject
-- or the text; inbox_id NULL: every inbox's.
CREATE TABLE IF NOT EXISTS ticket_denylist (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT ticket_denylist_pk PRIMARY KEY,
    inbox_id bigint CONSTRAINT ticket_denylist_inbox_fk REFERENCES ticket_inboxes ON DELETE CASCADE,
    field text NOT NULL CONSTRAINT ticket_denylist_field_valid CHECK (field IN ('address', 'subject', 'body')),
    match text NOT NULL CONSTRAINT ticket_denylist_match_valid CHECK (match IN ('exact', 'contains', 'starts', 'ends', 'regex')),
    pattern text NOT NULL CONSTRAINT ticket_denylist_pattern_nonempty CHECK (pattern <> ''),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Tickets. A ticket is a customer's, or an unknown sender's (customer_id NULL, requester_*
-- from the mail); partner_id is its customer's partner (or its inbox's). first_response_at: the
-- first reply of staff (what the SLA report measures); reopened: how often a closed ticket
-- was opened again. rule_key: an automatic ticket's cause ('tariff:7:updated:...'), made once.
-- merged_into: the ticket this one was merged into (its messages moved there; it is closed).
CREATE TABLE IF NOT EXISTS tickets (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT tickets_pk PRIMARY KEY,
    partner_id bigint CONSTRAINT tickets_partner_fk REFERENCES partners ON DELETE RESTRICT,
    customer_id bigint CONSTRAINT tickets_customer_fk REFERENCES customers ON DELETE RESTRICT,
    requester_email text NOT NULL DEFAULT '',
    requester_name text NOT NULL DEFAULT '',
    subject text NOT NULL CONSTRAINT tickets_subject_valid CHECK (subject <> '' AND length(subject) <= 500),
    status text NOT NULL DEFAULT 'new'
        CONSTRAINT tickets_status_fk REFERENCES ticket_statuses ON UPDATE CASCADE ON DELETE RESTRICT,
    priority text NOT NULL DEFAULT 'medium'
        CONSTRAINT tickets_priority_valid CHECK (priority IN ('low', 'medium', 'high', 'urgent')),
    type text NOT NULL DEFAULT 'question'
        CONSTRAINT tickets_type_valid CHECK (type IN ('question', 'incident', 'problem', 'feature_request')),
    group_id bigint CONSTRAINT tickets_group_fk REFERENCES ticket_groups ON DELETE RESTRICT,
    assignee_id bigint CONSTRAINT tickets_assignee_fk REFERENCES administrators ON DELETE RESTRICT,
    inbox_id bigint CONSTRAINT tickets_inbox_fk REFERENCES ticket_inboxes ON DELETE RESTRICT,
    source text NOT NULL CONSTRAINT tickets_source_valid CHECK (source IN ('email', 'admin', 'portal', 'api', 'rule')),
    cc text[] NOT NULL DEFAULT '{}',
    rule_key text CONSTRAINT tickets_rule_key_unique UNIQUE,
    merged_into bigint CONSTRAINT tickets_merged_into_fk REFERENCES tickets ON DELETE RESTRICT,
    first_response_at timestamptz,
    first_response_by bigint CONSTRAINT tickets_first_response_by_fk REFERENCES administrators ON DELETE RESTRICT,
    resolved_at timestamptz,
    reopened integer NOT NULL DEFAULT 0,
    -- Response times (the agent report): since when a customer's message waits for staff
    -- (NULL: none waits), and how many waits staff ended and in how many seconds together.
    awaiting_since timestamptz,
    responses integer NOT NULL DEFAULT 0,
    response_seconds double precision NOT NULL DEFAULT 0,
    last_activity_at timestamptz NOT NULL DEFAULT now(),
    created_by text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tickets_requester_known CHECK (customer_id IS NOT NULL OR requester_email <> '' OR source = 'rule'),
    CONSTRAINT tickets_not_merged_into_itself CHECK (merged_into <> id)
);
CREATE INDEX IF NOT EXISTS tickets_list_idx ON tickets (last_activity_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS tickets_status_idx ON tickets (status, last_activity_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS tickets_open_assignee_idx ON tickets (assignee_id, last_activity_at DESC) WHERE assignee_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS tickets_customer_idx ON tickets (customer_id, created_at DESC) WHERE customer_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS tickets_partner_idx ON tickets (partner_id, last_activity_at DESC, id DESC) WHERE partner_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS tickets_created_idx ON tickets (created_at);
CREATE INDEX IF NOT EXISTS tickets_requester_idx ON tickets (lower(requester_email)) WHERE customer_id IS NULL;

CREATE TABLE IF NOT EXISTS ticket_watchers (
    ticket_id bigint NOT NULL CONSTRAINT ticket_watchers_ticket_fk REFERENCES tickets ON DELETE CASCADE,
    administrator_id bigint NOT NULL CONSTRAINT ticket_watchers_administrator_fk REFERENCES administrators ON DELETE RESTRICT,
    CONSTRAINT ticket_watchers_pk PRIMARY KEY (ticket_id, administrator_id)
);

-- A ticket's messages, append-only: 'customer' (from the customer or the unknown sender),
-- 'staff' (a reply the customer gets), 'note' (internal, never shown to the customer), 'system'
-- (what the automation did). mail_id: the mail's Message-ID, ours for staff replies
-- (admin/tickets/threading.py) or the sender's: unique, so a mail read twice lands once.
-- outgoing_id: the message (notifications) a staff reply went out as.
CREATE TABLE IF NOT EXISTS ticket_messages (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT ticket_messages_pk PRIMARY KEY,
    ticket_id bigint NOT NULL CONSTRAINT ticket_messages_ticket_fk REFERENCES tickets ON DELETE RESTRICT,
    author text NOT NULL CONSTRAINT ticket_messages_author_valid CHECK (author IN ('customer', 'staff', 'note', 'system')),
    administrator_id bigint CONSTRAINT ticket_messages_administrator_fk REFERENCES administrators ON DELETE RESTRICT,
    from_address text NOT NULL DEFAULT '',
    from_name text NOT NULL DEFAULT '',
    body text NOT NULL,
    mail_id text CONSTRAINT ticket_messages_mail_id_unique UNIQUE,
    outgoing_id bigint CONSTRAINT ticket_messages_outgoing_fk REFERENCES messages ON DELETE RESTRICT,
    problems text[] NOT NULL DEFAULT '{}',       -- what reading the mail found wrong (inbound.py)
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS ticket_messages_ticket_idx ON ticket_messages (ticket_id, id);

-- Attachments of a message, kept in the database (size-limited by intake and upload). file_name
-- is made safe (inbound.py safe_filename); served_type is what the bytes are served as
-- (inbound.py sniff: anything a browser could run is application/octet-stream), always as a
-- download.
CREATE TABLE IF NOT EXISTS ticket_attachments (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT ticket_attachments_pk PRIMARY KEY,
    message_id bigint NOT NULL CONSTRAINT ticket_attachments_message_fk REFERENCES ticket_messages ON DELETE RESTRICT,
    file_name text NOT NULL CONSTRAINT ticket_attachments_file_name_nonempty CHECK (file_name <> ''),
    declared_type text NOT NULL DEFAULT 'application/octet-stream',
    served_type text NOT NULL DEFAULT 'application/octet-stream',
    size integer NOT NULL CONSTRAINT ticket_attachments_size_valid CHECK (size = octet_length(data)),
    sha256 bytea NOT NULL,
    data bytea NOT NULL
);
CREATE INDEX IF NOT EXISTS ticket_attachments_message_idx ON ticket_attachments (message_id);

-- Canned replies: a reply's text as a template (the notifications sandbox; the ticket, its
-- customer and its last message are its variables). partner_id NULL: every partner's.
CREATE TABLE IF NOT EXISTS ticket_canned_replies (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT ticket_canned_replies_pk PRIMARY KEY,
    partner_id bigint CONSTRAINT ticket_canned_replies_partner_fk REFERENCES partners ON DELETE RESTRICT,
    name text NOT NULL CONSTRAINT ticket_canned_replies_name_nonempty CHECK (name <> ''),
    body text NOT NULL CONSTRAINT ticket_canned_replies_body_nonempty CHECK (body <> ''),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The automation's rules (admin/tickets/automation.py Rule): a condition and an action, as JSON
-- of its Condition and Action. The worker applies the enabled ones to the tickets they are due for.
CREATE TABLE IF NOT EXISTS ticket_rules (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT ticket_rules_pk PRIMARY KEY,
    name text NOT NULL CONSTRAINT ticket_rules_name_nonempty CHECK (name <> ''),
    enabled boolean NOT NULL DEFAULT true,
    condition jsonb NOT NULL CONSTRAINT ticket_rules_condition_object CHECK (jsonb_typeof(condition) = 'object'),
    action jsonb NOT NULL CONSTRAINT ticket_rules_action_object CHECK (jsonb_typeof(action) = 'object'),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Tickets the system opens itself (admin/tickets/automatic.py), each kind on or off: a tariff
-- plan created or changed (on by default: the seed ISP's Splynx hard-codes it), a CPE fault, a
-- failed payment collection, a router out of sync for longer than router_drift_minutes (0: off);
-- in group_id (NULL: no group). One row.
CREATE TABLE IF NOT EXISTS ticket_settings (
    id boolean CONSTRAINT ticket_settings_pk PRIMARY KEY DEFAULT true CONSTRAINT ticket_settings_one_row CHECK (id),
    tariff_tickets boolean NOT NULL DEFAULT true,
    cpe_fault_tickets boolean NOT NULL DEFAULT true,
    payment_failure_tickets boolean NOT NULL DEFAULT true,
    router_drift_minutes integer NOT NULL DEFAULT 60
        CONSTRAINT ticket_settings_router_drift_range CHECK (router_drift_minutes BETWEEN 0 AND 525600),
    group_id bigint CONSTRAINT ticket_settings_group_fk REFERENCES ticket_groups ON DELETE RESTRICT,
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO ticket_settings (id) VALUES (true) ON CONFLICT DO NOTHING;

-- New tickets and new messages (not notes) in the outbox: ticket.created, ticket.message.
CREATE OR REPLACE FUNCTION lastmile_emit_tickets() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'tickets' THEN
        INSERT INTO events (subject, name, partner_id, payload)
        SELECT 'ticket', 'created', n.partner_id,
               jsonb_build_object('id', n.id, 'customer_id', n.customer_id, 'subject', n.subject, 'status', n.status,
                                  'priority', n.priority, 'type', n.type, 'group_id', n.group_id,
                                  'assignee_id', n.assignee_id, 'source', n.source)
        FROM new_rows n ORDER BY n.id;
    ELSE
        INSERT INTO events (subject, name, partner_id, payload)
        SELECT 'ticket', 'message', t.partner_id,
               jsonb_build_object('id', n.id, 'ticket_id', n.ticket_id, 'customer_id', t.customer_id,
                                  'author', n.author, 'administrator_id', n.administrator_id)
        FROM new_rows n JOIN tickets t ON t.id = n.ticket_id WHERE n.author IN ('customer', 'staff') ORDER BY n.id;
    END IF;
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER tickets_emit AFTER INSERT ON tickets REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION lastmile_emit_tickets();
CREATE OR REPLACE TRIGGER ticket_messages_emit AFTER INSERT ON ticket_messages REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION lastmile_emit_tickets();

-- =============================================================================================
-- 13. Portal (admin/portal/): the customers' self-service portal at /portal. A customer's login
-- (portal_accounts: argon2id password, never shown to staff; an optional TOTP second factor,
-- sealed under [secrets] key_file), its sessions (their own cookie, apart from the admin's;
-- impersonator_id: an administrator's "log in as", which the operations log names), the login
-- attempts it is throttled by, and the single-use codes that reset a password by e-mail or SMS
-- (only their sha256 is kept). White label: each partner's brand (admin/portal/brand.py Brand
-- as JSON: what is published, and a draft being previewed) and the host names it answers on.

CREATE TABLE IF NOT EXISTS portal_accounts (
    customer_id bigint CONSTRAINT portal_accounts_pk PRIMARY KEY
        CONSTRAINT portal_accounts_customer_fk REFERENCES customers ON DELETE CASCADE,
    login text NOT NULL CONSTRAINT portal_accounts_login_valid CHECK (login ~ '^[^\s@]{1,64}$'),
    password_hash text,                          -- argon2id; NULL: none yet (a reset code sets it)
    totp_secret bytea,                           -- sealed; NULL: no second factor
    enabled boolean NOT NULL DEFAULT true,
    password_changed_at timestamptz,
    last_login_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS portal_accounts_login_unique ON portal_accounts (lower(login));

CREATE TABLE IF NOT EXISTS portal_sessions (
    token_hash bytea CONSTRAINT portal_sessions_pk PRIMARY KEY,
    customer_id bigint NOT NULL CONSTRAINT portal_sessions_customer_fk REFERENCES customers ON DELETE CASCADE,
    csrf_token text NOT NULL,
    verified boolean NOT NULL DEFAULT false,     -- false until the second factor is given (or there is none)
    impersonator_id bigint CONSTRAINT portal_sessions_impersonator_fk REFERENCES administrators ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,             -- the absolute timeout
    address inet,
    user_agent text NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS portal_sessions_customer_idx ON portal_sessions (customer_id);
CREATE INDEX IF NOT EXISTS portal_sessions_expiry_idx ON portal_sessions (expires_at);
CREATE INDEX IF NOT EXISTS portal_sessions_impersonator_idx ON portal_sessions (impersonator_id) WHERE impersonator_id IS NOT NULL;

CREATE TABLE IF NOT EXISTS portal_login_attempts (
    at timestamptz NOT NULL DEFAULT now(),
    login text NOT NULL,                         -- as typed, lower case
    address inet,
    ok boolean NOT NULL
);
CREATE INDEX IF NOT EXISTS portal_login_attempts_login_idx ON portal_login_attempts (login, at);
CREATE INDEX IF NOT EXISTS portal_login_attempts_address_idx ON portal_login_attempts (address, at);

CREATE TABLE IF NOT EXISTS portal_codes (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT portal_codes_pk PRIMARY KEY,
    customer_id bigint NOT NULL CONSTRAINT portal_codes_customer_fk REFERENCES customers ON DELETE CASCADE,
    code_hash bytea NOT NULL,                    -- sha256 of the code
    channel text NOT NULL CONSTRAINT portal_codes_channel_valid CHECK (channel IN ('email', 'sms')),
    attempts smallint NOT NULL DEFAULT 0,        -- wrong codes typed against it
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at timestamptz
);
CREATE INDEX IF NOT EXISTS portal_codes_customer_idx ON portal_codes (customer_id, created_at DESC);

CREATE TABLE IF NOT EXISTS portal_brands (
    partner_id bigint CONSTRAINT portal_brands_pk PRIMARY KEY
        CONSTRAINT portal_brands_partner_fk REFERENCES partners ON DELETE CASCADE,
    published jsonb NOT NULL DEFAULT '{}' CONSTRAINT portal_brands_published_object CHECK (jsonb_typeof(published) = 'object'),
    draft jsonb CONSTRAINT portal_brands_draft_object CHECK (jsonb_typeof(draft) = 'object'),
    published_at timestamptz,
    updated_by text NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS portal_hosts (
    host text CONSTRAINT portal_hosts_pk PRIMARY KEY
        CONSTRAINT portal_hosts_host_valid CHECK (host ~ '^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?(:[0-9]{1,5})?$'),
    partner_id bigint NOT NULL CONSTRAINT portal_hosts_partner_fk REFERENCES partners ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS portal_hosts_partner_idx ON portal_hosts (partner_id);

-- Self-service in the portal (admin/portal/plan.py). A tariff's portal_change: what its customers
-- may do about a plan change in the portal ('self_service': change it at once, with the prorated
-- documents shown before confirming; 'request': ask, which opens a ticket; 'off': nothing), to the
-- tariffs tariff_portal_targets lists; portal_stop: whether they may stop (pause) a service on it
-- and resume it. A pause by_customer is the customer's own stop: the service is stopped (disabled)
-- over it (stopped_at: when the portal stopped it) and active again after it (resumed_at).
ALTER TABLE tariffs
    ADD COLUMN IF NOT EXISTS portal_change text NOT NULL DEFAULT 'off'
        CONSTRAINT tariffs_portal_change_valid CHECK (portal_change IN ('self_service', 'request', 'off')),
    ADD COLUMN IF NOT EXISTS portal_stop boolean NOT NULL DEFAULT false;
CREATE TABLE IF NOT EXISTS tariff_portal_targets (
    tariff_id bigint NOT NULL CONSTRAINT tariff_portal_targets_tariff_fk REFERENCES tariffs ON DELETE CASCADE,
    target_id bigint NOT NULL CONSTRAINT tariff_portal_targets_target_fk REFERENCES tariffs ON DELETE CASCADE,
    CONSTRAINT tariff_portal_targets_pk PRIMARY KEY (tariff_id, target_id),
    CONSTRAINT tariff_portal_targets_not_itself CHECK (tariff_id <> target_id)
);
CREATE INDEX IF NOT EXISTS tariff_portal_targets_target_idx ON tariff_portal_targets (target_id);
ALTER TABLE service_pauses
    ADD COLUMN IF NOT EXISTS by_customer boolean NOT NULL DEFAULT false,
    ADD COLUMN IF NOT EXISTS stopped_at timestamptz,
    ADD COLUMN IF NOT EXISTS resumed_at timestamptz;
CREATE INDEX IF NOT EXISTS service_pauses_by_customer_idx ON service_pauses (ends_on)
    WHERE by_customer AND resumed_at IS NULL;

-- =============================================================================================
-- 14. Resellers (admin/partners/): how each partner works with the ISP, the tariffs it may sell,
-- and in percentage mode the commissions the ISP owes it, their statements and payouts.
-- =============================================================================================

-- A partner's mode from a day on (the first of a month: a change takes effect from the next
-- period, and what was issued before stays as it was). Before its first row a partner is 'direct'
-- (the ISP's own: nothing owed, nothing aggregated). 'percentage': the ISP invoices and collects
-- from the partner's customers and owes it a share of what they pay; 'own_invoicing': the partner
-- bills its customers itself (its own series, templates, gateway); 'aggregated': the ISP invoices
-- the partner once for all its customers' services, and not the customers.
CREATE TABLE IF NOT EXISTS partner_modes (
    partner_id bigint NOT NULL CONSTRAINT partner_modes_partner_fk REFERENCES partners ON DELETE CASCADE,
    starts_on date NOT NULL CONSTRAINT partner_modes_starts_on_first CHECK (extract(day FROM starts_on) = 1),
    mode text NOT NULL CONSTRAINT partner_modes_mode_valid
        CHECK (mode IN ('direct', 'percentage', 'own_invoicing', 'aggregated')),
    created_by text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT partner_modes_pk PRIMARY KEY (partner_id, starts_on)
);

-- The tariffs a partner may sell; a tariff without rows here is every partner's.
CREATE TABLE IF NOT EXISTS tariff_partners (
    tariff_id bigint NOT NULL CONSTRAINT tariff_partners_tariff_fk REFERENCES tariffs ON DELETE CASCADE,
    partner_id bigint NOT NULL CONSTRAINT tariff_partners_partner_fk REFERENCES partners ON DELETE CASCADE,
    CONSTRAINT tariff_partners_pk PRIMARY KEY (tariff_id, partner_id)
);
CREATE INDEX IF NOT EXISTS tariff_partners_partner_idx ON tariff_partners (partner_id);

-- Percentage mode: a partner's rate for one tariff's service lines, or for a category of what is
-- paid ('service': a service's recurring charges, 'one_time': one-time charges, 'fee': fees); the
-- tariff's rate before the category's before partners.commission_percent.
CREATE TABLE IF NOT EXISTS partner_commission_rates (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT partner_commission_rates_pk PRIMARY KEY,
    partner_id bigint NOT NULL CONSTRAINT partner_commission_rates_partner_fk REFERENCES partners ON DELETE CASCADE,
    tariff_id bigint CONSTRAINT partner_commission_rates_tariff_fk REFERENCES tariffs ON DELETE CASCADE,
    category text CONSTRAINT partner_commission_rates_category_valid CHECK (category IN ('service', 'one_time', 'fee')),
    percent numeric(7, 4) NOT NULL CONSTRAINT partner_commission_rates_percent_range CHECK (percent BETWEEN 0 AND 100),
    CONSTRAINT partner_commission_rates_one_target CHECK (num_nonnulls(tariff_id, category) = 1),
    CONSTRAINT partner_commission_rates_unique UNIQUE NULLS NOT DISTINCT (partner_id, tariff_id, category)
);

-- A commission statement: what a partner earned over a period in one currency (its commissions
-- name it once it is issued; a statement is never changed).
CREATE TABLE IF NOT EXISTS partner_statements (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT partner_statements_pk PRIMARY KEY,
    partner_id bigint NOT NULL CONSTRAINT partner_statements_partner_fk REFERENCES partners ON DELETE RESTRICT,
    number text NOT NULL CONSTRAINT partner_statements_number_unique UNIQUE,
    period_start date NOT NULL,
    period_end date NOT NULL,                    -- exclusive
    currency text NOT NULL CONSTRAINT partner_statements_currency_iso CHECK (currency ~ '^[A-Z]{3}$'),
    total numeric(14, 4) NOT NULL,
    issued_on date NOT NULL,
    created_by text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT partner_statements_period_ordered CHECK (period_end > period_start),
    CONSTRAINT partner_statements_period_unique UNIQUE (partner_id, period_start, currency)
);

-- Commissions, append-only: one per allocation of a payment of a percentage-mode partner's
-- customer (an allocation released when a payment is taken back gives a negative one), with how
-- it was worked out (detail: per category or tariff, the base and the rate).
CREATE TABLE IF NOT EXISTS partner_commissions (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT partner_commissions_pk PRIMARY KEY,
    partner_id bigint NOT NULL CONSTRAINT partner_commissions_partner_fk REFERENCES partners ON DELETE RESTRICT,
    customer_id bigint NOT NULL CONSTRAINT partner_commissions_customer_fk REFERENCES customers ON DELETE RESTRICT,
    allocation_id bigint NOT NULL CONSTRAINT partner_commissions_allocation_unique UNIQUE
        CONSTRAINT partner_commissions_allocation_fk REFERENCES allocations ON DELETE RESTRICT,
    document_id bigint CONSTRAINT partner_commissions_document_fk REFERENCES documents ON DELETE RESTRICT,
    earned_on date NOT NULL,
    base numeric(14, 4) NOT NULL,
    amount numeric(14, 4) NOT NULL,
    currency text NOT NULL CONSTRAINT partner_commissions_currency_iso CHECK (currency ~ '^[A-Z]{3}$'),
    detail jsonb NOT NULL DEFAULT '[]',
    statement_id bigint CONSTRAINT partner_commissions_statement_fk REFERENCES partner_statements ON DELETE RESTRICT,
    created_at timestamptz NOT NULL DEFAULT now()
);
-- The commissions job (admin/partners/jobs.py) reads the allocations made since its cursor.
CREATE INDEX IF NOT EXISTS allocations_created_idx ON allocations (created_at);
CREATE INDEX IF NOT EXISTS partner_commissions_partner_idx ON partner_commissions (partner_id, earned_on);
CREATE INDEX IF NOT EXISTS partner_commissions_open_idx ON partner_commissions (partner_id, currency)
    WHERE statement_id IS NULL;

-- Money paid out to a partner (what the ISP owes it is its commissions less its payouts).
CREATE TABLE IF NOT EXISTS partner_payouts (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT partner_payouts_pk PRIMARY KEY,
    partner_id bigint NOT NULL CONSTRAINT partner_payouts_partner_fk REFERENCES partners ON DELETE RESTRICT,
    statement_id bigint CONSTRAINT partner_payouts_statement_fk REFERENCES partner_statements ON DELETE RESTRICT,
    amount numeric(14, 4) NOT NULL CONSTRAINT partner_payouts_amount_positive CHECK (amount > 0),
    currency text NOT NULL CONSTRAINT partner_payouts_currency_iso CHECK (currency ~ '^[A-Z]{3}$'),
    paid_on date NOT NULL,
    reference text NOT NULL DEFAULT '',
    idempotency_key text CONSTRAINT partner_payouts_idempotency_unique UNIQUE,
    created_by text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS partner_payouts_partner_idx ON partner_payouts (partner_id, paid_on);

-- =============================================================================================
-- 15. The worker's job queue: pgqueuer 1.6's own objects (admin/worker/), as `pgq sql install`
-- makes them, written to run again; tests/db/test_worker_queue.py has pgqueuer verify them.
-- =============================================================================================


DO $$ BEGIN
    CREATE TYPE pgqueuer_status AS ENUM ('queued', 'picked', 'successful', 'exception', 'canceled', 'deleted', 'failed');
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;

CREATE TABLE IF NOT EXISTS pgqueuer (
    id bigserial NOT NULL PRIMARY KEY,
    priority integer NOT NULL,
    queue_manager_id uuid,
    created timestamp with time zone NOT NULL DEFAULT now(),
    updated timestamp with time zone NOT NULL DEFAULT now(),
    heartbeat timestamp with time zone NOT NULL DEFAULT now(),
    execute_after timestamp with time zone NOT NULL DEFAULT now(),
    status pgqueuer_status NOT NULL,
    entrypoint text NOT NULL,
    dedupe_key text,
    payload bytea,
    headers jsonb,
    attempts integer NOT NULL DEFAULT 0,
    slot bigint
);

CREATE TABLE IF NOT EXISTS pgqueuer_log (
    id bigint GENERATED BY DEFAULT AS IDENTITY NOT NULL PRIMARY KEY,
    created timestamp with time zone NOT NULL DEFAULT now(),
    job_id bigint NOT NULL,
    status pgqueuer_status NOT NULL,
    priority integer NOT NULL,
    entrypoint text NOT NULL,
    traceback jsonb,
    aggregated boolean DEFAULT false
);

CREATE TABLE IF NOT EXISTS pgqueuer_schedules (
    id bigserial NOT NULL PRIMARY KEY,
    expression text NOT NULL,
    entrypoint text NOT NULL,
    heartbeat timestamp with time zone NOT NULL DEFAULT now(),
    created timestamp with time zone NOT NULL DEFAULT now(),
    updated timestamp with time zone NOT NULL DEFAULT now(),
    next_run timestamp with time zone NOT NULL DEFAULT now(),
    last_run timestamp with time zone,
    status pgqueuer_status DEFAULT 'queued'::pgqueuer_status,
    UNIQUE (expression, entrypoint)
);

CREATE TABLE IF NOT EXISTS pgqueuer_statistics (
    id bigserial NOT NULL PRIMARY KEY,
    created timestamp with time zone NOT NULL DEFAULT date_trunc('sec'::text, now()),
    count bigint NOT NULL,
    priority integer NOT NULL,
    status pgqueuer_status NOT NULL,
    entrypoint text NOT NULL
);

CREATE INDEX IF NOT EXISTS pgqueuer_ep_ea_idx ON pgqueuer USING btree (entrypoint, execute_after) WHERE (status = 'queued'::pgqueuer_status);

CREATE INDEX IF NOT EXISTS pgqueuer_ep_prio_id_idx ON pgqueuer USING btree (entrypoint, priority DESC, id) WHERE (status = 'queued'::pgqueuer_status);

CREATE INDEX IF NOT EXISTS pgqueuer_log_created ON pgqueuer_log USING btree (created);

CREATE INDEX IF NOT EXISTS pgqueuer_log_job_id_status ON pgqueuer_log USING btree (job_id, created DESC);

CREATE INDEX IF NOT EXISTS pgqueuer_log_not_aggregated ON pgqueuer_log USING btree ((1)) WHERE (NOT aggregated);

CREATE INDEX IF NOT EXISTS pgqueuer_log_status ON pgqueuer_log USING btree (status);

CREATE INDEX IF NOT EXISTS pgqueuer_picked_heartbeat_idx ON pgqueuer USING btree (heartbeat) WHERE (status = 'picked'::pgqueuer_status);

CREATE UNIQUE INDEX IF NOT EXISTS pgqueuer_picked_slot_idx ON pgqueuer USING btree (entrypoint, slot) WHERE ((status = 'picked'::pgqueuer_status) AND (slot IS NOT NULL));

CREATE INDEX IF NOT EXISTS pgqueuer_priority_id_id1_idx ON pgqueuer USING btree (priority, id DESC) INCLUDE (id) WHERE (status = 'queued'::pgqueuer_status);

CREATE INDEX IF NOT EXISTS pgqueuer_queue_manager_id_idx ON pgqueuer USING btree (queue_manager_id) WHERE (queue_manager_id IS NOT NULL);

CREATE UNIQUE INDEX IF NOT EXISTS pgqueuer_statistics_unique_count ON pgqueuer_statistics USING btree (priority, date_trunc('sec'::text, timezone('UTC'::text, created)), status, entrypoint);

CREATE UNIQUE INDEX IF NOT EXISTS pgqueuer_unique_dedupe_key ON pgqueuer USING btree (dedupe_key) WHERE ((status = ANY (ARRAY['queued'::pgqueuer_status, 'picked'::pgqueuer_status])) AND (dedupe_key IS NOT NULL));

CREATE INDEX IF NOT EXISTS pgqueuer_updated_id_id1_idx ON pgqueuer USING btree (updated, id DESC) INCLUDE (id) WHERE (status = 'picked'::pgqueuer_status);

CREATE OR REPLACE FUNCTION fn_pgqueuer_changed() RETURNS TRIGGER AS $$
DECLARE
    to_emit BOOLEAN := false;  -- Flag to decide whether to emit a notification
BEGIN
    -- Check operation type and set the emit flag accordingly
    IF TG_OP = 'UPDATE' AND OLD IS DISTINCT FROM NEW THEN
        to_emit := true;
    ELSIF TG_OP = 'DELETE' THEN
        to_emit := true;
    ELSIF TG_OP = 'INSERT' THEN
        to_emit := true;
    ELSIF TG_OP = 'TRUNCATE' THEN
        to_emit := true;
    END IF;

    -- Perform notification if the emit flag is set
    IF to_emit THEN
        PERFORM pg_notify(
            'ch_pgqueuer',
            json_build_object(
                'channel', 'ch_pgqueuer',
                'operation', lower(TG_OP),
                'sent_at', NOW(),
                'table', TG_TABLE_NAME,
                'type', 'table_changed_event'
            )::text
        );
    END IF;

    -- Return appropriate value based on the operation
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        RETURN NEW;
    ELSIF TG_OP = 'DELETE' THEN
        RETURN OLD;
    ELSE
        RETURN NULL; -- For TRUNCATE and other non-row-specific contexts
    END IF;

END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE TRIGGER tg_pgqueuer_changed
AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON pgqueuer
EXECUTE FUNCTION fn_pgqueuer_changed();

-- =============================================================================================
-- 16. Partitions: this day's or month's and the ones ahead
-- =============================================================================================

SELECT lastmile_maintain_partitions();
