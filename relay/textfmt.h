/*
 * Text for machines: Prometheus's text exposition format (version 0.0.4)
 * and JSON strings, written to a FILE. Strings are passed through as
 * UTF-8; a byte that is not part of valid UTF-8 becomes U+FFFD, so the
 * output stays valid whatever a name or path holds.
 */
#ifndef RELAY_TEXTFMT_H
#define RELAY_TEXTFMT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct expo_label {
	const char	*name;
	const char	*value;
};

/* Writes s as a label value: \\, \" and \n escaped (no quotes around). */
void	expo_escape(FILE *, const char *s);
/* Writes a family's "# HELP" and "# TYPE" lines (type: "counter",
 * "gauge", "histogram"). */
void	expo_family(FILE *, const char *name, const char *type,
	    const char *help);
/* Writes one sample line, name{labels} value. */
void	expo_u64(FILE *, const char *name, const struct expo_label *,
	    size_t nlabels, uint64_t value);
void	expo_double(FILE *, const char *name, const struct expo_label *,
	    size_t nlabels, double value);
/*
 * Writes a histogram's _bucket (cumulative, "+Inf" last), _sum and _count
 * lines: counts[i] are the observations in bucket i alone, nbounds + 1 of
 * them (the last one above every bound). At most 3 labels besides le.
 */
void	expo_histogram(FILE *, const char *name, const struct expo_label *,
	    size_t nlabels, const double *bounds, const uint64_t *counts,
	    size_t nbounds, double sum);

/* Writes s as a JSON string, quotes included. */
void	json_string(FILE *, const char *s);

#endif
