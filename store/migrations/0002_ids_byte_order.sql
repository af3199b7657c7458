-- Ids compare byte by byte (COLLATE "C"): they are [A-Za-z0-9_-] strings, never text for people,
-- and every insert compares them in the one-live-order-per-user index, the per-activity index
-- and the items' primary key. Under the database's default collation (C.UTF-8 here) each
-- comparison went through strcoll; now it is a memcmp. Only the indexes are rebuilt.
ALTER TABLE orders
    ALTER COLUMN activity_id TYPE TEXT COLLATE "C",
    ALTER COLUMN user_id TYPE TEXT COLLATE "C",
    ALTER COLUMN channel TYPE TEXT COLLATE "C",
    ALTER COLUMN status TYPE TEXT COLLATE "C";
ALTER TABLE order_items ALTER COLUMN sku TYPE TEXT COLLATE "C";
ALTER TABLE payments ALTER COLUMN payment_id TYPE TEXT COLLATE "C";
