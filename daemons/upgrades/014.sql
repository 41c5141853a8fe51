-- lastmile schema upgrade 13 -> 14
--
-- The customer portal (admin/portal/): customers' logins, their sessions and login attempts,
-- password-reset codes (message kind portal_code may have templates), and the white label's
-- brands and host names. New tables only, besides message_templates' CHECK.
--
-- Locks, held until the step commits: message_templates ACCESS EXCLUSIVE while its CHECK is
-- checked again (a few rows).

ALTER TABLE message_templates DROP CONSTRAINT message_templates_kind_valid,
    ADD CONSTRAINT message_templates_kind_valid CHECK (kind IN (
        'invoice', 'proforma', 'payment', 'credit_note', 'reminder_1', 'reminder_2', 'reminder_3',
        'prepaid_1', 'prepaid_2', 'prepaid_3', 'blocking', 'inactive', 'card_expiry', 'contract_end',
        'ticket_reply', 'ticket_staff', 'portal_code', 'announcement'));

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

