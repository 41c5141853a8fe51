-- lastmile schema upgrade 5 -> 6
--
-- provisiond: a router's auth mode and TLS verification, its sync state (router_sync), the
-- tariffs' guaranteed rates (limit-at), and an index of services by router. Router passwords
-- stay in routers.password, now sealed: provisiond seals a clear-text one on its start (an SQL
-- step cannot, the key is outside the database).
--
-- Locks, held until the step commits: routers and tariffs ACCESS EXCLUSIVE for the new columns
-- (no rewrite: constant defaults, nullable columns; milliseconds), services SHARE while its new
-- index is built (reads go on, writes wait: about 0.1 s per 100,000 services).

ALTER TABLE routers ADD COLUMN auth_mode text NOT NULL DEFAULT 'radius'
    CONSTRAINT routers_auth_mode_valid CHECK (auth_mode IN ('radius', 'api'));
ALTER TABLE routers ADD COLUMN api_tls_verify boolean NOT NULL DEFAULT true;

CREATE TABLE router_sync (
    router_id bigint CONSTRAINT router_sync_pk PRIMARY KEY CONSTRAINT router_sync_router_fk REFERENCES routers ON DELETE CASCADE,
    generation bigint NOT NULL DEFAULT 0,
    reachable boolean NOT NULL DEFAULT false,
    last_attempt_at timestamptz,
    last_success_at timestamptz,
    last_error text,
    adds integer NOT NULL DEFAULT 0,
    sets integer NOT NULL DEFAULT 0,
    removes integer NOT NULL DEFAULT 0,
    duration_ms integer NOT NULL DEFAULT 0,
    drift integer NOT NULL DEFAULT 0,
    report jsonb NOT NULL DEFAULT '{}' CONSTRAINT router_sync_report_object CHECK (jsonb_typeof(report) = 'object')
);

ALTER TABLE tariffs ADD COLUMN limit_at_download_kbps integer
    CONSTRAINT tariffs_limit_at_download_range CHECK (limit_at_download_kbps BETWEEN 0 AND download_kbps);
ALTER TABLE tariffs ADD COLUMN limit_at_upload_kbps integer
    CONSTRAINT tariffs_limit_at_upload_range CHECK (limit_at_upload_kbps BETWEEN 0 AND upload_kbps);

CREATE INDEX services_router_idx ON services (router_id) WHERE router_id IS NOT NULL;
