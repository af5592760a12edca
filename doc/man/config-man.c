/*
 * config-man: writes parley.conf(5) from its hand-written template and the
 * configuration table of lib/config.c, the same table --help prints and
 * deploy/parley.conf.example documents, so the three cannot disagree.
 *
 *   config-man < parley.conf.5.in > parley.conf.5
 *
 * The template's prose is copied as it is; its one line
 *   .\" @CONFIG_KEYS@
 * is replaced by a subsection per section of the table (in the table's
 * order) and a tagged paragraph per key: its name, default, range,
 * description and environment variable. The build runs this (Makefile.am);
 * tests/man.sh checks the page against parley-admin --help.
 */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "banned.h"

#define MARKER ".\\\" @CONFIG_KEYS@"

/*
 * Writes s as roff text: a backslash is \e, and in code (names, defaults,
 * variables) a '-' is \- so that it stays a minus sign to copy and paste.
 */
static void put_text(FILE *out, const char *s, int code)
{
	for (; *s; s++) {
		if (*s == '\\')
			fputs("\\e", out);
		else if (*s == '-' && code)
			fputs("\\-", out);
		else
			fputc(*s, out);
	}
}

/* One key: "name = default (min..max)", then its help and variable. */
static void put_key(FILE *out, const struct pl_config_row *row)
{
	/* \& keeps a line that starts with '.' or '\'' from being a request. */
	fputs(".TP\n\\&\\fB", out);
	put_text(out, row->name, 1);
	fputs("\\fR = ", out);
	if (row->def[0]) {
		fputs("\\fI", out);
		put_text(out, row->def, 1);
		fputs("\\fR", out);
	} else {
		fputs("(empty)", out);
	}
	if (row->is_int)
		fprintf(out, " (%lld..%lld)", row->min, row->max);
	fputs("\n\\&", out);
	put_text(out, row->help, 0);
	fputs("\n.br\nEnvironment: \\fB", out);
	put_text(out, row->env, 1);
	fputs("\\fR\n", out);
}

/* Every key of section, in the table's order. */
static void put_section(FILE *out, const char *section)
{
	struct pl_config_row row;

	fprintf(out, ".SS \"[%s]\"\n", section);
	for (size_t i = 0; pl_config_row(i, &row) == 0; i++)
		if (strcmp(row.section, section) == 0)
			put_key(out, &row);
}

/* Every section, each once, where it first appears in the table. */
static void put_keys(FILE *out)
{
	struct pl_config_row row, earlier;

	for (size_t i = 0; pl_config_row(i, &row) == 0; i++) {
		size_t j = 0;

		while (j < i && pl_config_row(j, &earlier) == 0 &&
		       strcmp(earlier.section, row.section) != 0)
			j++;
		if (j == i)
			put_section(out, row.section);
	}
}

int main(void)
{
	char line[1024];
	int markers = 0;

	while (fgets(line, sizeof(line), stdin)) {
		if (strncmp(line, MARKER, strlen(MARKER)) == 0 &&
		    strspn(line + strlen(MARKER), " \n") ==
		    strlen(line + strlen(MARKER))) {
			put_keys(stdout);
			markers++;
		} else {
			fputs(line, stdout);
		}
	}
	if (ferror(stdin) || markers != 1) {
		fprintf(stderr, "config-man: the template must hold the line "
			"'%s' once (found %d)\n", MARKER, markers);
		return 1;
	}
	return fflush(stdout) == 0 && !ferror(stdout) ? 0 : 1;
}
