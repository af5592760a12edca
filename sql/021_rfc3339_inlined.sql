-- 021: rfc3339() is STABLE, as its body is, so PostgreSQL inlines it.
--
-- 001 declared it IMMUTABLE, but to_char(timestamp, text) is STABLE, and
-- PostgreSQL does not inline a function whose body is more volatile than
-- the function says. So every call ran as a query of its own (fmgr_sql:
-- executor start, run and end), and message_out() makes three a message:
-- 150 for a page of history, three for every message stored.
--
-- Measured on one connection with pgbench against a bench stack (CPU of
-- every PostgreSQL process per transaction): a page of 50 messages of
-- history 0.47-0.59 ms before, 0.25-0.39 ms after; post_messages of one
-- message, committed, 0.81-0.95 ms before, 0.74 ms after.
--
-- Nothing stores its result (no index, no generated column), so nothing
-- depends on its being IMMUTABLE.

ALTER FUNCTION rfc3339(timestamptz) STABLE;
