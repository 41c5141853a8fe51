-- lastmile schema upgrade 8 -> 9
--
-- payments: payment types, bank statements (mappings, statements, lines), SEPA direct debit
-- (settings, mandates, batches, collections), gateways, their customers, saved cards (tokens),
-- payment attempts, gateway events, payments and their reversals, the API's idempotency keys;
-- the Payments permissions and the Cashier role; operators' document templates.
--
-- Locks, held until the step commits: admin_roles ROW EXCLUSIVE for its rows (a handful); every
-- table is new.

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
CREATE TABLE payment_types (
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
    ('direct_debit', 'Direct debit', true);

-- Bank statements: a file (CSV through a saved column mapping, CAMT.053, MT940) and its lines.
-- A line's hash (what the bank says of it, and its place among identical ones) is unique, so
-- a file or an overlapping statement imported again adds nothing.
CREATE TABLE bank_mappings (
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

CREATE TABLE bank_statements (
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

CREATE TABLE bank_statement_lines (
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
CREATE INDEX bank_statement_lines_statement_idx ON bank_statement_lines (statement_id, position);
CREATE INDEX bank_statement_lines_review_idx ON bank_statement_lines (status, id) WHERE status IN ('new', 'error');
-- The accounts that paid for a customer before (matching's "account" signal, admin/payments/matching.py).
CREATE INDEX bank_statement_lines_account_idx ON bank_statement_lines (payer_account, customer_id)
    WHERE status IN ('matched', 'paired') AND payer_account <> '';

-- SEPA direct debit: the creditor (one row), mandates, collection batches (pain.008) and their
-- collections, marked paid or failed from the return file or the statement.
CREATE TABLE sepa_settings (
    id boolean CONSTRAINT sepa_settings_pk PRIMARY KEY DEFAULT true CONSTRAINT sepa_settings_one_row CHECK (id),
    creditor_id text NOT NULL DEFAULT '',        -- the SEPA creditor identifier (e.g. DE98ZZZ09999999999)
    creditor_name text NOT NULL DEFAULT '',
    iban text NOT NULL DEFAULT '',
    bic text NOT NULL DEFAULT '',
    scheme text NOT NULL DEFAULT 'CORE' CONSTRAINT sepa_settings_scheme_valid CHECK (scheme IN ('CORE', 'B2B')),
    lead_days smallint NOT NULL DEFAULT 2 CONSTRAINT sepa_settings_lead_range CHECK (lead_days BETWEEN 1 AND 30),
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO sepa_settings (id) VALUES (true);

CREATE TABLE sepa_mandates (
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
CREATE UNIQUE INDEX sepa_mandates_one_active ON sepa_mandates (customer_id) WHERE revoked_at IS NULL;

CREATE TABLE dd_batches (
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

CREATE TABLE dd_collections (
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
CREATE UNIQUE INDEX dd_collections_document_open ON dd_collections (document_id) WHERE status <> 'failed';
CREATE INDEX dd_collections_batch_idx ON dd_collections (batch_id);

-- Online payments: the gateways (keys sealed with daemons/secrets.py), their customers, saved
-- cards (tokens only), payment attempts, and every event a gateway sent, kept raw and
-- processed once.
CREATE TABLE payment_gateways (
    name text CONSTRAINT payment_gateways_pk PRIMARY KEY CONSTRAINT payment_gateways_name_valid CHECK (name IN ('stripe', 'paypal')),
    enabled boolean NOT NULL DEFAULT false,
    settings jsonb NOT NULL DEFAULT '{}',        -- what is not secret: publishable key, client id, API base, mode
    secret_key text,                             -- sealed ("lm1:")
    webhook_secret text,                         -- sealed; Stripe's signing secret, PayPal's webhook id
    updated_by text NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE gateway_customers (
    customer_id bigint NOT NULL CONSTRAINT gateway_customers_customer_fk REFERENCES customers ON DELETE RESTRICT,
    gateway text NOT NULL CONSTRAINT gateway_customers_gateway_fk REFERENCES payment_gateways ON DELETE RESTRICT,
    external_id text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT gateway_customers_pk PRIMARY KEY (customer_id, gateway),
    CONSTRAINT gateway_customers_external_unique UNIQUE (gateway, external_id)
);

CREATE TABLE payment_methods (
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
CREATE INDEX payment_methods_customer_idx ON payment_methods (customer_id) WHERE removed_at IS NULL;

CREATE TABLE payment_intents (
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

CREATE TABLE gateway_events (
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
CREATE TABLE payments (
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
CREATE INDEX payments_customer_idx ON payments (customer_id, paid_on, id);
CREATE INDEX payments_paid_idx ON payments (paid_on DESC, id DESC);

-- A payment taken back: its receipt voided (the ledger's reversal), and why; a refund through
-- the gateway names the gateway's refund.
CREATE TABLE payment_reversals (
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
CREATE TABLE idempotency_keys (
    principal text NOT NULL,                     -- "key:<api key id>" or "admin:<administrator id>"
    key text NOT NULL CONSTRAINT idempotency_keys_key_valid CHECK (length(key) BETWEEN 1 AND 255),
    request_sha256 text NOT NULL,                -- of the method, the path and the body
    status smallint,                             -- NULL while the first request runs
    content_type text NOT NULL DEFAULT '',
    body bytea,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT idempotency_keys_pk PRIMARY KEY (principal, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

CREATE OR REPLACE TRIGGER bank_mappings_touch BEFORE UPDATE ON bank_mappings FOR EACH ROW EXECUTE FUNCTION lastmile_touch();
CREATE OR REPLACE TRIGGER bank_statement_lines_touch BEFORE UPDATE ON bank_statement_lines FOR EACH ROW EXECUTE FUNCTION lastmile_touch();
CREATE OR REPLACE TRIGGER sepa_settings_touch BEFORE UPDATE ON sepa_settings FOR EACH ROW EXECUTE FUNCTION lastmile_touch();
CREATE OR REPLACE TRIGGER payment_gateways_touch BEFORE UPDATE ON payment_gateways FOR EACH ROW EXECUTE FUNCTION lastmile_touch();
CREATE OR REPLACE TRIGGER payment_intents_touch BEFORE UPDATE ON payment_intents FOR EACH ROW EXECUTE FUNCTION lastmile_touch();
INSERT INTO payment_gateways (name) VALUES ('stripe'), ('paypal');


-- The new Payments area: the built-in roles that had all of Finance get it (the Manager sees
-- payments); the Cashier is new.
UPDATE admin_roles SET permissions = ARRAY(SELECT DISTINCT unnest(permissions || '{payments.add,payments.delete,payments.edit,payments.view}'::text[]) ORDER BY 1)
    WHERE builtin IN ('super', 'admin', 'finance');
UPDATE admin_roles SET permissions = ARRAY(SELECT DISTINCT unnest(permissions || '{payments.view}'::text[]) ORDER BY 1)
    WHERE builtin = 'manager';
INSERT INTO admin_roles (name, builtin, permissions, own_customers_only) VALUES
    ('Cashier', 'cashier', '{customers.view,dashboard.view,payments.add,payments.view}', false);
