-- 013: an operator can disable an account (parley-admin user disable).
--
-- A disabled user's logins are refused (403 forbidden, once the password
-- is right) until parley-admin user enable. Disabling also revokes every
-- session in the same transaction, which is what ends the tokens already
-- out (every request and every relay checks its session). NULL: enabled.
-- A column without a default is added without rewriting the table.

ALTER TABLE users ADD COLUMN disabled_at timestamptz;
