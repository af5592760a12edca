/*
 * lib/media.c: sniffing an upload's type from its bytes, the types a client
 * may claim, cleaning file names, storage names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <regex.h>
#include <sodium.h>
#include <string.h>

#include "media.h"

static const char *sniff(const void *bytes, size_t len)
{
	return pl_media_sniff(bytes, len);
}

static void test_media_sniff_knows_the_four_image_types(void **state)
{
	(void)state;
	assert_string_equal(sniff("\xff\xd8\xff\xe0\0\x10JFIF", 10), "image/jpeg");
	assert_string_equal(sniff("\x89PNG\r\n\x1a\n\0\0\0\r", 12), "image/png");
	assert_string_equal(sniff("GIF87a\x01\0\x01\0", 10), "image/gif");
	assert_string_equal(sniff("GIF89a", 6), "image/gif");
	assert_string_equal(sniff("RIFF\x24\0\0\0WEBPVP8 ", 16), "image/webp");
}

static void test_media_sniff_refuses_the_rest(void **state)
{
	(void)state;
	assert_null(sniff("", 0));
	assert_null(sniff("\xff\xd8", 2));		/* too short for JPEG */
	assert_null(sniff("\x89PNG\r\n\x1a", 7));	/* cut signature */
	assert_null(sniff("<html><body>", 12));
	assert_null(sniff("<svg xmlns=", 11));
	assert_null(sniff("RIFF\x24\0\0\0WAVE", 12));	/* RIFF, not WebP */
	assert_null(sniff("GIF90a", 6));
	assert_null(sniff("%PDF-1.7\n", 9));
}

static void test_media_file_type_keeps_listed_types_only(void **state)
{
	(void)state;
	assert_string_equal(pl_media_file_type("text/plain"), "text/plain");
	assert_string_equal(pl_media_file_type(" Text/Plain; charset=utf-8"),
			    "text/plain");
	assert_string_equal(pl_media_file_type("application/pdf"),
			    "application/pdf");
	assert_string_equal(pl_media_file_type("video/mp4"), "video/mp4");
	/* Active content, and images never come from the header. */
	assert_string_equal(pl_media_file_type("text/html"), PL_MEDIA_OCTET_STREAM);
	assert_string_equal(pl_media_file_type("image/svg+xml"),
			    PL_MEDIA_OCTET_STREAM);
	assert_string_equal(pl_media_file_type("application/javascript"),
			    PL_MEDIA_OCTET_STREAM);
	assert_string_equal(pl_media_file_type("image/png"), PL_MEDIA_OCTET_STREAM);
	assert_string_equal(pl_media_file_type("text/plainx"),
			    PL_MEDIA_OCTET_STREAM);
	assert_string_equal(pl_media_file_type(""), PL_MEDIA_OCTET_STREAM);
	assert_string_equal(pl_media_file_type(NULL), PL_MEDIA_OCTET_STREAM);
}

static void clean(const char *in, const char *want)
{
	char out[PL_MEDIA_NAME_BYTES];

	assert_int_equal(pl_media_clean_name(in, strlen(in), out, sizeof(out)), 0);
	assert_string_equal(out, want);
}

static void test_media_clean_name_removes_paths_and_controls(void **state)
{
	(void)state;
	clean("beach.jpg", "beach.jpg");
	clean("../../etc/passwd", ".._.._etc_passwd");
	clean("C:\\Users\\me\\a.txt", "C:_Users_me_a.txt");
	clean("a\r\nb\tc\x7f" "d", "abcd");
	clean("  spaced out  ", "spaced out");
	clean("..", "");
	clean(".", "");
	clean("\xe2\x80\xaegpj.exe", "gpj.exe");	/* U+202E right-to-left override */
	clean("\xc2\x85x", "x");			/* U+0085, a C1 control */
	clean("r\xc3\xa9sum\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac.pdf",
	      "r\xc3\xa9sum\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac.pdf");
}

static void test_media_clean_name_refuses_bad_utf8(void **state)
{
	char out[PL_MEDIA_NAME_BYTES];

	(void)state;
	assert_int_equal(pl_media_clean_name("a\xff", 2, out, sizeof(out)), -1);
	assert_string_equal(out, "");
	assert_int_equal(pl_media_clean_name("a\0b", 3, out, sizeof(out)), -1);
}

static void test_media_clean_name_cuts_at_255_characters(void **state)
{
	char in[300 * 3 + 1], out[PL_MEDIA_NAME_BYTES];
	size_t n = 0;

	(void)state;
	for (int i = 0; i < 300; i++) {
		memcpy(in + n, "\xe6\x97\xa5", 3);	/* three bytes each */
		n += 3;
	}
	assert_int_equal(pl_media_clean_name(in, n, out, sizeof(out)), 0);
	assert_int_equal(strlen(out), PL_ATTACHMENT_NAME_MAX_CHARS * 3);
}

static void test_media_storage_name_matches_the_schema(void **state)
{
	char a[PL_MEDIA_STORAGE_BYTES], b[PL_MEDIA_STORAGE_BYTES];
	regex_t re;

	(void)state;
	assert_int_equal(sodium_init() >= 0, 1);
	pl_media_storage_name(a);
	pl_media_storage_name(b);
	assert_int_equal(regcomp(&re, "^[0-9a-f]{2}/[0-9a-f]{32}$",
				 REG_EXTENDED | REG_NOSUB), 0);
	assert_int_equal(regexec(&re, a, 0, NULL, 0), 0);
	regfree(&re);
	assert_memory_equal(a, a + 3, 2);
	assert_string_not_equal(a, b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_media_sniff_knows_the_four_image_types),
		cmocka_unit_test(test_media_sniff_refuses_the_rest),
		cmocka_unit_test(test_media_file_type_keeps_listed_types_only),
		cmocka_unit_test(test_media_clean_name_removes_paths_and_controls),
		cmocka_unit_test(test_media_clean_name_refuses_bad_utf8),
		cmocka_unit_test(test_media_clean_name_cuts_at_255_characters),
		cmocka_unit_test(test_media_storage_name_matches_the_schema),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
