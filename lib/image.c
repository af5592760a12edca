#include "image.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <vips/vips.h>

#include "clock.h"
#include "pl_limits.h"
#include "log.h"
#include "banned.h"

/*
 * The loaders left open: the four image types pl_media_sniff() knows
 * (libvips 8.14 class names; pngload is libpng's, gifload libnsgif's).
 */
static const char *const loaders[] = {
	"VipsForeignLoadJpeg", "VipsForeignLoadPng", "VipsForeignLoadNsgif",
	"VipsForeignLoadWebp",
};

/* libvips' warnings about a broken upload are the upload's, not ours. */
static void on_vips_log(const char *domain, GLogLevelFlags level,
			const char *message, void *arg)
{
	(void)domain;
	(void)arg;
	if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL))
		pl_log(PL_LOG_WARN, "image: libvips: %s", message);
	else
		pl_log(PL_LOG_DEBUG, "image: libvips: %s", message);
}

int pl_image_init(const char *argv0)
{
	if (VIPS_INIT(argv0)) {
		pl_log(PL_LOG_ERR, "image: cannot start libvips: %s",
		       vips_error_buffer());
		return -1;
	}
	/*
	 * One thread per image, on the request's own thread and one helper:
	 * parley-api's worker threads are the concurrency. No cache: an
	 * upload is read once, and cached operations would hold its pixels.
	 */
	vips_concurrency_set(1);
	vips_cache_set_max(0);
	vips_cache_set_max_mem(0);
	vips_cache_set_max_files(0);
	vips_block_untrusted_set(TRUE);
	vips_operation_block_set("VipsForeignLoad", TRUE);
	for (size_t i = 0; i < sizeof(loaders) / sizeof(loaders[0]); i++)
		vips_operation_block_set(loaders[i], FALSE);
	g_log_set_handler("VIPS", G_LOG_LEVEL_MASK, on_vips_log, NULL);
	return 0;
}

void pl_image_shutdown(void)
{
	vips_shutdown();
}

void pl_image_thread_done(void)
{
	vips_thread_shutdown();
}

/* libvips' last error, for why; cleared. */
static void vips_why(char *why, size_t whylen, const char *what)
{
	char *msg = vips_error_buffer_copy();
	size_t n;

	snprintf(why, whylen, "%s: %s", what, msg ? msg : "unknown error");
	g_free(msg);
	/* One log line: libvips ends each of its messages with a newline. */
	n = strlen(why);
	while (n > 0 && why[n - 1] == '\n')
		why[--n] = '\0';
	for (char *p = why; *p; p++)
		if (*p == '\n')
			*p = ' ';
}

/* Opens path with the loader for type, reading only its header. */
static int open_header(const char *path, const char *type, VipsImage **out)
{
	*out = NULL;
	if (strcmp(type, "image/jpeg") == 0)
		return vips_jpegload(path, out, "access", VIPS_ACCESS_SEQUENTIAL,
				     "fail_on", VIPS_FAIL_ON_ERROR, NULL);
	if (strcmp(type, "image/png") == 0)
		return vips_pngload(path, out, "access", VIPS_ACCESS_SEQUENTIAL,
				    "fail_on", VIPS_FAIL_ON_ERROR, NULL);
	if (strcmp(type, "image/gif") == 0)
		return vips_gifload(path, out, "access", VIPS_ACCESS_SEQUENTIAL,
				    "fail_on", VIPS_FAIL_ON_ERROR, NULL);
	if (strcmp(type, "image/webp") == 0)
		return vips_webpload(path, out, "access", VIPS_ACCESS_SEQUENTIAL,
				     "fail_on", VIPS_FAIL_ON_ERROR, NULL);
	vips_error("image", "not an image type: %s", type);
	return -1;
}

/*
 * How many scans (SOS markers, FF DA) the JPEG file path holds, counting
 * at most limit + 1. Entropy-coded data escapes every FF byte, so the pair
 * never occurs inside a scan; an embedded EXIF thumbnail adds its own.
 * Returns -1 when the file cannot be read.
 */
static int jpeg_scans(const char *path, int limit)
{
	unsigned char buf[65536];
	int fd = open(path, O_RDONLY | O_CLOEXEC), scans = 0, prev_ff = 0;
	ssize_t n = 0;

	if (fd < 0)
		return -1;
	while (scans <= limit) {
		n = read(fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n; i++) {
			scans += prev_ff && buf[i] == 0xda;
			prev_ff = buf[i] == 0xff;
		}
	}
	close(fd);
	return n < 0 ? -1 : scans;
}

/*
 * The size path shows upright into info, from its header alone, once it
 * is known not to cost too much to decode. Returns PL_IMAGE_OK,
 * PL_IMAGE_TOO_COSTLY or PL_IMAGE_UNREADABLE.
 */
