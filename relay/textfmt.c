/* Prometheus exposition and JSON strings: the escaping and the lines. */
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "relay/textfmt.h"

/* The length of the valid UTF-8 sequence at s (1 to 4), or 0 if s does
 * not start one (overlong forms, surrogates and beyond U+10FFFF too). */
static size_t
utf8_len(const unsigned char *s)
{
	uint32_t	cp;
	size_t		n, i;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, cp = s[0] & 0x07;
	else
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
}

/* Writes s with each special ASCII byte through esc (which writes it and
 * returns 1, or returns 0 to let it through) and invalid UTF-8 as U+FFFD. */
static void
write_text(FILE *fp, const char *s, int (*esc)(FILE *, unsigned char))
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 n;

	while (*p != '\0') {
		if ((n = utf8_len(p)) == 0) {
			fputs("\xef\xbf\xbd", fp);
			p++;
		} else if (n > 1) {
			fwrite(p, 1, n, fp);
			p += n;
		} else {
			if (!esc(fp, *p))
				fputc(*p, fp);
			p++;
		}
	}
}

static int
label_esc(FILE *fp, unsigned char c)
{
	if (c == '\\' || c == '"')
		fprintf(fp, "\\%c", c);
	else if (c == '\n')
		fputs("\\n", fp);
	else
		return 0;
	return 1;
}

static int
json_esc(FILE *fp, unsigned char c)
{
	if (c == '\\' || c == '"')
		fprintf(fp, "\\%c", c);
	else if (c == '\n')
		fputs("\\n", fp);
	else if (c == '\t')
		fputs("\\t", fp);
	else if (c < 0x20 || c == 0x7f)
		fprintf(fp, "\\u%04x", c);
	else
		return 0;
	return 1;
}

void
expo_escape(FILE *fp, const char *s)
{
	write_text(fp, s, label_esc);
}

void
json_string(FILE *fp, const char *s)
{
	fputc('"', fp);
	write_text(fp, s, json_esc);
	fputc('"', fp);
}

void
expo_family(FILE *fp, const char *name, const char *type, const char *help)
{
	fprintf(fp, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
write_name(FILE *fp, const char *name, const struct expo_label *l, size_t n)
{
	size_t	i;

	fputs(name, fp);
	if (n == 0)
		return;
	fputc('{', fp);
	for (i = 0; i < n; i++) {
		fprintf(fp, "%s%s=\"", i ? "," : "", l[i].name);
		expo_escape(fp, l[i].value);
		fputc('"', fp);
	}
	fputc('}', fp);
}

void
expo_u64(FILE *fp, const char *name, const struct expo_label *l, size_t n,
    uint64_t value)
{
	write_name(fp, name, l, n);
	fprintf(fp, " %" PRIu64 "\n", value);
}

void
expo_double(FILE *fp, const char *name, const struct expo_label *l,
    size_t n, double value)
{
	write_name(fp, name, l, n);
	if (isnan(value))
		fputs(" NaN\n", fp);
	else if (isinf(value))
		fputs(value > 0 ? " +Inf\n" : " -Inf\n", fp);
	else
		fprintf(fp, " %.17g\n", value);
}

void
expo_histogram(FILE *fp, const char *name, const struct expo_label *l,
    size_t n, const double *bounds, const uint64_t *counts, size_t nbounds,
    double sum)
{
	struct expo_label	 ls[4];
	char			 full[128], le[32];
	uint64_t		 total = 0;
	size_t			 i;

	if (n > 3)
		n = 3;
	memcpy(ls, l, n * sizeof(*l));
	ls[n].name = "le";
	snprintf(full, sizeof(full), "%s_bucket", name);
	for (i = 0; i <= nbounds; i++) {
		total += counts[i];
		if (i < nbounds)
			snprintf(le, sizeof(le), "%g", bounds[i]);
		else
			snprintf(le, sizeof(le), "+Inf");
		ls[n].value = le;
		expo_u64(fp, full, ls, n + 1, total);
	}
	snprintf(full, sizeof(full), "%s_sum", name);
	expo_double(fp, full, l, n, sum);
	snprintf(full, sizeof(full), "%s_count", name);
	expo_u64(fp, full, l, n, total);
}
