/* A plugin an attacker would plant: its constructor runs at dlopen, before
 * any check of the info block could refuse it.  It appends a line to
 * $RDHPF_EVIL_MARK, so a test can count how often foreign code ran inside
 * rdhpf.  Built with a suffix other than .so: it never sits in a plugin
 * directory unless a test puts it there. */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

__attribute__((constructor)) static void
evil_ran(void)
{
	const char *mark = getenv("RDHPF_EVIL_MARK");
	int fd;

	if (mark == NULL)
		return;
	fd = open(mark, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	if (write(fd, "ran\n", 4) != 4) {
		/* nothing to do: the test counts lines */
	}
	close(fd);
}
