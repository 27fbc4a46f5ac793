/* sealmail-imapd: the IMAP server. A thin main; the work is in server.c. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include "crypto.h"
#include "server.h"

static void usage(FILE *f)
{
	fprintf(f,
	    "usage: sealmail-imapd -c FILE [--check-config]\n"
	    "\n"
	    "Serves IMAP (imap_listen: plain + STARTTLS) and IMAPS (imaps_listen: implicit\n"
	    "TLS) for the sealmail vault named by the config file, in the foreground.\n"
	    "\n"
	    "  -c, --config FILE   the sealmail config file (required)\n"
	    "      --check-config  validate FILE (syntax, listen addresses, TLS certificate\n"
	    "                      and key, run_user) and exit: 0 if good, 1 with one line\n"
	    "                      per problem on stderr\n"
	    "  -h, --help          this text\n"
	    "\n"
	    "Signals: SIGHUP reloads the TLS certificate and key; SIGTERM/SIGINT stop.\n"
	    "Started as root it binds, then runs as run_user.\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config = NULL;
	int check = 0, o;

	while ((o = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (o) {
		case 'c':
			config = optarg;
			break;
		case 'C':
			check = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || config == NULL) {
		usage(stderr);
		return 2;
	}
	if (crypto_init() < 0) {
		fprintf(stderr, "sealmail-imapd: cannot initialise the crypto library\n");
		return 1;
	}
	if (check)
		return server_check_config(config, stderr);
	return server_run(config);
}
