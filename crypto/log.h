/* Diagnostic log to stderr (or syslog once log_open_syslog was called).
 * Never pass secrets, passphrases, OTPs, message content or mailbox names. */
#pragma once

enum log_level { LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERR };

void log_set_ident(const char *ident);	/* e.g. "imapd[login]" */
void log_set_level(enum log_level lvl);
/* From now on send lines to syslog(3) (facility e.g. LOG_MAIL) with the current
 * ident instead of stderr. Call after log_set_ident. */
void log_open_syslog(int facility);
void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_err(...) log_msg(LOG_LVL_ERR, __VA_ARGS__)
