/*
 * image: an uploaded image's size and its thumbnail, made with libvips
 * (doc/protocol.md "Attachments"; why libvips: doc/architecture.md
 * "Attachments").
 *
 * Every upload is hostile until decoded. pl_image_init() lets libvips load
 * JPEG, PNG, GIF and WebP only (every other loader, and every loader libvips
 * itself calls untrusted, is blocked), with one thread per image and no
 * operation cache, so memory and CPU follow the request. pl_image_thumbnail()
 * reads the header first and refuses more than PL_IMAGE_MAX_PIXELS (and
 * progressive JPEGs of more than PL_IMAGE_JPEG_MAX_SCANS scans), decodes
 * sequentially and fails on the first decoding error, and gives up after
 * PL_IMAGE_DECODE_MAX_MS. Some decoders still hold a whole frame in memory
 * (interlaced PNG, GIF, WebP: 4 bytes a pixel), so callers bound how many
 * thumbnails are made at once ([attachments] image_concurrency).
 *
 * libvips is thread-safe once started: any thread may call
 * pl_image_thumbnail(), and each thread that did calls
 * pl_image_thread_done() before it ends.
 */
#ifndef PL_IMAGE_H
#define PL_IMAGE_H

#include <stddef.h>

/* The type of every thumbnail. */
#define PL_IMAGE_THUMB_TYPE "image/jpeg"

/*
 * Starts libvips for the process (argv0 borrowed), as above. Call once,
 * before any thread uses it. Returns 0, or -1 (logged).
 */
int pl_image_init(const char *argv0);

/* Stops libvips at the end of the process (after every thread ended). */
void pl_image_shutdown(void);

/* Frees libvips' state of the calling thread. */
void pl_image_thread_done(void);

enum pl_image_result {
	PL_IMAGE_OK,
	/* Not decoded: over PL_IMAGE_MAX_PIXELS, or a JPEG of more than
	 * PL_IMAGE_JPEG_MAX_SCANS scans. */
	PL_IMAGE_TOO_COSTLY,
	/* Does not decode, took too long, or its thumbnail could not be
	 * written (libvips does not tell the two apart). */
	PL_IMAGE_UNREADABLE,
};

struct pl_image_info {
	int width, height;	/* as shown: EXIF rotation applied */
	int thumb_width, thumb_height;
};

/*
 * Reads the image in the file path (borrowed), which pl_media_sniff() found
 * to be of type (borrowed, "image/..."), and writes a thumbnail of it to
 * thumb_path (borrowed): PL_IMAGE_THUMB_TYPE, its longest side at most
 * PL_IMAGE_THUMB_SIDE (smaller images keep their size), turned upright, no
 * metadata, transparency flattened onto white. Returns PL_IMAGE_OK with
 * *info filled; otherwise thumb_path does not exist and why (whylen bytes)
 * says what went wrong, for the log.
 */
enum pl_image_result pl_image_thumbnail(const char *path, const char *type,
					const char *thumb_path,
					struct pl_image_info *info, char *why,
					size_t whylen);

#endif
