/* CAPABILITY, NOOP, CHECK, LOGOUT, ENABLE (RFC 5161), ID (RFC 2971), NAMESPACE
 * (RFC 2342), COMPRESS (RFC 4978), IDLE (RFC 2177), and the capability string. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "imap-engine-private.h"
#include "log.h"

/* Everything here is implemented and covered by tests/imap/test_protocol.py. */
static const char caps_auth[] =
    "IMAP4rev1 IMAP4rev2 LITERAL+ ID ENABLE IDLE NAMESPACE UNSELECT CHILDREN "
    "UIDPLUS MOVE CONDSTORE QRESYNC ESEARCH SEARCHRES LIST-EXTENDED LIST-STATUS "
    "SPECIAL-USE CREATE-SPECIAL-USE BINARY MULTIAPPEND APPENDLIMIT STATUS=SIZE "
    "OBJECTID SAVEDATE UTF8=ACCEPT WITHIN COMPRESS=DEFLATE";

int imap_capability_string(bool authenticated, bool tls, bool starttls_available,
    bool login_allowed, char *out, size_t outlen)
{
	int n;

	if (authenticated)
		n = snprintf(out, outlen, "%s", caps_auth);
	else
		/* RFC 9051 6.2.3 and 7.2.2: LOGINDISABLED means LOGIN and every plaintext
		 * SASL mechanism are refused on this transport, so AUTH=PLAIN is not
		 * advertised beside it (Dovecot lists no mechanism then either; the
		 * client knows to STARTTLS first). */
		n = snprintf(out, outlen,
		    "IMAP4rev1 IMAP4rev2 SASL-IR LITERAL+ ID ENABLE IDLE%s%s",
		    !tls && starttls_available ? " STARTTLS" : "",
		    login_allowed ? " AUTH=PLAIN" : " LOGINDISABLED");
	if (n < 0 || (size_t)n >= outlen)
		return -E2BIG;
	return 0;
}

/* The authenticated list with the configured APPENDLIMIT value (RFC 7889 2.1). */
static int capability_line(struct imap_client *c, char *buf, size_t len)
{
	char base[1024];
	const char *p;
	int r, n;

	if ((r = imap_capability_string(true, c->tls, false, true, base, sizeof(base))) < 0)
		return r;
	p = strstr(base, "APPENDLIMIT");
	if (p == NULL || c->u->cfg->max_message_size == 0) {
		n = snprintf(buf, len, "%s", base);
	} else {
		size_t pre = (size_t)(p - base) + strlen("APPENDLIMIT");

		n = snprintf(buf, len, "%.*s=%llu%s", (int)pre, base,
		    (unsigned long long)c->u->cfg->max_message_size, base + pre);
	}
	if (n < 0 || (size_t)n >= len)
		return -E2BIG;
	return 0;
}

int engine_capability(struct imap_client *c, char *buf, size_t len)
{
	return capability_line(c, buf, len);
}

/* Checks the vault for changes by other processes now rather than at the next tick,
 * so NOOP / CHECK / IDLE report them at once. */
static void check_changes(struct imap_client *c)
{
	imap_user_tick(c->u, time(NULL));
}

int cmd_capability(struct imap_client *c, struct imap_cmd *cmd)
{
	char caps[1024];
	int r;

	if (cmd->nargs != 0)
		return cmd_bad(c, cmd, "CAPABILITY takes no arguments");
	if ((r = engine_capability(c, caps, sizeof(caps))) < 0)
		return r;
	if ((r = out_printf(c, "* CAPABILITY %s\r\n", caps)) < 0)
		return r;
	return cmd_ok(c, cmd, "Capability completed");
}

int cmd_noop(struct imap_client *c, struct imap_cmd *cmd)
{
	if (cmd->nargs != 0)
		return cmd_bad(c, cmd, "NOOP takes no arguments");
	check_changes(c);
	return cmd_ok(c, cmd, "NOOP completed");
}

int cmd_check(struct imap_client *c, struct imap_cmd *cmd)
{
	if (cmd->nargs != 0)
		return cmd_bad(c, cmd, "CHECK takes no arguments");
	check_changes(c);
	return cmd_ok(c, cmd, "Check completed");
}

int cmd_logout(struct imap_client *c, struct imap_cmd *cmd)
{
	int r;

	if (cmd->nargs != 0)
		return cmd_bad(c, cmd, "LOGOUT takes no arguments");
	if ((r = out_str(c, "* BYE Logging out\r\n")) < 0)
		return r;
	/* No untagged updates after BYE. */
	r = out_printf(c, "%s OK Logout completed\r\n", cmd->tag);
	cmd_done(c, cmd, MR_OK);
	c->closing = true;
	return r;
}

bool arg_is_atom(const struct imap_arg *a, const char *word)
{
	return a->type == IMAP_ARG_ATOM && strcasecmp(a->str, word) == 0;
}

bool arg_is_astring(const struct imap_arg *a)
{
	return a->type == IMAP_ARG_ATOM || a->type == IMAP_ARG_QUOTED ||
	    a->type == IMAP_ARG_LITERAL || a->type == IMAP_ARG_NIL;
}

