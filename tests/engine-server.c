/* test-engine-server: the IMAP command engine on a plain loopback socket, for the
 * protocol suite before (and besides) the real sealmail-imapd.
 *
 *   test-engine-server DATA_CONFIG USER PORTFILE  < password
 *
 * Reads the password (passphrase followed by a Yubico OTP, the yubico-pam
 * convention) from the first line of stdin, logs in through vault.h
 * (vault_login_derive + vault_unlock), listens on 127.0.0.1 port 0, writes the port
 * to PORTFILE, and serves every connection as an already authenticated client
 * (PREAUTH greeting). imap_user_tick runs every 200 ms. SIGTERM ends it. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include "crypto.h"
#include "imap-session.h"
#include "log.h"
#include "vault.h"

#define MAX_CLIENTS 256
#define TICK_MS 200

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static int listen_loopback(const char *portfile)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	FILE *f;
	int fd, one = 1;

	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
		close(fd);
		return -errno;
	}
	/* Write then rename, so a reader never sees a half-written file. */
	{
		char tmp[4096];

		snprintf(tmp, sizeof(tmp), "%s.tmp", portfile);
		if ((f = fopen(tmp, "w")) == NULL) {
			close(fd);
			return -errno;
		}
		fprintf(f, "%u\n", ntohs(sa.sin_port));
		fclose(f);
		if (rename(tmp, portfile) < 0) {
			close(fd);
			return -errno;
		}
	}
	return fd;
}

int main(int argc, char **argv)
{
	static struct vault_config cfg;
	struct imap_client *clients[MAX_CLIENTS];
	struct pollfd pfd[MAX_CLIENTS + 1];
	struct vault_login login;
	struct vault_keys *keys = NULL;
	struct imap_user *u = NULL;
	struct vault *v = NULL;
	char err[512], pw[1024];
	size_t nclients = 0, pwlen;
	long next_tick;
	int r, lfd;

	if (argc != 4) {
		fprintf(stderr, "usage: %s DATA_CONFIG USER PORTFILE < password\n", argv[0]);
		return 2;
	}
	log_set_ident("test-engine-server");
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	if ((r = crypto_init()) < 0) {
		fprintf(stderr, "crypto_init: %s\n", strerror(-r));
		return 1;
	}
	if ((r = vault_config_load(argv[1], &cfg, err, sizeof(err))) < 0) {
		fprintf(stderr, "config: %s\n", err);
		return 1;
	}
	if (fgets(pw, sizeof(pw), stdin) == NULL) {
		fprintf(stderr, "no password on stdin\n");
		return 1;
	}
	pwlen = strcspn(pw, "\r\n");
	if ((r = vault_open(&cfg, &v)) < 0) {
		fprintf(stderr, "vault_open: %s\n", vault_strerror(r));
		return 1;
	}
	memset(&login, 0, sizeof(login));
	r = vault_login_derive(v, argv[2], (const uint8_t *)pw, pwlen, &login);
	crypto_wipe(pw, sizeof(pw));
	if (r < 0) {
		fprintf(stderr, "login: %s\n", vault_strerror(r));
		vault_close(&v);
		return 1;
	}
	r = vault_unlock(v, &login, &keys);
	vault_login_clear(&login);
	if (r < 0) {
		fprintf(stderr, "unlock: %s\n", vault_strerror(r));
		vault_close(&v);
		return 1;
	}
	if ((r = imap_user_new(v, keys, &cfg, &u)) < 0) {
		fprintf(stderr, "imap_user_new: %s\n", vault_strerror(r));
		vault_keys_free(&keys);
		vault_close(&v);
		return 1;
	}
	if ((lfd = listen_loopback(argv[3])) < 0) {
		fprintf(stderr, "listen: %s\n", strerror(-lfd));
		imap_user_free(&u);
		return 1;
	}
	next_tick = now_ms() + TICK_MS;
	while (!stop) {
		long now = now_ms(), wait = next_tick - now;
		time_t wall = time(NULL);

		pfd[0].fd = lfd;
		pfd[0].events = nclients < MAX_CLIENTS ? POLLIN : 0;
		for (size_t i = 0; i < nclients; i++) {
			int t = imap_client_timeout(clients[i], wall);

			pfd[i + 1].fd = imap_client_fd(clients[i]);
			pfd[i + 1].events = imap_client_events(clients[i]);
			pfd[i + 1].revents = 0;
			if (t >= 0 && t * 1000L < wait)
				wait = t * 1000L;
		}
		if (wait < 0)
			wait = 0;
		r = poll(pfd, nclients + 1, (int)wait);
		if (r < 0 && errno != EINTR)
			break;
		wall = time(NULL);
		if (r > 0 && (pfd[0].revents & POLLIN)) {
			int cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

			if (cfd >= 0) {
				struct imap_client_params p = { .fd = cfd, .login_tag = NULL,
				    .tls = false, .peer = "127.0.0.1", .tls_info = "" };
				struct imap_client *c = NULL;

				if (imap_client_new(u, &p, &c) == 0) {
					/* not polled yet: no events this round */
					pfd[nclients + 1].fd = cfd;
					pfd[nclients + 1].revents = 0;
					clients[nclients++] = c;
				}
				else
					close(cfd);
			}
		}
		/* Every client gets a call: the ones with events, and the ones whose
		 * timeout fell due (imap_client_timeout returned 0 or passed). */
		for (size_t i = 0; i < nclients; ) {
			short rev = pfd[i + 1].revents;
			struct imap_client *c = clients[i];

			if (imap_client_handle(c, rev, wall) != 0) {
				imap_client_free(&c);
				clients[i] = clients[--nclients];
				pfd[i + 1] = pfd[nclients + 1];
				continue;
			}
			i++;
		}
		if (now_ms() >= next_tick) {
			imap_user_tick(u, time(NULL));
			next_tick = now_ms() + TICK_MS;
		}
	}
	for (size_t i = 0; i < nclients; i++)
		imap_client_free(&clients[i]);
	close(lfd);
	imap_user_free(&u);
	return 0;
}
