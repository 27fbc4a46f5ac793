/* proto: the messages between sealmail-imapd's own processes.
 *
 * Two kinds of channel:
 *  - control channels, AF_UNIX SOCK_SEQPACKET (one message per packet, at most one
 *    fd passed with SCM_RIGHTS): master <-> login process, master -> session process,
 *    LMTP process -> LMTP committer, LMTP connection process <-> committer.
 *    Every packet is [u16 type][u16 zero][u32 payload length][payload] and is checked
 *    against the table in ipc.c: {type, receiver states in which it is allowed,
 *    min size, max size, fd required}. Anything else from our own peer means that
 *    peer is compromised or broken: the receiver logs and exits (ipc_recv returns
 *    -EPROTO and callers treat that as fatal).
 *  - the data channel, AF_UNIX SOCK_STREAM socketpair between a login process (which
 *    keeps the TLS state and relays) and the user's session process. Its first bytes
 *    are one auth frame (login -> session, below), answered by one status byte
 *    (session -> login); after an OK it carries the clear IMAP byte stream.
 *
 * Payload integers are big-endian (struct sbuf). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "sbuf.h"

enum ipc_type {
	/* login -> master: u32 user id, str16 user name (1..127 bytes); fd: the session
	 * end of a fresh data socketpair. "Attach me to this user's session." */
	IPC_L2M_ATTACH = 1,
	/* master -> login: u8 status (enum ipc_attach_status). */
	IPC_M2L_ATTACH_RESULT = 2,
	/* login -> master: u8 reason (enum ipc_fail_reason)[, str16 user name (1..127)
	 * when the user exists]. Counts a failed login against the source address (the
	 * delay grows per address) and feeds the failed-login alerts (docs/audit.md). */
	IPC_L2M_AUTH_FAILED = 3,
	/* login -> master: empty. The session accepted; resets the address's count. */
	IPC_L2M_AUTH_OK = 4,
	/* login -> master: empty. The session refused; the connection no longer counts
	 * against the user. */
	IPC_L2M_DETACH = 5,
	/* master -> session: empty; fd: the session end of a login's data socketpair. */
	IPC_M2S_CONN = 6,
	/* LMTP process -> LMTP committer: empty; fd: the committer's end of a new LMTP
	 * connection process's socketpair. */
	IPC_P2K_CONN = 7,
	/* LMTP connection -> committer: one finished delivery, VAULT_DELIVERY_WIRE_BYTES
	 * of vault_delivery_export metadata (with the message's data key); fd: its
	 * ciphertext. */
	IPC_C2K_DELIVERY = 8,
	/* committer -> LMTP connection: i32 result (0 or -errno), u32 UID; one per
	 * DELIVERY, in order, sent only after the durable commit. */
	IPC_K2C_RESULT = 9,
	IPC_TYPE_END
};

enum ipc_attach_status {
	IPC_ATTACH_OK = 0,
	IPC_ATTACH_USER_LIMIT = 1,	/* max_user_connections reached */
	IPC_ATTACH_ERROR = 2,		/* could not start or reach a session */
};

enum ipc_fail_reason {
	IPC_FAIL_AUTH = 1, IPC_FAIL_NOUSER = 2, IPC_FAIL_REPLAY = 3, IPC_FAIL_TOKEN = 4,
	IPC_FAIL_WINDOW = 5, IPC_FAIL_OTHER = 6, IPC_FAIL_END
};

/* Receiver states (bit mask in the table). The master keeps one per login process. */
enum ipc_state {
	IPC_ST_MASTER_LOGIN_PRE = 1u << 0,	/* master: login not attached */
	IPC_ST_MASTER_LOGIN_ATTACHED = 1u << 1,	/* master: attached, awaiting the verdict */
	IPC_ST_MASTER_LOGIN_RELAY = 1u << 2,	/* master: logged in, relaying */
	IPC_ST_LOGIN_WAIT_ATTACH = 1u << 3,	/* login: sent ATTACH */
	IPC_ST_SESSION_RUN = 1u << 4,		/* session: running */
	IPC_ST_COMMIT_CTL = 1u << 5,		/* committer, from the LMTP process */
	IPC_ST_COMMIT_CONN = 1u << 6,		/* committer, from a connection */
	IPC_ST_LMTP_WAIT_COMMIT = 1u << 7,	/* connection: deliveries handed over */
};

