-- A transition's follow-ups run after its commit: the ledger's confirm, release or status
-- mirror, and the lifecycle event. `settled` is false from the transition until they are done,
-- so the sweep completes any that failed (a release that failed, an event the broker refused).
ALTER TABLE orders ADD COLUMN settled BOOLEAN NOT NULL DEFAULT true;
CREATE INDEX orders_unsettled ON orders (updated_at) WHERE NOT settled;

-- A payment the order could not take (it was paid already by another payment) is kept, and its
-- money must go back: `applied` = false, announced with a `PAYMENT_REFUND` event.
ALTER TABLE payments ADD COLUMN applied BOOLEAN NOT NULL DEFAULT true;
ALTER TABLE payments ADD COLUMN refund_announced BOOLEAN NOT NULL DEFAULT true;
CREATE INDEX payments_refund_pending ON payments (received_at) WHERE NOT refund_announced;
