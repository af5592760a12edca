/*
 * fuzz_attachment: an upload as POST /api/v1/attachments handles it
 * (fcgi/attachments.c). Input: the Content-Type header, a newline, the
 * X-Filename header, a newline, then the file's bytes.
 *
 * The header values go through pl_media_file_type() and (percent-decoded
 * by libcurl, as the API does) pl_media_clean_name(); the bytes through
 * pl_media_sniff() and, when that finds an image, pl_image_thumbnail() on a
 * file holding them, libvips and all, exactly as the API calls it.
 */
#include <curl/curl.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "image.h"
#include "pl_limits.h"
#include "media.h"
#include "validate.h"

static char dir[4096], upload_path[4096 + 16], thumb_path[4096 + 32];

/* The scratch directory goes with the process. */
static void remove_scratch(void)
{
	unlink(thumb_path);
	unlink(upload_path);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *tmp = getenv("TMPDIR");

	fuzz_setup();
	snprintf(dir, sizeof(dir), "%s/parley-fuzz-attachment.XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir) || pl_image_init((*argv)[0]))
		abort();
	snprintf(upload_path, sizeof(upload_path), "%s/upload", dir);
	snprintf(thumb_path, sizeof(thumb_path), "%s/upload.thumb", dir);
	atexit(remove_scratch);
	return 0;
}

/* Splits off the next line of data[0..*size) into a new string. */
static char *take_line(const uint8_t **data, size_t *size)
{
	const uint8_t *nl = memchr(*data, '\n', *size);
	size_t n = nl ? (size_t)(nl - *data) : *size;
	char *line = malloc(n + 1);

	if (!line)
		abort();
	memcpy(line, *data, n);
	line[n] = '\0';
	*data += n + (nl != NULL);
	*size -= n + (nl != NULL);
	return line;
}

static void check_type(const char *claimed)
{
	const char *type = pl_media_file_type(claimed);

	/* Never an image, never anything a browser would run. */
	FUZZ_ASSERT(!pl_media_is_image(type));
	FUZZ_ASSERT(!strstr(type, "html") && !strstr(type, "xml") &&
		    !strstr(type, "script"));
}

static void check_name(const char *raw)
{
	char out[PL_MEDIA_NAME_BYTES];
	int declen;
	char *dec = curl_easy_unescape(NULL, raw, (int)strlen(raw), &declen);

	if (!dec)
		abort();
	if (pl_media_clean_name(dec, (size_t)declen, out, sizeof(out)) == 0) {
		size_t n = strlen(out);

		FUZZ_ASSERT(pl_validate_utf8(out, n));
		FUZZ_ASSERT(pl_validate_utf8_chars(out, n) <=
			    PL_ATTACHMENT_NAME_MAX_CHARS);
		FUZZ_ASSERT(!strpbrk(out, "/\\\r\n\t\x7f"));
		FUZZ_ASSERT(strcmp(out, "..") != 0 && strcmp(out, ".") != 0);
		for (size_t i = 0; i < n; i++)
			FUZZ_ASSERT((unsigned char)out[i] >= 0x20);
	} else {
		FUZZ_ASSERT(out[0] == '\0');
	}
	curl_free(dec);
}

/* What pl_image_thumbnail() promises, whatever the bytes. */
static void check_image(const uint8_t *data, size_t size, const char *type)
{
	struct pl_image_info info;
	enum pl_image_result rc;
	struct stat st;
	char why[256];
	int fd = open(upload_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || write(fd, data, size) != (ssize_t)size || close(fd))
		abort();
	unlink(thumb_path);
	rc = pl_image_thumbnail(upload_path, type, thumb_path, &info, why,
				sizeof(why));
	if (rc != PL_IMAGE_OK) {
		FUZZ_ASSERT(why[0] != '\0');
		FUZZ_ASSERT(info.width == 0 && info.thumb_width == 0);
		FUZZ_ASSERT(stat(thumb_path, &st) != 0);
		return;
	}
	FUZZ_ASSERT(info.width > 0 && info.height > 0);
	FUZZ_ASSERT((long long)info.width * info.height <= PL_IMAGE_MAX_PIXELS);
	FUZZ_ASSERT(info.thumb_width > 0 && info.thumb_height > 0);
	FUZZ_ASSERT(info.thumb_width <= PL_IMAGE_THUMB_SIDE &&
		    info.thumb_height <= PL_IMAGE_THUMB_SIDE);
	/* Turned upright like the size, and never enlarged. */
	FUZZ_ASSERT(info.thumb_width <= info.width &&
		    info.thumb_height <= info.height);
	FUZZ_ASSERT(stat(thumb_path, &st) == 0 && st.st_size > 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *claimed = take_line(&data, &size);
	char *name = take_line(&data, &size);
	const char *image;

	check_type(claimed);
	check_name(name);
	image = pl_media_sniff(data, size);
	if (image)
		check_image(data, size, image);
	free(claimed);
	free(name);
	return 0;
}
