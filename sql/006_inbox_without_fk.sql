-- 006: inbox rows no longer check their user with a foreign key.
-- The check cost a lookup and a FOR KEY SHARE lock on the users row for every
-- inbox row, that is for every recipient of every message: a third of the
-- time of posting to a group of 100. It proved nothing post_messages() does
-- not hold already: a message's recipients are read from members (which
-- references users) while their user_heads rows are locked, and a user's
-- heads row goes with the user. What the key's ON DELETE CASCADE did, a
-- statement trigger on users does now.
ALTER TABLE inbox DROP CONSTRAINT inbox_user_id_fkey;

CREATE FUNCTION users_drop_inbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM inbox i USING gone g WHERE i.user_id = g.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER users_drop_inbox AFTER DELETE ON users
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION users_drop_inbox();
