-- Messages the writer could not apply and must not drop: parked here with the reason, for an
-- operator (`seckillctl parked list`), instead of being acknowledged and lost.
CREATE TABLE parked (
    key          TEXT COLLATE "C" PRIMARY KEY,   -- 'order:<id>' or 'message:<broker msg id>': parked once
    topic        TEXT COLLATE "C" NOT NULL,
    order_id     BIGINT,                         -- when the message names one
    activity_id  TEXT COLLATE "C",
    reason       TEXT COLLATE "C" NOT NULL,      -- e.g. 'duplicate_buyer', 'undecodable'
    detail       TEXT NOT NULL,
    body         BYTEA NOT NULL,                 -- the message body as received
    parked_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX parked_by_time ON parked (parked_at);
