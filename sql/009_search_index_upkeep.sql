-- 009: the search indexes are merged by autovacuum, not by a send.
-- New messages enter the two GIN indexes through their pending lists. When a
-- list outgrew gin_pending_list_limit (4 MB), the send that overflowed it
-- merged the whole list while holding its conversations' and recipients'
-- locks: a stall of 50-150 ms every few thousand messages, for that send and
-- every one queued behind it. The lists may now grow to 32 MB, and messages
-- is vacuumed (which merges them) after every 20,000 new rows rather than
-- after a fifth of the table; with autovacuum_naptime at 5 s (README
-- "Deploying") autovacuum gets there first at any rate this server takes.
ALTER INDEX messages_words SET (gin_pending_list_limit = 32768);
ALTER INDEX messages_trgm SET (gin_pending_list_limit = 32768);
ALTER TABLE messages SET (autovacuum_vacuum_insert_threshold = 20000,
                          autovacuum_vacuum_insert_scale_factor = 0);
