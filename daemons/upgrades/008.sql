-- lastmile schema upgrade 7 -> 8
--
-- billing: its settings, taxes, customers' billing settings (a row for every customer, made
-- here for those there are), status changes, pauses, runs, documents, the ledger, allocations
-- and number counters; tariffs get their taxes, services the day their billing starts over.
-- The worker's job queue: pgqueuer's tables.
--
-- Locks, held until the step commits: tariffs and services ACCESS EXCLUSIVE for their new columns
-- (no rewrite: nullable and constant default; milliseconds), customers SHARE ROW EXCLUSIVE while
-- its two new triggers are made; every other table is new.

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

-- =============================================================================================
-- 9. The worker's job queue: pgqueuer 1.6's own objects (admin/worker/), as `pgq sql install`
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

INSERT INTO customer_billing (customer_id, billing_day)
SELECT id, least(extract(day FROM created_at AT TIME ZONE 'UTC')::int, 28) FROM customers
ON CONFLICT (customer_id) DO NOTHING;