static enum pl_image_result read_size(const char *path, const char *type,
				      struct pl_image_info *info, char *why,
				      size_t whylen)
{
	VipsImage *head;
	int orientation = 1;
	long long w, h;

	if (open_header(path, type, &head)) {
		vips_why(why, whylen, "unreadable header");
		return PL_IMAGE_UNREADABLE;
	}
	w = vips_image_get_width(head);
	h = vips_image_get_height(head);
	if (vips_image_get_typeof(head, VIPS_META_ORIENTATION) &&
	    vips_image_get_int(head, VIPS_META_ORIENTATION, &orientation))
		orientation = 1;
	g_object_unref(head);
	if (w <= 0 || h <= 0 || w * h > PL_IMAGE_MAX_PIXELS) {
		snprintf(why, whylen, "%lld x %lld pixels, over %lld", w, h,
			 PL_IMAGE_MAX_PIXELS);
		return PL_IMAGE_TOO_COSTLY;
	}
	/*
	 * libjpeg reads every scan of a progressive JPEG before its first
	 * row, with no way to stop it: a file of thousands of tiny scans is
	 * minutes of CPU that no deadline would interrupt.
	 */
	if (strcmp(type, "image/jpeg") == 0 &&
	    jpeg_scans(path, PL_IMAGE_JPEG_MAX_SCANS) > PL_IMAGE_JPEG_MAX_SCANS) {
		snprintf(why, whylen, "a JPEG of over %d scans",
			 PL_IMAGE_JPEG_MAX_SCANS);
		return PL_IMAGE_TOO_COSTLY;
	}
	/* EXIF orientations 5 to 8 turn the picture a quarter. */
	info->width = (int)(orientation >= 5 && orientation <= 8 ? h : w);
	info->height = (int)(orientation >= 5 && orientation <= 8 ? w : h);
	return PL_IMAGE_OK;
}

struct deadline {
	long long at_ms;	/* monotonic */
	int passed;
};

/*
 * Called as the thumbnail's rows are written: stops the work once time is
 * up. The deadline holds between strips of rows, not inside a decoder's
 * own loop, which the pixel and scan limits bound instead.
 */
static void on_eval(VipsImage *image, VipsProgress *progress, void *arg)
{
	struct deadline *d = arg;

	(void)progress;
	if (!d->passed && pl_clock_mono_ms() > d->at_ms) {
		d->passed = 1;
		vips_image_set_kill(image, TRUE);
	}
}

/*
 * Decodes path through libvips' thumbnailer (shrink-on-load where the
 * format has it) and saves the thumbnail to thumb_path within the decode
 * deadline. Returns PL_IMAGE_OK or PL_IMAGE_UNREADABLE.
 */
static enum pl_image_result write_thumbnail(const char *path,
					    const char *thumb_path,
					    struct pl_image_info *info,
					    char *why, size_t whylen)
{
	struct deadline d = { pl_clock_mono_ms() + PL_IMAGE_DECODE_MAX_MS, 0 };
	double white[] = { 255.0 };
	VipsArrayDouble *background = vips_array_double_new(white, 1);
	VipsImage *thumb = NULL;
	enum pl_image_result rc = PL_IMAGE_UNREADABLE;

	if (vips_thumbnail(path, &thumb, PL_IMAGE_THUMB_SIDE,
			   "height", PL_IMAGE_THUMB_SIDE,
			   "size", VIPS_SIZE_DOWN,
			   "fail_on", VIPS_FAIL_ON_ERROR, NULL)) {
		vips_why(why, whylen, "cannot decode");
		goto out;
	}
	vips_image_set_progress(thumb, TRUE);
	g_signal_connect(thumb, "eval", G_CALLBACK(on_eval), &d);
	if (vips_jpegsave(thumb, thumb_path, "Q", 80, "strip", TRUE,
			  "optimize_coding", TRUE, "background", background,
			  NULL)) {
		if (d.passed)
			snprintf(why, whylen, "decoding took over %d ms",
				 PL_IMAGE_DECODE_MAX_MS);
		else
			vips_why(why, whylen, "cannot decode");
		vips_error_clear();
		unlink(thumb_path);
		goto out;
	}
	info->thumb_width = vips_image_get_width(thumb);
	info->thumb_height = vips_image_get_height(thumb);
	rc = PL_IMAGE_OK;
out:
	if (thumb)
		g_object_unref(thumb);
	vips_area_unref(VIPS_AREA(background));
	return rc;
}

enum pl_image_result pl_image_thumbnail(const char *path, const char *type,
					const char *thumb_path,
					struct pl_image_info *info, char *why,
					size_t whylen)
{
	enum pl_image_result rc;

	memset(info, 0, sizeof(*info));
	why[0] = '\0';
	rc = read_size(path, type, info, why, whylen);
	if (rc == PL_IMAGE_OK)
		rc = write_thumbnail(path, thumb_path, info, why, whylen);
	if (rc != PL_IMAGE_OK)
		memset(info, 0, sizeof(*info));
	return rc;
}
