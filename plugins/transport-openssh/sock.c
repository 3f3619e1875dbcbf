/* transport-openssh: Unix sockets and descriptors. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ossh.h"

int
fd_prepare(int fd, int nonblock)
{
	int fl = fcntl(fd, F_GETFD);

	if (fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) != 0)
		return -1;
	if (nonblock) {
		fl = fcntl(fd, F_GETFL);
		if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0)
			return -1;
	}
#ifdef SO_NOSIGPIPE
	{
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one,
		           sizeof one); /* not a socket: harmless */
	}
#endif
	return 0;
}

static int
unix_addr(struct sockaddr_un *sa, const char *path)
{
	size_t n = strlen(path);

	if (n >= sizeof sa->sun_path)
		return -1;
	memset(sa, 0, sizeof *sa);
	sa->sun_family = AF_UNIX;
	memcpy(sa->sun_path, path, n + 1);
	return 0;
}

/* Non-blocking connect to a Unix socket: the fd, or -errno.  A full
 * listen backlog is -EAGAIN; nobody listening is -ECONNREFUSED. */
int
unix_connect(const char *path)
{
	struct sockaddr_un sa;
	int fd, e;

	if (unix_addr(&sa, path) != 0)
		return -ENAMETOOLONG;
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0)
		return -errno;
	if (fd_prepare(fd, 1) != 0) {
		e = errno;
		close(fd);
		return -e;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		e = errno == EINPROGRESS ? EAGAIN : errno;
		close(fd);
		return -e;
	}
	return fd;
}

/* A pipe whose ends are close-on-exec; *ours is made non-blocking. */
int
pipe_pair(int *rd_end, int *wr_end, int ours_is_read)
{
	int p[2];

	if (pipe(p) != 0)
		return -1;
	if (fd_prepare(p[0], ours_is_read) != 0 || fd_prepare(p[1], !ours_is_read) != 0) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	*rd_end = p[0];
	*wr_end = p[1];
	return 0;
}

int
send_fd(int sock, int fd)
{
	struct msghdr msg;
	struct iovec iov;
	char ch = '\0';
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} cm;
	struct cmsghdr *c;
	ssize_t n;

	memset(&msg, 0, sizeof msg);
	memset(&cm, 0, sizeof cm);
	iov.iov_base = &ch;
	iov.iov_len = 1;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = cm.buf;
	msg.msg_controllen = sizeof cm.buf;
	c = CMSG_FIRSTHDR(&msg);
	c->cmsg_len = CMSG_LEN(sizeof(int));
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	memcpy(CMSG_DATA(c), &fd, sizeof fd);
	do
		n = sendmsg(sock, &msg, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n == 1 ? 0 : -1;
}

/* Write as much of b as the socket takes.  0 (done or would block), or
 * -errno. */
int
sock_flush(int fd, struct rsdk_buf *b)
{
	while (rsdk_buf_size(b) > 0) {
		ssize_t n = send(fd, rsdk_buf_str(b), rsdk_buf_size(b), MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -errno;
		}
		rsdk_buf_consume(b, (size_t)n);
	}
	return 0;
}

/* A path whose socket nobody listens on any more is removed; anything
 * else (a live socket, not a socket, gone) is left alone.  1 if removed. */
int
unlink_if_stale(const char *path)
{
	struct stat st;
	int fd;

	if (lstat(path, &st) != 0 || !S_ISSOCK(st.st_mode))
		return 0;
	fd = unix_connect(path);
	if (fd >= 0) {
		close(fd);
		return 0;
	}
	if (fd != -ECONNREFUSED)
		return 0;
	return unlink(path) == 0;
}
