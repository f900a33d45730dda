-- The W3C traceparent of the transaction that wrote each outbox event, so
-- that its delivery to the CA continues the trace of the request behind it.
-- Empty when tracing was off.
ALTER TABLE outbox ADD COLUMN traceparent TEXT;
