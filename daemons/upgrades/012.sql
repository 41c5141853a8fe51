-- lastmile schema upgrade 11 -> 12
--
-- tickets: statuses (the five built-ins), groups, their members and shifts, IMAP inboxes, the
-- sender deny-list, tickets, watchers, messages, attachments, canned replies, rules, the
-- automatic tickets' settings (one row), and the triggers that put new tickets and messages in
-- the events outbox; messages.reply_headers.
--
-- Locks, held until the step commits: messages ACCESS EXCLUSIVE for an added column (no
-- rewrite: no default); partners, customers, administrators and messages SHARE ROW
-- EXCLUSIVE for the new tables' foreign keys. Every other table is new.

ALTER TABLE messages ADD COLUMN reply_headers jsonb
    CONSTRAINT messages_reply_headers_object CHECK (jsonb_typeof(reply_headers) = 'object');

-- Statuses: the five built-ins the automation moves tickets through (builtin: their codes are
-- fixed, admin/tickets/automation.py Status) and the operator's own. closed: the ticket is done
-- (a customer's reply to it reopens it); position orders them in lists.
CREATE TABLE ticket_statuses (
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
    ('resolved', 'Resolved', true, true, 50);

-- Groups of agents a ticket is given to. assign_mode says who gets a new ticket of the group:
-- 'nobody' (every member is told, none is assigned), 'random' (a random member), 'shift' (a
-- random member on shift now, ticket_shifts; nobody on shift: as 'nobody').
CREATE TABLE ticket_groups (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT ticket_groups_pk PRIMARY KEY,
    partner_id bigint CONSTRAINT ticket_groups_partner_fk REFERENCES partners ON DELETE RESTRICT,
    name text NOT NULL CONSTRAINT ticket_groups_name_nonempty CHECK (name <> ''),
    assign_mode text NOT NULL DEFAULT 'nobody'
        CONSTRAINT ticket_groups_assign_mode_valid CHECK (assign_mode IN ('nobody', 'random', 'shift')),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX ticket_groups_name_unique ON ticket_groups (coalesce(partner_id, 0), lower(name));

CREATE TABLE ticket_group_members (
    group_id bigint NOT NULL CONSTRAINT ticket_group_members_group_fk REFERENCES ticket_groups ON DELETE CASCADE,
    administrator_id bigint NOT NULL CONSTRAINT ticket_group_members_administrator_fk REFERENCES administrators ON DELETE RESTRICT,
    CONSTRAINT ticket_group_members_pk PRIMARY KEY (group_id, administrator_id)
);

-- A member's shift: on these weekdays (0 Monday .. 6 Sunday), from starts to ends in the
-- operator's time zone; ends <= starts crosses midnight (the hours after it belong to the day before).
CREATE TABLE ticket_shifts (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT ticket_shifts_pk PRIMARY KEY,
    group_id bigint NOT NULL CONSTRAINT ticket_shifts_group_fk REFERENCES ticket_groups ON DELETE CASCADE,
    administrator_id bigint NOT NULL CONSTRAINT ticket_shifts_administrator_fk REFERENCES administrators ON DELETE RESTRICT,
    weekdays smallint[] NOT NULL
        CONSTRAINT ticket_shifts_weekdays_valid CHECK (weekdays <@ '{0,1,2,3,4,5,6}' AND cardinality(weekdays) > 0),
    starts time NOT NULL,
    ends time NOT NULL
);
CREATE INDEX ticket_shifts_group_idx ON ticket_shifts (group_id);

-- Inboxes read over IMAP into tickets (admin/tickets/mailbox.py, intake.py), each a partner's
-- (replies go out with its mail settings). read_mode: 'unread' (UNSEEN) or 'all', since: from
-- that day; mark_read: \Seen once a mail is a ticket's message. accept_unknown: a mail from an
-- address no customer has makes a ticket of an unknown sender (false: it is refused, and counted).
-- address: the inbox's own address (replies come from it, and mail from it is a loop).
-- uidvalidity/last_uid: where the reading got to (a new UIDVALIDITY reads the folder again; the
-- Message-ID keeps a mail from landing twice).
CREATE TABLE ticket_inboxes (
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
CREATE UNIQUE INDEX ticket_inboxes_address_unique ON ticket_inboxes (lower(address));

-- Mail not to make tickets of (admin/tickets/denylist.py): on the sender's address, the subject
-- or the text; inbox_id NULL: every inbox's.
CREATE TABLE ticket_denylist (
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
CREATE TABLE tickets (
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
CREATE INDEX tickets_list_idx ON tickets (last_activity_at DESC, id DESC);
CREATE INDEX tickets_status_idx ON tickets (status, last_activity_at DESC, id DESC);
CREATE INDEX tickets_open_assignee_idx ON tickets (assignee_id, last_activity_at DESC) WHERE assignee_id IS NOT NULL;
CREATE INDEX tickets_customer_idx ON tickets (customer_id, created_at DESC) WHERE customer_id IS NOT NULL;
CREATE INDEX tickets_partner_idx ON tickets (partner_id, last_activity_at DESC, id DESC) WHERE partner_id IS NOT NULL;
CREATE INDEX tickets_created_idx ON tickets (created_at);
CREATE INDEX tickets_requester_idx ON tickets (lower(requester_email)) WHERE customer_id IS NULL;

CREATE TABLE ticket_watchers (
    ticket_id bigint NOT NULL CONSTRAINT ticket_watchers_ticket_fk REFERENCES tickets ON DELETE CASCADE,
    administrator_id bigint NOT NULL CONSTRAINT ticket_watchers_administrator_fk REFERENCES administrators ON DELETE RESTRICT,
    CONSTRAINT ticket_watchers_pk PRIMARY KEY (ticket_id, administrator_id)
);

-- A ticket's messages, append-only: 'customer' (from the customer or the unknown sender),
-- 'staff' (a reply the customer gets), 'note' (internal, never shown to the customer), 'system'
-- (what the automation did). mail_id: the mail's Message-ID, ours for staff replies
-- (admin/tickets/threading.py) or the sender's: unique, so a mail read twice lands once.
-- outgoing_id: the message (notifications) a staff reply went out as.
CREATE TABLE ticket_messages (
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
CREATE INDEX ticket_messages_ticket_idx ON ticket_messages (ticket_id, id);

-- Attachments of a message, kept in the database (size-limited by intake and upload). file_name
-- is made safe (inbound.py safe_filename); served_type is what the bytes are served as
-- (inbound.py sniff: anything a browser could run is application/octet-stream), always as a
-- download.
CREATE TABLE ticket_attachments (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT ticket_attachments_pk PRIMARY KEY,
    message_id bigint NOT NULL CONSTRAINT ticket_attachments_message_fk REFERENCES ticket_messages ON DELETE RESTRICT,
    file_name text NOT NULL CONSTRAINT ticket_attachments_file_name_nonempty CHECK (file_name <> ''),
    declared_type text NOT NULL DEFAULT 'application/octet-stream',
    served_type text NOT NULL DEFAULT 'application/octet-stream',
    size integer NOT NULL CONSTRAINT ticket_attachments_size_valid CHECK (size = octet_length(data)),
    sha256 bytea NOT NULL,
    data bytea NOT NULL
);
CREATE INDEX ticket_attachments_message_idx ON ticket_attachments (message_id);

-- Canned replies: a reply's text as a template (the notifications sandbox; the ticket, its
-- customer and its last message are its variables). partner_id NULL: every partner's.
CREATE TABLE ticket_canned_replies (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT ticket_canned_replies_pk PRIMARY KEY,
    partner_id bigint CONSTRAINT ticket_canned_replies_partner_fk REFERENCES partners ON DELETE RESTRICT,
    name text NOT NULL CONSTRAINT ticket_canned_replies_name_nonempty CHECK (name <> ''),
    body text NOT NULL CONSTRAINT ticket_canned_replies_body_nonempty CHECK (body <> ''),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The automation's rules (admin/tickets/automation.py Rule): a condition and an action, as JSON
-- of its Condition and Action. The worker applies the enabled ones to the tickets they are due for.
CREATE TABLE ticket_rules (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT ticket_rules_pk PRIMARY KEY,
    name text NOT NULL CONSTRAINT ticket_rules_name_nonempty CHECK (name <> ''),
    enabled boolean NOT NULL DEFAULT true,
    condition jsonb NOT NULL CONSTRAINT ticket_rules_condition_object CHECK (jsonb_typeof(condition) = 'object'),
    action jsonb NOT NULL CONSTRAINT ticket_rules_action_object CHECK (jsonb_typeof(action) = 'object'),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- New tickets and new messages (not notes) in the outbox: ticket.created, ticket.message.
-- Tickets the system opens itself (admin/tickets/automatic.py), each kind on or off: a tariff
-- plan created or changed (on by default: the seed ISP's Splynx hard-codes it), a CPE fault, a
-- failed payment collection, a router out of sync for longer than router_drift_minutes (0: off);
-- in group_id (NULL: no group). One row.
CREATE TABLE ticket_settings (
    id boolean CONSTRAINT ticket_settings_pk PRIMARY KEY DEFAULT true CONSTRAINT ticket_settings_one_row CHECK (id),
    tariff_tickets boolean NOT NULL DEFAULT true,
    cpe_fault_tickets boolean NOT NULL DEFAULT true,
    payment_failure_tickets boolean NOT NULL DEFAULT true,
    router_drift_minutes integer NOT NULL DEFAULT 60
        CONSTRAINT ticket_settings_router_drift_range CHECK (router_drift_minutes BETWEEN 0 AND 525600),
    group_id bigint CONSTRAINT ticket_settings_group_fk REFERENCES ticket_groups ON DELETE RESTRICT,
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO ticket_settings (id) VALUES (true);

CREATE TRIGGER tickets_emit AFTER INSERT ON tickets REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION lastmile_emit_tickets();
CREATE TRIGGER ticket_messages_emit AFTER INSERT ON ticket_messages REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION lastmile_emit_tickets();

