-- lastmile schema upgrade 4 -> 5
--
-- flowcollector's revenue leaks (own addresses in traffic_unknown, billing flags on
-- traffic_usage) and traffic totals exact at any time (traffic_rollup_dirty); the schema's
-- hash in schema_version; every partition, the default ones too, with its table's fillfactor.
-- The traffic functions that changed, and lastmile_partitioned(), come from schema.sql after
-- this step, as every function does.
--
-- Locks, held until the step commits: traffic_usage and traffic_unknown (and their partitions)
-- ACCESS EXCLUSIVE for two scans of each (the CHECK of the new column, the partial index):
-- 0.6-1.3 s for 5 million traffic_usage rows (measured on 2 shared cores), while a
-- flowcollector flush waits with its rows in memory. services SHARE for its new index (reads
-- go on, writes wait: milliseconds).

ALTER TABLE schema_version ADD COLUMN hash text;

-- Both taken at once, in the order flowcollector writes them (no deadlock with a flush), so a
-- wait ends here on lock_timeout.
LOCK TABLE traffic_usage, traffic_unknown IN ACCESS EXCLUSIVE MODE;

ALTER TABLE traffic_usage ADD COLUMN billing text
    CONSTRAINT traffic_usage_billing_valid CHECK (billing IN (
        'service_blocked', 'service_disabled', 'service_archived',
        'customer_new', 'customer_blocked', 'customer_disabled', 'customer_archived'));
CREATE INDEX traffic_usage_billing_minute_idx ON traffic_usage (minute) WHERE billing IS NOT NULL;

ALTER TABLE traffic_unknown ADD COLUMN address inet;
CREATE INDEX traffic_unknown_address_minute_idx ON traffic_unknown (minute) WHERE address IS NOT NULL;

CREATE TABLE traffic_rollup_dirty (
    hour timestamptz CONSTRAINT traffic_rollup_dirty_pk PRIMARY KEY
);

CREATE INDEX services_delegated_prefix_idx ON services USING gist (delegated_ipv6_prefix inet_ops);

-- Default partitions were made without a fillfactor; lastmile_partitioned() gives them their
-- table's (SHARE UPDATE EXCLUSIVE: reads and writes go on).
ALTER TABLE radius_sessions_default SET (fillfactor = 50);
ALTER TABLE radius_postauth_default SET (fillfactor = 100);
ALTER TABLE traffic_usage_default SET (fillfactor = 100);
ALTER TABLE traffic_unknown_default SET (fillfactor = 100);
ALTER TABLE traffic_usage_hourly_default SET (fillfactor = 100);
