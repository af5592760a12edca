/*
 * limits: the size limits of doc/protocol.md, in one place.
 *
 * Configurable limits (request body, rates) live in config.h; these are the
 * fixed limits of the contract that validation and the schema agree on.
 *
 * Not named limits.h: GCC's own <limits.h> reaches the C library's through
 * #include_next, which also searches the -iquote directories, so a
 * limits.h in lib/ replaced the system's (MB_LEN_MAX went undefined, and
 * with _FORTIFY_SOURCE, as Debian builds, <stdlib.h> failed to compile).
 */
#ifndef PL_LIMITS_H
#define PL_LIMITS_H

#define PL_BODY_MIN_BYTES 1
#define PL_BODY_MAX_BYTES 4096
#define PL_USERNAME_MIN 3
#define PL_USERNAME_MAX 32
#define PL_PASSWORD_MIN_BYTES 8
#define PL_PASSWORD_MAX_BYTES 256
#define PL_DISPLAY_NAME_MAX_CHARS 64
#define PL_GROUP_MIN_MEMBERS 2
#define PL_GROUP_MAX_MEMBERS 500
#define PL_CLIENT_MSG_ID_MAX 64
#define PL_PUSH_TOKEN_MAX 4096
#define PL_WS_FRAME_MAX_BYTES 65536
#define PL_ATTACHMENTS_PER_MESSAGE_MAX 10
#define PL_EMOJI_MAX_BYTES 32
#define PL_REACTIONS_PER_MESSAGE_MAX 20
/* An attachment's file name, in characters (the schema's). */
#define PL_ATTACHMENT_NAME_MAX_CHARS 255
/*
 * Images: the most pixels (width times height) parley-api decodes for a
 * thumbnail, the longest side of a thumbnail, and how long making one may
 * take (doc/protocol.md "Attachments").
 */
#define PL_IMAGE_MAX_PIXELS 50000000LL
#define PL_IMAGE_THUMB_SIDE 320
#define PL_IMAGE_DECODE_MAX_MS 10000
/* Scans of a progressive JPEG: encoders write about 10. */
#define PL_IMAGE_JPEG_MAX_SCANS 100
/* Sends in one post_messages() call. */
#define PL_POST_BATCH_MAX 256

#endif
