#include "media.h"

#include <ctype.h>
#include <sodium.h>
#include <string.h>

#include "validate.h"
#include "banned.h"

const char *pl_media_sniff(const unsigned char *head, size_t len)
{
	static const unsigned char png[] = { 0x89, 'P', 'N', 'G', '\r', '\n',
					     0x1a, '\n' };

	if (len >= 3 && head[0] == 0xff && head[1] == 0xd8 && head[2] == 0xff)
		return "image/jpeg";
	if (len >= sizeof(png) && memcmp(head, png, sizeof(png)) == 0)
		return "image/png";
	if (len >= 6 && (memcmp(head, "GIF87a", 6) == 0 ||
			 memcmp(head, "GIF89a", 6) == 0))
		return "image/gif";
	if (len >= 12 && memcmp(head, "RIFF", 4) == 0 &&
	    memcmp(head + 8, "WEBP", 4) == 0)
		return "image/webp";
	return NULL;
}

/*
 * The types a client may give a file that is not an image. Each is data a
 * browser shows or hands to another program but never runs in the page's
 * origin, the more so as downloads are served with "Content-Disposition:
 * attachment", "X-Content-Type-Options: nosniff" and a sandboxing CSP
 * (doc/protocol.md "Attachments"). Not here, on purpose: HTML, XML, SVG,
 * JavaScript, CSS and anything else a browser would interpret.
 */
static const char *const listed_types[] = {
	"text/plain",
	"text/csv",
	"application/pdf",
	"application/zip",
	"application/gzip",
	"application/x-tar",
	"application/x-7z-compressed",
	"application/msword",
	"application/vnd.ms-excel",
	"application/vnd.ms-powerpoint",
	"application/vnd.openxmlformats-officedocument.wordprocessingml.document",
	"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
	"application/vnd.openxmlformats-officedocument.presentationml.presentation",
	"application/vnd.oasis.opendocument.text",
	"application/vnd.oasis.opendocument.spreadsheet",
	"application/vnd.oasis.opendocument.presentation",
	"audio/mpeg",
	"audio/mp4",
	"audio/aac",
	"audio/ogg",
	"audio/opus",
	"audio/wav",
	"audio/webm",
	"audio/flac",
	"video/mp4",
	"video/webm",
	"video/ogg",
	"video/quicktime",
};

const char *pl_media_file_type(const char *claimed)
{
	char type[128];
	size_t n = 0;

	if (!claimed)
		return PL_MEDIA_OCTET_STREAM;
	while (*claimed == ' ' || *claimed == '\t')
		claimed++;
	/* The type and subtype, lowercased, without parameters. */
	while (claimed[n] && claimed[n] != ';' && claimed[n] != ' ' &&
	       claimed[n] != '\t') {
		if (n + 1 >= sizeof(type))
			return PL_MEDIA_OCTET_STREAM;
		type[n] = (char)tolower((unsigned char)claimed[n]);
		n++;
	}
	type[n] = '\0';
	for (size_t i = 0; i < sizeof(listed_types) / sizeof(listed_types[0]);
	     i++)
		if (strcmp(type, listed_types[i]) == 0)
			return listed_types[i];
	return PL_MEDIA_OCTET_STREAM;
}

int pl_media_is_image(const char *type)
{
	return strncmp(type, "image/", 6) == 0;
}

/* The code point of the valid UTF-8 character at s, and its length. */
static unsigned int next_char(const unsigned char *s, size_t *len)
{
	unsigned int cp;

	if (s[0] < 0x80) {
		*len = 1;
		return s[0];
	}
	*len = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : 2;
	cp = s[0] & (0x7f >> *len);
	for (size_t k = 1; k < *len; k++)
		cp = (cp << 6) | (s[k] & 0x3f);
	return cp;
}

/* Characters a name never keeps: controls, and bidi overrides/isolates. */
static int dropped(unsigned int cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) ||
	       (cp >= 0x202a && cp <= 0x202e) ||
	       (cp >= 0x2066 && cp <= 0x2069) || cp == 0x200e || cp == 0x200f;
}

int pl_media_clean_name(const char *in, size_t len, char *out, size_t outlen)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t used = 0, chars = 0, clen;

	if (outlen)
		out[0] = '\0';
	if (!pl_validate_utf8(in, len))
		return -1;
	for (size_t i = 0; i < len && chars < PL_ATTACHMENT_NAME_MAX_CHARS;
	     i += clen) {
		unsigned int cp = next_char(s + i, &clen);

		if (dropped(cp))
			continue;
		/* Leading spaces go; trailing ones are trimmed below. */
		if (cp == ' ' && used == 0)
			continue;
		if (used + clen + 1 > outlen)
			break;
		if (cp == '/' || cp == '\\')
			out[used] = '_';	/* one byte for one */
		else
			memcpy(out + used, s + i, clen);
		used += clen;
		chars++;
	}
	while (used > 0 && out[used - 1] == ' ')
		used--;
	if (outlen)
		out[used] = '\0';
	/* Not that the name is ever a path, but no client should see one. */
	if (strcmp(out, ".") == 0 || strcmp(out, "..") == 0)
		out[0] = '\0';
	return 0;
}

void pl_media_storage_name(char out[PL_MEDIA_STORAGE_BYTES])
{
	unsigned char id[16];
	char hex[sizeof(id) * 2 + 1];

	randombytes_buf(id, sizeof(id));
	sodium_bin2hex(hex, sizeof(hex), id, sizeof(id));
	out[0] = hex[0];
	out[1] = hex[1];
	out[2] = '/';
	memcpy(out + 3, hex, sizeof(hex));
}