#define IPC_DELIVERY_BYTES 106		/* = VAULT_DELIVERY_WIRE_BYTES (checked in lmtp.c) */

#define IPC_HDR_BYTES 8
#define IPC_MAX_PAYLOAD 512

struct ipc_msg {
	uint16_t type;
	size_t len;
	uint8_t payload[IPC_MAX_PAYLOAD];
	int fd;			/* -1 if none; the receiver owns it */
};

/* Sends one message (blocking; control messages are small). 0 or -errno
 * (-EPIPE / -ECONNRESET when the peer is gone). fd < 0: none. */
int ipc_send(int sock, uint16_t type, const void *payload, size_t len, int fd);
/* Receives one message if one is queued (non-blocking). 1: *m filled; 0: the peer
 * closed; -EAGAIN: nothing queued; -EPROTO: malformed or not allowed in `state`
 * (fatal for the caller: a passed fd is already closed); other -errno. */
int ipc_recv(int sock, uint32_t state, struct ipc_msg *m);
/* The checking half of ipc_recv, on bytes already read (also the fuzz entry point).
 * has_fd: an fd arrived with the packet. 0 or -EPROTO. */
int ipc_check(const uint8_t *pkt, size_t len, bool has_fd, uint32_t state, struct ipc_msg *m);
const char *ipc_type_name(uint16_t type);

/* ---- The auth frame (data channel, login -> session) ----------------------------
 * [u32 AUTH_MAGIC][u32 body length][body]; body: u8 version (2), u32 user id,
 * u8 token index (0xff: passphrase only), str16 login key (32 bytes, or empty for
 * passphrase only), str16 passphrase without the OTP (1..AUTH_PASS_MAX bytes: the
 * session keeps a keyed hash of it from a full login as the unlock-window verifier,
 * and checks a passphrase-only login against it), str16 LOGIN tag (1..AUTH_TAG_MAX),
 * str16 peer (<= 63), str16 tls info (<= 127), u8 tls (0/1),
 * str32 pending pipelined bytes (<= AUTH_PENDING_MAX), str16 audit session id
 * (<= AUTH_SID_MAX). Exactly the body length. */
#define AUTH_MAGIC 0x534d4131u	/* "SMA1" */
#define AUTH_KEY_BYTES 32
#define AUTH_PASS_MAX 1024
#define AUTH_TAG_MAX 256
#define AUTH_PENDING_MAX (32 * 1024)
#define AUTH_FRAME_MAX (8 + 64 + AUTH_KEY_BYTES + AUTH_PASS_MAX + AUTH_TAG_MAX + 64 + 128 + \
    AUTH_PENDING_MAX + 2 + AUTH_SID_MAX)
#define AUTH_NO_TOKEN 0xff
#define AUTH_SID_MAX 32

/* Session -> login: the verdict, one byte. */
enum auth_status {
	AUTH_ST_OK = 'K',		/* the session took the connection */
	AUTH_ST_FAIL = 'F',		/* wrong credentials for these keys */
	AUTH_ST_WINDOW = 'W',		/* passphrase only, no unlock window open (never
					 * opened, ended, or closed by failures) */
	AUTH_ST_ERROR = 'E',		/* internal error */
};

struct auth_frame {
	uint32_t user_id;
	int token_index;		/* -1: passphrase only */
	const uint8_t *key;		/* AUTH_KEY_BYTES or NULL */
	const uint8_t *pass;		/* the passphrase, npass bytes (secret) */
	size_t npass;			/* 1..AUTH_PASS_MAX */
	char tag[AUTH_TAG_MAX + 1];
	char peer[64];
	char tls_info[128];
	bool tls;
	const uint8_t *pending;
	size_t npending;
	char sid[AUTH_SID_MAX + 1];	/* audit session id (hex), "" if none */
};

/* Appends the whole frame to out (use a secure sbuf: it carries keys). */
int auth_frame_put(const struct auth_frame *f, struct sbuf *out);
/* Bytes the whole frame needs, from its first 8 bytes: 0 need more; >0 total;
 * -EPROTO bad magic or size. */
int auth_frame_size(const uint8_t *p, size_t len, size_t *total_out);
/* Parses a complete frame; f's pointers point into p. 0 or -EPROTO. */
int auth_frame_get(const uint8_t *p, size_t len, struct auth_frame *f);
