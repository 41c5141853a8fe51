-- lastmile schema upgrade 14 -> 15
--
-- Self-service plan change and stop/resume in the customer portal (admin/portal/plan.py): a
-- tariff's portal mode and stop switch, the tariffs it may move to, and which pauses are the
-- customer's own stops. New columns with constant defaults and a new table only.
--
-- Locks, held until the step commits: tariffs and service_pauses ACCESS EXCLUSIVE while their
-- columns are added (no rewrite: the defaults are constants).

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
