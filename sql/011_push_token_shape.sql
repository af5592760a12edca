-- 011: push tokens have their platform's shape (lib/validate.c,
-- pl_validate_push_token()). An APNs token goes into the request path
-- /3/device/<token> and an FCM token into the JSON of the request, so the
-- database holds only what the API now takes: for apns an even count of 64
-- to 200 hex digits (32 bytes today; Apple says they may grow), for fcm
-- letters, digits, '_', ':' and '-'. A token stored before the API checked
-- this and that does not fit is cleared: such a device gets no pushes until
-- the app registers a proper token again, as it does at every start.

UPDATE devices SET push_token = NULL, push_token_set_at = now()
WHERE push_token IS NOT NULL
  AND ((platform = 'apns' AND push_token !~ '^([0-9A-Fa-f]{2}){32,100}$')
    OR (platform = 'fcm' AND push_token !~ '^[A-Za-z0-9_:-]+$'));

ALTER TABLE devices ADD CONSTRAINT devices_push_token_shape CHECK (
    push_token IS NULL
    OR (platform = 'apns' AND push_token ~ '^([0-9A-Fa-f]{2}){32,100}$')
    OR (platform = 'fcm' AND push_token ~ '^[A-Za-z0-9_:-]+$')
    OR platform = 'web');
