-- 008: the counters posting bumps are updated in place (HOT).
-- Every batch updates its conversations' last_message_id and
-- last_activity_at, and its recipients' user_heads. An index on
-- last_activity_at made each conversation update a new row version with a
-- new entry in all three of its indexes: a busy conversation piled up
-- thousands of dead versions between vacuums, and every lookup of it walked
-- them (posting slowed down run after run). Conversation lists read a user's
-- memberships and sort those, which that index never served. With it gone,
-- and room left in each page for the new versions, the updates are HOT: no
-- index entry, and the page prunes the old version itself.
DROP INDEX conversations_activity;
ALTER TABLE conversations SET (fillfactor = 50);
ALTER TABLE user_heads SET (fillfactor = 50);
