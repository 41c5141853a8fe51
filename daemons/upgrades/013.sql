-- lastmile schema upgrade 12 -> 13
--
-- The helpdesk's staff notices (kind ticket_staff: an agent told of a new ticket or a message on
-- one) may have templates; messages.cc: the addresses a ticket's reply shows in its Cc header
-- (they went as BCC before). A ticket's reply still waiting to go takes its BCC as Cc.
--
-- Locks, held until the step commits: messages ACCESS EXCLUSIVE for an added column (no
-- rewrite: a constant default) and one pass over it for the replies not sent yet;
-- message_templates ACCESS EXCLUSIVE while its CHECK is checked again (a few rows).

ALTER TABLE messages ADD COLUMN cc text NOT NULL DEFAULT '';

UPDATE messages SET cc = bcc, bcc = ''
WHERE kind = 'ticket_reply' AND status IN ('scheduled', 'sending', 'failed') AND bcc <> '';

ALTER TABLE message_templates DROP CONSTRAINT message_templates_kind_valid,
    ADD CONSTRAINT message_templates_kind_valid CHECK (kind IN (
        'invoice', 'proforma', 'payment', 'credit_note', 'reminder_1', 'reminder_2', 'reminder_3',
        'prepaid_1', 'prepaid_2', 'prepaid_3', 'blocking', 'inactive', 'card_expiry', 'contract_end',
        'ticket_reply', 'ticket_staff', 'announcement'));
