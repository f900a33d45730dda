-- Delivery of outbox events to the certificate authority.
--
-- A worker leases the events it is sending (leased_by, leased_until) in a
-- short transaction and settles each one after the CA answers; a worker
-- that dies leaves a lease that simply runs out, and another worker sends
-- the event again under the same event id, which the CA applies once.

ALTER TABLE outbox ADD COLUMN leased_by TEXT;
ALTER TABLE outbox ADD COLUMN leased_until TEXT;
ALTER TABLE outbox ADD COLUMN dead_at TEXT;

-- When the suspension's ca_sync last changed (confirmed or failed).
ALTER TABLE suspensions ADD COLUMN ca_sync_at TEXT;

-- Per-certificate order: an event waits for every earlier event of its certificate.
CREATE INDEX outbox_by_certificate ON outbox (certificate_id, seq);
CREATE INDEX outbox_by_suspension ON outbox (suspension_id);
