/*
 * media: what an upload's bytes and headers say about it (doc/protocol.md
 * "Attachments"), decided without trusting the client.
 *
 * The content type of an image comes from its first bytes only (magic
 * numbers: JPEG, PNG, GIF, WebP); a client's Content-Type is kept only for
 * files that are not images and only when it is one of a short list of
 * types no browser runs as active content; anything else is stored as
 * application/octet-stream. File names are the client's, cleaned so they
 * are safe to show and to put in a Content-Disposition header; they never
 * name a file on disk: pl_media_storage_name() does, from random bytes.
 *
 * Pure functions over borrowed buffers (but the random storage name), used
 * by parley-api and by the attachment fuzz target alike.
 */
#ifndef PL_MEDIA_H
#define PL_MEDIA_H

#include <stddef.h>

#include "pl_limits.h"

/* How many leading bytes pl_media_sniff() looks at. */
#define PL_MEDIA_SNIFF_BYTES 12

/* The type of a file that is neither a known image nor a listed type. */
#define PL_MEDIA_OCTET_STREAM "application/octet-stream"

/* The room a cleaned name needs: 255 characters of up to 4 bytes, NUL. */
#define PL_MEDIA_NAME_BYTES (PL_ATTACHMENT_NAME_MAX_CHARS * 4 + 1)

/*
 * A storage name: "xx/" then 32 hex digits, NUL (xx repeats the first two
 * digits, so no directory holds more than 1/256 of the files).
 */
#define PL_MEDIA_STORAGE_BYTES 36

/*
 * The image type head[0..len) starts with: "image/jpeg", "image/png",
 * "image/gif" or "image/webp" (static strings), or NULL when it is none of
 * them. Needs PL_MEDIA_SNIFF_BYTES bytes to tell every type; fewer can only
 * match the shorter signatures.
 */
const char *pl_media_sniff(const unsigned char *head, size_t len);

/*
 * The type to store for a file that is not an image, from the client's
 * Content-Type claimed (borrowed, may be NULL): the listed type it names,
 * compared without parameters and case (a static string), or
 * PL_MEDIA_OCTET_STREAM. Image types are never taken from a client: an
 * image is what pl_media_sniff() says it is.
 */
const char *pl_media_file_type(const char *claimed);

/* Whether type (a stored content type) is an image: 1 or 0. */
int pl_media_is_image(const char *type);

/*
 * Cleans a file name the client sent, in[0..len) (already percent-decoded),
 * into out (outlen bytes, at least PL_MEDIA_NAME_BYTES to hold any name):
 * path separators ('/', '\') become '_', control characters (C0, DEL, C1)
 * and the bidirectional overrides that make "gpj.exe" read as "exe.jpg" are
 * dropped, surrounding spaces are trimmed, "." and ".." become "", and the
 * result is cut to PL_ATTACHMENT_NAME_MAX_CHARS characters. Returns 0, or
 * -1 when in is not valid UTF-8 (or holds a NUL byte), leaving out "".
 */
int pl_media_clean_name(const char *in, size_t len, char *out, size_t outlen);

/*
 * A new random storage name into out (PL_MEDIA_STORAGE_BYTES): a relative
 * path under [attachments] dir that matches the schema's
 * '^[0-9a-z/._-]{1,200}$' and that no client chose.
 */
void pl_media_storage_name(char out[PL_MEDIA_STORAGE_BYTES]);

#endif
