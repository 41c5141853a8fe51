-- lastmile schema upgrade 9 -> 10
--
-- notifications: per-partner settings, notice rules, message templates, messages; the events
-- outbox and its writers (triggers on customers, customer_status_changes, services, documents,
-- document_voids, payments, payment_reversals); webhooks, their deliveries and attempts;
-- customers' language and marketing opt-out; the Notifications permissions.
--
-- Locks, held until the step commits: customers ACCESS EXCLUSIVE for two added columns (no
-- rewrite: a constant default) and its triggers; customer_status_changes, services, documents,
-- document_voids, payments and payment_reversals SHARE ROW EXCLUSIVE for a trigger each;
-- admin_roles ROW EXCLUSIVE for its rows. Every other table is new.

ALTER TABLE customers ADD COLUMN language text CONSTRAINT customers_language_valid CHECK (language ~ '^[a-z]{2}(_[A-Z]{2})?$');
ALTER TABLE customers ADD COLUMN marketing_opt_out boolean NOT NULL DEFAULT false;

UPDATE admin_roles SET permissions = ARRAY(SELECT DISTINCT unnest(permissions || '{notifications.add,notifications.delete,notifications.edit,notifications.view}'::text[]) ORDER BY 1)
    WHERE builtin IN ('super', 'admin', 'finance');
UPDATE admin_roles SET permissions = ARRAY(SELECT DISTINCT unnest(permissions || '{notifications.view}'::text[]) ORDER BY 1)
    WHERE builtin = 'manager';

