-- Inbound email: mailboxes, raw-message blobs, the inbound record of every message received, the
-- message keys that make processing exactly-once, participants and attachments.

CREATE TABLE mailboxes (
  tenant_id           uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id                  uuid NOT NULL,
  kind                text NOT NULL CHECK (kind IN ('imap', 'graph', 'gmail', 'mime')),
  address             text NOT NULL,
  address_normalized  text NOT NULL,
  display_name        text,
  settings            jsonb NOT NULL DEFAULT '{}'::jsonb,
  -- AES-256-GCM sealed JSON (src/platform/crypto.ts); never returned by the API.
  credentials         bytea,
  -- Provider cursor state (IMAP UIDVALIDITY and last UID, Graph subscription, Gmail history id).
  state               jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  UNIQUE (tenant_id, address_normalized)
);
-- Provider webhooks name only the mailbox; its tenant is looked up by id before anything else.
CREATE INDEX mailboxes_id_idx ON mailboxes (id);

-- Raw messages and attachment bodies, content-addressed per tenant (deduplicated by SHA-256).
CREATE TABLE blobs (
  tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  sha256      bytea NOT NULL,
  size        bigint NOT NULL,
  content     bytea NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, sha256)
);
ALTER TABLE blobs ALTER COLUMN content SET STORAGE EXTERNAL; -- mostly compressed already (attachments)

-- One row per message received, whatever the channel: what it was, what became of it and why.
CREATE TABLE inbound_messages (
  tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id              uuid NOT NULL,
  mailbox_id      uuid NOT NULL,
  source          text NOT NULL CHECK (source IN ('mime', 'graph', 'gmail', 'imap')),
  -- The pointer the job fetches by (blob hash, Graph message id, Gmail history id, IMAP uid).
  pointer         jsonb NOT NULL,
  blob_sha256     bytea,
  message_key     text,
  status          text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'processing', 'created', 'appended',
                    'duplicate', 'skipped', 'failed', 'quarantined')),
  reason          text,
  ticket_id       uuid,
  ticket_message_id uuid,
  attempts        integer NOT NULL DEFAULT 0,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, mailbox_id) REFERENCES mailboxes (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX inbound_messages_list_idx ON inbound_messages (tenant_id, created_at DESC, id DESC);
CREATE INDEX inbound_messages_mailbox_idx ON inbound_messages (tenant_id, mailbox_id, status, created_at DESC);

-- The exactly-once claim: a message key is inserted in the same transaction as the ticket or
-- comment it causes. A retried job finds it taken and ends as a duplicate of the first outcome.
-- It is also the index of Message-IDs used for threading (tenant- and mailbox-scoped).
CREATE TABLE message_keys (
  tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  mailbox_id   uuid NOT NULL,
  key          text NOT NULL,
  inbound_id   uuid NOT NULL,
  outcome      text NOT NULL,
  reason       text,
  ticket_id    uuid,
  created_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, mailbox_id, key),
  FOREIGN KEY (tenant_id, mailbox_id) REFERENCES mailboxes (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX message_keys_ticket_idx ON message_keys (tenant_id, ticket_id);

-- Addresses on a ticket's mail (To/Cc of its messages, and the requester's): who may use the
-- subject tag to reach it.
CREATE TABLE ticket_participants (
  tenant_id           uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  ticket_id           uuid NOT NULL,
  address_normalized  text NOT NULL,
  created_at          timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, ticket_id, address_normalized),
  FOREIGN KEY (tenant_id, ticket_id) REFERENCES tickets (tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE attachments (
  tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id            uuid NOT NULL,
  ticket_id     uuid NOT NULL,
  message_id    uuid NOT NULL,
  filename      text NOT NULL,
  content_type  text NOT NULL,
  size          bigint NOT NULL,
  sha256        bytea NOT NULL,
  content_id    text,
  inline        boolean NOT NULL DEFAULT false,
  created_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, message_id) REFERENCES ticket_messages (tenant_id, id) ON DELETE CASCADE,
  FOREIGN KEY (tenant_id, sha256) REFERENCES blobs (tenant_id, sha256)
);
CREATE INDEX attachments_message_idx ON attachments (tenant_id, message_id);

-- Mail details of a ticket message.
ALTER TABLE ticket_messages
  ADD COLUMN inbound_id     uuid,
  ADD COLUMN mail_from      text,
  ADD COLUMN mail_to        jsonb,
  ADD COLUMN mail_cc        jsonb,
  ADD COLUMN mail_subject   text,
  ADD COLUMN reply_text     text,
  ADD COLUMN classification jsonb;

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['mailboxes', 'blobs', 'inbound_messages', 'message_keys', 'ticket_participants', 'attachments']
  LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (tenant_id = current_tenant_id()) '
                   'WITH CHECK (tenant_id = current_tenant_id())', t);
  END LOOP;
END
$$;
