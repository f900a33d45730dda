-- The outbox keeps every event it ever delivered, so at national scale it
-- is mostly history: tens of millions of done rows against a backlog of a
-- few. The worker and on-call read only the events still on their way or
-- given up on, so their indexes hold only those rows: a claim reads the due
-- events in the order it takes them and stops at its batch, and the
-- backlog's count and the dead letters cost what is pending or dead, never
-- what was ever delivered. (On the index on (state, next_attempt_at), a
-- claim ordered by seq walked the primary key through every done row: a
-- second per claim with two million of them.) The queries write their
-- states into their text, as these conditions do, so that the planner
-- matches them to the indexes.
--
-- outbox_by_certificate stays whole: a certificate has a handful of events
-- in its life, and a partial index of its unsettled ones, which statistics
-- taken before a burst of events think empty, was read whole for every
-- event a claim considered.
DROP INDEX outbox_due;
CREATE INDEX outbox_due ON outbox (next_attempt_at, seq, created_at) WHERE state = 'pending';
CREATE INDEX outbox_dead ON outbox (seq) WHERE state = 'dead';
-- Reconciliation asks which events were delivered after a CRL was issued
-- (the CRL cannot show them yet): a few hours of deliveries, found by time.
CREATE INDEX outbox_done_at ON outbox (done_at) WHERE state = 'done';
