-- Whether the order's stock went back to the sale (set when it is cancelled; stays set when a
-- late payment then makes it refunding): an order rebuilt into the ledger
-- (`seckillctl activity rebuild`) counts as released, not sold, from this alone.
ALTER TABLE orders ADD COLUMN stock_released BOOLEAN NOT NULL DEFAULT false;

-- The writer checks each batch against the parked orders.
CREATE INDEX parked_by_order ON parked (order_id) WHERE order_id IS NOT NULL;