int cmd_enable(struct imap_client *c, struct imap_cmd *cmd)
{
	static const struct { const char *name; unsigned bits; } known[] = {
		{ "CONDSTORE", EN_CONDSTORE },
		{ "QRESYNC", EN_QRESYNC | EN_CONDSTORE },	/* RFC 7162 3.2.3 */
		{ "IMAP4rev2", EN_REV2 },
		{ "UTF8=ACCEPT", EN_UTF8 },
	};
	char done[256] = "";
	size_t dl = 0;
	int r;

	if (cmd->nargs == 0)
		return cmd_bad(c, cmd, "ENABLE needs capability names");
	for (size_t i = 0; i < cmd->nargs; i++)
		if (cmd->args[i].type != IMAP_ARG_ATOM)
			return cmd_bad(c, cmd, "ENABLE takes capability names");
	for (size_t i = 0; i < cmd->nargs; i++) {
		for (size_t j = 0; j < sizeof(known) / sizeof(known[0]); j++) {
			/* Unknown names are ignored (RFC 5161 3.1); only newly enabled
			 * ones are listed in ENABLED. */
			if (strcasecmp(cmd->args[i].str, known[j].name) != 0 ||
			    (c->enabled & known[j].bits) == known[j].bits)
				continue;
			c->enabled |= known[j].bits;
			if (known[j].bits & EN_CONDSTORE)
				c->condstore = true;
			r = snprintf(done + dl, sizeof(done) - dl, " %s", known[j].name);
			if (r > 0 && (size_t)r < sizeof(done) - dl)
				dl += (size_t)r;
		}
	}
	/* Enabling CONDSTORE with a mailbox selected: the client has not seen its
	 * HIGHESTMODSEQ yet (RFC 7162 3.1.8 sends it at SELECT; Dovecot sends it here). */
	if (c->view != NULL && strstr(done, "CONDSTORE") != NULL &&
	    (r = out_printf(c, "* OK [HIGHESTMODSEQ %llu] Highest\r\n",
	    (unsigned long long)c->view->st->hms)) < 0)
		return r;
	if ((r = out_printf(c, "* ENABLED%s\r\n", done)) < 0)
		return r;
	return cmd_ok(c, cmd, "Enabled");
}

int cmd_id(struct imap_client *c, struct imap_cmd *cmd)
{
	int r;

	if (cmd->nargs != 1)
		return cmd_bad(c, cmd, "ID takes one argument");
	if (cmd->args[0].type == IMAP_ARG_LIST) {
		const struct imap_arg *l = cmd->args[0].list;
		size_t n = cmd->args[0].list_n;

		/* RFC 2971 3.3: at most 30 pairs; field names up to 30, values 1024. */
		if (n % 2 != 0 || n > 60)
			return cmd_bad(c, cmd, "Invalid ID parameters");
		for (size_t i = 0; i < n; i++) {
			if (l[i].type == IMAP_ARG_LIST || (i % 2 == 0 && l[i].type == IMAP_ARG_NIL))
				return cmd_bad(c, cmd, "Invalid ID parameters");
			if (l[i].len > (i % 2 == 0 ? 30u : 1024u))
				return cmd_bad(c, cmd, "ID parameter too long");
		}
	} else if (cmd->args[0].type != IMAP_ARG_NIL) {
		return cmd_bad(c, cmd, "Invalid ID parameters");
	}
	if ((r = out_str(c, "* ID (\"name\" \"sealmail\" \"version\" \"0.1\")\r\n")) < 0)
		return r;
	return cmd_ok(c, cmd, "ID completed");
}

int cmd_namespace(struct imap_client *c, struct imap_cmd *cmd)
{
	int r;

	if (cmd->nargs != 0)
		return cmd_bad(c, cmd, "NAMESPACE takes no arguments");
	if ((r = out_str(c, "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n")) < 0)
		return r;
	return cmd_ok(c, cmd, "Namespace completed");
}

int cmd_compress(struct imap_client *c, struct imap_cmd *cmd)
{
	int r;

	if (cmd->nargs != 1 || cmd->args[0].type != IMAP_ARG_ATOM)
		return cmd_bad(c, cmd, "COMPRESS takes a mechanism name");
	if (c->deflate)
		return cmd_no(c, cmd, "[COMPRESSIONACTIVE] Compression already active");
	if (strcasecmp(cmd->args[0].str, "DEFLATE") != 0)
		return cmd_bad(c, cmd, "Unknown compression mechanism");
	if ((r = cmd_ok(c, cmd, "DEFLATE active")) < 0)
		return r;
	if ((r = out_deflate_start(c)) < 0) {
		log_warn("session: cannot start compression: %s", vault_strerror(r));
		c->fatal = true;
		return 0;
	}
	return 0;
}

int cmd_idle(struct imap_client *c, struct imap_cmd *cmd)
{
	int r;

	if (cmd->nargs != 0)
		return cmd_bad(c, cmd, "IDLE takes no arguments");
	check_changes(c);
	if (c->view != NULL && (r = view_sync(c, true)) < 0)
		return r;
	if ((c->idle_tag = strdup(cmd->tag)) == NULL)
		return -ENOMEM;
	c->idling = true;
	metrics_idle(1);
	c->idle_ka = time(NULL) + IDLE_KEEPALIVE_SECS;
	return out_str(c, "+ idling\r\n");
}
