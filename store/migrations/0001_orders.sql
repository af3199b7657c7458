-- Orders persisted from the ledger. Column names are a contract (docs/ARCHITECTURE.md, "The
-- database"): operators query them.
CREATE TABLE orders (
    order_id      BIGINT PRIMARY KEY,              -- the ledger's 63-bit snowflake id
    activity_id   TEXT        NOT NULL,
    user_id       TEXT        NOT NULL,
    quantity      INTEGER     NOT NULL CHECK (quantity > 0),
    amount_cents  BIGINT      NOT NULL CHECK (amount_cents >= 0),
    channel       TEXT        NOT NULL,
    status        TEXT        NOT NULL CHECK (status IN
                  ('queued', 'pending_payment', 'paid', 'cancelled', 'refunding', 'refunded')),
    created_at    TIMESTAMPTZ NOT NULL,            -- the win, by the Redis clock
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    persisted_at  TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    per_user_limit INTEGER    NOT NULL DEFAULT 0   -- the activity's limit at the time of the win
);

-- Where the limit is 1, a user holds at most one live order per activity (defence in depth:
-- the ledger already enforces it). Cancelled orders do not count: their stock went back.
CREATE UNIQUE INDEX orders_one_live_per_user ON orders (activity_id, user_id)
    WHERE per_user_limit = 1 AND status IN ('queued', 'pending_payment', 'paid');
CREATE INDEX orders_by_activity ON orders (activity_id);

CREATE TABLE order_items (
    order_id          BIGINT  NOT NULL REFERENCES orders (order_id),
    sku               TEXT    NOT NULL,
    quantity          INTEGER NOT NULL CHECK (quantity > 0),
    unit_price_cents  BIGINT  NOT NULL CHECK (unit_price_cents >= 0),
    PRIMARY KEY (order_id, sku)
);

CREATE TABLE payments (
    payment_id    TEXT PRIMARY KEY,
    order_id      BIGINT      NOT NULL REFERENCES orders (order_id),
    amount_cents  BIGINT      NOT NULL,
    received_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
