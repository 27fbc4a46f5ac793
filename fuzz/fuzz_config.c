/* Fuzzes the sealmail.conf parser (vault_config_parse): every byte string must
 * give 0 or -EINVAL with a message naming the line, never a crash or overrun. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "fuzz.h"
#include "vault-config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vault_config c;
	char err[256];
	int r;

	r = vault_config_parse((const char *)data, size, "/etc/sealmail/fuzz.conf", &c, err,
	    sizeof(err));
	if (r != 0 && r != -EINVAL)
		abort();
	if (r == -EINVAL && strncmp(err, "/etc/sealmail/fuzz.conf:", 24) != 0)
		abort();
	if (r == 0 && (c.map_size > c.map_max || c.argon2_memory < 19456 || c.argon2_passes < 2 ||
	    c.data_dir[0] == '\0' || memchr(c.hostname, '\0', sizeof(c.hostname)) == NULL))
		abort();
	return 0;
}
