/*
 * Config file reading with inih (Debian's libinih): it handles the INI
 * syntax, comments, continuation lines and a byte-order mark, and keeps
 * going after an error, so every error is reported in one run. Its
 * handler is not told line numbers in the packaged build, so lines are
 * counted in the reader we give it.
 */
#include <sys/stat.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <ini.h>

#include "relay/cfgfile.h"
#include "relay/options.h"

struct reader {
	FILE			*fp;
	const char		*path;
	int			 line;
	int			 errors;
	struct config		*cfg;
	enum opt_scope		 scope;
	void			*obj;		/* relay or tunnel, or NULL */
	int			 bad_section;
};

static void
report(struct reader *r, const char *msg)
{
	log_warnx("%s:%d: %s", r->path, r->line, msg);
	r->errors++;
}

static void	open_section(struct reader *, const char *);

/*
 * Looks at a line before inih does: section headers are opened here, where
 * the line number is known (inih does not report empty sections), and
 * lines that are neither a header nor key = value are reported, all of
 * them (inih reports only the first).
 */
static void
inspect(struct reader *r, const char *line)
{
	char	 section[128];
	size_t	 n;
	const char *end;

	line += strspn(line, " \t");
	if (*line == '\0' || *line == '\n' || *line == '\r' || *line == '#' ||
	    *line == ';')
		return;
	if (*line != '[') {
		if (strpbrk(line, "=:") == NULL)
			report(r, "syntax error: expected [relay NAME], "
			    "[tunnel NAME] or key = value");
		return;
	}
	if ((end = strchr(line, ']')) == NULL ||
	    (n = (size_t)(end - line - 1)) >= sizeof(section)) {
		report(r, "syntax error: unterminated section header");
		r->bad_section = 1;
		return;
	}
	memcpy(section, line + 1, n);
	section[n] = '\0';
	open_section(r, section);
}

/* Counts lines; an over-long one is an error, not two lines. */
static char *
read_line(char *buf, int size, void *arg)
{
	struct reader	*r = arg;
	size_t		 n;
	int		 c;

	if (fgets(buf, size, r->fp) == NULL)
		return NULL;
	r->line++;
	n = strlen(buf);
	if (n > 0 && buf[n - 1] != '\n' && !feof(r->fp)) {
		report(r, "line too long");
		while ((c = fgetc(r->fp)) != EOF && c != '\n')
			;
		buf[0] = '\0';
		return buf;
	}
	inspect(r, buf);
	return buf;
}

static int
name_taken(struct reader *r, const char *name, int tunnel)
{
	size_t	i;

	if (tunnel) {
		for (i = 0; i < r->cfg->ntunnels; i++)
			if (strcmp(r->cfg->tunnels[i]->name, name) == 0)
				return 1;
	} else {
		for (i = 0; i < r->cfg->nrelays; i++)
			if (strcmp(r->cfg->relays[i]->name, name) == 0)
				return 1;
	}
	return 0;
}

/* A new [relay NAME] or [tunnel NAME] header. */
static void
open_section(struct reader *r, const char *section)
{
	char	kind[16], name[CONF_NAME_MAX + 1], msg[256];
	int	tunnel;

	r->obj = NULL;
	r->bad_section = 1;
	if (sscanf(section, "%15s %64s", kind, name) != 2 ||
	    strlen(name) >= CONF_NAME_MAX ||
	    strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789-_.") != strlen(name) ||
	    (strcmp(kind, "relay") != 0 && strcmp(kind, "tunnel") != 0)) {
		snprintf(msg, sizeof(msg), "bad section [%s]: expected "
		    "[relay NAME] or [tunnel NAME]", section);
		report(r, msg);
		return;
	}
	tunnel = strcmp(kind, "tunnel") == 0;
	if (name_taken(r, name, tunnel)) {
		snprintf(msg, sizeof(msg), "[%s]: a %s of that name exists "
		    "already", section, kind);
		report(r, msg);
		return;
	}
	r->scope = tunnel ? SCOPE_TUNNEL : SCOPE_RELAY;
	r->obj = tunnel ? (void *)config_add_tunnel(r->cfg, name, r->line) :
	    (void *)config_add_relay(r->cfg, name, r->line);
	if (r->obj == NULL) {
		report(r, "out of memory");
		return;
	}
	r->bad_section = 0;
}

static int
on_entry(void *arg, const char *section, const char *name,
    const char *value)
{
	struct reader	*r = arg;
	char		 err[512];

	if (r->bad_section)
		return 1;	/* reported once, at its header */
	if (options_set(r->cfg, r->obj != NULL ? r->scope : SCOPE_GLOBAL,
	    r->obj != NULL ? r->obj : r->cfg, name, value, err,
	    sizeof(err)) == -1)
		report(r, err);
	return 1;
}

/* The relay or tunnel a section described must be complete. */
static void
check_sections(struct reader *r)
{
	char	err[256], msg[400];
	size_t	i;

	for (i = 0; i < r->cfg->nrelays; i++) {
		if (r->cfg->relays[i]->line == 0 ||
		    config_check_relay(r->cfg->relays[i], err, sizeof(err)) ==
		    0)
			continue;
		r->line = r->cfg->relays[i]->line;
		snprintf(msg, sizeof(msg), "[relay %s]: %s",
		    r->cfg->relays[i]->name, err);
		report(r, msg);
	}
	for (i = 0; i < r->cfg->ntunnels; i++) {
		if (r->cfg->tunnels[i]->line == 0 ||
		    config_check_tunnel(r->cfg->tunnels[i], err, sizeof(err)) ==
		    0)
			continue;
		r->line = r->cfg->tunnels[i]->line;
		snprintf(msg, sizeof(msg), "[tunnel %s]: %s",
		    r->cfg->tunnels[i]->name, err);
		report(r, msg);
	}
}

int
cfgfile_read(struct config *cfg, FILE *fp, const char *name)
{
	struct reader	r = { .fp = fp, .path = name, .cfg = cfg };

	/* Syntax errors inih finds (rc > 0) were reported by inspect(). */
	if (ini_parse_stream(read_line, &r, on_entry, &r) < 0) {
		log_warnx("%s: cannot read it", name);
		r.errors++;
	}
	check_sections(&r);
	return r.errors;
}

int
cfgfile_load(struct config *cfg, const char *path)
{
	struct stat	st;
	FILE		*fp;
	int		errors;

	if ((fp = fopen(path, "re")) == NULL) {
		if (errno == EACCES && geteuid() != 0)
			log_warnx("%s: %s (to reload, the file must be readable "
			    "by the user relayd runs as)", path, strerror(errno));
		else
			log_warnx("%s: %s", path, strerror(errno));
		return 1;
	}
	if (geteuid() == 0 && fstat(fileno(fp), &st) == 0 &&
	    (st.st_mode & (S_IWGRP | S_IWOTH))) {
		log_warnx("%s: refusing a config file that group or others "
		    "may write (chmod go-w %s)", path, path);
		fclose(fp);
		return 1;
	}
	errors = cfgfile_read(cfg, fp, path);
	fclose(fp);
	return errors;
}
