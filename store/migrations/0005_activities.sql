-- Activities, written by `seckillctl` before the ledger (create, load) or with it (restock,
-- close): the record the ledger is preloaded from and can be rebuilt from
-- (`seckillctl activity rebuild`).
CREATE TABLE activities (
    activity_id     TEXT COLLATE "C" PRIMARY KEY,
    name            TEXT        NOT NULL,
    price_cents     BIGINT      NOT NULL CHECK (price_cents >= 0),
    stock_total     BIGINT      NOT NULL CHECK (stock_total >= 0),
    per_user_limit  INTEGER     NOT NULL CHECK (per_user_limit >= 1),
    starts_at       TIMESTAMPTZ NOT NULL,
    ends_at         TIMESTAMPTZ NOT NULL,
    closed          BOOLEAN     NOT NULL DEFAULT false,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
