/*
 * Replays files through a fuzz target without libFuzzer, so `make check`
 * can run every corpus and crash reproducer with the ordinary compiler
 * (and, with SANITIZE=1, under ASan + UBSan). Arguments are files or
 * directories of files; exits non-zero if one cannot be read, and a bug
 * shows as the crash or abort it causes.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tests/fuzz/fuzz.h"

static int
replay_file(const char *path)
{
	FILE		*fp;
	uint8_t		*buf;
	struct stat	 st;
	size_t		 n;

	if ((fp = fopen(path, "rb")) == NULL || fstat(fileno(fp), &st) == -1 ||
	    (buf = malloc(st.st_size > 0 ? (size_t)st.st_size : 1)) == NULL) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		if (fp != NULL)
			fclose(fp);
		return -1;
	}
	n = fread(buf, 1, (size_t)st.st_size, fp);
	fclose(fp);
	/* The buffer is exactly the file, so ASan sees a read past its end. */
	(void)LLVMFuzzerTestOneInput(buf, n);
	free(buf);
	return 0;
}

static int
replay(const char *path, int *count)
{
	struct dirent	**names;
	struct stat	  st;
	char		  sub[4096];
	int		  i, n, rc = 0;

	if (stat(path, &st) == -1) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		(*count)++;
		return replay_file(path);
	}
	if ((n = scandir(path, &names, NULL, alphasort)) == -1) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (names[i]->d_name[0] != '.') {
			snprintf(sub, sizeof(sub), "%s/%s", path,
			    names[i]->d_name);
			if (replay(sub, count) == -1)
				rc = -1;
		}
		free(names[i]);
	}
	free(names);
	return rc;
}

int
main(int argc, char **argv)
{
	int	i, count = 0, rc = 0;

	for (i = 1; i < argc; i++)
		if (replay(argv[i], &count) == -1)
			rc = 1;
	printf("%s: %d inputs replayed\n", argv[0], count);
	return rc;
}