-- Per partner (partner_id NULL: every partner without a row of its own): the mail server and
-- SMS gateway messages go out through, and when document notices may go. A partner's row is
-- used whole, not merged with the default one.
CREATE TABLE notification_settings (
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
CREATE UNIQUE INDEX notification_settings_partner_unique ON notification_settings (partner_id)
    WHERE partner_id IS NOT NULL;
CREATE UNIQUE INDEX notification_settings_default_unique ON notification_settings ((true))
    WHERE partner_id IS NULL;

-- What is sent and when, per partner (NULL: the default of partners without their own) and kind:
--   invoice, proforma, payment, credit_note: on creation, after delay_hours, in the send window;
--   reminder_1..3: day = the reminder's day (notification_settings.reminder_days), at send_hour;
--   prepaid_1..3: day = days before blocking, at send_hour; blocking, inactive: at send_hour after
--   the wave; card_expiry, contract_end: day = days before, at send_hour.
CREATE TABLE notice_rules (
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
CREATE UNIQUE INDEX notice_rules_partner_kind_unique ON notice_rules (partner_id, kind) WHERE partner_id IS NOT NULL;
CREATE UNIQUE INDEX notice_rules_default_kind_unique ON notice_rules (kind) WHERE partner_id IS NULL;

-- Operators' message templates (Jinja2 in the sandbox: admin/notifications/templates.py), per
-- partner (NULL: the default), kind, channel and language ('': any); without one, the built-in.
CREATE TABLE message_templates (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT message_templates_pk PRIMARY KEY,
    partner_id bigint CONSTRAINT message_templates_partner_fk REFERENCES partners ON DELETE CASCADE,
    kind text NOT NULL CONSTRAINT message_templates_kind_valid CHECK (kind IN (
        'invoice', 'proforma', 'payment', 'credit_note', 'reminder_1', 'reminder_2', 'reminder_3',
        'prepaid_1', 'prepaid_2', 'prepaid_3', 'blocking', 'inactive', 'card_expiry', 'contract_end',
        'ticket_reply', 'announcement')),
    channel text NOT NULL CONSTRAINT message_templates_channel_valid CHECK (channel IN ('email', 'sms', 'portal')),
    language text NOT NULL DEFAULT '' CONSTRAINT message_templates_language_valid CHECK (language ~ '^([a-z]{2}(_[A-Z]{2})?)?$'),
    body text NOT NULL CONSTRAINT message_templates_body_nonempty CHECK (body <> ''),
    updated_by text NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX message_templates_partner_unique ON message_templates (partner_id, kind, channel, language)
    WHERE partner_id IS NOT NULL;
CREATE UNIQUE INDEX message_templates_default_unique ON message_templates (kind, channel, language)
    WHERE partner_id IS NULL;

-- Every message: scheduled (send_at: not before), sending (leased by a worker until
-- lease_until), sent, failed (permanently, or out of attempts: "retry" schedules it again), or
-- cancelled (its cause went away: the invoice was paid before the reminder's hour). cause is
-- what it is about ('document:12', 'invoice:12', 'status:7', 'prepaid:<customer>:<date>',
-- 'card:<id>:<yyyy-mm>', 'service:<id>:<date>', 'announcement:<uuid>'): one message per (cause,
-- kind, channel), however often it is scheduled. Subject and body are rendered when it is sent
-- (an announcement's are written when it is made).
CREATE TABLE messages (
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
    CONSTRAINT messages_once UNIQUE (cause, kind, channel)
);
CREATE INDEX messages_due_idx ON messages (send_at) WHERE status = 'scheduled';
CREATE INDEX messages_leased_idx ON messages (lease_until) WHERE status = 'sending';
CREATE INDEX messages_customer_idx ON messages (customer_id, created_at DESC) WHERE customer_id IS NOT NULL;
CREATE INDEX messages_created_idx ON messages (created_at DESC, id DESC);
CREATE INDEX messages_document_idx ON messages (document_id) WHERE document_id IS NOT NULL;
CREATE INDEX messages_failed_idx ON messages (partner_id, id) WHERE status = 'failed';

-- The events outbox: what happened (customer, service, invoice, payment, session, ...), written
-- in the transaction that did it (the triggers below) or by the job that reads it from its table
-- (sessions). The worker's dispatch fans each one out once (dispatched_at): to the webhooks
-- subscribed, to MQTT (lastmile/<subject>/<name>), and to the document notices.
CREATE TABLE events (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT events_pk PRIMARY KEY,
    subject text NOT NULL CONSTRAINT events_subject_valid CHECK (subject ~ '^[a-z][a-z_]*$'),
    name text NOT NULL CONSTRAINT events_name_valid CHECK (name ~ '^[a-z][a-z_]*$'),
    partner_id bigint,                           -- whose (a partner's webhooks see only its own); no FK: kept as it was
    payload jsonb NOT NULL CONSTRAINT events_payload_object CHECK (jsonb_typeof(payload) = 'object'),
    occurred_at timestamptz NOT NULL DEFAULT now(),
    dispatched_at timestamptz
);
CREATE INDEX events_pending_idx ON events (id) WHERE dispatched_at IS NULL;
CREATE INDEX events_occurred_idx ON events (occurred_at);

-- Where the jobs that read events from a table got to ('sessions': radius_sessions' times).
CREATE TABLE event_cursors (
    name text CONSTRAINT event_cursors_pk PRIMARY KEY,
    position timestamptz NOT NULL
);

-- Integrators' webhooks: events matching a pattern ('invoice.created', 'invoice.*', '*') are
-- POSTed to url as JSON signed with HMAC-SHA256 under secret (sealed). A partner's webhook sees
-- only that partner's events; partner_id NULL: every partner's.
CREATE TABLE webhooks (
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
CREATE TABLE webhook_deliveries (
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
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_event_idx ON webhook_deliveries (event_id);
CREATE INDEX webhook_deliveries_webhook_idx ON webhook_deliveries (webhook_id, id DESC);

CREATE TABLE webhook_attempts (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT webhook_attempts_pk PRIMARY KEY,
    delivery_id bigint NOT NULL CONSTRAINT webhook_attempts_delivery_fk REFERENCES webhook_deliveries ON DELETE CASCADE,
    attempted_at timestamptz NOT NULL DEFAULT now(),
    response_status smallint,                    -- NULL: no answer (refused, timed out)
    response_body text NOT NULL DEFAULT '',      -- its first 2 KiB
    error text NOT NULL DEFAULT '',
    duration_ms integer NOT NULL DEFAULT 0
);
CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id, id);

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
