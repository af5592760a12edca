-- 019: message_json() goes: nothing calls it since conversation_json()
-- shows the last message as its member sees it (message_out(), 015).

DROP FUNCTION message_json(messages);
