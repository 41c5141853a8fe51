-- lastmile schema upgrade 15 -> 16
--
-- Resellers (admin/partners/): a partner's company, contact and bank details, its parent (a
-- sub-partner), its commission rate; its mode from a month on, the tariffs it may sell, and the
-- commissions, statements and payouts of percentage mode. New columns with constant defaults, a
-- trigger and new tables only.
--
-- Locks, held until the step commits: partners ACCESS EXCLUSIVE while its columns are added (no
-- rewrite: the defaults are constants); the new tables' foreign keys take SHARE ROW EXCLUSIVE on
-- partners, customers, tariffs, allocations and documents briefly.

ALTER TABLE partners
    ADD COLUMN IF NOT EXISTS parent_id bigint CONSTRAINT partners_parent_fk REFERENCES partners ON DELETE RESTRICT,
    ADD COLUMN IF NOT EXISTS legal_name text NOT NULL DEFAULT '',
    ADD COLUMN IF NOT EXISTS vat_id text NOT NULL DEFAULT '',
    ADD COLUMN IF NOT EXISTS street text NOT NULL DEFAULT '',
    ADD COLUMN IF NOT EXISTS city text NOT NULL DEFAULT '',
    ADD COLUMN IF NOT EXISTS zip text NOT NULL DEFAULT '',
    ADD COLUMN IF NOT EXISTS country text CONSTRAINT partners_country_iso CHECK (country ~ '^[A-Z]{2}$'),
    ADD COLUMN IF NOT EXISTS contact_name text NOT NULL DEFAULT '',
    ADD COLUMN IF NOT EXISTS email text NOT NULL DEFAULT '',
    ADD COLUMN IF NOT EXISTS phone text NOT NULL DEFAULT '',
    ADD COLUMN IF NOT EXISTS bank_name text NOT NULL DEFAULT '',
    ADD COLUMN IF NOT EXISTS iban text NOT NULL DEFAULT '',
    ADD COLUMN IF NOT EXISTS bic text NOT NULL DEFAULT '',
    ADD COLUMN IF NOT EXISTS commission_percent numeric(7, 4) NOT NULL DEFAULT 0
        CONSTRAINT partners_commission_percent_range CHECK (commission_percent BETWEEN 0 AND 100);
DO $$ BEGIN
    ALTER TABLE partners ADD CONSTRAINT partners_not_own_parent CHECK (parent_id <> id);
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
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
