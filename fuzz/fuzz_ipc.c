/* Fuzz the checks on messages between sealmail-imapd's own processes (imapd/ipc.c):
 * the control-message table (ipc_check) and the auth frame (auth_frame_size/get).
 * The first byte picks the receiver state and whether an fd "arrived"; the rest is
 * the packet. A compromised login process controls exactly these bytes. */
#include <string.h>
#include "fuzz.h"
#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ipc_msg m;
	struct auth_frame f;
	size_t total = 0;
	uint8_t sel;

	if (size < 1)
		return 0;
	sel = data[0];
	data++;
	size--;
	if (ipc_check(data, size, sel & 1, 1u << ((sel >> 1) % 8), &m) == 0 && m.len > size)
		__builtin_trap();
	if (auth_frame_size(data, size, &total) > 0 && total <= size &&
	    auth_frame_get(data, total, &f) == 0) {
		/* Every pointer must stay inside the frame. */
		if (f.npending > total || (f.key && f.key < data) ||
		    f.npass == 0 || f.npass > AUTH_PASS_MAX || f.pass < data ||
		    f.pass + f.npass > data + total ||
		    strlen(f.tag) == 0 || f.pending + f.npending > data + total)
			__builtin_trap();
	}
	return 0;
}
