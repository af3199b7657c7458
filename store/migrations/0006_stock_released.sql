-- Whether the order's stock went back to the sale (set when it is cancelled; stays set when a
-- late payment then makes it refunding): an order rebuilt into the ledger
-- (`seckillctl activity rebuild`) counts as released, not sold, from this alone.
ALTER TABLE orders ADD COLUMN stock_released BOOLEAN NOT NULL DEFAULT false;
